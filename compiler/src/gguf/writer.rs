//! Writing GGUF v3: zkc's own models and test fixtures.

use super::dequant::quantize_q8_0;
use super::value::write_string;
use super::{GgmlType, GgufError, MetaValue, DEFAULT_ALIGNMENT, MAGIC};
use std::path::Path;

/// Tensor data to write, in row-major order.
#[derive(Clone, Debug)]
pub enum TensorData {
    F32(Vec<f32>),
    /// Quantized to Q8_0 when written (the contiguous dimension must be a multiple of 32).
    Q8_0(Vec<f32>),
}

struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    bytes: Vec<u8>,
}

#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<PendingTensor>,
}

impl GgufWriter {
    pub fn new() -> GgufWriter {
        GgufWriter::default()
    }

    pub fn add_metadata(&mut self, key: &str, value: MetaValue) {
        self.metadata.push((key.to_string(), value));
    }

    /// Adds a tensor of row-major `shape` (outermost first).
    ///
    /// # Panics
    /// If the data length does not match the shape, or Q8_0 data does not fill whole blocks:
    /// both are bugs of the caller, not of a user's input.
    pub fn add_tensor(&mut self, name: &str, shape: &[u64], data: TensorData) {
        let elements: u64 = shape.iter().product();
        let (ty, bytes) = match data {
            TensorData::F32(v) => {
                assert_eq!(
                    v.len() as u64,
                    elements,
                    "tensor `{name}`: data does not match its shape"
                );
                (
                    GgmlType::F32,
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                )
            }
            TensorData::Q8_0(v) => {
                assert_eq!(
                    v.len() as u64,
                    elements,
                    "tensor `{name}`: data does not match its shape"
                );
                assert!(
                    shape.last().is_some_and(|d| d % 32 == 0),
                    "tensor `{name}`: Q8_0 needs rows of 32k"
                );
                (GgmlType::Q8_0, quantize_q8_0(&v))
            }
        };
        let dims = shape.iter().rev().copied().collect();
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            dims,
            ty,
            bytes,
        });
    }

    /// The whole file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(MAGIC);
        out.extend(3u32.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            write_string(&mut out, key);
            out.extend((value.value_type() as u32).to_le_bytes());
            value.write(&mut out);
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            write_string(&mut out, &t.name);
            out.extend((t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(t.ty.id().to_le_bytes());
            out.extend(offset.to_le_bytes());
            offset = (offset + t.bytes.len() as u64).next_multiple_of(DEFAULT_ALIGNMENT);
        }
        for t in &self.tensors {
            out.resize(
                (out.len() as u64).next_multiple_of(DEFAULT_ALIGNMENT) as usize,
                0,
            );
            out.extend(&t.bytes);
        }
        out
    }

    /// Writes the file through a temporary file renamed into place.
    pub fn write(&self, path: &Path) -> Result<(), GgufError> {
        crate::files::write_atomically(path, &self.to_bytes()).map_err(|e| GgufError::io(path, e))
    }
}
