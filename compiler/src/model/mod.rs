//! From a GGUF file to a model graph of float ops, and the float reference evaluator over it.
//!
//! An architecture is a mapping (`gpt2.rs`): which hyperparameters and tensors it reads and how
//! it wires one block. The graph, its ops and the evaluator are shared, so adding `llama` is a
//! new mapping plus the few ops it needs (RMSNorm, RoPE, SwiGLU), not a rewrite.

mod error;
mod float_eval;
mod generate;
mod gpt2;
mod graph;
mod hparams;

pub use error::ModelError;
pub(crate) use float_eval::gelu_tanh;
pub use float_eval::{FloatModel, FloatSession};
pub use generate::{generate_gpt2, ModelConfig, WeightType};
pub use graph::{FloatOp, Graph, Node, NodeId, Stage, TensorRef};
pub use hparams::Hyperparams;

use crate::gguf::{GgufFile, MetaValue};

/// The architectures zkc maps, by their `general.architecture` name.
pub const ARCHITECTURES: [&str; 1] = ["gpt2"];

/// Reads the hyperparameters and builds the graph of the architecture the file names, checking
/// that every tensor the graph uses exists with the shape its role needs.
pub fn build_graph(gguf: &GgufFile) -> Result<(Hyperparams, Graph), ModelError> {
    let arch = gguf
        .get("general.architecture")
        .and_then(MetaValue::as_str)
        .ok_or(ModelError::MissingHyperparameter {
            key: "general.architecture".into(),
        })?;
    let graph = match arch {
        "gpt2" => {
            let hp = Hyperparams::read(gguf, arch)?;
            let graph = gpt2::build(&hp, gguf)?;
            (hp, graph)
        }
        other => {
            return Err(ModelError::UnknownArchitecture {
                found: other.to_string(),
                supported: ARCHITECTURES.join(", "),
            })
        }
    };
    Ok(graph)
}
