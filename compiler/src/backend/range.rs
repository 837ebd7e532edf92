//! The one range-check component: `v in [lo, lo + 2^k)`, `rc(k)` constraints in docs/ir.md.
//! A circuit checks its ranges one of two ways ([`Ranges`]), chosen per circuit by cost
//! (`backend::cost::ranges`): by bit decomposition (`k` constraints), or by looking up `w`-bit
//! limbs in a table of `2^w` entries (`backend::lookup`, one constraint per limb, plus the
//! table once per circuit). Either way the checked value is returned as a linear combination
//! (`lo + sum 2^i b_i`, or `lo + sum 2^(w i) l_i`) that the caller uses directly in the
//! equation that needs it.

use super::{constant, field, lookup, Wire, F};
use ark_relations::gr1cs::{ConstraintSystemRef, LinearCombination, SynthesisError, Variable};

/// How a circuit checks ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ranges {
    /// Bit decomposition: `rc(k) = k`.
    Bits,
    /// LogUp lookups of `width`-bit limbs in the table `[0, 2^width)`: `rc(k)` is one lookup
    /// per full limb and two for a narrower top limb; the table costs `2^width + 1` once.
    Table { width: u32 },
}

/// The table widths the cost model considers.
pub const TABLE_WIDTHS: std::ops::RangeInclusive<u32> = 4..=20;

impl Ranges {
    /// Every choice the cost model weighs.
    pub fn choices() -> impl Iterator<Item = Ranges> {
        std::iter::once(Ranges::Bits).chain(TABLE_WIDTHS.map(|width| Ranges::Table { width }))
    }

    /// `rc(k)`: the constraints of one `k`-bit range check.
    pub fn rc(self, k: u32) -> usize {
        match self {
            Ranges::Bits => k as usize,
            Ranges::Table { width } => lookup::limbs(k, width).map(|l| l.lookups()).sum(),
        }
    }

    /// `CMP(k)`: the bit `[u >= 0]` for `|u| < 2^k` ([`non_negative`]).
    pub fn comparison(self, k: u32) -> usize {
        self.rc(k) + 2
    }

    /// `lt(B)`: `0 <= v < B` ([`below`]).
    pub fn below(self, bound: u128) -> usize {
        let k = bits_of(bound - 1);
        match bound.is_power_of_two() {
            true => self.rc(k),
            false => 2 * self.rc(k) + 1,
        }
    }

    /// The constraints a circuit pays once for its table: one per entry and the sums' check.
    pub fn table(self) -> usize {
        match self {
            Ranges::Bits => 0,
            Ranges::Table { width } => (1usize << width) + 1,
        }
    }
}

/// The bits of `v`: the `k` with `v < 2^k`.
pub fn bits_of(v: u128) -> u32 {
    128 - v.leading_zeros()
}

/// Checks `value - lo` in `[0, 2^k)`: by its `k` bits, or by its limbs when the circuit looks
/// ranges up. Out of range, the bits or limbs are those of its low `k` bits, so that the
/// returned combination differs from `value` and the caller's equation fails. `k <= 126` and
/// `lo` within `i64` (every caller's ranges are far narrower), so `lo + 2^k` fits `i128`.
pub fn range_checked(
    cs: &ConstraintSystemRef<F>,
    value: i128,
    lo: i128,
    k: u32,
) -> Result<Wire, SynthesisError> {
    match lookup::width(cs) {
        Some(width) => lookup::range(cs, value, lo, k, width),
        None => Ok(decompose(cs, value, lo, k)?.0),
    }
}

/// `lt(B)`: `0 <= v < B` for a constant `B >= 1`: `rc(k)` when `B = 2^k`, else `v` and
/// `B - 1 - v` in `k = ceil(log2 B)` bits (`2 rc(k) + 1`).
pub fn below(cs: &ConstraintSystemRef<F>, v: i128, bound: u128) -> Result<Wire, SynthesisError> {
    let k = bits_of(bound - 1);
    let w = range_checked(cs, v, 0, k)?;
    if !bound.is_power_of_two() {
        let rest = range_checked(cs, bound as i128 - 1 - v, 0, k)?;
        equal(cs, &(constant(bound as i128 - 1) - &w.lc), &rest.lc)?;
    }
    Ok(w)
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
        let b = boolean(cs, bit)?;
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

/// A fresh witness holding `value` with its booleanity `b (b - 1) = 0` (1 constraint): a
/// `value` other than 0 or 1 makes the circuit unsatisfiable.
pub fn boolean(cs: &ConstraintSystemRef<F>, value: i128) -> Result<Variable, SynthesisError> {
    let b = cs.new_witness_variable(|| Ok(field(value)))?;
    cs.enforce_r1cs_constraint(
        || b.into(),
        || LinearCombination::from(b) - Variable::One,
        LinearCombination::zero,
    )?;
    Ok(b)
}

/// Enforces `a = b` for two combinations (1 constraint).
pub fn equal(
    cs: &ConstraintSystemRef<F>,
    a: &LinearCombination<F>,
    b: &LinearCombination<F>,
) -> Result<(), SynthesisError> {
    cs.enforce_r1cs_constraint(|| a.clone(), || Variable::One.into(), || b.clone())
}

/// `CMP(k)` of docs/ir.md: the bit `[u >= 0]` for `|u| < 2^k` (`rc(k) + 2`). With bits, the top
/// one of the `k + 1` bits of `u + 2^k`; with lookups, a boolean `b` and `u + 2^k (1 - b)` in
/// `[0, 2^k)`, which holds for exactly one `b`. A `u` outside that range makes the circuit
/// unsatisfiable.
pub fn non_negative(cs: &ConstraintSystemRef<F>, u: &Wire, k: u32) -> Result<Wire, SynthesisError> {
    let shifted = super::int::add(u.value, 1i128 << k.min(126))?;
    if lookup::width(cs).is_some() {
        let bit = (u.value >= 0) as i128;
        let b = boolean(cs, bit)?;
        let low = range_checked(cs, shifted - (bit << k), 0, k)?;
        let expected = u.lc.clone() + (field(1i128 << k), Variable::One) - (field(1i128 << k), b);
        equal(cs, &expected, &low.lc)?;
        return Ok(Wire {
            lc: b.into(),
            value: bit,
        });
    }
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
