//! Poseidon commitments to tensors: what links a layer's output to the next layer's input
//! (docs/ir.md §5). Values are range-checked, offset to be non-negative, packed
//! `floor(252 / w)` to a field element, absorbed by a Poseidon sponge, and one element squeezed.
//!
//! Parameters, pinned here because ark-bn254 ships none: the Poseidon paper's instances for a
//! 254-bit field, S-box `x^5`, 8 full rounds, capacity 1: width 3 (rate 2, 57 partial rounds)
//! for tensor commitments and Merkle trees; for the KV-cache chain, whose links absorb a whole
//! slot, width 9 (rate 8, 63 partial rounds) or width 17 (rate 16, 68 partial rounds; the
//! paper's and circomlib's figures for t = 9 and t = 17, circomlib's widest), whichever costs
//! fewer constraints for the slot's size (about 38 constraints per absorbed element at width 17
//! against 51 at width 9, but a first permutation of 561 against 378); round constants and MDS matrices from the paper's Grain LFSR
//! (`find_poseidon_ark_and_mds`, no skipped matrices). The capacity element starts at a
//! [`Domain`] tag. Tests pin outputs so a change of parameters cannot go unnoticed.

use super::range::{equal, range_checked};
use super::{constant, field, weighted_sum, Wire, F};
use ark_crypto_primitives::sponge::poseidon::{
    find_poseidon_ark_and_mds, PoseidonConfig, PoseidonSponge,
};
use ark_crypto_primitives::sponge::CryptographicSponge;
use ark_relations::gr1cs::{ConstraintSystemRef, LinearCombination, SynthesisError};
use std::sync::OnceLock;
use zkc_lang::DType;

const FULL_ROUNDS: usize = 8;
const ALPHA: u64 = 5;

/// Constraints of one width-3 permutation in the arkworks gadget (`H` in docs/ir.md), measured.
pub const PERMUTATION_CONSTRAINTS: usize = 237;

/// The two pinned Poseidon instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instance {
    /// Width 3, rate 2.
    Narrow,
    /// Width 9, rate 8.
    Medium,
    /// Width 17, rate 16.
    Wide,
}

impl Instance {
    pub fn rate(self) -> usize {
        match self {
            Instance::Narrow => 2,
            Instance::Medium => 8,
            Instance::Wide => 16,
        }
    }

    fn partial_rounds(self) -> usize {
        match self {
            Instance::Narrow => 57,
            Instance::Medium => 63,
            Instance::Wide => 68,
        }
    }

    pub fn config(self) -> &'static PoseidonConfig<F> {
        static NARROW: OnceLock<PoseidonConfig<F>> = OnceLock::new();
        static MEDIUM: OnceLock<PoseidonConfig<F>> = OnceLock::new();
        static WIDE: OnceLock<PoseidonConfig<F>> = OnceLock::new();
        let cell = match self {
            Instance::Narrow => &NARROW,
            Instance::Medium => &MEDIUM,
            Instance::Wide => &WIDE,
        };
        cell.get_or_init(|| {
            let (rate, partial) = (self.rate(), self.partial_rounds());
            let (ark, mds) =
                find_poseidon_ark_and_mds::<F>(254, rate, FULL_ROUNDS as u64, partial as u64, 0);
            PoseidonConfig::new(FULL_ROUNDS, partial, ALPHA, mds, ark, rate, 1)
        })
    }
}

/// The width-3 instance.
pub fn poseidon() -> &'static PoseidonConfig<F> {
    Instance::Narrow.config()
}

/// Constraints of absorbing `f` field elements and squeezing one with the arkworks sponge
/// gadget: `ceil(f/rate)` permutations, plus the cost of its absorb additions when a
/// permutation follows an earlier one (measured; tests check every `f` up to 9 for the narrow
/// instance and up to 40 for the wide one).
pub fn sponge_cost(domain: Domain, f: usize) -> usize {
    domain.instance(f).cost(f)
}

impl Instance {
    /// [`sponge_cost`] with this instance.
    fn cost(self, f: usize) -> usize {
        let permutations = f.div_ceil(self.rate()).max(1);
        let lanes = 3 * f.min(self.rate());
        match self {
            Instance::Narrow => {
                permutations * PERMUTATION_CONSTRAINTS
                    + if f >= 2 { 6 * permutations - 3 } else { 0 }
            }
            // The first permutation's S-boxes are free on the lanes still constant (nothing
            // absorbed there yet): a base plus 3 per absorbed lane; every later permutation
            // costs its full count (measured).
            Instance::Medium => 378 + lanes + 405 * (permutations - 1),
            Instance::Wide => 561 + lanes + 612 * (permutations - 1),
        }
    }
}

/// Values per field element for a dtype of `bits` bits.
pub fn per_element(dtype: DType) -> usize {
    252 / dtype.bits() as usize
}

/// The packed field elements of `values` (each `v + 2^(w-1)` in `w` bits, little-endian).
pub fn pack(values: &[i64], dtype: DType) -> Vec<F> {
    let w = dtype.bits();
    values
        .chunks(per_element(dtype))
        .map(|chunk| {
            chunk.iter().enumerate().fold(F::from(0u8), |acc, (i, &v)| {
                let offset = (v as i128 - dtype.min() as i128) as u128;
                acc + F::from(offset) * pow2(w * i as u32)
            })
        })
        .collect()
}

fn pow2(k: u32) -> F {
    let mut p = F::from(1u8);
    for _ in 0..k {
        p = p + p;
    }
    p
}

/// The commitment to a tensor's values, natively (what the verifier's public inputs hold).
pub fn commit(values: &[i64], dtype: DType) -> F {
    hash(Domain::Tensor, &pack(values, dtype))
}

/// The same commitment in the circuit: each value range-checked to `dtype` and bound to its wire
/// (`n * (rc(w) + 1)`), packed (free), hashed.
pub fn commit_gadget(
    cs: &ConstraintSystemRef<F>,
    values: &[Wire],
    dtype: DType,
) -> Result<Commitment, SynthesisError> {
    hash_gadget(cs, Domain::Tensor, &pack_gadget(cs, values, dtype)?)
}

/// [`pack`] in the circuit: each value range-checked to `dtype` and bound to its wire
/// (`n * (rc(w) + 1)` constraints), which makes the packing injective; the packing is free.
pub fn pack_gadget(
    cs: &ConstraintSystemRef<F>,
    values: &[Wire],
    dtype: DType,
) -> Result<Vec<Commitment>, SynthesisError> {
    let checked = values
        .iter()
        .map(|v| {
            let checked = range_checked(cs, v.value, dtype.min() as i128, dtype.bits())?;
            equal(cs, &checked.lc, &v.lc)?;
            Ok(checked)
        })
        .collect::<Result<Vec<_>, SynthesisError>>()?;
    Ok(pack_checked(&checked, dtype))
}

/// [`pack`] of wires already range-checked to `dtype` (free).
pub fn pack_checked(values: &[Wire], dtype: DType) -> Vec<Commitment> {
    let offset = -(dtype.min() as i128);
    values
        .chunks(per_element(dtype))
        .map(|chunk| {
            let one = constant(1);
            let mut terms = Vec::new();
            let mut value = F::from(0u8);
            for (i, v) in chunk.iter().enumerate() {
                let scale = pow2(dtype.bits() * i as u32);
                terms.extend([(scale, &v.lc), (scale * field(offset), &one)]);
                value += field(v.value + offset) * scale;
            }
            Commitment {
                lc: weighted_sum(terms),
                value,
            }
        })
        .collect()
}

/// What a hash is for, written into the sponge's capacity element before absorbing (free: it is
/// a constant), so that a tensor commitment can never equal a Merkle node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// Tensor commitments, which are also the Merkle leaves (a committed row).
    Tensor = 1,
    MerkleNode = 2,
    /// The links of a layer's KV-cache hash chain (`backend::cache`), with the wide instance.
    CacheChain = 3,
}

impl Domain {
    /// The instance that hashes `n` elements: the cache chain's cheaper one for `n` (width 9
    /// on a tie; the slot's size is fixed by the layer, so prover and verifier agree), the
    /// narrow one otherwise.
    pub fn instance(self, n: usize) -> Instance {
        match self {
            Domain::CacheChain => [Instance::Medium, Instance::Wide]
                .into_iter()
                .min_by_key(|i| i.cost(n))
                .expect("two instances"),
            Domain::Tensor | Domain::MerkleNode => Instance::Narrow,
        }
    }
}

/// The sponge over field elements given as combinations (in the circuit): absorb all, squeeze
/// one. `sponge_cost(elements.len())` constraints.
pub fn hash_gadget(
    cs: &ConstraintSystemRef<F>,
    domain: Domain,
    elements: &[Commitment],
) -> Result<Commitment, SynthesisError> {
    let instance = domain.instance(elements.len());
    super::poseidon::sponge(cs, instance, F::from(domain as u64), elements)
}

/// The sponge over field elements, natively.
pub fn hash(domain: Domain, elements: &[F]) -> F {
    let mut sponge = PoseidonSponge::new(domain.instance(elements.len()).config());
    sponge.state[0] = F::from(domain as u64);
    sponge.absorb(&elements.to_vec());
    sponge.squeeze_field_elements::<F>(1)[0]
}

/// A commitment inside a circuit: its combination and its value.
#[derive(Clone, Debug)]
pub struct Commitment {
    pub lc: LinearCombination<F>,
    pub value: F,
}

/// Makes a commitment a public input: a new instance variable equal to it (1 constraint).
pub fn publish(
    cs: &ConstraintSystemRef<F>,
    commitment: &Commitment,
    value: F,
) -> Result<(), SynthesisError> {
    let public = cs.new_input_variable(|| Ok(value))?;
    equal(cs, &commitment.lc, &public.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::test_util::{cs, wires, Lcg};
    use crate::backend::Alloc;

    #[test]
    fn the_gadget_computes_the_native_commitment() {
        let mut rng = Lcg(71);
        for (dtype, n) in [(DType::I8, 70), (DType::I16, 16), (DType::I32, 3)] {
            let values: Vec<i64> = (0..n)
                .map(|_| rng.range(dtype.min().max(-1 << 40), dtype.max().min(1 << 40)))
                .collect();
            let cs = cs();
            let c = commit_gadget(&cs, &wires(&cs, &values, Alloc::Witness), dtype).unwrap();
            publish(&cs, &c, commit(&values, dtype)).unwrap();
            assert!(cs.is_satisfied().unwrap(), "{dtype}");
            let mut other = values.clone();
            other[n / 2] += 1;
            let cs2 = super::super::test_util::cs();
            let c2 = commit_gadget(&cs2, &wires(&cs2, &other, Alloc::Witness), dtype).unwrap();
            publish(&cs2, &c2, commit(&values, dtype)).unwrap();
            assert!(
                !cs2.is_satisfied().unwrap(),
                "a changed value does not match the published commitment"
            );
        }
    }

    #[test]
    fn values_out_of_the_dtype_cannot_be_committed() {
        let cs = cs();
        let c = commit_gadget(&cs, &wires(&cs, &[1, 128], Alloc::Witness), DType::I8).unwrap();
        publish(&cs, &c, commit(&[1, 127], DType::I8)).unwrap();
        assert!(!cs.is_satisfied().unwrap());
    }

    #[test]
    fn packing_is_injective_and_the_parameters_are_pinned() {
        assert_ne!(commit(&[0, 1], DType::I8), commit(&[1, 0], DType::I8));
        assert_eq!(pack(&[-128, 127], DType::I8), vec![F::from(255u32 << 8)]);
        let pair = [F::from(3u8), F::from(4u8)];
        assert_ne!(
            hash(Domain::Tensor, &pair),
            hash(Domain::MerkleNode, &pair),
            "domains are apart"
        );
        insta::assert_snapshot!(commit(&[1, 2, 3], DType::I16).to_string());
    }

    /// The wide instance: pinned, apart from the narrow one, and costing what it is said to
    /// for 1 to 40 absorbed elements (both instances, each where it is the cheaper).
    #[test]
    fn the_wide_sponge_is_pinned_and_costs_what_it_is_said_to() {
        let pair = [F::from(3u8), F::from(4u8)];
        assert_ne!(hash(Domain::CacheChain, &pair), hash(Domain::Tensor, &pair));
        let twelve: Vec<F> = (0..12u8).map(F::from).collect();
        assert_eq!(Domain::CacheChain.instance(2), Instance::Medium);
        assert_eq!(Domain::CacheChain.instance(12), Instance::Wide);
        assert_eq!(Domain::CacheChain.instance(17), Instance::Medium);
        insta::assert_snapshot!(format!(
            "{}\n{}",
            hash(Domain::CacheChain, &pair),
            hash(Domain::CacheChain, &twelve)
        ));
        for f in 1..=40 {
            let cs = cs();
            let values: Vec<F> = (0..f).map(|i| F::from(i as u64 * 7 + 1)).collect();
            let elements: Vec<Commitment> = values
                .iter()
                .map(|&v| Commitment {
                    lc: cs.new_witness_variable(|| Ok(v)).unwrap().into(),
                    value: v,
                })
                .collect();
            let out = hash_gadget(&cs, Domain::CacheChain, &elements).unwrap();
            assert_eq!(out.value, hash(Domain::CacheChain, &values), "{f} elements");
            assert_eq!(
                cs.num_constraints(),
                sponge_cost(Domain::CacheChain, f),
                "{f}"
            );
            assert!(cs.is_satisfied().unwrap());
        }
    }

    /// The sponge's cost for 1 to 9 packed elements, as `sponge_cost` states it.
    #[test]
    fn the_sponge_costs_what_it_is_said_to() {
        for f in 1..=9 {
            let cs = cs();
            commit_gadget(
                &cs,
                &wires(&cs, &vec![5; 31 * f], Alloc::Witness),
                DType::I8,
            )
            .unwrap();
            assert_eq!(
                cs.num_constraints() - 31 * f * (8 + 1),
                sponge_cost(Domain::Tensor, f),
                "{f} packed elements"
            );
        }
    }
}
