//! Range checks by lookup: LogUp (Haböck, eprint 2022/1530) over the table `[0, 2^w)`, in a
//! circuit proven in two rounds (docs/proving.md, "Lookups"); functions tabulated by their
//! gadgets ([`function`], `gelu`) add their entries to the same table.
//!
//! While a circuit is built with a table ([`begin`]), each range check splits its value into
//! `w`-bit limbs and records a lookup of each ([`range`]); the limbs are ordinary witnesses.
//! [`finish`] closes the circuit. It allocates the table's multiplicities `m_j`, the last
//! first-round witnesses; asks the [`Challenger`] for the challenge `β` once the first round is
//! fixed (the prover derives it from a commitment to that round); makes `β` the circuit's last
//! public input; and proves with second-round witnesses that
//!
//! `sum_i 1 / (β - x_i) = sum_j m_j / (β - j)`:
//!
//! one constraint per lookup (`inv_i (β - x_i) = 1`), one per table entry (`e_j (β - j) = m_j`)
//! and one for the sums. As rational functions of `β` the two sides are equal exactly when every
//! `x_i` is a table entry looked up `m_j` times (the field's characteristic is far above any
//! count); a `β` drawn after the first round is fixed makes a false claim pass with probability
//! at most `(lookups + 2^w) / p` (Schwartz–Zippel).

use super::{constant, field, Wire, F};
use ark_ff::{batch_inversion, Field, PrimeField, Zero};
use ark_relations::gr1cs::{ConstraintSystemRef, LinearCombination, SynthesisError, Variable};
use sha2::{Digest, Sha256};
use std::any::TypeId;

/// The lookups of a circuit being built, kept on its constraint system.
struct Recorded {
    width: u32,
    /// Function tables' entries ([`function`]), after the range table's `2^width`.
    entries: Vec<F>,
    /// Each function's first entry, by the key that names it: one table per function.
    functions: std::collections::HashMap<FunctionKey, u32>,
    /// Each lookup's combination and the index of the entry the prover says it is.
    looked: Vec<(LinearCombination<F>, u32)>,
}

/// One limb of a range check: `bits` bits from bit `shift`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limb {
    pub shift: u32,
    pub bits: u32,
    width: u32,
}

impl Limb {
    /// A full limb is one lookup; a narrower one is two (itself, and itself times
    /// `2^(w - bits)`, both in `[0, 2^w)`).
    pub fn lookups(self) -> usize {
        match self.bits == self.width {
            true => 1,
            false => 2,
        }
    }
}

/// The limbs of a `k`-bit range check with a `width`-bit table, least significant first.
pub fn limbs(k: u32, width: u32) -> impl Iterator<Item = Limb> {
    (0..k.div_ceil(width)).map(move |i| Limb {
        shift: i * width,
        bits: width.min(k - i * width),
        width,
    })
}

/// Where a circuit with lookups gets its challenge `β`: asked once every first-round variable
/// is assigned (the instance so far and the first `round_one` witnesses).
pub trait Challenger {
    fn challenge(&self, cs: &ConstraintSystemRef<F>, round_one: usize)
        -> Result<F, SynthesisError>;
}

/// A challenge hashed from the first round's assignment itself (SHA-256): for building and
/// checking circuits outside a proof (tests, `diagnose`), where no commitment is made. In setup
/// mode, which assigns nothing, it is zero.
pub struct AssignmentDigest;

impl Challenger for AssignmentDigest {
    fn challenge(
        &self,
        cs: &ConstraintSystemRef<F>,
        round_one: usize,
    ) -> Result<F, SynthesisError> {
        if cs.is_in_setup_mode() {
            return Ok(F::zero());
        }
        let cs = cs.borrow().ok_or(SynthesisError::MissingCS)?;
        let mut hash = Sha256::new();
        hash.update(b"zkc/lookup-test-challenge");
        let assigned = &cs.assignments;
        for x in assigned
            .instance_assignment
            .iter()
            .chain(&assigned.witness_assignment[..round_one])
        {
            for limb in x.into_bigint().0 {
                hash.update(limb.to_le_bytes());
            }
        }
        Ok(F::from_le_bytes_mod_order(&hash.finalize()))
    }
}

fn with<R>(cs: &ConstraintSystemRef<F>, f: impl FnOnce(&mut Recorded) -> R) -> Option<R> {
    let map = cs.borrow()?.cache_map.clone();
    let mut map = map.borrow_mut();
    let recorded = map.get_mut(&TypeId::of::<Recorded>())?;
    Some(f(recorded.downcast_mut::<Recorded>()?))
}

/// From here on, `cs` checks ranges with a table of `2^width` entries.
pub fn begin(cs: &ConstraintSystemRef<F>, width: u32) {
    if let Some(cs) = cs.borrow() {
        cs.cache_map.borrow_mut().insert(
            TypeId::of::<Recorded>(),
            Box::new(Recorded {
                width,
                entries: Vec::new(),
                functions: Default::default(),
                looked: Vec::new(),
            }),
        );
    }
}

/// The table width `cs` checks ranges with, if it looks them up.
pub fn width(cs: &ConstraintSystemRef<F>) -> Option<u32> {
    with(cs, |r| r.width)
}

/// How many lookups `cs` has recorded so far (each becomes one constraint in [`finish`]).
pub fn count(cs: &ConstraintSystemRef<F>) -> usize {
    with(cs, |r| r.looked.len()).unwrap_or(0)
}

/// The widest input a function table covers (a million entries).
pub const FUNCTION_BITS: u32 = 20;

/// What determines every entry of a tabulated function: the gadget's name and its parameters
/// (two gelus of one signature and coefficients are one function).
pub type FunctionKey = (&'static str, Vec<i64>);

/// Adds a function's entries (made knowing the index of the first) to the table of `cs`, after
/// `[0, 2^w)` and earlier functions' entries, unless a function of the same `key` has them
/// already; returns the first entry's index (for [`entry`]), or `None` if `cs` has no table. A
/// lookup proves only that its value is *some* entry, so the caller encodes its entries with
/// [`tagged`], which keeps them disjoint from every other table's.
pub fn function(
    cs: &ConstraintSystemRef<F>,
    key: FunctionKey,
    entries: impl FnOnce(u32) -> Vec<F>,
) -> Option<u32> {
    if let Some(first) = with(cs, |r| r.functions.get(&key).copied())? {
        return Some(first);
    }
    let first = with(cs, |r| (1u32 << r.width) + r.entries.len() as u32)?;
    let entries = entries(first);
    with(cs, |r| {
        r.entries.extend(entries);
        r.functions.insert(key, first);
    });
    Some(first)
}

/// A function's entry: `2^64 (first + 1) + value` for the `value` (below 2^64) that encodes
/// an input and its result. The tag above 2^64, made of the function's first index, keeps its
/// entries off the range table's `[0, 2^20)` and off every other function's (whose `first`
/// differs): a looked-up combination that is this function's tag plus an integer in
/// `[0, 2^64)` can only be one of this function's entries.
pub fn tagged(first: u32, value: u64) -> F {
    F::from(first as u64 + 1) * F::from(2u8).pow([64]) + F::from(value)
}

/// A lookup of `lc` in the table of `cs`, which the prover says is entry `index` (of the range
/// table or a [`function`]'s): one constraint in [`finish`], which holds only if `lc`'s value
/// is that entry's.
pub fn entry(cs: &ConstraintSystemRef<F>, lc: LinearCombination<F>, index: u32) {
    with(cs, |r| r.looked.push((lc, index)));
}

/// [`super::range::range_checked`] by lookups: the limbs of the low `k` bits of `value - lo`.
pub fn range(
    cs: &ConstraintSystemRef<F>,
    value: i128,
    lo: i128,
    k: u32,
    width: u32,
) -> Result<Wire, SynthesisError> {
    if k > 126 || !(i64::MIN as i128..=i64::MAX as i128).contains(&lo) {
        // An internal invariant, not a property of the witness.
        return Err(SynthesisError::Unsatisfiable);
    }
    // Wrapping on purpose: only the low `k` bits are kept.
    let offset = value.wrapping_sub(lo);
    let mut lc = constant(lo);
    let mut represented = lo;
    for limb in limbs(k, width) {
        let v = ((offset >> limb.shift) & ((1i128 << limb.bits) - 1)) as u32;
        let var = cs.new_witness_variable(|| Ok(F::from(v)))?;
        entry(cs, var.into(), v);
        if limb.bits < width {
            let up = width - limb.bits;
            entry(
                cs,
                LinearCombination::from((F::from(1u64 << up), var)),
                v << up,
            );
        }
        lc += (field(1i128 << limb.shift), var);
        represented += (v as i128) << limb.shift;
    }
    Ok(Wire {
        lc,
        value: represented,
    })
}

/// Closes the lookup argument of `cs`, if it looks ranges up: multiplicities (first round), the
/// challenge from `challenger` as the last public input, then the inverses (second round) and
/// the sums' check. Must come after every other variable and constraint of the circuit.
pub fn finish(
    cs: &ConstraintSystemRef<F>,
    challenger: &dyn Challenger,
) -> Result<(), SynthesisError> {
    let recorded = cs
        .borrow()
        .and_then(|cs| cs.cache_map.borrow_mut().remove(&TypeId::of::<Recorded>()));
    let Some(Ok(recorded)) = recorded.map(|r| r.downcast::<Recorded>()) else {
        return Ok(());
    };
    let Recorded {
        width,
        entries,
        looked,
        ..
    } = *recorded;
    let size = (1usize << width) + entries.len();
    let value = |j: usize| match j.checked_sub(1 << width) {
        None => F::from(j as u64),
        Some(f) => entries[f],
    };
    let mut counts = vec![0u64; size];
    for &(_, v) in &looked {
        // A value off the table has no entry to count: the sums then differ.
        if let Some(c) = counts.get_mut(v as usize) {
            *c += 1;
        }
    }
    let m: Vec<Variable> = counts
        .iter()
        .map(|&c| cs.new_witness_variable(|| Ok(F::from(c))))
        .collect::<Result<_, _>>()?;
    let round_one = cs.num_witness_variables();
    let beta_value = challenger.challenge(cs, round_one)?;
    let beta = cs.new_input_variable(|| Ok(beta_value))?;
    // 1 / (β - x) for every lookup, then for every table entry (none in setup mode).
    let inverses = match cs.is_in_setup_mode() {
        true => None,
        false => {
            // A value off the table (index `v` past it) is inverted as the value `v`; it has no
            // entry to count, so the sums differ.
            let at = |v: u32| match (v as usize) < size {
                true => value(v as usize),
                false => F::from(v),
            };
            let mut d: Vec<F> = looked
                .iter()
                .map(|&(_, v)| beta_value - at(v))
                .chain((0..size).map(|j| beta_value - value(j)))
                .collect();
            // β on the table: probability 2^w / p; the prover draws another commitment.
            if d.iter().any(Zero::is_zero) {
                return Err(SynthesisError::Unsatisfiable);
            }
            batch_inversion(&mut d);
            Some(d)
        }
    };
    let inverse = |i: usize| {
        inverses
            .as_ref()
            .map(|d| d[i])
            .ok_or(SynthesisError::AssignmentMissing)
    };
    let mut terms = Vec::with_capacity(looked.len() + size);
    for (i, (lc, _)) in looked.iter().enumerate() {
        let inv = cs.new_witness_variable(|| inverse(i))?;
        cs.enforce_r1cs_constraint(
            || inv.into(),
            || LinearCombination::from(beta) - lc,
            || Variable::One.into(),
        )?;
        terms.push((F::from(1u8), inv));
    }
    for (j, (&mj, &count)) in m.iter().zip(&counts).enumerate() {
        let e = cs.new_witness_variable(|| Ok(inverse(looked.len() + j)? * F::from(count)))?;
        cs.enforce_r1cs_constraint(
            || e.into(),
            || LinearCombination::from(beta) - (value(j), Variable::One),
            || mj.into(),
        )?;
        terms.push((-F::from(1u8), e));
    }
    cs.enforce_r1cs_constraint(
        || LinearCombination::from_sum_coeff_vars(&terms),
        || Variable::One.into(),
        LinearCombination::zero,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::range::{range_checked, Ranges};
    use crate::backend::test_util::cs;
    use ark_ff::Field;

    /// A challenge fixed in advance, as a prover who knew it before committing would have it.
    struct Known(F);

    impl Challenger for Known {
        fn challenge(&self, _: &ConstraintSystemRef<F>, _: usize) -> Result<F, SynthesisError> {
            Ok(self.0)
        }
    }

    /// A circuit checking `values` in `[0, 2^k)` with a `width`-bit table, not yet finished;
    /// returns it and the number of witnesses before the lookup argument.
    fn checked(values: &[i128], k: u32, width: u32) -> ConstraintSystemRef<F> {
        let cs = cs();
        begin(&cs, width);
        for &v in values {
            let w = range_checked(&cs, v, 0, k).unwrap();
            let bound = cs.new_witness_variable(|| Ok(field(v))).unwrap();
            crate::backend::range::equal(&cs, &w.lc, &bound.into()).unwrap();
        }
        cs
    }

    fn set_witness(cs: &ConstraintSystemRef<F>, index: usize, value: F) {
        cs.borrow_mut().unwrap().assignments.witness_assignment[index] = value;
    }

    /// Whether the assignment (as tampered with since) satisfies the finished system's matrices:
    /// arkworks' own check reuses combinations it evaluated while building.
    fn holds(cs: &ConstraintSystemRef<F>) -> bool {
        use ark_relations::gr1cs::predicate::polynomial_constraint::R1CS_PREDICATE_LABEL;
        cs.finalize();
        let m = cs
            .to_matrices()
            .unwrap()
            .remove(R1CS_PREDICATE_LABEL)
            .unwrap();
        let z = [
            cs.instance_assignment().unwrap(),
            cs.witness_assignment().unwrap(),
        ]
        .concat();
        let dot = |row: &[(F, usize)]| row.iter().map(|&(c, i)| c * z[i]).sum::<F>();
        (0..m[0].len()).all(|r| dot(&m[0][r]) * dot(&m[1][r]) == dot(&m[2][r]))
    }

    #[test]
    fn limbs_cover_the_range_and_count_as_the_cost_model_says() {
        for (k, width, lookups) in [(0, 8, 0), (8, 8, 1), (3, 8, 2), (16, 8, 2), (17, 8, 4)] {
            let limbs: Vec<Limb> = limbs(k, width).collect();
            assert_eq!(limbs.iter().map(|l| l.bits).sum::<u32>(), k);
            assert_eq!(Ranges::Table { width }.rc(k), lookups, "k {k}, w {width}");
        }
    }

    #[test]
    fn honest_lookups_satisfy_and_count_one_constraint_each() {
        for width in [4, 8] {
            let values = [0, 1, 255, 256, 65535, 40000, 7];
            let cs = checked(&values, 16, width);
            let lookups = count(&cs);
            assert_eq!(lookups, values.len() * Ranges::Table { width }.rc(16));
            let before = cs.num_constraints();
            finish(&cs, &AssignmentDigest).unwrap();
            assert_eq!(cs.num_constraints(), before + lookups + (1 << width) + 1);
            assert!(cs.is_satisfied().unwrap());
            // The challenge is the last public input.
            assert_eq!(cs.num_instance_variables(), 2);
        }
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        for (v, k) in [(256, 8), (-1, 8), (1 << 16, 16), (8, 3), (-5, 3)] {
            let cs = checked(&[v], k, 8);
            finish(&cs, &AssignmentDigest).unwrap();
            assert!(!cs.is_satisfied().unwrap(), "{v} in {k} bits");
        }
    }

    /// A limb off the table (here 300 in a table of 256), looked up with its true value: no
    /// multiplicity can count it, and the sums differ.
    #[test]
    fn a_value_off_the_table_is_rejected() {
        let cs = cs();
        begin(&cs, 8);
        let x = cs.new_witness_variable(|| Ok(F::from(300u32))).unwrap();
        entry(&cs, x.into(), 300);
        finish(&cs, &AssignmentDigest).unwrap();
        assert!(!cs.is_satisfied().unwrap());
    }

    #[test]
    fn a_wrong_multiplicity_is_rejected() {
        let cs = checked(&[3, 3, 200], 8, 8);
        let first_multiplicity = cs.num_witness_variables();
        finish(&cs, &AssignmentDigest).unwrap();
        assert!(holds(&cs));
        for (entry, value) in [(3, 1u64), (3, 3), (200, 0), (0, 1)] {
            let forged = checked(&[3, 3, 200], 8, 8);
            finish(&forged, &AssignmentDigest).unwrap();
            set_witness(&forged, first_multiplicity + entry, F::from(value));
            assert!(!holds(&forged), "m[{entry}] = {value}");
        }
    }

    /// Second-round witnesses made for one challenge do not satisfy the circuit at another.
    #[test]
    fn inverses_for_another_challenge_are_rejected() {
        let cs = checked(&[5, 17, 250], 8, 8);
        finish(&cs, &Known(F::from(1u64 << 40))).unwrap();
        assert!(cs.is_satisfied().unwrap());
        let beta = cs.num_instance_variables() - 1;
        cs.borrow_mut().unwrap().assignments.instance_assignment[beta] = F::from(1u64 << 41);
        assert!(!holds(&cs));
    }

    /// Why the challenge must come after the first round: multiplicities are unconstrained
    /// field elements, so a prover who knows `β` in advance balances the sums for a value off
    /// the table with one forged multiplicity. The proof system's commitment to the first round
    /// is what takes that knowledge away (docs/proving.md, "Lookups").
    #[test]
    fn a_challenge_known_in_advance_lets_a_prover_forge() {
        let beta = F::from(1u64 << 40);
        let cs = cs();
        begin(&cs, 8);
        let x = cs.new_witness_variable(|| Ok(F::from(300u32))).unwrap();
        entry(&cs, x.into(), 300);
        let first_multiplicity = cs.num_witness_variables();
        finish(&cs, &Known(beta)).unwrap();
        assert!(!cs.is_satisfied().unwrap());
        // m_0 = (β - 0) / (β - 300) makes m_0 / β equal 1 / (β - 300); e_0 follows it.
        let m0 = beta * (beta - F::from(300u32)).inverse().unwrap();
        set_witness(&cs, first_multiplicity, m0);
        let e0 = first_multiplicity + 256 + 1;
        set_witness(&cs, e0, m0 * beta.inverse().unwrap());
        assert!(holds(&cs), "the forgery holds for a known β");
    }
}
