//! Fixed-point arithmetic for choosing scales and multipliers (the only place floats meet
//! integers; nothing here reaches a witness).

use zkc_lang::DType;

/// The exponent `f` of the power-of-two scale `2^-f` that fits `max_abs * margin` into `bits`
/// signed bits.
pub fn exponent_for(max_abs: f64, bits: u32, margin: f64) -> i32 {
    let qmax = ((1u64 << (bits - 1)) - 1) as f64;
    if max_abs <= 0.0 || !max_abs.is_finite() {
        return (bits as i32 - 2).clamp(-60, 60);
    }
    (qmax / (max_abs * margin))
        .log2()
        .floor()
        .clamp(-60.0, 60.0) as i32
}

/// `round(x / scale)` (half away from zero), as the integer it stands for.
pub fn quantize(x: f64, scale: f64) -> i64 {
    (x / scale).round() as i64
}

/// `(m, shift)` with `m / 2^shift ≈ ratio` and `m` of about `bits` bits: a requantize multiplier.
pub fn multiplier(ratio: f64, bits: u32) -> (i64, u32) {
    let shift = (bits as i32 - 1 - ratio.log2().floor() as i32).clamp(0, 62) as u32;
    let m = (ratio * 2f64.powi(shift as i32)).round().max(1.0);
    (m as i64, shift)
}

/// Per-channel multipliers sharing one shift (the requant op has one shift), chosen so that the
/// largest has about `bits` bits.
pub fn multipliers(ratios: &[f64], bits: u32) -> (Vec<i64>, u32) {
    let largest = ratios.iter().copied().fold(f64::MIN_POSITIVE, f64::max);
    let (_, shift) = multiplier(largest, bits);
    let ms = ratios
        .iter()
        .map(|r| (r * 2f64.powi(shift as i32)).round().max(1.0) as i64)
        .collect();
    (ms, shift)
}

/// The narrowest dtype that holds every value of magnitude up to `bound`.
pub fn dtype_for(bound: f64) -> DType {
    if bound < i32::MAX as f64 {
        DType::I32
    } else {
        DType::I64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_fit_the_range() {
        assert_eq!(exponent_for(1.0, 8, 1.0), 6); // 127 / 1 -> 2^6 = 64 <= 127
        assert_eq!(exponent_for(3.0, 16, 1.5), 12); // 32767 / 4.5 = 7281 -> 2^12
        assert_eq!(exponent_for(0.0, 8, 1.0), 6);
    }

    #[test]
    fn multipliers_approximate_the_ratio() {
        for ratio in [1e-6, 0.0123, 0.5, 1.0, 3.7] {
            let (m, s) = multiplier(ratio, 16);
            let got = m as f64 / 2f64.powi(s as i32);
            assert!((got / ratio - 1.0).abs() < 1e-4, "{ratio}: {m} / 2^{s}");
            assert!((1 << 15..1 << 16).contains(&m), "{m}");
        }
        let (ms, s) = multipliers(&[0.01, 0.02, 0.000001], 16);
        assert!(ms[1] < 1 << 16 && ms[1] >= 1 << 15 && ms[2] >= 1);
        assert!((ms[0] as f64 / 2f64.powi(s as i32) / 0.01 - 1.0).abs() < 1e-3);
    }
}
