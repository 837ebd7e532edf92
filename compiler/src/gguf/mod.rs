//! GGUF, the model format of llama.cpp: reading (zero-copy from a memory map, every header field
//! checked against the file before anything is allocated), ggml's block formats dequantized to
//! f32 exactly as ggml does, and writing (for zkc's own models and test fixtures).
//!
//! Why not the `gguf-rs` crate: see `docs/gguf.md`.

mod cursor;
mod dequant;
mod error;
mod ggml_type;
mod reader;
mod value;
mod writer;

pub use dequant::dequantize;
pub use error::GgufError;
pub use ggml_type::GgmlType;
pub use reader::{GgufFile, TensorInfo, DEFAULT_ALIGNMENT};
pub use value::{MetaArray, MetaValue, ValueType};
pub use writer::{GgufWriter, TensorData};

/// The magic at the start of every GGUF file (`GGUF`, little-endian).
pub const MAGIC: [u8; 4] = *b"GGUF";
