use super::SemanticsError;
use crate::types::{element_count, ShapeDisplay};
use std::sync::OnceLock;

/// A dense row-major integer tensor: the runtime form of an IR value.
#[derive(Clone, Debug)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<i64>,
    /// An upper bound on `|element|` (the largest one unless made by `with_bound`), computed
    /// when first asked for: products use it to pick an exact fast path.
    max_abs: OnceLock<u64>,
    /// The data as i16 when it fits, made when first asked for: weights read through it move a
    /// quarter of the bytes.
    narrow: OnceLock<Option<Vec<i16>>>,
}

impl PartialEq for Tensor {
    fn eq(&self, other: &Tensor) -> bool {
        self.shape == other.shape && self.data == other.data
    }
}

impl Eq for Tensor {}

impl Tensor {
    /// A tensor whose data length matches its shape.
    pub fn new(shape: Vec<usize>, data: Vec<i64>) -> Result<Tensor, SemanticsError> {
        match element_count(&shape) {
            Some(n) if n == data.len() as u64 => Ok(Tensor {
                shape,
                data,
                max_abs: OnceLock::new(),
                narrow: OnceLock::new(),
            }),
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
            max_abs: OnceLock::from(v.unsigned_abs()),
            narrow: OnceLock::new(),
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
        *self.max_abs.get_or_init(|| {
            self.data
                .iter()
                .map(|v| v.unsigned_abs())
                .max()
                .unwrap_or(0)
        })
    }

    /// The elements as i16, if every one fits.
    pub fn narrow_i16(&self) -> Option<&[i16]> {
        self.narrow
            .get_or_init(|| {
                (self.max_abs() < 1 << 15).then(|| self.data.iter().map(|&v| v as i16).collect())
            })
            .as_deref()
    }

    /// A tensor whose largest `|element|` the caller already knows to be at most `bound`
    /// (`kv_append` knows it from its operands); `max_abs` then reports the bound.
    pub(crate) fn with_bound(
        shape: Vec<usize>,
        data: Vec<i64>,
        bound: u64,
    ) -> Result<Tensor, SemanticsError> {
        let t = Tensor::new(shape, data)?;
        t.max_abs.set(bound).expect("a new tensor has no bound yet");
        Ok(t)
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

/// A tensor from literal shape and data, for tests.
#[cfg(test)]
pub(crate) fn t(shape: &[usize], data: &[i64]) -> Tensor {
    Tensor::new(shape.to_vec(), data.to_vec()).unwrap()
}
