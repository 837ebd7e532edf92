//! The one range-check component: `v in [lo, lo + 2^k)` by bit decomposition, `k` constraints
//! (`rc(k)` in docs/ir.md). The checked value is returned as the linear combination
//! `lo + sum 2^i b_i`, which the caller uses directly in the equation that needs it. Replacing
//! this with lookups later changes this file only.

use super::{field, Wire, F};
use ark_relations::gr1cs::{ConstraintSystemRef, LinearCombination, SynthesisError, Variable};

/// Allocates the `k` bits of `value - lo` (its low `k` bits when it is out of range, so that the
/// returned combination then differs from `value` and the caller's equation fails). `k <= 126`
/// and `lo` within `i64` (every caller's ranges are far narrower), so `lo + 2^k` fits `i128`.
pub fn range_checked(
    cs: &ConstraintSystemRef<F>,
    value: i128,
    lo: i128,
    k: u32,
) -> Result<Wire, SynthesisError> {
    Ok(decompose(cs, value, lo, k)?.0)
}

/// [`range_checked`], also returning the bit variables (least significant first).
pub fn decompose(
    cs: &ConstraintSystemRef<F>,
    value: i128,
    lo: i128,
    k: u32,
) -> Result<(Wire, Vec<Variable>), SynthesisError> {
    if k > 126 || !(i64::MIN as i128..=i64::MAX as i128).contains(&lo) {
        // An internal invariant, not a property of the witness.
        return Err(SynthesisError::Unsatisfiable);
    }
    // Wrapping on purpose: only the low `k` bits are kept.
    let offset = value.wrapping_sub(lo);
    let mut lc = LinearCombination::from((field(lo), Variable::One));
    let mut represented = lo;
    let mut bits = Vec::with_capacity(k as usize);
    for i in 0..k {
        let bit = (offset >> i) & 1;
        let b = cs.new_witness_variable(|| Ok(field(bit)))?;
        cs.enforce_r1cs_constraint(
            || b.into(),
            || LinearCombination::from(b) - Variable::One,
            LinearCombination::zero,
        )?;
        lc += (field(1i128 << i), b);
        represented += bit << i;
        bits.push(b);
    }
    Ok((
        Wire {
            lc,
            value: represented,
        },
        bits,
    ))
}

/// Enforces `a = b` for two combinations (1 constraint).
pub fn equal(
    cs: &ConstraintSystemRef<F>,
    a: &LinearCombination<F>,
    b: &LinearCombination<F>,
) -> Result<(), SynthesisError> {
    cs.enforce_r1cs_constraint(|| a.clone(), || Variable::One.into(), || b.clone())
}

/// `CMP(k)` of docs/ir.md: the bit `[u >= 0]` for `|u| < 2^k`, from the `k + 1` bits of
/// `u + 2^k` (`rc(k+1) + 1`). A `u` outside that range makes the circuit unsatisfiable.
pub fn non_negative(cs: &ConstraintSystemRef<F>, u: &Wire, k: u32) -> Result<Wire, SynthesisError> {
    let shifted = super::int::add(u.value, 1i128 << k.min(126))?;
    let (w, bits) = decompose(cs, shifted, 0, k + 1)?;
    equal(
        cs,
        &(u.lc.clone() + (field(1i128 << k), Variable::One)),
        &w.lc,
    )?;
    let top = *bits.last().expect("k + 1 >= 1 bits");
    Ok(Wire {
        lc: top.into(),
        value: (shifted >> k) & 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::test_util::cs;

    fn satisfied(value: i128, lo: i128, k: u32) -> bool {
        let cs = cs();
        let w = range_checked(&cs, value, lo, k).unwrap();
        // Bind the checked combination to the value it should be.
        let v = cs.new_witness_variable(|| Ok(field(value))).unwrap();
        cs.enforce_r1cs_constraint(|| w.lc.clone(), || Variable::One.into(), || v.into())
            .unwrap();
        assert_eq!(cs.num_constraints(), k as usize + 1);
        cs.is_satisfied().unwrap()
    }

    #[test]
    fn accepts_exactly_the_range() {
        for (lo, k) in [(0, 0), (0, 1), (0, 8), (-128, 8), (-32768, 16), (5, 3)] {
            let hi = lo + (1i128 << k);
            for v in [lo, lo + 1, hi - 1] {
                if v < hi {
                    assert!(satisfied(v, lo, k), "{v} in [{lo}, {hi})");
                }
            }
            assert!(!satisfied(hi, lo, k), "{hi} is one past [{lo}, {hi})");
            assert!(
                !satisfied(lo - 1, lo, k),
                "{} is one below [{lo}, {hi})",
                lo - 1
            );
            assert!(!satisfied(-hi - 7, lo, k));
        }
    }

    /// The widest ranges any gadget asks: 64 bits from the i64 minimum, and 99 bits (softmax's
    /// remainders at the largest validated constants).
    #[test]
    fn the_widest_ranges_are_exact() {
        let (lo, k) = (i64::MIN as i128, 64);
        for v in [lo, lo + 1, i64::MAX as i128, 0] {
            assert!(satisfied(v, lo, k), "{v}");
        }
        assert!(!satisfied(i64::MAX as i128 + 1, lo, k));
        assert!(!satisfied(lo - 1, lo, k));
        assert!(satisfied((1 << 99) - 1, 0, 99));
        assert!(!satisfied(1 << 99, 0, 99));
        for u in [i64::MIN as i128, -1, 0, i64::MAX as i128] {
            let cs = cs();
            let w = Wire::new(&cs, u, crate::backend::Alloc::Witness).unwrap();
            let bit = non_negative(&cs, &w, 64).unwrap();
            assert_eq!(bit.value, (u >= 0) as i128);
            assert!(cs.is_satisfied().unwrap());
        }
        // An integer past i128 is an error, not a wrap or a panic.
        let cs = cs();
        let w = Wire::new(&cs, i128::MAX, crate::backend::Alloc::Witness).unwrap();
        assert!(non_negative(&cs, &w, 64).is_err());
    }

    #[test]
    fn comparison_bits_are_exact_and_forced() {
        use crate::backend::Alloc;
        for u in [-255i128, -1, 0, 1, 255] {
            let cs = cs();
            let w = Wire::new(&cs, u, Alloc::Witness).unwrap();
            let bit = non_negative(&cs, &w, 8).unwrap();
            assert_eq!(bit.value, (u >= 0) as i128);
            assert_eq!(cs.num_constraints(), 9 + 1);
            assert!(cs.is_satisfied().unwrap());
        }
        // Outside [-2^k, 2^k) the circuit is unsatisfiable, never a wrong bit.
        for u in [256, -257, 1 << 40] {
            let cs = cs();
            let w = Wire::new(&cs, u, Alloc::Witness).unwrap();
            non_negative(&cs, &w, 8).unwrap();
            assert!(!cs.is_satisfied().unwrap(), "{u}");
        }
    }

    #[test]
    fn a_non_boolean_bit_is_rejected() {
        let cs = cs();
        let w = range_checked(&cs, 3, 0, 2).unwrap();
        assert!(cs.is_satisfied().unwrap());
        // Forge: with bits b0 = 3, b1 = 0 the combination is still 3, but booleanity fails.
        let forged = cs.new_witness_variable(|| Ok(field(3))).unwrap();
        cs.enforce_r1cs_constraint(
            || forged.into(),
            || LinearCombination::from(forged) - Variable::One,
            LinearCombination::zero,
        )
        .unwrap();
        assert!(!cs.is_satisfied().unwrap());
        assert_eq!(w.value, 3);
    }
}
