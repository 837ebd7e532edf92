//! Checked arithmetic for the integers that wires stand for ([`super::Wire::value`]).
//!
//! A gadget computes its witness from the integers of its operands and the claimed results.
//! Wherever such a computation is not bounded by construction (a range-checked value, a
//! validated attribute), it goes through these functions: a result that leaves `i128` is an
//! error, never a silently wrapped witness (issue 12: a wrapped running product gave a witness
//! that did not satisfy a correct constraint) and never a panic. Honest values are bounded
//! (every gadget's module says how), so an overflow means that the values handed to the gadget,
//! a claimed result or an operand, cannot satisfy it: [`SynthesisError::Unsatisfiable`].
//! Products whose size has no bound at all (the softmax max chain) are carried in the field
//! instead.

use ark_relations::gr1cs::SynthesisError;

fn fits(v: Option<i128>) -> Result<i128, SynthesisError> {
    v.ok_or(SynthesisError::Unsatisfiable)
}

pub fn add(a: i128, b: i128) -> Result<i128, SynthesisError> {
    fits(a.checked_add(b))
}

pub fn sub(a: i128, b: i128) -> Result<i128, SynthesisError> {
    fits(a.checked_sub(b))
}

pub fn mul(a: i128, b: i128) -> Result<i128, SynthesisError> {
    fits(a.checked_mul(b))
}

/// `a * 2^k` (a shift that drops no bit and keeps the sign).
pub fn shl(a: i128, k: u32) -> Result<i128, SynthesisError> {
    fits(1i128.checked_shl(k).filter(|p| *p > 0)).and_then(|p| mul(a, p))
}

pub fn abs(a: i128) -> Result<i128, SynthesisError> {
    fits(a.checked_abs())
}

/// The sum of `values`, checked at every step.
pub fn sum(values: impl IntoIterator<Item = i128>) -> Result<i128, SynthesisError> {
    values.into_iter().try_fold(0, add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_is_an_error_and_exact_results_pass() {
        assert_eq!(add(i128::MAX - 1, 1), Ok(i128::MAX));
        assert_eq!(add(i128::MAX, 1), Err(SynthesisError::Unsatisfiable));
        assert_eq!(sub(i128::MIN, 1), Err(SynthesisError::Unsatisfiable));
        assert_eq!(mul(1 << 63, 1 << 63), Ok(1 << 126));
        assert_eq!(mul(1 << 64, 1 << 63), Err(SynthesisError::Unsatisfiable));
        assert_eq!(shl(-3, 10), Ok(-3072));
        assert_eq!(shl(1, 126), Ok(1 << 126));
        assert_eq!(shl(1, 127), Err(SynthesisError::Unsatisfiable));
        assert_eq!(shl(3, 126), Err(SynthesisError::Unsatisfiable));
        assert_eq!(shl(0, 200), Err(SynthesisError::Unsatisfiable));
        assert_eq!(abs(i128::MIN + 1), Ok(i128::MAX));
        assert_eq!(abs(i128::MIN), Err(SynthesisError::Unsatisfiable));
        assert_eq!(sum([1, 2, 3]), Ok(6));
        assert_eq!(sum([i128::MAX, 1, -1]), Err(SynthesisError::Unsatisfiable));
    }
}
