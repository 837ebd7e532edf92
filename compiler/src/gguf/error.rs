use thiserror::Error;

/// What is wrong with a GGUF file, naming the field or tensor and what was expected.
#[derive(Debug, Error)]
pub enum GgufError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not a GGUF file: the magic is {found:?}, expected \"GGUF\"")]
    BadMagic { found: [u8; 4] },
    #[error("GGUF version {0} is not supported (zkc reads versions 2 and 3{hint})", hint = if *.0 == 1 { "; re-convert this v1 file with a current llama.cpp" } else if .0.swap_bytes() <= 3 { "; this looks like a big-endian file, which zkc does not read" } else { "" })]
    UnsupportedVersion(u32),
    #[error("the file ends inside {what} (at byte {offset}, {needed} more byte(s) needed)")]
    Truncated {
        what: String,
        offset: u64,
        needed: u64,
    },
    #[error("{what} is {value}, more than the file can hold (at most {limit})")]
    TooLarge {
        what: String,
        value: u64,
        limit: u64,
    },
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: String },
    #[error("metadata key `{key}` has unknown value type {id}")]
    UnknownValueType { key: String, id: u32 },
    #[error("metadata key `{key}` appears twice")]
    DuplicateKey { key: String },
    #[error("`general.alignment` must be a nonzero power of two (u32), found {found}")]
    BadAlignment { found: String },
    #[error("tensor `{tensor}` has unknown type id {id}")]
    UnknownTensorType { tensor: String, id: u32 },
    #[error("tensor `{tensor}` appears twice")]
    DuplicateTensor { tensor: String },
    #[error("tensor `{tensor}` has {dims} dimensions; ggml allows 1 to 4")]
    BadRank { tensor: String, dims: u32 },
    #[error("tensor `{tensor}` has shape {shape:?}: {problem}")]
    BadShape {
        tensor: String,
        shape: Vec<u64>,
        problem: String,
    },
    #[error("tensor `{tensor}` data (bytes {start}..{end} of the file) lies beyond its end ({file_len} bytes)")]
    DataOutOfBounds {
        tensor: String,
        start: u64,
        end: u64,
        file_len: u64,
    },
    #[error(
        "tensor `{tensor}` data offset {offset} is not a multiple of the alignment {alignment}"
    )]
    Misaligned {
        tensor: String,
        offset: u64,
        alignment: u64,
    },
    #[error("tensors `{first}` and `{second}` overlap in the data section")]
    Overlap { first: String, second: String },
    #[error("tensor `{tensor}` has type {ty}, which zkc cannot dequantize (it reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)")]
    UnsupportedType { tensor: String, ty: &'static str },
}

impl GgufError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> GgufError {
        GgufError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
