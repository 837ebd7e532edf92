//! `requant`: per element, `q` in the result's range, `r in [0, 2^shift)` and
//! `x * m + 2^(shift-1) = q * 2^shift + r`: `n * (rc(shift) + rc(b) + 1)` constraints.
//! Sound because `q * 2^shift + r` with those ranges writes each integer one way, and no side of
//! the equation comes near the field's size (|x * m| < 2^127).
//!
//! Witness: honest `x` fits its dtype (|x| <= 2^63) and `m < 2^63`, so `x * m + 2^(shift-1)` and
//! `q * 2^shift` (`shift <= 62`, validated) stay below 2^127; `r` is computed checked all the
//! same, since `x` may be a free combination handed a wrong value.

use super::range::{range_checked, Ranges};
use super::{field, int, Wire, F};
use ark_relations::gr1cs::{ConstraintSystemRef, LinearCombination, SynthesisError, Variable};
use zkc_lang::DType;

/// `claimed[i]` is the prover's result for `x[i]`; `mult` is broadcast over `x` as in
/// `zkc_lang::semantics::requant` (one multiplier, or one per channel of the last axis).
pub fn requant(
    cs: &ConstraintSystemRef<F>,
    x: &[Wire],
    mult: &[i64],
    shift: u32,
    out: DType,
    claimed: &[i64],
) -> Result<Vec<Wire>, SynthesisError> {
    let half = if shift == 0 { 0 } else { 1i128 << (shift - 1) };
    x.iter()
        .zip(claimed)
        .enumerate()
        .map(|(i, (x, &q))| {
            let m = mult[i % mult.len()] as i128;
            let r = int::sub(
                int::add(int::mul(x.value, m)?, half)?,
                int::shl(q as i128, shift)?,
            )?;
            let q = range_checked(cs, q as i128, out.min() as i128, out.bits())?;
            let r = range_checked(cs, r, 0, shift)?;
            let lhs = &x.lc * field(m) + (field(half), Variable::One);
            let rhs = &q.lc * field(1i128 << shift) + &r.lc;
            cs.enforce_r1cs_constraint(|| lhs, || Variable::One.into(), || rhs)?;
            Ok(q)
        })
        .collect::<Result<Vec<_>, SynthesisError>>()
}

/// The cost formula of docs/ir.md.
pub fn cost(n: usize, shift: u32, out: DType, r: Ranges) -> usize {
    n * (r.rc(shift) + r.rc(out.bits()) + 1)
}

/// Binds a wire to a fresh witness (tests and layer outputs): `lc = v`, 1 constraint.
pub fn bind(cs: &ConstraintSystemRef<F>, w: &Wire, value: i128) -> Result<(), SynthesisError> {
    let v = cs.new_witness_variable(|| Ok(field(value)))?;
    cs.enforce_r1cs_constraint(
        || w.lc.clone(),
        || Variable::One.into(),
        || LinearCombination::from(v),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::test_util::{satisfied_in_every_mode, wires, Lcg, MODES};
    use zkc_lang::semantics::{self, Tensor};

    fn honest(x: &[i64], mult: &[i64], shift: u32, out: DType) -> Option<Vec<i64>> {
        let t = Tensor::new(vec![x.len() / mult.len(), mult.len()], x.to_vec()).unwrap();
        let m = Tensor::new(vec![mult.len()], mult.to_vec()).unwrap();
        semantics::requant(&t, &m, shift, out)
            .ok()
            .map(Tensor::into_data)
    }

    fn satisfied(
        x: &[i64],
        mult: &[i64],
        shift: u32,
        out: DType,
        claimed: &[i64],
        mode: crate::backend::Alloc,
    ) -> bool {
        satisfied_in_every_mode(
            |cs| {
                let xs = wires(cs, x, mode);
                requant(cs, &xs, mult, shift, out, claimed).unwrap();
            },
            |r| cost(x.len(), shift, out, r),
        )
    }

    #[test]
    fn honest_results_satisfy_and_every_perturbation_fails() {
        let mut rng = Lcg(11);
        for _ in 0..60 {
            let out = [DType::I8, DType::I16][rng.below(2) as usize];
            let shift = rng.below(20) as u32;
            let mult: Vec<i64> = (0..4).map(|_| rng.range(1, 1 << 15)).collect();
            // Inputs whose results fit: |x * m| / 2^shift below the output range.
            let limit = ((out.max() as i128) << shift) / (1 << 16);
            let x: Vec<i64> = (0..8)
                .map(|_| rng.range(-(limit as i64), limit as i64))
                .collect();
            let q = honest(&x, &mult, shift, out).expect("fits by construction");
            for mode in MODES {
                assert!(
                    satisfied(&x, &mult, shift, out, &q, mode),
                    "honest {x:?} {mult:?} >> {shift}"
                );
                let k = rng.below(8) as usize;
                for delta in [-1, 1] {
                    let mut wrong = q.clone();
                    wrong[k] += delta;
                    // Off by one: the remainder leaves [0, 2^shift) (equal to it, or negative).
                    assert!(
                        !satisfied(&x, &mult, shift, out, &wrong, mode),
                        "q{delta:+} at {k}"
                    );
                }
                let mut flipped = q.clone();
                flipped[k] = -flipped[k] - 1;
                assert!(
                    !satisfied(&x, &mult, shift, out, &flipped, mode),
                    "sign flipped at {k}"
                );
            }
        }
    }

    /// Inputs at the ends of i16, i32 and i64 with multipliers and shifts whose results just
    /// fit (for i64: `x * 2^62 >> 62`, products of 2^125): honest results satisfy, one off fails.
    #[test]
    fn inputs_at_the_ends_of_every_dtype() {
        for (input, mult, shift, out) in [
            (DType::I16, 1, 9, DType::I8),
            (DType::I32, (1 << 15) - 1, 40, DType::I8),
            (DType::I32, 1, 0, DType::I32),
            (DType::I64, 1 << 62, 62, DType::I64),
            (DType::I64, i64::MAX, 63 - 1, DType::I64),
        ] {
            let x = [input.min(), input.max(), input.min(), input.max()];
            let Some(q) = honest(&x, &[mult], shift, out) else {
                continue;
            };
            for mode in MODES {
                assert!(
                    satisfied(&x, &[mult], shift, out, &q, mode),
                    "{input} * {mult} >> {shift}"
                );
                for k in 0..x.len() {
                    let mut wrong = q.clone();
                    wrong[k] = wrong[k].wrapping_add(if wrong[k] == out.max() { -1 } else { 1 });
                    assert!(
                        !satisfied(&x, &[mult], shift, out, &wrong, mode),
                        "{input} element {k}"
                    );
                }
            }
        }
        // x * m at the very end: (-2^63) * (2^63 - 1) with shift 62 is -2^126 + 2^63, whose
        // quotient does not fit i64: no claimed result is accepted, and none panics.
        let x = [i64::MIN];
        assert_eq!(honest(&x, &[i64::MAX], 62, DType::I64), None);
        for q in [i64::MIN, i64::MAX, 0] {
            assert!(!satisfied(
                &x,
                &[i64::MAX],
                62,
                DType::I64,
                &[q],
                crate::backend::Alloc::Witness
            ));
        }
    }

    #[test]
    fn a_result_one_past_the_range_cannot_be_proved() {
        // 254 * 1 / 2 = 127 fits i8; 256 / 2 = 128 does not.
        assert!(satisfied(
            &[254],
            &[1],
            1,
            DType::I8,
            &[127],
            crate::backend::Alloc::Witness
        ));
        assert_eq!(honest(&[256], &[1], 1, DType::I8), None);
        for q in [127, 128, -128] {
            assert!(
                !satisfied(
                    &[256],
                    &[1],
                    1,
                    DType::I8,
                    &[q],
                    crate::backend::Alloc::Witness
                ),
                "q = {q}"
            );
        }
    }

    #[test]
    fn shift_zero_is_an_exact_product() {
        assert!(satisfied(
            &[-7],
            &[3],
            0,
            DType::I8,
            &[-21],
            crate::backend::Alloc::Input
        ));
        assert!(!satisfied(
            &[-7],
            &[3],
            0,
            DType::I8,
            &[-20],
            crate::backend::Alloc::Input
        ));
    }
}
