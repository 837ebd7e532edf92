use super::SemanticsError;
use crate::types::{element_count, ShapeDisplay};

/// A dense row-major integer tensor: the runtime form of an IR value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<i64>,
    /// The largest `|element|`, kept so that products can pick an exact fast path.
    max_abs: u64,
}

impl Tensor {
    /// A tensor whose data length matches its shape.
    pub fn new(shape: Vec<usize>, data: Vec<i64>) -> Result<Tensor, SemanticsError> {
        match element_count(&shape) {
            Some(n) if n == data.len() as u64 => {
                let max_abs = data.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
                Ok(Tensor {
                    shape,
                    data,
                    max_abs,
                })
            }
            _ => Err(SemanticsError::Shape(format!(
                "{} elements for shape {}",
                data.len(),
                ShapeDisplay(&shape)
            ))),
        }
    }

    pub fn scalar(v: i64) -> Tensor {
        Tensor {
            shape: Vec::new(),
            data: vec![v],
            max_abs: v.unsigned_abs(),
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &[i64] {
        &self.data
    }

    pub fn into_data(self) -> Vec<i64> {
        self.data
    }

    pub fn max_abs(&self) -> u64 {
        self.max_abs
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Length of the last axis (1 for a scalar): the axis that rows, norms and softmax run over.
    pub fn row_len(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// The single element of a scalar or one-element tensor (an index operand).
    pub fn as_index(&self) -> Result<i64, SemanticsError> {
        match self.data.as_slice() {
            [v] => Ok(*v),
            _ => Err(SemanticsError::Shape(format!(
                "expected one element, found shape {}",
                ShapeDisplay(&self.shape)
            ))),
        }
    }
}
