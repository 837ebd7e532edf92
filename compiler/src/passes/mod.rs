//! The optimizer: equality saturation (egg) over each layer, with constraints as the cost.
//!
//! A layer becomes an e-graph ([`graph`]), whose classes carry types, value intervals and
//! constant-ness ([`facts`]); the rules ([`rules`]) add equal programs; extraction keeps the one
//! with the fewest constraints by the backend's own formulas ([`cost`]), counting each shared value
//! once ([`extract`]). Passes are named rule
//! sets run in order, the IR validated after each ([`pipeline`]).

pub mod cost;
pub mod extract;
pub mod facts;
pub mod graph;
pub mod node;
pub mod pipeline;
pub mod rules;

pub use pipeline::{default_pipeline, parse_pipeline, run, Limits, Pass, PassError, PassReport};
