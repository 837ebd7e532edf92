//! Scalar building blocks shared by the tensor ops and, element by element, by the gadgets'
//! witness computation.

use super::SemanticsError;

/// `floor((v + 2^(shift-1)) / 2^shift)`: division by a power of two rounding half up (towards
/// +inf on ties, for negative values too). `shift = 0` is the identity.
pub fn round_shift(v: i128, shift: u32) -> i128 {
    if shift == 0 {
        v
    } else {
        (v + (1i128 << (shift - 1))) >> shift
    }
}

/// `(q, r)` with `q * d + r = n` and `0 <= r < d`: the division every gadget proves.
pub fn floor_div(n: i128, d: i128) -> Result<(i128, i128), SemanticsError> {
    if d <= 0 {
        return Err(SemanticsError::DivisionByZero("divisor must be positive"));
    }
    Ok((n.div_euclid(d), n.rem_euclid(d)))
}

/// The integer square root `s` with `s^2 <= v < (s+1)^2`.
pub fn isqrt(v: i128) -> Result<i128, SemanticsError> {
    if v < 0 {
        return Err(SemanticsError::Domain("square root of a negative value"));
    }
    Ok((v as u128).isqrt() as i128)
}

/// Past this many halvings `exp_int` is 0 (its polynomial never exceeds 2^62).
pub const EXP_MAX_SHIFT: i128 = 62;

/// I-BERT's integer exponential of `x <= 0` (scale `S`): write `x = p - z*ln2` with
/// `p` in `(-ln2, 0]`, approximate `exp(p)` by `(p + b)^2 + c` and halve `z` times.
/// `ln2 = floor(ln 2 / S)`, `b`, `c` are the quantised polynomial constants (see docs/ir.md).
pub fn exp_int(x: i128, ln2: i128, b: i128, c: i128) -> Result<i128, SemanticsError> {
    if x > 0 {
        return Err(SemanticsError::Domain("exp_int takes x <= 0"));
    }
    let (z, _) = floor_div(-x, ln2)?;
    if z > EXP_MAX_SHIFT {
        return Ok(0);
    }
    let p = x + z * ln2;
    let pb = p
        .checked_add(b)
        .ok_or(SemanticsError::IntermediateOverflow("exp_int"))?;
    let poly = pb.checked_mul(pb).and_then(|sq| sq.checked_add(c));
    Ok(poly.ok_or(SemanticsError::IntermediateOverflow("exp_int"))? >> z)
}

/// I-BERT's integer GELU: `erf` by the clipped square `sign(x) * (c - (min(|x|, clip) - clip)^2)`,
/// then `x * (c + erf)`; `c` is the quantised 1 of the erf polynomial.
pub fn gelu_int(x: i128, clip: i128, c: i128) -> Result<i128, SemanticsError> {
    let a = x.abs().min(clip);
    let gap = a - clip;
    let sq = gap.checked_mul(gap);
    let erf = sq.and_then(|sq| c.checked_sub(sq)).map(|e| x.signum() * e);
    let out = erf
        .and_then(|e| c.checked_add(e))
        .and_then(|one_plus| x.checked_mul(one_plus));
    out.ok_or(SemanticsError::IntermediateOverflow("gelu_int"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_shift_rounds_half_up() {
        assert_eq!(round_shift(5, 1), 3); // 2.5 -> 3
        assert_eq!(round_shift(-5, 1), -2); // -2.5 -> -2
        assert_eq!(round_shift(-6, 2), -1); // -1.5 -> -1
        assert_eq!(round_shift(7, 2), 2); // 1.75 -> 2
        assert_eq!(round_shift(-7, 2), -2); // -1.75 -> -2
        assert_eq!(round_shift(9, 0), 9);
    }

    #[test]
    fn floor_div_keeps_remainder_non_negative() {
        assert_eq!(floor_div(7, 2), Ok((3, 1)));
        assert_eq!(floor_div(-7, 2), Ok((-4, 1)));
        assert!(floor_div(1, 0).is_err());
        assert!(floor_div(1, -3).is_err());
    }

    #[test]
    fn isqrt_brackets_its_argument() {
        for v in [
            0i128,
            1,
            2,
            3,
            4,
            15,
            16,
            17,
            1 << 40,
            (1 << 62) - 1,
            i64::MAX as i128,
        ] {
            let s = isqrt(v).unwrap();
            assert!(s * s <= v && v < (s + 1) * (s + 1), "isqrt({v}) = {s}");
        }
        assert!(isqrt(-1).is_err());
    }

    #[test]
    fn exp_int_tracks_the_real_exponential() {
        // Input scale 2^-10; I-BERT's constants a=0.3585, b=1.353, c=0.344 quantised.
        let s = 2f64.powi(-10);
        let ln2 = (std::f64::consts::LN_2 / s).floor() as i128;
        let b = (1.353 / s).floor() as i128;
        let c = (0.344 / 0.3585 / (s * s)).floor() as i128;
        let out_scale = 0.3585 * s * s;
        for q in [0i128, -1, -100, -709, -710, -2000, -5000] {
            let got = exp_int(q, ln2, b, c).unwrap() as f64 * out_scale;
            let want = (q as f64 * s).exp();
            assert!((got - want).abs() < 0.01, "exp({q}): {got} vs {want}");
        }
        assert_eq!(exp_int(-(ln2 * 70), ln2, b, c), Ok(0));
        assert!(exp_int(1, ln2, b, c).is_err());
        assert!(exp_int(0, 1, i128::MAX / 2, 0).is_err());
        assert!(gelu_int(i64::MAX as i128, 1 << 62, 1 << 100).is_err());
    }

    #[test]
    fn gelu_int_tracks_the_real_gelu() {
        let s = 2f64.powi(-8);
        let e = s / std::f64::consts::SQRT_2;
        let clip = (1.769 / e).floor() as i128;
        let c = (1.0 / (0.2888 * e * e)).floor() as i128;
        let out_scale = s * 0.2888 * e * e / 2.0;
        for q in [-1024i128, -300, -1, 0, 1, 100, 256, 700, 1024] {
            let x = q as f64 * s;
            let want = 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2));
            let got = gelu_int(q, clip, c).unwrap() as f64 * out_scale;
            assert!((got - want).abs() < 0.03, "gelu({x}): {got} vs {want}");
        }
    }

    /// Abramowitz-Stegun 7.1.26, accurate to 1.5e-7: a float reference for the test only.
    fn erf(x: f64) -> f64 {
        let t = 1.0 / (1.0 + 0.3275911 * x.abs());
        let poly = t
            * (0.254829592
                + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
        x.signum() * (1.0 - poly * (-x * x).exp())
    }
}
