//! Scalar building blocks shared by the tensor ops and, element by element, by the gadgets'
//! witness computation.

use super::SemanticsError;
use crate::ir::GeluAttrs;

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

/// `gelu`'s value of one element before the output shift: `P`, at the polynomial's scale.
/// `coef` holds the table row-major, `degree + 1` coefficients per segment (constant term first).
/// Checked throughout: an overflow is an error, never a wrap.
pub fn gelu_poly(
    x: i128,
    coef: &[i64],
    degree: usize,
    attrs: GeluAttrs,
) -> Result<i128, SemanticsError> {
    let overflow = SemanticsError::IntermediateOverflow("gelu");
    if attrs.bound > 62 || attrs.width > attrs.bound || attrs.tail > 62 {
        return Err(SemanticsError::Domain(
            "gelu needs width <= bound <= 62 and tail <= 62",
        ));
    }
    let edge = 1i128 << attrs.bound;
    if x >= edge {
        return x.checked_mul(1i128 << attrs.tail).ok_or(overflow);
    }
    if x < -edge {
        return Ok(0);
    }
    let off = x + edge;
    let (j, t) = (
        (off >> attrs.width) as usize,
        off & ((1i128 << attrs.width) - 1),
    );
    let row = coef.get(j * (degree + 1)..(j + 1) * (degree + 1)).ok_or(
        SemanticsError::IndexOutOfRange {
            index: j as i64,
            len: coef.len() / (degree + 1),
        },
    )?;
    row.iter().rev().try_fold(0i128, |acc, &c| {
        acc.checked_mul(t)
            .and_then(|a| a.checked_add(c as i128))
            .ok_or(overflow.clone())
    })
}

/// `gelu` of one element: [`gelu_poly`], then `round_shift(P, shift)`.
pub fn gelu_int(
    x: i128,
    coef: &[i64],
    degree: usize,
    attrs: GeluAttrs,
) -> Result<i128, SemanticsError> {
    let p = gelu_poly(x, coef, degree, attrs)?;
    if attrs.shift == 0 {
        return Ok(p);
    }
    if attrs.shift > 62 {
        return Err(SemanticsError::Domain("gelu's shift is at most 62"));
    }
    p.checked_add(1i128 << (attrs.shift - 1))
        .map(|v| v >> attrs.shift)
        .ok_or(SemanticsError::IntermediateOverflow("gelu"))
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
    }

    const ATTRS: GeluAttrs = GeluAttrs {
        bound: 3,
        width: 2,
        tail: 4,
        shift: 0,
    };

    #[test]
    fn gelu_picks_the_segment_polynomial_and_the_tails() {
        // bound 3: [-8, 8) in 4 segments of 4; segment j is j + t + 10 t^2 (t = off mod 4).
        let coef: Vec<i64> = (0..4).flat_map(|j| [j, 1, 10]).collect();
        let at = |x| gelu_int(x, &coef, 2, ATTRS).unwrap();
        assert_eq!(at(-9), 0);
        assert_eq!(at(-100), 0);
        assert_eq!(at(-8), 0); // off 0: segment 0, t 0
        assert_eq!(at(-5), 3 + 90); // off 3: t 3
        assert_eq!(at(-4), 1); // off 4: segment 1, t 0
        assert_eq!(at(7), 3 + 3 + 90); // off 15: segment 3, t 3
        assert_eq!(at(8), 8 * 16); // the tail x * 2^tail
        assert_eq!(at(1000), 1000 * 16);
        let shifted = GeluAttrs { shift: 2, ..ATTRS };
        // round_shift(93, 2) = floor(95 / 4) = 23; round_shift(-2, 2) = floor(0 / 4) = 0
        assert_eq!(gelu_int(-5, &coef, 2, shifted), Ok(23));
        let neg: Vec<i64> = vec![-2; 12];
        // x = 3: off 11, t 3: -2 - 6 - 18 = -26 -> floor(-24 / 4); x = -8: -2 -> floor(0 / 4)
        assert_eq!(gelu_int(3, &neg, 2, shifted), Ok(-6));
        assert_eq!(gelu_int(-8, &neg, 2, shifted), Ok(0));
    }

    #[test]
    fn gelu_reports_overflow_and_bad_tables() {
        let big = GeluAttrs {
            bound: 3,
            width: 2,
            tail: 62,
            shift: 0,
        };
        assert_eq!(
            gelu_int(1i128 << 100, &[0; 12], 2, big),
            Err(SemanticsError::IntermediateOverflow("gelu"))
        );
        // bound 62 = width: t reaches 2^62 - 1, and i64::MAX * t^2 leaves i128.
        let wide = GeluAttrs {
            bound: 62,
            width: 62,
            ..ATTRS
        };
        let x = 1i128 << 61; // off = 2^62 + 2^61: segment 1, t = 2^61
        assert!(gelu_int(x, &[0, 0, 0, 0, 1, 1], 1, wide).is_ok());
        assert_eq!(
            gelu_int(x, &[i64::MAX; 6], 2, wide),
            Err(SemanticsError::IntermediateOverflow("gelu"))
        );
        assert!(matches!(
            gelu_int(7, &[1, 2, 3], 2, ATTRS),
            Err(SemanticsError::IndexOutOfRange { .. })
        ));
        assert!(gelu_int(0, &[0; 12], 2, GeluAttrs { width: 4, ..ATTRS }).is_err());
    }
}
