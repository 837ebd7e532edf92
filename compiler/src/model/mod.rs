//! From a GGUF file to a model graph of float ops, and the float reference evaluator over it.
//!
//! An architecture is a mapping ([`Architecture`]: `gpt2.rs`; `llama.rs` for `llama` and `qwen2`): which metadata it
//! reads and how it wires its blocks out of the shared ops. The graph, its ops and the evaluator
//! are shared, so a new architecture is one more mapping plus whatever ops it alone needs.

mod error;
mod float_eval;
mod generate;
mod gpt2;
mod graph;
mod hparams;
mod llama;

pub use error::ModelError;
pub(crate) use float_eval::{erf, gelu_erf, gelu_tanh, sigmoid, silu};
pub use float_eval::{FloatModel, FloatSession};
pub use generate::{generate_gpt2, generate_llama, generate_qwen2, ModelConfig, WeightType};
pub use graph::{FloatOp, Graph, GraphBuilder, Io, Node, NodeId, RopePairs, Stage, TensorRef};
pub use hparams::{Hyperparams, RopeParams};

use crate::gguf::{GgufFile, MetaValue};
use hparams::Keys;

/// What an architecture provides: its `general.architecture` name, the metadata keys it reads
/// beyond the common ones, and its graph from the hyperparameters and the file's tensors.
struct Architecture {
    name: &'static str,
    keys: Keys,
    build: fn(&Hyperparams, &GgufFile) -> Result<Graph, ModelError>,
}

const MAPPINGS: [Architecture; 3] = [
    Architecture {
        name: "gpt2",
        keys: Keys {
            norm_eps: "attention.layer_norm_epsilon",
            rope_and_kv_heads: false,
        },
        build: gpt2::build,
    },
    Architecture {
        name: "llama",
        keys: Keys {
            norm_eps: "attention.layer_norm_rms_epsilon",
            rope_and_kv_heads: true,
        },
        build: llama::build,
    },
    Architecture {
        name: "qwen2",
        keys: Keys {
            norm_eps: "attention.layer_norm_rms_epsilon",
            rope_and_kv_heads: true,
        },
        build: llama::build_qwen2,
    },
];

/// The architectures zkc maps, by their `general.architecture` name.
pub fn architectures() -> impl Iterator<Item = &'static str> {
    MAPPINGS.iter().map(|a| a.name)
}

fn mapping(gguf: &GgufFile) -> Result<(&'static Architecture, &str), ModelError> {
    let arch = gguf
        .get("general.architecture")
        .and_then(MetaValue::as_str)
        .ok_or(ModelError::MissingHyperparameter {
            key: "general.architecture".into(),
        })?;
    let found = MAPPINGS.iter().find(|a| a.name == arch);
    let mapping = found.ok_or_else(|| ModelError::UnknownArchitecture {
        found: arch.to_string(),
        supported: architectures().collect::<Vec<_>>().join(", "),
    })?;
    Ok((mapping, arch))
}

/// The hyperparameters of the architecture the file names.
pub fn hyperparams(gguf: &GgufFile) -> Result<Hyperparams, ModelError> {
    let (mapping, arch) = mapping(gguf)?;
    Hyperparams::read(gguf, arch, &mapping.keys)
}

/// Reads the hyperparameters and builds the graph of the architecture the file names, checking
/// that every tensor the graph uses exists with the shape its role needs.
pub fn build_graph(gguf: &GgufFile) -> Result<(Hyperparams, Graph), ModelError> {
    let (mapping, arch) = mapping(gguf)?;
    let hp = Hyperparams::read(gguf, arch, &mapping.keys)?;
    let graph = (mapping.build)(&hp, gguf)?;
    Ok((hp, graph))
}
