//! Tensor types: an integer dtype, a shape, and an exact fixed-point scale.
//!
//! Scales are exact rationals `m * 2^e` (odd `m`), never floats, so that two layers agree on a
//! scale bit for bit and the text form round-trips.

use std::fmt;

/// The integer type of every element of a tensor. A value that does not fit is an error of
/// whoever produced it, never a wrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    I8,
    I16,
    I32,
    I64,
}

impl DType {
    pub const ALL: [DType; 4] = [DType::I8, DType::I16, DType::I32, DType::I64];

    pub fn bits(self) -> u32 {
        match self {
            DType::I8 => 8,
            DType::I16 => 16,
            DType::I32 => 32,
            DType::I64 => 64,
        }
    }

    pub fn min(self) -> i64 {
        i64::MIN >> (64 - self.bits())
    }

    pub fn max(self) -> i64 {
        i64::MAX >> (64 - self.bits())
    }

    pub fn contains(self, v: i128) -> bool {
        (self.min() as i128..=self.max() as i128).contains(&v)
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::I8 => "i8",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I64 => "i64",
        }
    }

    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An exact fixed-point scale `mantissa * 2^exp`: a tensor element `q` stands for `q * scale`.
/// Always normalised (odd mantissa), so structural equality is numeric equality.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scale {
    mantissa: u64,
    exp: i32,
}

/// Exponents beyond this are rejected: no tensor of a real model is that far from 1.
pub const MAX_SCALE_EXP: i32 = 1024;

impl Scale {
    pub const ONE: Scale = Scale {
        mantissa: 1,
        exp: 0,
    };

    /// `mantissa * 2^exp`, normalised; `None` for a zero mantissa or an exponent out of range.
    pub fn new(mantissa: u64, exp: i32) -> Option<Scale> {
        if mantissa == 0 {
            return None;
        }
        let tz = mantissa.trailing_zeros();
        let exp = exp.checked_add(tz as i32)?;
        if exp.abs() > MAX_SCALE_EXP {
            return None;
        }
        Some(Scale {
            mantissa: mantissa >> tz,
            exp,
        })
    }

    pub fn pow2(exp: i32) -> Option<Scale> {
        Scale::new(1, exp)
    }

    /// The exact value of a finite positive float (every f64 is `m * 2^e`); `None` otherwise.
    pub fn from_f64(x: f64) -> Option<Scale> {
        if !(x.is_finite() && x > 0.0) {
            return None;
        }
        let bits = x.to_bits();
        let exp = ((bits >> 52) & 0x7FF) as i32;
        let frac = bits & ((1 << 52) - 1);
        match exp {
            0 => Scale::new(frac, -1074),
            _ => Scale::new(frac | (1 << 52), exp - 1075),
        }
    }

    /// The nearest f64 (exact for the scales zkc makes).
    pub fn to_f64(self) -> f64 {
        self.mantissa as f64 * 2f64.powi(self.exp)
    }

    pub fn mantissa(self) -> u64 {
        self.mantissa
    }

    pub fn exp(self) -> i32 {
        self.exp
    }

    /// The scale of a product of two tensors; `None` if the mantissa overflows 64 bits.
    pub fn checked_mul(self, other: Scale) -> Option<Scale> {
        Scale::new(
            self.mantissa.checked_mul(other.mantissa)?,
            self.exp.checked_add(other.exp)?,
        )
    }
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.mantissa, self.exp) {
            (m, 0) => write!(f, "{m}"),
            (1, e) => write!(f, "2^{e}"),
            (m, e) => write!(f, "{m}*2^{e}"),
        }
    }
}

/// The largest element count of one tensor that zkc accepts (2^36, far above GPT-2's largest
/// table): sizes are checked before anything is allocated.
pub const MAX_ELEMENTS: u64 = 1 << 36;

/// A tensor type, written `i16[1, 64] * 2^-8`; the scale is omitted when it is 1.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub scale: Scale,
}

impl TensorType {
    pub fn new(dtype: DType, shape: Vec<usize>, scale: Scale) -> TensorType {
        TensorType {
            dtype,
            shape,
            scale,
        }
    }

    /// A scalar with scale 1: the type of token ids, positions and argmax results.
    pub fn index(dtype: DType) -> TensorType {
        TensorType::new(dtype, Vec::new(), Scale::ONE)
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn is_scalar(&self) -> bool {
        self.shape.is_empty()
    }

    /// Element count, or `None` if it exceeds [`MAX_ELEMENTS`].
    pub fn elements(&self) -> Option<u64> {
        element_count(&self.shape)
    }

    /// Whether the type is one zkc accepts: no empty axis (an empty row has no max, mean or
    /// argmax) and at most [`MAX_ELEMENTS`] elements.
    pub fn is_supported(&self) -> bool {
        self.shape.iter().all(|&d| d > 0) && self.elements().is_some()
    }
}

/// The element count of a shape, or `None` if it exceeds [`MAX_ELEMENTS`].
pub fn element_count(shape: &[usize]) -> Option<u64> {
    shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
        .filter(|&n| n <= MAX_ELEMENTS)
}

pub struct ShapeDisplay<'a>(pub &'a [usize]);

impl fmt::Display for ShapeDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, ShapeDisplay(&self.shape))?;
        if self.scale != Scale::ONE {
            write!(f, " * {}", self.scale)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_ranges() {
        assert_eq!((DType::I8.min(), DType::I8.max()), (-128, 127));
        assert_eq!((DType::I16.min(), DType::I16.max()), (-32768, 32767));
        assert_eq!(DType::I64.max(), i64::MAX);
        assert!(DType::I8.contains(-128) && !DType::I8.contains(128));
    }

    #[test]
    fn scales_normalise_and_multiply() {
        assert_eq!(Scale::new(4, -3), Scale::pow2(-1));
        assert_eq!(Scale::new(3, -10).unwrap().to_string(), "3*2^-10");
        assert_eq!(Scale::pow2(-8).unwrap().to_string(), "2^-8");
        assert_eq!(Scale::new(6, 0).unwrap().to_string(), "3*2^1");
        let s = Scale::new(3, -4)
            .unwrap()
            .checked_mul(Scale::new(5, -2).unwrap());
        assert_eq!(s, Scale::new(15, -6));
        assert_eq!(Scale::new(0, 0), None);
        assert_eq!(Scale::new(1, 5000), None);
        assert_eq!(
            Scale::new(u64::MAX, 0)
                .unwrap()
                .checked_mul(Scale::new(3, 0).unwrap()),
            None
        );
    }

    #[test]
    fn floats_convert_exactly() {
        assert_eq!(Scale::from_f64(0.375), Scale::new(3, -3));
        assert_eq!(Scale::from_f64(1.0), Some(Scale::ONE));
        let x = 0.0123456789f64;
        assert_eq!(Scale::from_f64(x).unwrap().to_f64(), x);
        assert_eq!(Scale::from_f64(0.0), None);
        assert_eq!(Scale::from_f64(f64::NAN), None);
    }

    #[test]
    fn element_counts_are_bounded() {
        assert_eq!(element_count(&[2, 3]), Some(6));
        assert_eq!(element_count(&[]), Some(1));
        assert_eq!(element_count(&[1 << 40, 1 << 40]), None);
    }
}
