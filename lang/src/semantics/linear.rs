//! Matrix products: by a constant weight matrix (free in constraints) and between variables.

use super::{dot, fit, SemanticsError, Tensor};
use crate::types::{DType, ShapeDisplay};

fn mismatch(a: &[usize], b: &[usize]) -> SemanticsError {
    SemanticsError::Shape(format!(
        "{} and {} cannot be multiplied",
        ShapeDisplay(a),
        ShapeDisplay(b)
    ))
}

/// `x[.., K] * w[K, N] + bias[N]`, accumulated exactly.
pub fn linear(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    out: DType,
) -> Result<Tensor, SemanticsError> {
    let &[k, n] = w.shape() else {
        return Err(mismatch(x.shape(), w.shape()));
    };
    if x.row_len() != k || x.shape().is_empty() || bias.is_some_and(|b| b.shape() != [n]) {
        return Err(mismatch(x.shape(), w.shape()));
    }
    let wd = w.data();
    let rows: usize = x.shape()[..x.shape().len() - 1].iter().product();
    let mut data = Vec::with_capacity(rows * n);
    for r in 0..rows {
        let row = &x.data()[r * k..(r + 1) * k];
        for j in 0..n {
            let acc = dot(
                row.iter().enumerate().map(|(i, &xv)| (xv, wd[i * n + j])),
                "linear",
            )?;
            data.push(fit(acc + bias.map_or(0, |b| b.data()[j] as i128), out)?);
        }
    }
    let mut shape = x.shape().to_vec();
    *shape.last_mut().expect("rank checked above") = n;
    Tensor::new(shape, data)
}

/// Batched `a[.., M, K] * b[.., K, N]` with equal batch axes.
pub fn matmul(a: &Tensor, b: &Tensor, out: DType) -> Result<Tensor, SemanticsError> {
    let (ra, rb) = (a.shape().len(), b.shape().len());
    if ra < 2 || ra != rb || a.shape()[..ra - 2] != b.shape()[..rb - 2] {
        return Err(mismatch(a.shape(), b.shape()));
    }
    let (m, k) = (a.shape()[ra - 2], a.shape()[ra - 1]);
    let (k2, n) = (b.shape()[rb - 2], b.shape()[rb - 1]);
    if k != k2 {
        return Err(mismatch(a.shape(), b.shape()));
    }
    let batches: usize = a.shape()[..ra - 2].iter().product();
    let (ad, bd) = (a.data(), b.data());
    let mut data = Vec::with_capacity(batches * m * n);
    for batch in 0..batches {
        let (ab, bb) = (batch * m * k, batch * k * n);
        for i in 0..m {
            for j in 0..n {
                let acc = dot(
                    (0..k).map(|t| (ad[ab + i * k + t], bd[bb + t * n + j])),
                    "matmul",
                )?;
                data.push(fit(acc, out)?);
            }
        }
    }
    let mut shape = a.shape().to_vec();
    shape[ra - 1] = n;
    Tensor::new(shape, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], data: &[i64]) -> Tensor {
        Tensor::new(shape.to_vec(), data.to_vec()).unwrap()
    }

    #[test]
    fn linear_adds_bias_per_output() {
        let x = t(&[1, 2], &[1, 2]);
        let w = t(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let b = t(&[3], &[100, 0, -100]);
        let y = linear(&x, &w, Some(&b), DType::I32).unwrap();
        assert_eq!(y, t(&[1, 3], &[109, 12, -85]));
        assert!(linear(&t(&[1, 3], &[1, 2, 3]), &w, None, DType::I32).is_err());
    }

    #[test]
    fn matmul_is_batched() {
        let a = t(&[2, 1, 2], &[1, 2, 3, 4]);
        let b = t(&[2, 2, 1], &[5, 6, 7, 8]);
        assert_eq!(
            matmul(&a, &b, DType::I32).unwrap(),
            t(&[2, 1, 1], &[17, 53])
        );
        assert!(matmul(&a, &t(&[2, 3, 1], &[0; 6]), DType::I32).is_err());
        let big = t(&[1, 4], &[i64::MAX; 4]);
        let w = t(&[4, 1], &[i64::MAX; 4]);
        assert_eq!(
            linear(&big, &w, None, DType::I64),
            Err(SemanticsError::IntermediateOverflow("linear"))
        );
    }
}
