//! zkc-lang: the integer IR that every stage of zkc speaks.
//!
//! Text in, [`Module`] out: [`parse`] builds an AST and resolves names with spans, [`validate`]
//! checks every invariant once so that later stages index without checks, [`print`] writes the
//! canonical text that [`parse`] reads back, and [`semantics`] defines what each op computes.

pub mod ir;
pub mod semantics;
pub mod types;

pub use ir::*;
pub use types::{DType, Scale, TensorType};
