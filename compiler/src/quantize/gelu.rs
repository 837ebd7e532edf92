//! The piecewise-cubic GELU that the `gelu` op evaluates (docs/ir.md, docs/quantization.md):
//! its range and segments, the fixed-point scale of its polynomial, and the coefficients, fitted
//! by least squares to the float reference's GELU (the tanh form of GPT-2 and llama.cpp), so that
//! the integer model tracks the float model rather than the erf GELU.
//!
//! The `silu` op is the same integer function with coefficients fitted to SiLU
//! ([`Activation::Silu`], [`fit_activation`]): SiLU too is 0 far below and `x` far above, only
//! further out.
//!
//! Sigmoid and tanh ([`Activation::Sigmoid`], [`Activation::Tanh`]) are fitted by the same code
//! and evaluated by the same `gelu` op, but they saturate (to 1, and to 0 or -1) instead of
//! meeting the op's tails (`x` above, 0 below): [`Activation::saturates`]. The lowering clamps
//! their input into the polynomial's range, `[-2^K, 2^K - 1]` ([`GeluFit::domain`]), so the
//! tails never fire, and the polynomial's last segments carry the saturation (beyond ±16 the
//! sigmoid is within 1.2e-7 of 0 or 1, beyond ±8 tanh within 2.3e-7 of ±1). Their values are
//! at most 1 in magnitude, so their `fP` is capped at 62 rather than `63 - log2 R`; tanh's
//! segments are a quarter unit (tanh(x) is 2 sigmoid(2x) - 1: its fourth derivative is 32 times
//! the sigmoid's), so its 16 units of reach are 64 segments, as the sigmoid's 32 and SiLU's.
//! Measured before the output rounding on every input (i16, i32, inputs `2^-4 .. 2^-16`): the
//! sigmoid within 1.1e-5, tanh within 1.7e-5 (half-unit segments, 32 of them, measured 1.3e-4).
//!
//! For inputs at scale `s_x = 2^-fx` in a `w`-bit dtype and results at `2^-fy`, with the reach
//! `R` of the function (4 for GELU: beyond ±4 it is 0 or `x` within 1.3e-4; 16 for SiLU, within
//! 1.8e-6):
//!
//! - `bound` K: the smallest with `2^K s_x >= R`, at most `w - 1` (the whole input range, then
//!   nothing is left for the tails);
//! - `width` G: the largest with `2^G s_x <= 0.5` (segments of at most half a unit), at most K;
//!   so `2^(K+1-G)` = 16 segments for GELU (64 for SiLU) at the lowering's power-of-two scales;
//! - the polynomial's scale `s_P = 2^-fP`: rounding coefficient `c_i` to an integer moves `P` by
//!   at most `(2^G - 1)^i / 2` units, so a segment's value moves by at most
//!   `B = sum_i (2^G - 1)^i / 2` units; `fP` is the smallest with `B * 2^-fP <= 2^-17` (< 1e-5),
//!   but at most `63 - log2 R` (the constant terms, below `R 2^fP`, must fit i64: this binds only
//!   SiLU at `fx = 16`, where `fP = 59` lets rounding move a value by up to 2^-15), raised to
//!   `fx` and `fy` if they are finer; then `tail = fP - fx` and `shift = fP - fy`.

use crate::model::{gelu_erf, gelu_tanh, sigmoid, silu};
use zkc_lang::semantics::GeluAttrs;

/// The degree of each segment's polynomial.
pub const DEGREE: usize = 3;
/// Coefficient rounding moves a value by at most 2^-ROUNDING_BITS.
const ROUNDING_BITS: i32 = 17;
/// The finest input exponent fitted directly: segments of 2^15 inputs put GELU's `fP` at 61
/// (SiLU's at its cap, 59). The lowering first shifts finer inputs to this scale.
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

impl GeluFit {
    /// The inputs the polynomial covers, `[-2^K, 2^K - 1]`: beyond them the op's tails hold.
    /// A saturating activation's input is clamped into them first.
    pub fn domain(&self) -> (i64, i64) {
        let edge = 1i64 << self.attrs.bound;
        (-edge, edge - 1)
    }
}

/// A function the `gelu` op's piecewise polynomial approximates: 0 far below and `x` far above
/// (the op's tails), or saturating ([`Activation::saturates`]: its input clamped first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// GELU-tanh, the float reference's (`crate::model::gelu_tanh`): the `gelu` op.
    Gelu,
    /// SiLU, `x * sigmoid(x)` (the float reference's `silu`): the `silu` op.
    Silu,
    /// GELU in its exact erf form (`crate::model::gelu_erf`, ONNX's `Gelu`): the `gelu` op,
    /// whose semantics is the piecewise polynomial whatever it was fitted to.
    GeluErf,
    /// The logistic sigmoid (`crate::model::sigmoid`, ONNX's `Sigmoid`): a `gelu` op on the
    /// clamped input; saturating.
    Sigmoid,
    /// The hyperbolic tangent (ONNX's `Tanh` outside GELU): a `gelu` op on the clamped input;
    /// saturating.
    Tanh,
}

impl Activation {
    /// The function, in f64.
    pub fn eval(self, x: f64) -> f64 {
        match self {
            Activation::Gelu => gelu_tanh(x),
            Activation::Silu => silu(x),
            Activation::GeluErf => gelu_erf(x),
            Activation::Sigmoid => sigmoid(x),
            Activation::Tanh => x.tanh(),
        }
    }

    /// Whether the function saturates to constants instead of meeting the `gelu` op's tails
    /// (`x * 2^tail` above the range, 0 below): then its input must first be clamped into
    /// [`GeluFit::domain`], where the polynomial alone holds it.
    pub fn saturates(self) -> bool {
        matches!(self, Activation::Sigmoid | Activation::Tanh)
    }

    /// `log2` of the reach `R`: beyond `±R` the function is its tails (0 below, `x` above), or
    /// its limits for a saturating one:
    /// GELU-tanh within 1.3e-4 beyond ±4, SiLU within 1.8e-6 beyond ±16 (`silu(-16) = -1.8e-6`,
    /// `silu(16) = 16 - 1.8e-6`; at ±8 it would still be 2.7e-3 away); the sigmoid within
    /// 1.2e-7 of 0 and 1 beyond ±16 (at ±8 still 3.4e-4), tanh within 2.3e-7 of ±1 beyond ±8.
    fn reach_log2(self) -> i32 {
        match self {
            Activation::Gelu | Activation::GeluErf => 2,
            Activation::Silu | Activation::Sigmoid => 4,
            Activation::Tanh => 3,
        }
    }

    /// `log2` of the segments' length in real units (at most; exactly at power-of-two input
    /// scales fine enough): half a unit, a quarter for tanh.
    fn segment_log2(self) -> i32 {
        match self {
            Activation::Tanh => -2,
            _ => -1,
        }
    }

    /// The finest polynomial scale exponent whose constant terms fit `i64`: values are below
    /// `R` (GELU, SiLU: `63 - log2 R`) or at most 1 in magnitude (sigmoid, tanh: 62).
    fn fp_cap(self) -> i32 {
        match self {
            Activation::Sigmoid | Activation::Tanh => 62,
            _ => 63 - self.reach_log2(),
        }
    }

    /// The finest input exponent fitted directly; the lowering first shifts finer inputs to it.
    pub fn finest_input(self) -> i32 {
        FINEST_INPUT
    }

    fn name(self) -> &'static str {
        match self {
            Activation::Gelu => "GELU",
            Activation::Silu => "SiLU",
            Activation::GeluErf => "GELU (erf)",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
        }
    }
}

/// The GELU fit for inputs at `2^-fx` in a `bits`-bit dtype and results at `2^-fy`: the
/// coefficients of a `gelu` instruction.
pub fn fit(fx: i32, bits: u32, fy: i32) -> Result<GeluFit, String> {
    fit_activation(Activation::Gelu, fx, bits, fy)
}

/// The fit of `act` for inputs at `2^-fx` in a `bits`-bit dtype and results at `2^-fy`: the
/// attributes and coefficients of a `gelu` (`Activation::Gelu`, `GeluErf`, `Sigmoid`, `Tanh`)
/// or `silu` instruction.
pub fn fit_activation(act: Activation, fx: i32, bits: u32, fy: i32) -> Result<GeluFit, String> {
    let name = act.name();
    if fx > act.finest_input() {
        return Err(format!(
            "{name} inputs at 2^-{fx} are finer than 2^-{}, the finest the fit takes",
            act.finest_input()
        ));
    }
    let top = bits as i32 - 1;
    let bound = (fx + act.reach_log2()).clamp(0, top);
    let width = (fx + act.segment_log2()).clamp(0, bound);
    // 2B = sum_i (2^G - 1)^i; fP = 17 + ceil(log2 B) = 16 + ceil(log2 2B), at most what keeps
    // the constant terms (below R 2^fP) in i64.
    let tmax = (1u128 << width) - 1;
    let twice_b: u128 = (0..=DEGREE as u32).map(|i| tmax.pow(i)).sum();
    let ceil_log2 = 128 - (twice_b - 1).leading_zeros() as i32;
    let fp = (ROUNDING_BITS - 1 + ceil_log2)
        .min(act.fp_cap())
        .max(fx)
        .max(fy);
    let (tail, shift) = (fp - fx, fp - fy);
    if !(0..=62).contains(&tail) || !(0..=62).contains(&shift) {
        return Err(format!(
            "{name} from 2^-{fx} to 2^-{fy} needs its polynomial at 2^-{fp}: the scales are too far apart"
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
            .map(|&t| act.eval((first + t as i64) as f64 * s_x))
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
                    "a {name} coefficient ({c:e}) does not fit i64 at input scale 2^-{fx}"
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

    /// SiLU's fit against the f64 SiLU (`model::silu`) at the
    /// scales the lowering uses: inputs `2^-8 .. 2^-16` in i16 and i32, results `2^-8 .. 2^-12`.
    /// Every input of the polynomial's range and a margin, and the tails.
    #[test]
    fn fitted_silu_is_within_5e_5_of_the_float_silu_on_every_input() {
        let silu = |x: f64| Activation::Silu.eval(x);
        let mut report = Vec::new();
        for dtype in [DType::I16, DType::I32] {
            for fx in 8..=FINEST_INPUT {
                for fy in [8, 10, 12] {
                    let f = fit_activation(Activation::Silu, fx, dtype.bits(), fy).unwrap();
                    let a = f.attrs;
                    assert_eq!(f.coef.len(), f.segments * (DEGREE + 1));
                    assert!(f.segments <= 64, "{} segments at 2^-{fx}", f.segments);
                    let (s_x, s_p) = (2f64.powi(-fx), 2f64.powi(-(fx + a.tail as i32)));
                    let s_y = 2f64.powi(-fy);
                    let mut worst: f64 = 0.0;
                    for x in inputs(a, dtype) {
                        let p = gelu_poly(x, &f.coef, DEGREE, a).unwrap();
                        let err = (p as f64 * s_p - silu(x as f64 * s_x)).abs();
                        worst = worst.max(err);
                        assert!(err <= 5e-5, "2^-{fx} {dtype}: x = {x}: off by {err:e}");
                        let y = gelu_int(x, &f.coef, DEGREE, a).unwrap();
                        assert_eq!(y, round_shift(p, a.shift));
                        assert!((y as f64 * s_y - p as f64 * s_p).abs() <= s_y / 2.0);
                    }
                    if fy == 8 {
                        report.push(format!("{dtype} 2^-{fx}: {worst:.2e}"));
                    }
                }
            }
        }
        eprintln!("max |P s_P - silu|: {}", report.join(", "));
    }

    #[test]
    fn silu_reaches_16_and_its_constant_terms_fit_i64() {
        // 2^-8 in i16: [-16, 16) in 64 segments of 0.5 (2^7 inputs); fP as GELU's, 37.
        let f = fit_activation(Activation::Silu, 8, 16, 8).unwrap();
        assert_eq!(
            f.attrs,
            GeluAttrs {
                bound: 12,
                width: 7,
                tail: 37 - 8,
                shift: 37 - 8,
            }
        );
        assert_eq!(f.segments, 64);
        // 2^-16 in i32: fP would be 61, but 16 * 2^61 leaves i64; capped at 59.
        let fine = fit_activation(Activation::Silu, 16, 32, 12).unwrap();
        assert_eq!(
            (
                fine.attrs.bound,
                fine.attrs.width,
                fine.attrs.tail,
                fine.attrs.shift
            ),
            (20, 15, 59 - 16, 59 - 12)
        );
        // An i16 input at 2^-12 only reaches ±8: the polynomial covers it all.
        let short = fit_activation(Activation::Silu, 12, 16, 8).unwrap();
        assert_eq!((short.attrs.bound, short.segments), (15, 32));
        assert!(fit_activation(Activation::Silu, 17, 32, 8).is_err());
        // Not GELU's coefficients, and GELU's own fit unchanged by the generalisation.
        assert_ne!(f.coef, fit(8, 16, 8).unwrap().coef[..]);
        for (fx, bits, fy) in [(8, 16, 4), (13, 32, 8), (16, 32, 12), (6, 8, 6), (0, 8, 0)] {
            assert_eq!(
                fit(fx, bits, fy),
                fit_activation(Activation::Gelu, fx, bits, fy)
            );
        }
    }

    /// A saturating activation's integer result on input `x` as the lowering computes it: `x`
    /// clamped into the polynomial's range, then the op; `P` at `2^-fP` and the rounded result.
    fn saturated(f: &GeluFit, x: i128) -> (i128, i128) {
        let (lo, hi) = f.domain();
        let c = x.clamp(lo as i128, hi as i128);
        let p = gelu_poly(c, &f.coef, DEGREE, f.attrs).unwrap();
        (p, gelu_int(c, &f.coef, DEGREE, f.attrs).unwrap())
    }

    /// The sigmoid's and tanh's fits against the f64 functions on every input of the dtype
    /// (all of i16; for i32 all of the polynomial's range and a margin, and the tails sampled),
    /// the input clamped first as the lowering does, at input scales `2^-4 .. 2^-16` and
    /// outputs `2^-8 .. 2^-14` (16-bit outputs: 1 is `2^14`): within `bound` before the output
    /// rounding, and the result within half an output step of that.
    fn check_saturating(act: Activation, bound: f64) {
        let mut report = Vec::new();
        for dtype in [DType::I16, DType::I32] {
            for fx in 4..=FINEST_INPUT {
                for fy in [8, 14] {
                    let f = fit_activation(act, fx, dtype.bits(), fy).unwrap();
                    let a = f.attrs;
                    assert!(act.saturates());
                    assert_eq!(f.coef.len(), f.segments * (DEGREE + 1));
                    assert!(f.segments <= 64, "{} segments at 2^-{fx}", f.segments);
                    let (s_x, s_p) = (2f64.powi(-fx), 2f64.powi(-(fx + a.tail as i32)));
                    let s_y = 2f64.powi(-fy);
                    let mut worst: f64 = 0.0;
                    for x in inputs(a, dtype) {
                        let (p, y) = saturated(&f, x);
                        let err = (p as f64 * s_p - act.eval(x as f64 * s_x)).abs();
                        worst = worst.max(err);
                        assert!(
                            err <= bound,
                            "{act:?} 2^-{fx} {dtype}: x = {x}: off by {err:e}"
                        );
                        assert_eq!(y, round_shift(p, a.shift));
                        assert!((y as f64 * s_y - p as f64 * s_p).abs() <= s_y / 2.0);
                        // The rounded result stays in the function's range.
                        let (lo, hi) = match act {
                            Activation::Sigmoid => (0, 1i128 << fy),
                            _ => (-(1i128 << fy), 1i128 << fy),
                        };
                        assert!((lo..=hi).contains(&y), "{act:?} 2^-{fx}: x = {x}: y = {y}");
                    }
                    if fy == 14 {
                        report.push(format!("{dtype} 2^-{fx}: {worst:.2e}"));
                    }
                }
            }
        }
        eprintln!("max |P s_P - {act:?}|: {}", report.join(", "));
    }

    #[test]
    fn fitted_sigmoid_is_within_2e_5_of_the_float_sigmoid_on_every_input() {
        check_saturating(Activation::Sigmoid, 2e-5);
    }

    #[test]
    fn fitted_tanh_is_within_2e_5_of_the_float_tanh_on_every_input() {
        check_saturating(Activation::Tanh, 2e-5);
    }

    #[test]
    fn sigmoid_and_tanh_reach_their_limits_in_64_segments() {
        // 2^-8 in i16: the sigmoid over [-16, 16) in 64 segments of 0.5 (2^7 inputs), tanh over
        // [-8, 8) in 64 of 0.25 (2^6 inputs).
        let s = fit_activation(Activation::Sigmoid, 8, 16, 14).unwrap();
        assert_eq!((s.attrs.bound, s.attrs.width, s.segments), (12, 7, 64));
        assert_eq!(s.domain(), (-4096, 4095));
        let t = fit_activation(Activation::Tanh, 8, 16, 14).unwrap();
        assert_eq!((t.attrs.bound, t.attrs.width, t.segments), (11, 6, 64));
        // The clamped ends are the limits to within 2.3e-7 (before the polynomial's error).
        assert!(Activation::Sigmoid.eval(-16.0) < 1.2e-7);
        assert!(1.0 - Activation::Sigmoid.eval(16.0 - 2f64.powi(-8)) < 1.2e-7);
        assert!(1.0 - Activation::Tanh.eval(8.0 - 2f64.powi(-8)) < 2.3e-7);
        // 2^-16 in i32: fP 61 by the rounding rule (the cap is 62 for values at most 1; SiLU's
        // is 59 there).
        let fine = fit_activation(Activation::Sigmoid, 16, 32, 14).unwrap();
        assert_eq!((fine.attrs.bound, fine.attrs.tail), (20, 61 - 16));
        // An i16 input at 2^-12 only reaches ±8: the whole dtype is the polynomial's, no clamp.
        let short = fit_activation(Activation::Sigmoid, 12, 16, 14).unwrap();
        assert_eq!(short.attrs.bound, 15);
        assert_eq!(short.domain(), (i16::MIN as i64, i16::MAX as i64));
    }

    /// Below the reach SiLU is not yet its tails: fitted to ±4 as GELU is, it would be off by
    /// `silu(-4) = -0.072` at the edge; the fit's bound keeps the whole reach.
    #[test]
    fn silu_tails_meet_the_polynomial() {
        let f = fit_activation(Activation::Silu, 10, 32, 10).unwrap();
        let a = f.attrs;
        let s_x = 2f64.powi(-10);
        let s_p = 2f64.powi(-(10 + a.tail as i32));
        let edge = 1i128 << a.bound;
        assert_eq!(edge as f64 * s_x, 16.0);
        for x in [-edge - 1, -edge, edge - 1, edge] {
            let p = gelu_poly(x, &f.coef, DEGREE, a).unwrap() as f64 * s_p;
            assert!(
                (p - Activation::Silu.eval(x as f64 * s_x)).abs() < 5e-5,
                "x = {x}"
            );
        }
        assert!((Activation::Silu.eval(-4.0) + 0.0719).abs() < 1e-4);
    }
}
