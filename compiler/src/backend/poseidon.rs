//! The Poseidon sponge as constraints, written as plain linear combinations.
//!
//! Why not arkworks' gadget (`PoseidonSpongeVar`): it makes every addition and constant
//! multiplication of its MDS layers a symbolic linear combination, and `finalize` inlines every
//! symbolic combination, intermediate ones included, each into its own copy. A partial round's
//! state is a combination of up to `t + k` variables after `k` rounds, so the inlined copies of
//! one permutation's partial sums run to hundreds of thousands of terms: measured, they were
//! nine tenths of the memory of a circuit's setup (1.95 of 2.17 GB at the peak of a
//! 139k-constraint layer's setup, heaptrack), and the prover paid to evaluate each.
//!
//! Here the only combinations are the S-box rows. The S-box is arkworks' `x^5` in three
//! constraints (`x² = x·x`, `x⁴ = x²·x²`, `x⁵ = x⁴·x`), skipped for a constant input, so the
//! constraints and matrices are the same as the arkworks gadget's. The partial rounds, linear
//! but for the first element, are a fixed linear map of the last full round's S-box outputs and
//! the partial rounds' own: each partial round's S-box input and the state after the last one
//! are precomputed once per instance as coefficient vectors over those variables, so building a
//! permutation costs about its nonzeros. Values are computed alongside, and the sponge's mode
//! (absorb all, then squeeze one) is arkworks' `PoseidonSponge`, whose outputs the tests
//! compare.

use super::commit::{Commitment, Instance};
use super::F;
use ark_crypto_primitives::sponge::poseidon::PoseidonConfig;
use ark_ff::Field;
use ark_relations::gr1cs::{ConstraintSystemRef, LinearCombination, SynthesisError, Variable};
use std::sync::OnceLock;

/// The partial rounds of an instance as linear maps over the basis `[1, z_0..z_t, y_0..y_P]`:
/// `z` the last first-half full round's S-box outputs, `y_k` partial round `k`'s.
struct PartialRounds {
    /// Per partial round, its S-box input (over the first `1 + t + k` basis elements).
    sbox_inputs: Vec<Vec<F>>,
    /// The state after the last partial round's MDS layer, per element.
    state: Vec<Vec<F>>,
}

impl PartialRounds {
    fn of(cfg: &PoseidonConfig<F>) -> PartialRounds {
        let t = cfg.rate + cfg.capacity;
        let half = cfg.full_rounds / 2;
        let dims = 1 + t + cfg.partial_rounds;
        let mds = |state: &[Vec<F>]| -> Vec<Vec<F>> {
            (0..t)
                .map(|i| {
                    let mut row = vec![F::from(0u8); dims];
                    for (j, s) in state.iter().enumerate() {
                        let m = cfg.mds[i][j];
                        for (r, x) in row.iter_mut().zip(s) {
                            *r += m * x;
                        }
                    }
                    row
                })
                .collect()
        };
        let unit = |d: usize| {
            let mut v = vec![F::from(0u8); dims];
            v[d] = F::from(1u8);
            v
        };
        let mut state = mds(&(0..t).map(|j| unit(1 + j)).collect::<Vec<_>>());
        let mut sbox_inputs = Vec::with_capacity(cfg.partial_rounds);
        for k in 0..cfg.partial_rounds {
            for (i, s) in state.iter_mut().enumerate() {
                s[0] += cfg.ark[half + k][i];
            }
            sbox_inputs.push(state[0][..1 + t + k].to_vec());
            state[0] = unit(1 + t + k);
            state = mds(&state);
        }
        PartialRounds { sbox_inputs, state }
    }

    /// `instance`'s partial rounds, computed once.
    fn cached(instance: Instance) -> &'static PartialRounds {
        static NARROW: OnceLock<PartialRounds> = OnceLock::new();
        static MEDIUM: OnceLock<PartialRounds> = OnceLock::new();
        static WIDE: OnceLock<PartialRounds> = OnceLock::new();
        let cell = match instance {
            Instance::Narrow => &NARROW,
            Instance::Medium => &MEDIUM,
            Instance::Wide => &WIDE,
        };
        cell.get_or_init(|| PartialRounds::of(instance.config()))
    }
}

fn constant(value: F) -> Commitment {
    Commitment {
        lc: LinearCombination::from((value, Variable::One)),
        value,
    }
}

fn is_constant(lc: &LinearCombination<F>) -> bool {
    lc.iter().all(|&(_, v)| v == Variable::One)
}

/// `Σ c·x` over `terms`, compacted, and its value.
fn combine<'a>(terms: impl IntoIterator<Item = (F, &'a Commitment)>) -> Commitment {
    let mut out = Vec::new();
    let mut value = F::from(0u8);
    for (c, x) in terms {
        if c == F::from(0u8) {
            continue;
        }
        out.extend(x.lc.iter().map(|&(k, v)| (c * k, v)));
        value += c * x.value;
    }
    let mut lc = LinearCombination(out);
    lc.compactify();
    Commitment { lc, value }
}

/// `x^5`: three constraints, none for a constant unless `absorbed` (arkworks' gadget makes every
/// absorbed element a variable, and the cost formulas count what it does).
fn sbox(
    cs: &ConstraintSystemRef<F>,
    x: &Commitment,
    absorbed: bool,
) -> Result<Commitment, SynthesisError> {
    let x2v = x.value.square();
    let x4v = x2v.square();
    let x5v = x4v * x.value;
    if is_constant(&x.lc) && !absorbed {
        return Ok(constant(x5v));
    }
    let x2 = cs.new_witness_variable(|| Ok(x2v))?;
    let x4 = cs.new_witness_variable(|| Ok(x4v))?;
    let x5 = cs.new_witness_variable(|| Ok(x5v))?;
    cs.enforce_r1cs_constraint(|| x.lc.clone(), || x.lc.clone(), || x2.into())?;
    cs.enforce_r1cs_constraint(|| x2.into(), || x2.into(), || x4.into())?;
    cs.enforce_r1cs_constraint(|| x4.into(), || x.lc.clone(), || x5.into())?;
    Ok(Commitment {
        lc: x5.into(),
        value: x5v,
    })
}

/// A full round's S-box layer on `state` with round `r`'s constants added first (`absorbed`:
/// where the state holds an element just absorbed).
fn full_sboxes(
    cs: &ConstraintSystemRef<F>,
    cfg: &PoseidonConfig<F>,
    state: &[Commitment],
    r: usize,
    absorbed: &[bool],
) -> Result<Vec<Commitment>, SynthesisError> {
    let one = constant(F::from(1u8));
    state
        .iter()
        .zip(&cfg.ark[r])
        .zip(absorbed)
        .map(|((s, &c), &a)| sbox(cs, &combine([(F::from(1u8), s), (c, &one)]), a))
        .collect()
}

fn mds(cfg: &PoseidonConfig<F>, state: &[Commitment]) -> Vec<Commitment> {
    cfg.mds
        .iter()
        .map(|row| combine(row.iter().copied().zip(state)))
        .collect()
}

/// `instance`'s permutation of `state`, in the circuit (`absorbed`: where it holds an element
/// just absorbed).
fn permute(
    cs: &ConstraintSystemRef<F>,
    instance: Instance,
    state: &[Commitment],
    absorbed: &[bool],
) -> Result<Vec<Commitment>, SynthesisError> {
    let cfg = instance.config();
    let half = cfg.full_rounds / 2;
    let partial = PartialRounds::cached(instance);
    let none = vec![false; state.len()];
    let mut state = state.to_vec();
    for r in 0..half - 1 {
        let absorbed = if r == 0 { absorbed } else { &none };
        state = mds(cfg, &full_sboxes(cs, cfg, &state, r, absorbed)?);
    }
    // The basis of the partial rounds: 1, the last first-half S-box outputs, then each partial
    // round's.
    let mut basis = vec![constant(F::from(1u8))];
    basis.extend(full_sboxes(cs, cfg, &state, half - 1, &none)?);
    let over_basis =
        |coefficients: &[F], basis: &[Commitment]| combine(coefficients.iter().copied().zip(basis));
    for coefficients in &partial.sbox_inputs {
        let y = sbox(cs, &over_basis(coefficients, &basis), false)?;
        basis.push(y);
    }
    state = partial
        .state
        .iter()
        .map(|c| over_basis(c, &basis))
        .collect();
    for r in half + cfg.partial_rounds..cfg.full_rounds + cfg.partial_rounds {
        state = mds(cfg, &full_sboxes(cs, cfg, &state, r, &none)?);
    }
    Ok(state)
}

/// The sponge of `instance` with its capacity element set to `tag`: absorb `elements`, squeeze one
/// (arkworks' `PoseidonSponge` modes: the rate is filled from its start, permuting when full
/// and more remain, and once more to squeeze).
pub fn sponge(
    cs: &ConstraintSystemRef<F>,
    instance: Instance,
    tag: F,
    elements: &[Commitment],
) -> Result<Commitment, SynthesisError> {
    let cfg = instance.config();
    let (rate, capacity) = (cfg.rate, cfg.capacity);
    let mut state = vec![constant(F::from(0u8)); rate + capacity];
    state[0] = constant(tag);
    let mut absorbed = vec![false; rate + capacity];
    let mut chunks = elements.chunks(rate).peekable();
    while let Some(chunk) = chunks.next() {
        for (k, e) in chunk.iter().enumerate() {
            let s = &mut state[capacity + k];
            *s = combine([(F::from(1u8), &*s), (F::from(1u8), e)]);
            absorbed[capacity + k] = true;
        }
        if chunks.peek().is_some() {
            state = permute(cs, instance, &state, &absorbed)?;
            absorbed.fill(false);
        }
    }
    let state = permute(cs, instance, &state, &absorbed)?;
    Ok(state[capacity].clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::commit::{hash, Domain};
    use ark_relations::gr1cs::ConstraintSystem;

    #[test]
    fn the_sponge_is_arkworks_sponge_and_its_witness_satisfies_it() {
        for domain in [Domain::Tensor, Domain::MerkleNode, Domain::CacheChain] {
            for n in [1, 2, 3, 7, 8, 9, 16, 17, 33] {
                let cs = ConstraintSystem::<F>::new_ref();
                // Full-size field elements (hashes), not small integers.
                let values: Vec<F> = (0..n)
                    .map(|i| hash(Domain::Tensor, &[F::from((100 * n + i) as u64)]))
                    .collect();
                let elements: Vec<Commitment> = values
                    .iter()
                    .map(|&v| {
                        let x = cs.new_witness_variable(|| Ok(v)).unwrap();
                        Commitment {
                            lc: LinearCombination::from(x) + (F::from(2u8), x),
                            value: v + v + v,
                        }
                    })
                    .collect();
                let instance = domain.instance(n);
                let out = sponge(&cs, instance, F::from(domain as u64), &elements).unwrap();
                let tripled: Vec<F> = values.iter().map(|v| *v + v + v).collect();
                assert_eq!(out.value, hash(domain, &tripled), "{domain:?} {n}");
                let check = cs.new_witness_variable(|| Ok(out.value)).unwrap();
                cs.enforce_r1cs_constraint(
                    || out.lc.clone(),
                    || Variable::One.into(),
                    || check.into(),
                )
                .unwrap();
                assert!(cs.is_satisfied().unwrap(), "{domain:?} {n}");
            }
        }
    }

    #[test]
    fn a_wrong_sbox_output_is_refused() {
        let cs = ConstraintSystem::<F>::new_ref();
        let v = F::from(7u8);
        let x = cs.new_witness_variable(|| Ok(v)).unwrap();
        let input = Commitment {
            lc: x.into(),
            value: v,
        };
        sponge(&cs, Domain::Tensor.instance(1), F::from(1u8), &[input]).unwrap();
        assert!(cs.is_satisfied().unwrap());
        // Every S-box witness, moved by one, breaks a constraint.
        let cs = cs.into_inner().unwrap();
        let witnesses = cs.num_witness_variables();
        for w in 1..witnesses {
            let mut tampered = cs.clone();
            tampered.assignments.witness_assignment[w] += F::from(1u8);
            let tampered = ark_relations::gr1cs::ConstraintSystemRef::new(tampered);
            assert!(!tampered.is_satisfied().unwrap(), "witness {w}");
        }
    }
}
