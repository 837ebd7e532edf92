//! The integer semantics of every op: the one definition that the interpreter executes and that
//! each circuit gadget is tested against.
//!
//! Functions take validated operands (shapes agree), compute in `i128`, and return an error, never
//! a wrapped value, when a result does not fit its dtype. No float appears anywhere here.

mod arith;
mod linear;
mod norm;
mod scalar;
mod shape;
mod softmax;
mod state;
mod tensor;

#[cfg(test)]
mod float_reference;

pub use crate::ir::GeluAttrs;
pub use arith::{add, clamp, mul, requant, sub};
pub use linear::{linear, matmul};
pub use norm::{gelu, layernorm, rmsnorm};
pub use scalar::{exp_int, floor_div, gelu_int, gelu_poly, isqrt, round_shift, EXP_MAX_SHIFT};
pub use shape::{concat, reshape, split, transpose};
pub use softmax::{argmax, argmax_carry, softmax};
pub use state::{gather, kv_append};
pub use tensor::Tensor;

use crate::types::DType;
use thiserror::Error;

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum SemanticsError {
    #[error("value {value} does not fit {dtype} (recalibrate the scale or widen the type)")]
    Overflow { value: i128, dtype: DType },
    #[error("index {index} is out of range 0..{len}")]
    IndexOutOfRange { index: i64, len: usize },
    #[error("operand shapes do not agree: {0}")]
    Shape(String),
    #[error("outside the domain: {0}")]
    Domain(&'static str),
    #[error("an intermediate value of {0} exceeds 127 bits")]
    IntermediateOverflow(&'static str),
    #[error("division by zero: {0}")]
    DivisionByZero(&'static str),
}

/// `sum(a_k * b_k)` in i128, an error rather than a wrap if it leaves i128.
pub(crate) fn dot(
    mut terms: impl Iterator<Item = (i64, i64)>,
    what: &'static str,
) -> Result<i128, SemanticsError> {
    terms
        .try_fold(0i128, |acc, (a, b)| acc.checked_add(a as i128 * b as i128))
        .ok_or(SemanticsError::IntermediateOverflow(what))
}

/// Checks that `v` fits `dtype` and narrows it to the i64 that tensors store.
pub fn fit(v: i128, dtype: DType) -> Result<i64, SemanticsError> {
    if dtype.contains(v) {
        Ok(v as i64)
    } else {
        Err(SemanticsError::Overflow { value: v, dtype })
    }
}
