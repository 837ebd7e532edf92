//! Data movement: reshape, transpose, split and concat. None of them computes anything, so in a
//! circuit they cost nothing: they only relabel variables.

use super::{SemanticsError, Tensor};
use crate::types::{element_count, ShapeDisplay};

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

pub fn reshape(x: &Tensor, shape: &[usize]) -> Result<Tensor, SemanticsError> {
    if element_count(shape) != Some(x.len() as u64) {
        return Err(SemanticsError::Shape(format!(
            "cannot reshape {} to {}",
            ShapeDisplay(x.shape()),
            ShapeDisplay(shape)
        )));
    }
    Tensor::new(shape.to_vec(), x.data().to_vec())
}

/// Result axis `i` is input axis `perm[i]`.
pub fn transpose(x: &Tensor, perm: &[usize]) -> Result<Tensor, SemanticsError> {
    let rank = x.shape().len();
    let mut seen = vec![false; rank];
    if perm.len() != rank
        || perm
            .iter()
            .any(|&p| p >= rank || std::mem::replace(&mut seen[p], true))
    {
        return Err(SemanticsError::Shape(format!(
            "{perm:?} is not a permutation of the axes of {}",
            ShapeDisplay(x.shape())
        )));
    }
    let in_strides = strides(x.shape());
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
    let mut index = vec![0usize; rank];
    let mut data = Vec::with_capacity(x.len());
    for _ in 0..x.len() {
        let offset: usize = (0..rank).map(|i| index[i] * in_strides[perm[i]]).sum();
        data.push(x.data()[offset]);
        for axis in (0..rank).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Tensor::new(shape, data)
}

/// `parts` equal slices along `axis`.
pub fn split(x: &Tensor, axis: usize, parts: usize) -> Result<Vec<Tensor>, SemanticsError> {
    let Some(&len) = x.shape().get(axis) else {
        return Err(SemanticsError::Shape(format!(
            "no axis {axis} in {}",
            ShapeDisplay(x.shape())
        )));
    };
    if parts == 0 || len % parts != 0 {
        return Err(SemanticsError::Shape(format!(
            "axis {axis} of {} does not split into {parts} equal parts",
            ShapeDisplay(x.shape())
        )));
    }
    let part = len / parts;
    let inner: usize = x.shape()[axis + 1..].iter().product();
    let outer: usize = x.shape()[..axis].iter().product();
    let mut shape = x.shape().to_vec();
    shape[axis] = part;
    (0..parts)
        .map(|p| {
            let mut data = Vec::with_capacity(outer * part * inner);
            for o in 0..outer {
                let start = (o * len + p * part) * inner;
                data.extend_from_slice(&x.data()[start..start + part * inner]);
            }
            Tensor::new(shape.clone(), data)
        })
        .collect()
}

/// Joins tensors along `axis`; every other axis must agree.
pub fn concat(xs: &[&Tensor], axis: usize) -> Result<Tensor, SemanticsError> {
    let Some(first) = xs.first() else {
        return Err(SemanticsError::Shape("concat of nothing".into()));
    };
    let rank = first.shape().len();
    let same_frame = |t: &&Tensor| {
        t.shape().len() == rank && (0..rank).all(|i| i == axis || t.shape()[i] == first.shape()[i])
    };
    if axis >= rank || !xs.iter().all(same_frame) {
        return Err(SemanticsError::Shape(format!(
            "operands do not concatenate along axis {axis}"
        )));
    }
    let inner: usize = first.shape()[axis + 1..].iter().product();
    let outer: usize = first.shape()[..axis].iter().product();
    let mut shape = first.shape().to_vec();
    shape[axis] = xs.iter().map(|t| t.shape()[axis]).sum();
    let mut data = Vec::with_capacity(shape.iter().product());
    for o in 0..outer {
        for t in xs {
            let chunk = t.shape()[axis] * inner;
            data.extend_from_slice(&t.data()[o * chunk..(o + 1) * chunk]);
        }
    }
    Tensor::new(shape, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantics::tensor::t;

    #[test]
    fn transpose_permutes_axes() {
        let x = t(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(
            transpose(&x, &[1, 0]).unwrap(),
            t(&[3, 2], &[1, 4, 2, 5, 3, 6])
        );
        let y = t(&[1, 2, 2], &[1, 2, 3, 4]);
        assert_eq!(
            transpose(&y, &[1, 0, 2]).unwrap(),
            t(&[2, 1, 2], &[1, 2, 3, 4])
        );
        assert_eq!(
            transpose(&y, &[2, 1, 0]).unwrap(),
            t(&[2, 2, 1], &[1, 3, 2, 4])
        );
        assert!(transpose(&x, &[0, 0]).is_err());
    }

    #[test]
    fn split_then_concat_is_identity() {
        let x = t(&[2, 6], &(0..12).collect::<Vec<_>>());
        let parts = split(&x, 1, 3).unwrap();
        assert_eq!(parts[1], t(&[2, 2], &[2, 3, 8, 9]));
        let refs: Vec<&Tensor> = parts.iter().collect();
        assert_eq!(concat(&refs, 1).unwrap(), x);
        assert!(split(&x, 1, 4).is_err());
        assert!(split(&x, 2, 1).is_err());
    }

    #[test]
    fn reshape_keeps_element_count() {
        let x = t(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(reshape(&x, &[3, 2]).unwrap().shape(), &[3, 2]);
        assert!(reshape(&x, &[4, 2]).is_err());
        assert_eq!(reshape(&t(&[1], &[7]), &[]).unwrap(), Tensor::scalar(7));
    }
}
