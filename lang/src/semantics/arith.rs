//! Elementwise ops: add, sub, mul (with suffix broadcasting), requantize and clamp.

use super::{fit, round_shift, SemanticsError, Tensor};
use crate::types::{DType, ShapeDisplay};

/// `a op b` elementwise, where `b`'s shape is `a`'s or a suffix of it (a bias row added to every
/// row of `a`).
fn broadcast(
    a: &Tensor,
    b: &Tensor,
    out: DType,
    f: impl Fn(i128, i128) -> i128,
) -> Result<Tensor, SemanticsError> {
    if !a.shape().ends_with(b.shape()) {
        return Err(SemanticsError::Shape(format!(
            "{} does not broadcast over {}",
            ShapeDisplay(b.shape()),
            ShapeDisplay(a.shape())
        )));
    }
    let bd = b.data();
    let data = a
        .data()
        .iter()
        .enumerate()
        .map(|(i, &x)| fit(f(x as i128, bd[i % bd.len()] as i128), out))
        .collect::<Result<_, _>>()?;
    Tensor::new(a.shape().to_vec(), data)
}

pub fn add(a: &Tensor, b: &Tensor, out: DType) -> Result<Tensor, SemanticsError> {
    broadcast(a, b, out, |x, y| x + y)
}

pub fn sub(a: &Tensor, b: &Tensor, out: DType) -> Result<Tensor, SemanticsError> {
    broadcast(a, b, out, |x, y| x - y)
}

pub fn mul(a: &Tensor, b: &Tensor, out: DType) -> Result<Tensor, SemanticsError> {
    broadcast(a, b, out, |x, y| x * y)
}

/// `round_shift(x * m, shift)` with `m` taken from `mult`, which is broadcast over `x` like `b` in
/// [`add`]: one multiplier, or one per channel of the last axis.
pub fn requant(
    x: &Tensor,
    mult: &Tensor,
    shift: u32,
    out: DType,
) -> Result<Tensor, SemanticsError> {
    broadcast(x, mult, out, |v, m| round_shift(v * m, shift))
}

pub fn clamp(x: &Tensor, lo: i64, hi: i64, out: DType) -> Result<Tensor, SemanticsError> {
    let data = x
        .data()
        .iter()
        .map(|&v| fit(v.clamp(lo, hi.max(lo)) as i128, out))
        .collect::<Result<_, _>>()?;
    Tensor::new(x.shape().to_vec(), data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantics::tensor::t;

    #[test]
    fn add_broadcasts_a_row() {
        let a = t(&[2, 2], &[1, 2, 3, 4]);
        let b = t(&[2], &[10, 20]);
        assert_eq!(
            add(&a, &b, DType::I8).unwrap(),
            t(&[2, 2], &[11, 22, 13, 24])
        );
        assert_eq!(
            sub(&a, &b, DType::I8).unwrap(),
            t(&[2, 2], &[-9, -18, -7, -16])
        );
        assert_eq!(
            mul(&a, &b, DType::I8).unwrap(),
            t(&[2, 2], &[10, 40, 30, 80])
        );
        assert!(add(&b, &a, DType::I8).is_err());
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let a = t(&[1], &[100]);
        assert_eq!(
            add(&a, &a, DType::I8),
            Err(SemanticsError::Overflow {
                value: 200,
                dtype: DType::I8
            })
        );
    }

    #[test]
    fn requant_rounds_half_up_per_channel() {
        let x = t(&[1, 3], &[10, -10, 7]);
        let m = t(&[3], &[1, 1, 3]);
        // 10/4 = 2.5 -> 3; -10/4 = -2.5 -> -2; 21/4 = 5.25 -> 5
        assert_eq!(
            requant(&x, &m, 2, DType::I8).unwrap(),
            t(&[1, 3], &[3, -2, 5])
        );
        assert!(requant(&t(&[1], &[1000]), &Tensor::scalar(1), 0, DType::I8).is_err());
    }

    #[test]
    fn clamp_bounds_values() {
        let x = t(&[4], &[-300, -5, 5, 300]);
        assert_eq!(
            clamp(&x, -128, 127, DType::I8).unwrap(),
            t(&[4], &[-128, -5, 5, 127])
        );
    }
}
