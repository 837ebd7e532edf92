use crate::gguf::GgufError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ModelError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("architecture `{found}` is not supported (zkc supports: {supported})")]
    UnknownArchitecture { found: String, supported: String },
    #[error("the model has no `{key}` metadata")]
    MissingHyperparameter { key: String },
    #[error("`{key}` {problem}")]
    BadHyperparameter { key: String, problem: String },
    #[error("tensor `{name}` ({role}) is missing from the model")]
    MissingTensor { name: String, role: String },
    #[error("tensor `{name}` ({role}) has shape {found:?}, expected {expected:?}")]
    WrongShape {
        name: String,
        role: String,
        found: Vec<u64>,
        expected: Vec<u64>,
    },
    #[error("token id {token} is outside the vocabulary (0..{vocab})")]
    TokenOutOfRange { token: u32, vocab: usize },
    #[error("the context is full: the model was built for {ctx} positions")]
    ContextFull { ctx: usize },
    #[error("this is a single-pass model (ONNX): it takes an input tensor, not tokens (give --input FILE)")]
    NotALanguageModel,
    #[error("this is a language model: it takes tokens, not an input tensor")]
    NotASinglePass,
    #[error("the input has {found} values, the model takes {expected}")]
    InputLength { expected: usize, found: usize },
}
