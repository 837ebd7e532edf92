//! LayerNorm, RMSNorm and GELU (which `silu` shares), the nonlinearities of a transformer block,
//! in integers.

use super::{fit, floor_div, gelu_int, isqrt, GeluAttrs, SemanticsError, Tensor};
use crate::types::DType;

/// Integer LayerNorm over the last axis (length `n`):
/// `mu = floor(sum x / n)`, `d = x - mu`, `var = floor(sum d^2 / n) + eps`, `s = isqrt(var)`,
/// `y = floor(d * gamma * 2^shift / s) + beta` (for a negative shift,
/// `floor(d * gamma / (s * 2^-shift)) + beta`). `eps >= 1` keeps the division total.
pub fn layernorm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: i64,
    shift: i32,
    out: DType,
) -> Result<Tensor, SemanticsError> {
    let n = x.row_len();
    if gamma.len() != n || beta.len() != n {
        return Err(SemanticsError::Shape(format!(
            "gamma and beta need {n} elements, found {} and {}",
            gamma.len(),
            beta.len()
        )));
    }
    normalise(x, gamma, Some(beta), eps, shift, out)
}

/// Integer RMSNorm over the last axis (length `n`): [`layernorm`] without the mean and without
/// beta. `ms = floor(sum x^2 / n) + eps`, `s = isqrt(ms)`, `y = floor(x * gamma * 2^shift / s)`
/// (for a negative shift, `floor(x * gamma / (s * 2^-shift))`).
pub fn rmsnorm(
    x: &Tensor,
    gamma: &Tensor,
    eps: i64,
    shift: i32,
    out: DType,
) -> Result<Tensor, SemanticsError> {
    let n = x.row_len();
    if gamma.len() != n {
        return Err(SemanticsError::Shape(format!(
            "gamma needs {n} elements, found {}",
            gamma.len()
        )));
    }
    normalise(x, gamma, None, eps, shift, out)
}

/// [`layernorm`] (with `beta`: rows centred on their floored mean, `beta` added) and
/// [`rmsnorm`] (without: `mu = 0`), row by row. `gamma` and `beta` have the row's length.
fn normalise(
    x: &Tensor,
    gamma: &Tensor,
    beta: Option<&Tensor>,
    eps: i64,
    shift: i32,
    out: DType,
) -> Result<Tensor, SemanticsError> {
    let n = x.row_len();
    let (up, down) = (shift.max(0) as u32, shift.min(0).unsigned_abs().min(62));
    let overflow = SemanticsError::IntermediateOverflow(match beta {
        Some(_) => "layernorm",
        None => "rmsnorm",
    });
    let mut data = Vec::with_capacity(x.len());
    for row in x.data().chunks(n.max(1)) {
        let mu = match beta {
            Some(_) => {
                let sum: i128 = row.iter().map(|&v| v as i128).sum();
                floor_div(sum, n as i128)?.0
            }
            None => 0,
        };
        let sq = row
            .iter()
            .try_fold(0i128, |acc, &v| {
                (v as i128 - mu)
                    .checked_pow(2)
                    .and_then(|d2| acc.checked_add(d2))
            })
            .ok_or(overflow.clone())?;
        let var = floor_div(sq, n as i128)?.0 + eps as i128;
        let s = isqrt(var)? << down;
        for (i, &v) in row.iter().enumerate() {
            let scaled = (v as i128 - mu).checked_mul(gamma.data()[i] as i128);
            let num = scaled
                .filter(|p| p.unsigned_abs() < 1u128 << (126 - up.min(126)))
                .ok_or(overflow.clone())?
                << up;
            let offset = beta.map_or(0, |b| b.data()[i] as i128);
            data.push(fit(floor_div(num, s)?.0 + offset, out)?);
        }
    }
    Tensor::new(x.shape().to_vec(), data)
}

/// [`gelu_int`] elementwise, with the coefficient table `coef` `[segments, degree + 1]`.
pub fn gelu(
    x: &Tensor,
    coef: &Tensor,
    attrs: GeluAttrs,
    out: DType,
) -> Result<Tensor, SemanticsError> {
    let (segments, d1) = match coef.shape() {
        &[s, d1] if d1 >= 1 => (s, d1),
        other => {
            return Err(SemanticsError::Shape(format!(
                "gelu's coefficient table must be [segments, degree + 1], found {other:?}"
            )))
        }
    };
    if attrs.segments() != Some(segments as u64) {
        return Err(SemanticsError::Shape(format!(
            "gelu with bound {} and width {} needs 2^{} coefficient rows, found {segments}",
            attrs.bound,
            attrs.width,
            (attrs.bound + 1).saturating_sub(attrs.width)
        )));
    }
    let data = x
        .data()
        .iter()
        .map(|&v| fit(gelu_int(v as i128, coef.data(), d1 - 1, attrs)?, out))
        .collect::<Result<_, _>>()?;
    Tensor::new(x.shape().to_vec(), data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantics::tensor::t;

    #[test]
    fn layernorm_normalises_rows() {
        // Row (1, 3, 5, 7) * 2^-0: mean 4, std sqrt(5) = 2.236; gamma = 1 (2^-8), shift 8.
        let x = t(&[1, 4], &[1, 3, 5, 7]);
        let g = t(&[4], &[256; 4]);
        let b = t(&[4], &[0, 0, 0, 256]);
        let y = layernorm(&x, &g, &b, 1, 8, DType::I32).unwrap();
        // sq = 20, var = 5 + 1 = 6, s = 2: d * 256 * 256 / 2
        assert_eq!(y.data(), &[-98304, -32768, 32768, 98304 + 256]);
    }

    #[test]
    fn layernorm_of_a_constant_row_is_beta() {
        let x = t(&[2], &[9, 9]);
        let y = layernorm(&x, &t(&[2], &[5, 5]), &t(&[2], &[3, -3]), 1, 4, DType::I8).unwrap();
        assert_eq!(y.data(), &[3, -3]);
    }

    #[test]
    fn negative_shift_divides_the_result() {
        let x = t(&[1, 4], &[1, 3, 5, 7]);
        let (g, b) = (t(&[4], &[256; 4]), t(&[4], &[0; 4]));
        let fine = layernorm(&x, &g, &b, 1, 0, DType::I32).unwrap();
        let coarse = layernorm(&x, &g, &b, 1, -4, DType::I32).unwrap();
        // d * 256 / 2 then / 16, floored: -384 -> -24, -128 -> -8, 128 -> 8, 384 -> 24
        assert_eq!(fine.data(), &[-384, -128, 128, 384]);
        assert_eq!(coarse.data(), &[-24, -8, 8, 24]);
    }

    #[test]
    fn rmsnorm_divides_by_the_root_mean_square() {
        // Row (1, 3, 5, 7): sum of squares 84, ms = 21 + 1 = 22, s = 4; gamma 256, shift 8.
        let x = t(&[1, 4], &[1, 3, 5, 7]);
        let g = t(&[4], &[256; 4]);
        let y = rmsnorm(&x, &g, 1, 8, DType::I32).unwrap();
        assert_eq!(y.data(), &[16384, 49152, 81920, 114688]);
        // Exact quotients are symmetric; inexact ones floor towards -inf (below).
        let neg = rmsnorm(&t(&[1, 4], &[-1, -3, -5, -7]), &g, 1, 8, DType::I32).unwrap();
        assert_eq!(neg.data(), &[-16384, -49152, -81920, -114688]);
        let odd = rmsnorm(&t(&[2], &[-3, 3]), &t(&[2], &[3, 3]), 7, 0, DType::I8).unwrap();
        // ms = 9 + 7 = 16, s = 4: -9/4 -> -3, 9/4 -> 2.
        assert_eq!(odd.data(), &[-3, 2]);
    }

    #[test]
    fn rmsnorm_is_layernorm_of_a_zero_mean_row_without_beta() {
        // A row whose mean is 0 centres to itself: both norms agree, shifts up and down.
        let x = t(&[2, 4], &[-7, -1, 2, 6, 300, -300, 120, -120]);
        let g = t(&[4], &[100, -37, 255, 1]);
        let zero = t(&[4], &[0; 4]);
        for shift in [-6, 0, 5] {
            let r = rmsnorm(&x, &g, 3, shift, DType::I32).unwrap();
            let l = layernorm(&x, &g, &zero, 3, shift, DType::I32).unwrap();
            assert_eq!(r.data(), l.data(), "shift {shift}");
        }
        // A row with a mean is not centred: a constant row normalises to gamma-ish, not 0.
        let c = rmsnorm(&t(&[2], &[9, 9]), &t(&[2], &[5, 5]), 1, 0, DType::I8).unwrap();
        // ms = 81 + 1 = 82, s = 9: 9 * 5 / 9 = 5
        assert_eq!(c.data(), &[5, 5]);
    }

    #[test]
    fn rmsnorm_checks_gamma_the_result_and_overflow() {
        let x = t(&[1, 2], &[100, -100]);
        assert!(matches!(
            rmsnorm(&x, &t(&[3], &[1, 1, 1]), 1, 0, DType::I8),
            Err(SemanticsError::Shape(_))
        ));
        // 100 * 127 * 2^4 / 100 = 2032 does not fit i8.
        assert!(matches!(
            rmsnorm(&x, &t(&[2], &[127, 127]), 1, 4, DType::I8),
            Err(SemanticsError::Overflow { .. })
        ));
        // x * gamma << 62 leaves i128.
        let big = t(&[1, 1], &[i64::MAX]);
        assert!(matches!(
            rmsnorm(&big, &t(&[1], &[i64::MAX]), 1, 62, DType::I64),
            Err(SemanticsError::IntermediateOverflow("rmsnorm"))
        ));
    }

    #[test]
    fn gelu_maps_elements_and_checks_the_table_and_the_result() {
        let attrs = GeluAttrs {
            bound: 2,
            width: 1,
            tail: 3,
            shift: 1,
        };
        // 4 segments of 2 inputs on [-4, 4); segment j is the constant 2j + t.
        let coef = t(&[4, 2], &[0, 1, 2, 1, 4, 1, 6, 1]);
        let x = t(&[1, 5], &[-1000, -4, -1, 3, 100]);
        let y = gelu(&x, &coef, attrs, DType::I16).unwrap();
        // P: 0, 0 (off 0), 3 (off 3: j 1, t 1), 7, 800; then round_shift by 1
        assert_eq!(y.data(), &[0, 0, 2, 4, 400]);
        assert!(matches!(
            gelu(&x, &coef, attrs, DType::I8),
            Err(SemanticsError::Overflow { value: 400, .. })
        ));
        let short = t(&[2, 2], &[0, 1, 2, 1]);
        assert!(matches!(
            gelu(&x, &short, attrs, DType::I16),
            Err(SemanticsError::Shape(_))
        ));
    }
}
