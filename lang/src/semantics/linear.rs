//! Matrix products: by a constant weight matrix (free in constraints) and between variables.

use super::{dot, fit, SemanticsError, Tensor};
use crate::types::{DType, ShapeDisplay};
use rayon::prelude::*;

fn mismatch(a: &[usize], b: &[usize]) -> SemanticsError {
    SemanticsError::Shape(format!(
        "{} and {} cannot be multiplied",
        ShapeDisplay(a),
        ShapeDisplay(b)
    ))
}

/// `x[.., K] * w[K, N] + bias[N]`, accumulated exactly.
///
/// When the operands' magnitudes bound every partial sum below 2^31 (quantized activations and
/// weights) the sums run in i32 over i16 weights, below 2^63 in i64, otherwise in checked i128;
/// column blocks run in parallel. Every path computes the same integers.
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
    let bound = (x.max_abs() as u128 * w.max_abs() as u128).saturating_mul(k as u128)
        + bias.map_or(0, |b| b.max_abs() as u128);
    let mut data = Vec::with_capacity(rows * n);
    for r in 0..rows {
        let row = &x.data()[r * k..(r + 1) * k];
        let narrow = (bound < 1 << 31 && x.max_abs() < 1 << 15)
            .then(|| w.narrow_i16())
            .flatten();
        let sums: Vec<i128> = if let Some(w16) = narrow {
            // No partial sum can leave i32: accumulate there, reading weights as i16.
            let mut acc: Vec<i32> = bias.map_or_else(
                || vec![0; n],
                |b| b.data().iter().map(|&v| v as i32).collect(),
            );
            acc.par_chunks_mut(COLUMN_BLOCK)
                .enumerate()
                .for_each(|(block, acc)| {
                    let start = block * COLUMN_BLOCK;
                    for (i, &xv) in row.iter().enumerate() {
                        let (xv, w_row) =
                            (xv as i32, &w16[i * n + start..i * n + start + acc.len()]);
                        for (a, &wv) in acc.iter_mut().zip(w_row) {
                            *a += xv * wv as i32;
                        }
                    }
                });
            acc.into_iter().map(i128::from).collect()
        } else if bound < 1 << 63 {
            let mut acc: Vec<i64> = bias.map_or_else(|| vec![0; n], |b| b.data().to_vec());
            acc.par_chunks_mut(COLUMN_BLOCK)
                .enumerate()
                .for_each(|(block, acc)| {
                    let start = block * COLUMN_BLOCK;
                    for (i, &xv) in row.iter().enumerate() {
                        let w_row = &wd[i * n + start..i * n + start + acc.len()];
                        for (a, &wv) in acc.iter_mut().zip(w_row) {
                            *a += xv * wv;
                        }
                    }
                });
            acc.into_iter().map(i128::from).collect()
        } else {
            (0..n)
                .map(|j| {
                    let acc = dot(
                        row.iter().enumerate().map(|(i, &xv)| (xv, wd[i * n + j])),
                        "linear",
                    )?;
                    Ok(acc + bias.map_or(0, |b| b.data()[j] as i128))
                })
                .collect::<Result<_, SemanticsError>>()?
        };
        for v in sums {
            data.push(fit(v, out)?);
        }
    }
    let mut shape = x.shape().to_vec();
    *shape.last_mut().expect("rank checked above") = n;
    Tensor::new(shape, data)
}

/// Output columns per parallel task of [`linear`]'s fast path.
const COLUMN_BLOCK: usize = 256;

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
    let fast = (a.max_abs() as u128 * b.max_abs() as u128).saturating_mul(k as u128) < 1 << 63;
    let mut data = Vec::with_capacity(batches * m * n);
    for batch in 0..batches {
        let (ab, bb) = (batch * m * k, batch * k * n);
        for i in 0..m {
            let row = &ad[ab + i * k..ab + (i + 1) * k];
            if fast {
                // Same sums as below, in i64 (no partial sum can leave it), row-major over b.
                let mut acc = vec![0i64; n];
                for (t, &av) in row.iter().enumerate() {
                    for (s, &bv) in acc.iter_mut().zip(&bd[bb + t * n..bb + (t + 1) * n]) {
                        *s += av * bv;
                    }
                }
                for v in acc {
                    data.push(fit(v.into(), out)?);
                }
            } else {
                for j in 0..n {
                    let acc = dot((0..k).map(|t| (row[t], bd[bb + t * n + j])), "matmul")?;
                    data.push(fit(acc, out)?);
                }
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
    use crate::semantics::tensor::t;

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

    #[test]
    fn fast_and_exact_paths_agree() {
        let w = t(&[3, 2], &[1 << 22, 1, 1 << 22, 2, 5, 3]);
        // Magnitudes allow partial sums past 2^63: the checked path runs, and must be exact.
        let x = t(&[1, 3], &[1 << 40, -(1 << 40), 1]);
        let y = linear(&x, &w, None, DType::I64).unwrap();
        assert_eq!(y.data(), &[5, (1i64 << 40) - (1 << 41) + 3]);
        // Small magnitudes: the i64 path.
        let x = t(&[1, 3], &[3, -1, 2]);
        assert_eq!(
            linear(&x, &w, None, DType::I64).unwrap().data(),
            &[(2 << 22) + 10, 7]
        );
    }
}
