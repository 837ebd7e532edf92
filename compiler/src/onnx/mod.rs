//! The ONNX frontend (docs/onnx.md): an ONNX file's graph mapped into the model graph, the same
//! DAG of float ops a GGUF architecture builds, so quantization, passes, backend and runtime
//! serve both. Shape arithmetic and constant subgraphs are folded at import; an op zkc cannot
//! map is an error naming the node, the op and the opset.
//!
//! The file is decoded with prost into the messages of `onnx.proto` that zkc reads
//! ([`proto`]); [`import`] walks the nodes in their (topological) order.

mod array;
mod import;
pub mod proto;
mod summary;

pub use array::Array;
pub use import::{import, Imported};
pub use summary::{summarize, OpCount, Summary};

use prost::Message;
use std::path::Path;
use thiserror::Error;

/// The largest tensor zkc reads (elements): far past any model a circuit could hold, small
/// enough that a corrupt dimension cannot ask for an unbounded allocation.
pub const MAX_ELEMENTS: usize = 1 << 28;

#[derive(Debug, Error)]
pub enum OnnxError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not an ONNX model: {problem}")]
    Decode { path: String, problem: String },
    #[error("node `{node}` ({op}, opset {opset}): {problem}")]
    Node {
        node: String,
        op: String,
        opset: i64,
        problem: String,
    },
    #[error("tensor `{name}`: {problem}")]
    Tensor { name: String, problem: String },
    #[error("the graph's {what}: {problem}")]
    Interface { what: String, problem: String },
}

/// A decoded ONNX file.
pub struct OnnxModel {
    pub proto: proto::ModelProto,
    /// The default domain's operator set version.
    pub opset: i64,
}

impl OnnxModel {
    pub fn graph(&self) -> &proto::GraphProto {
        self.proto
            .graph
            .as_ref()
            .expect("read() refuses a model without a graph")
    }
}

/// Reads and decodes `path`.
pub fn read(path: &Path) -> Result<OnnxModel, OnnxError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
        path: shown.clone(),
        source,
    })?;
    decode(&bytes, &shown)
}

/// Decodes the bytes of an ONNX file; `path` names it in errors.
pub fn decode(bytes: &[u8], path: &str) -> Result<OnnxModel, OnnxError> {
    let bad = |problem: String| OnnxError::Decode {
        path: path.to_string(),
        problem,
    };
    let proto = proto::ModelProto::decode(bytes)
        .map_err(|e| bad(format!("protobuf decoding failed ({e})")))?;
    if proto.graph.is_none() {
        return Err(bad("the file holds no graph".into()));
    }
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| bad("no operator set of the default domain is imported".into()))?;
    Ok(OnnxModel { proto, opset })
}

/// The op types zkc maps (some only in the forms docs/onnx.md gives).
pub const SUPPORTED_OPS: &[&str] = &[
    "Add",
    "AveragePool",
    "Cast",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "Div",
    "Dropout",
    "Erf",
    "Flatten",
    "Gather",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "Identity",
    "LayerNormalization",
    "LeakyRelu",
    "MatMul",
    "Mul",
    "Neg",
    "Pow",
    "ReduceMean",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Softmax",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Unsqueeze",
];

/// Whether `path` names an ONNX file (by its extension: ONNX files carry no magic number).
pub fn is_onnx(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}
