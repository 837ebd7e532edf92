//! zkc-compiler: GGUF frontend, model graph, quantizer, egg passes and the per-layer R1CS
//! backend (see `docs/architecture.md`). It consumes and produces [`zkc_lang::Module`]s; the
//! stages land with their issues, in pipeline order.

pub mod artifact;
pub mod backend;
pub mod files;
pub mod gguf;
pub mod model;
pub mod onnx;
pub mod parts;
pub mod passes;
pub mod quantize;
pub mod tokenizer;
