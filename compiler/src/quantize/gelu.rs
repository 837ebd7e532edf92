//! The piecewise-cubic GELU that the `gelu` op evaluates (docs/ir.md, docs/quantization.md):
//! its range and segments, the fixed-point scale of its polynomial, and the coefficients, fitted
//! by least squares to the float reference's GELU (the tanh form of GPT-2 and llama.cpp), so that
//! the integer model tracks the float model rather than the erf GELU.
//!
//! For inputs at scale `s_x = 2^-fx` in a `w`-bit dtype and results at `2^-fy`:
//!
//! - `bound` K: the smallest with `2^K s_x >= 4` (beyond ±4 GELU is 0 or `x` within 1.3e-4),
//!   at most `w - 1` (the whole input range, then nothing is left for the tails);
//! - `width` G: the largest with `2^G s_x <= 0.5` (segments of at most half a unit), at most K;
//!   so `2^(K+1-G)` = 16 segments at the lowering's power-of-two scales;
//! - the polynomial's scale `s_P = 2^-fP`: rounding coefficient `c_i` to an integer moves `P` by
//!   at most `(2^G - 1)^i / 2` units, so a segment's value moves by at most
//!   `B = sum_i (2^G - 1)^i / 2` units; `fP` is the smallest with `B * 2^-fP <= 2^-17` (< 1e-5),
//!   raised to `fx` and `fy` if they are finer; then `tail = fP - fx` and `shift = fP - fy`.

use crate::model::gelu_tanh;
use zkc_lang::semantics::GeluAttrs;

/// The degree of each segment's polynomial.
pub const DEGREE: usize = 3;
/// Coefficient rounding moves a value by at most 2^-ROUNDING_BITS.
const ROUNDING_BITS: i32 = 17;
/// The finest input exponent fitted directly: segments of 2^15 inputs put `fP` at 61. The
/// lowering first shifts finer inputs to this scale.
pub const FINEST_INPUT: i32 = 16;
/// At most this many points of a segment take part in its fit (evenly spread).
const SAMPLES: u64 = 4096;

/// A `gelu` instruction's attributes and coefficient table (`[segments, DEGREE + 1]`,
/// row-major, constant term first).
#[derive(Clone, Debug, PartialEq)]
pub struct GeluFit {
    pub attrs: GeluAttrs,
    pub segments: usize,
    pub coef: Vec<i64>,
}

/// The fit for inputs at `2^-fx` in a `bits`-bit dtype and results at `2^-fy`.
pub fn fit(fx: i32, bits: u32, fy: i32) -> Result<GeluFit, String> {
    if fx > FINEST_INPUT {
        return Err(format!(
            "GELU inputs at 2^-{fx} are finer than 2^-{FINEST_INPUT}, the finest the fit takes"
        ));
    }
    let top = bits as i32 - 1;
    let bound = (fx + 2).clamp(0, top);
    let width = (fx - 1).clamp(0, bound);
    // 2B = sum_i (2^G - 1)^i; fP = 17 + ceil(log2 B) = 16 + ceil(log2 2B).
    let tmax = (1u128 << width) - 1;
    let twice_b: u128 = (0..=DEGREE as u32).map(|i| tmax.pow(i)).sum();
    let ceil_log2 = 128 - (twice_b - 1).leading_zeros() as i32;
    let fp = (ROUNDING_BITS - 1 + ceil_log2).max(fx).max(fy);
    let (tail, shift) = (fp - fx, fp - fy);
    if !(0..=62).contains(&tail) || !(0..=62).contains(&shift) {
        return Err(format!(
            "GELU from 2^-{fx} to 2^-{fy} needs its polynomial at 2^-{fp}: the scales are too far apart"
        ));
    }
    let segments = 1usize << (bound + 1 - width);
    let points = 1u64 << width;
    let s_x = 2f64.powi(-fx);
    let mut coef = Vec::with_capacity(segments * (DEGREE + 1));
    for j in 0..segments as i64 {
        let first = (j << width) - (1i64 << bound);
        let samples: Vec<u64> = if points <= SAMPLES {
            (0..points).collect()
        } else {
            (0..SAMPLES)
                .map(|k| (k as f64 * (points - 1) as f64 / (SAMPLES - 1) as f64).round() as u64)
                .collect()
        };
        // Fit in v = 2t/2^G - 1 (in [-1, 1), well conditioned), then expand in t.
        let v: Vec<f64> = samples
            .iter()
            .map(|&t| 2.0 * t as f64 / points as f64 - 1.0)
            .collect();
        let y: Vec<f64> = samples
            .iter()
            .map(|&t| gelu_tanh((first + t as i64) as f64 * s_x))
            .collect();
        let degree = DEGREE.min(samples.len() - 1);
        let in_v = least_squares(&v, &y, degree);
        // v = 2u - 1 with u = t / 2^G: the coefficient of u^k is sum_i a_i C(i,k) 2^k (-1)^(i-k).
        for k in 0..=DEGREE {
            let in_u: f64 = (k..=degree)
                .map(|i| {
                    let sign = if (i - k) % 2 == 0 { 1.0 } else { -1.0 };
                    in_v[i] * binomial(i, k) * 2f64.powi(k as i32) * sign
                })
                .sum();
            let c = (in_u * 2f64.powi(fp - width * k as i32)).round();
            if c.is_nan() || c.abs() >= 2f64.powi(63) {
                return Err(format!(
                    "a GELU coefficient ({c:e}) does not fit i64 at input scale 2^-{fx}"
                ));
            }
            coef.push(c as i64);
        }
    }
    Ok(GeluFit {
        attrs: GeluAttrs {
            bound: bound as u32,
            width: width as u32,
            tail: tail as u32,
            shift: shift as u32,
        },
        segments,
        coef,
    })
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// The coefficients `a_0..a_d` minimising `sum (sum_i a_i v^i - y)^2`: the normal equations,
/// solved by Gaussian elimination with partial pivoting (`v` spans [-1, 1), so they are well
/// conditioned at degree 3).
fn least_squares(v: &[f64], y: &[f64], degree: usize) -> Vec<f64> {
    let n = degree + 1;
    let mut m = vec![vec![0.0; n + 1]; n];
    for (&vk, &yk) in v.iter().zip(y) {
        let powers: Vec<f64> = (0..2 * n).map(|i| vk.powi(i as i32)).collect();
        for (a, row) in m.iter_mut().enumerate() {
            for (b, cell) in row.iter_mut().take(n).enumerate() {
                *cell += powers[a + b];
            }
            row[n] += powers[a] * yk;
        }
    }
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))
            .expect("col < n");
        m.swap(col, pivot);
        let (top, rest) = m.split_at_mut(col + 1);
        let pivot_row = &top[col];
        for row in rest.iter_mut() {
            let f = row[col] / pivot_row[col];
            for (cell, &p) in row.iter_mut().zip(pivot_row).skip(col) {
                *cell -= f * p;
            }
        }
    }
    let mut a = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| m[r][k] * a[k]).sum();
        a[r] = (m[r][n] - s) / m[r][r];
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use zkc_lang::semantics::{gelu_int, gelu_poly, round_shift};
    use zkc_lang::DType;

    /// Every input of the polynomial's range and a margin, and the tails: all of them for i16,
    /// every 2^20th beyond the margin for i32.
    fn inputs(attrs: GeluAttrs, dtype: DType) -> Vec<i128> {
        let (lo, hi) = (dtype.min() as i128, dtype.max() as i128);
        let edge = 2i128 << attrs.bound;
        if hi - lo < 1 << 20 {
            return (lo..=hi).collect();
        }
        let mut xs: Vec<i128> = (-edge..=edge).collect();
        xs.extend((lo..-edge).step_by(1 << 20).chain([lo, -edge - 1]));
        xs.extend((edge + 1..=hi).step_by(1 << 20).chain([hi]));
        xs
    }

    #[test]
    fn fitted_gelu_is_within_2e_4_of_the_float_gelu_on_every_input() {
        let mut report = Vec::new();
        for dtype in [DType::I16, DType::I32] {
            for fx in 6..=13 {
                // Results at the input's scale and 4 bits coarser: only the output rounding differs.
                for fy in [fx, fx - 4] {
                    let f = fit(fx, dtype.bits(), fy).unwrap();
                    let a = f.attrs;
                    assert_eq!(f.coef.len(), f.segments * (DEGREE + 1));
                    assert!(f.segments <= 16, "{} segments at 2^-{fx}", f.segments);
                    let (s_x, s_p) = (2f64.powi(-fx), 2f64.powi(-(fx + a.tail as i32)));
                    let s_y = 2f64.powi(-fy);
                    let mut worst: f64 = 0.0;
                    for x in inputs(a, dtype) {
                        let p = gelu_poly(x, &f.coef, DEGREE, a).unwrap();
                        let want = gelu_tanh(x as f64 * s_x);
                        let err = (p as f64 * s_p - want).abs();
                        worst = worst.max(err);
                        assert!(err <= 2e-4, "2^-{fx} {dtype}: x = {x}: off by {err:e}");
                        let y = gelu_int(x, &f.coef, DEGREE, a).unwrap();
                        assert_eq!(y, round_shift(p, a.shift));
                        assert!((y as f64 * s_y - p as f64 * s_p).abs() <= s_y / 2.0);
                    }
                    if fy == fx {
                        report.push(format!("{dtype} 2^-{fx}: {worst:.2e}"));
                    }
                }
            }
        }
        eprintln!("max |P s_P - gelu|: {}", report.join(", "));
    }

    #[test]
    fn attributes_follow_the_scales() {
        // 2^-8 in i16: [-4, 4) in 16 segments of 0.5 (2^7 inputs).
        let f = fit(8, 16, 4).unwrap();
        // 2B = 1 + 127 + 127^2 + 127^3 is just below 2^21: fP = 16 + 21 = 37.
        assert_eq!(
            f.attrs,
            GeluAttrs {
                bound: 10,
                width: 7,
                tail: 37 - 8,
                shift: 37 - 4,
            }
        );
        assert_eq!(f.segments, 16);
        // An i8 input at 2^-6 only reaches ±2: the polynomial covers it all, no tail in practice.
        let small = fit(6, 8, 6).unwrap();
        assert_eq!(
            (small.attrs.bound, small.attrs.width, small.segments),
            (7, 5, 8)
        );
        // Coarse inputs: one point per segment, a constant each.
        let coarse = fit(0, 8, 0).unwrap();
        assert_eq!((coarse.attrs.bound, coarse.attrs.width), (2, 0));
        assert!(coarse.coef.chunks(4).all(|row| row[1..] == [0, 0, 0]));
        assert!(fit(17, 32, 8).is_err());
    }
}
