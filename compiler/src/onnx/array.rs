//! Constant tensors of an ONNX graph (initializers, `Constant` nodes, folded subgraphs), held
//! as f64: exact for every integer a shape computation uses and for every float weight.

use super::{proto::TensorProto, OnnxError, MAX_ELEMENTS};

#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// The element count of `shape`, if it is at most [`MAX_ELEMENTS`].
pub fn elements(shape: &[usize]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
}

impl Array {
    pub fn scalar(v: f64) -> Array {
        Array {
            shape: vec![],
            data: vec![v],
        }
    }

    pub fn vector(data: Vec<f64>) -> Array {
        Array {
            shape: vec![data.len()],
            data,
        }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements as integers (shape arithmetic); `None` if one is not an integer.
    pub fn ints(&self) -> Option<Vec<i64>> {
        self.data
            .iter()
            .map(|&v| (v.fract() == 0.0 && v.abs() < 9.0e15).then_some(v as i64))
            .collect()
    }

    /// The only element, if there is one.
    pub fn single(&self) -> Option<f64> {
        (self.data.len() == 1).then(|| self.data[0])
    }

    /// Reads an initializer or a `Constant`'s tensor, checking its size against its dims.
    pub fn from_proto(t: &TensorProto) -> Result<Array, OnnxError> {
        let bad = |problem: String| OnnxError::Tensor {
            name: t.name.clone(),
            problem,
        };
        if t.data_location == 1 {
            return Err(bad(
                "its data is in an external file: save the model with its weights inside \
                 (onnx.save(model, path, save_as_external_data=False))"
                    .into(),
            ));
        }
        let shape: Vec<usize> = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}"))))
            .collect::<Result<_, _>>()?;
        let n = elements(&shape)
            .ok_or_else(|| bad(format!("shape {shape:?} has more than 2^28 elements")))?;
        let raw = &t.raw_data;
        let (width, decode): (usize, fn(&[u8]) -> f64) = match t.data_type {
            1 => (4, |b| {
                f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64
            }),
            2 | 9 => (1, |b| b[0] as f64),
            3 => (1, |b| b[0] as i8 as f64),
            5 => (2, |b| {
                i16::from_le_bytes(b.try_into().expect("2 bytes")) as f64
            }),
            6 => (4, |b| {
                i32::from_le_bytes(b.try_into().expect("4 bytes")) as f64
            }),
            7 => (8, |b| {
                i64::from_le_bytes(b.try_into().expect("8 bytes")) as f64
            }),
            10 => (2, |b| {
                half::f16::from_le_bytes(b.try_into().expect("2 bytes")).to_f64()
            }),
            11 => (8, |b| f64::from_le_bytes(b.try_into().expect("8 bytes"))),
            other => {
                return Err(bad(format!(
                    "element type {other} is not one zkc reads (float, double, float16, \
                     int8/16/32/64, uint8, bool)"
                )))
            }
        };
        let data: Vec<f64> = if !raw.is_empty() {
            if raw.len() != n * width {
                return Err(bad(format!(
                    "raw data of {} bytes for {n} elements of {width} bytes",
                    raw.len()
                )));
            }
            raw.chunks_exact(width).map(decode).collect()
        } else {
            let typed: Vec<f64> = match t.data_type {
                1 => t.float_data.iter().map(|&v| v as f64).collect(),
                11 => t.double_data.clone(),
                7 => t.int64_data.iter().map(|&v| v as f64).collect(),
                10 => t
                    .int32_data
                    .iter()
                    .map(|&v| half::f16::from_bits(v as u16).to_f64())
                    .collect(),
                _ => t.int32_data.iter().map(|&v| v as f64).collect(),
            };
            if typed.len() != n {
                return Err(bad(format!(
                    "{} values for shape {shape:?} ({n} elements)",
                    typed.len()
                )));
            }
            typed
        };
        Ok(Array { shape, data })
    }

    /// This array with `shape` (same element count).
    pub fn reshaped(&self, shape: Vec<usize>) -> Option<Array> {
        (elements(&shape) == Some(self.len())).then(|| Array {
            shape,
            data: self.data.clone(),
        })
    }

    /// The axes permuted: result axis `i` is axis `perm[i]` of this array.
    pub fn transposed(&self, perm: &[usize]) -> Option<Array> {
        let rank = self.shape.len();
        let mut seen = vec![false; rank];
        if perm.len() != rank
            || perm
                .iter()
                .any(|&p| p >= rank || std::mem::replace(&mut seen[p], true))
        {
            return None;
        }
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let strides = strides(&self.shape);
        let mut data = Vec::with_capacity(self.len());
        for index in Indices::new(&shape) {
            let at: usize = index.iter().zip(perm).map(|(&i, &p)| i * strides[p]).sum();
            data.push(self.data[at]);
        }
        Some(Array { shape, data })
    }

    /// Elementwise `f(a, b)` with numpy broadcasting.
    pub fn broadcast(&self, other: &Array, f: impl Fn(f64, f64) -> f64) -> Option<Array> {
        let shape = broadcast_shape(&self.shape, &other.shape)?;
        let (ia, ib) = (
            broadcast_strides(&self.shape, &shape),
            broadcast_strides(&other.shape, &shape),
        );
        let data = Indices::new(&shape)
            .map(|index| {
                let a: usize = index.iter().zip(&ia).map(|(i, s)| i * s).sum();
                let b: usize = index.iter().zip(&ib).map(|(i, s)| i * s).sum();
                f(self.data[a], other.data[b])
            })
            .collect();
        Some(Array { shape, data })
    }

    pub fn map(&self, f: impl Fn(f64) -> f64) -> Array {
        Array {
            shape: self.shape.clone(),
            data: self.data.iter().map(|&v| f(v)).collect(),
        }
    }
}

/// Row-major strides of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// numpy's broadcast of two shapes.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let at = |s: &[usize], i: usize| {
        if i + s.len() >= rank {
            s[i + s.len() - rank]
        } else {
            1
        }
    };
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// Strides that read an array of `shape` broadcast to `target` (0 along broadcast axes).
fn broadcast_strides(shape: &[usize], target: &[usize]) -> Vec<usize> {
    let own = strides(shape);
    let offset = target.len() - shape.len();
    (0..target.len())
        .map(|i| match i.checked_sub(offset) {
            Some(j) if shape[j] != 1 => own[j],
            _ => 0,
        })
        .collect()
}

/// Every index of `shape`, in row-major order.
pub struct Indices {
    shape: Vec<usize>,
    next: Option<Vec<usize>>,
}

impl Indices {
    pub fn new(shape: &[usize]) -> Indices {
        let empty = shape.contains(&0);
        Indices {
            shape: shape.to_vec(),
            next: (!empty).then(|| vec![0; shape.len()]),
        }
    }
}

impl Iterator for Indices {
    type Item = Vec<usize>;

    fn next(&mut self) -> Option<Vec<usize>> {
        let current = self.next.take()?;
        let mut following = current.clone();
        for i in (0..following.len()).rev() {
            following[i] += 1;
            if following[i] < self.shape[i] {
                self.next = Some(following);
                return Some(current);
            }
            following[i] = 0;
        }
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_and_broadcasts_as_numpy() {
        let a = Array {
            shape: vec![2, 3],
            data: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        };
        let t = a.transposed(&[1, 0]).unwrap();
        assert_eq!(t.shape, vec![3, 2]);
        assert_eq!(t.data, vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        assert!(a.transposed(&[0, 0]).is_none());
        let row = Array::vector(vec![10.0, 20.0, 30.0]);
        let s = a.broadcast(&row, |x, y| x + y).unwrap();
        assert_eq!(s.data, vec![10.0, 21.0, 32.0, 13.0, 24.0, 35.0]);
        let col = Array {
            shape: vec![2, 1],
            data: vec![1.0, 2.0],
        };
        assert_eq!(
            a.broadcast(&col, |x, y| x * y).unwrap().data,
            vec![0.0, 1.0, 2.0, 6.0, 8.0, 10.0]
        );
        assert!(a
            .broadcast(&Array::vector(vec![1.0, 2.0]), |x, _| x)
            .is_none());
        assert_eq!(Indices::new(&[]).count(), 1);
        assert_eq!(Indices::new(&[2, 0]).count(), 0);
    }
}
