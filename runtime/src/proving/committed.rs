//! Groth16 with a committed first round, for circuits with lookups (docs/proving.md,
//! "Lookups"): the construction of UltraGroth (Rarimo) with one challenge round, in the family
//! of gnark's BSB22 commitments. A circuit without lookups is proven by plain Groth16.
//!
//! The first-round witnesses (everything but the lookup argument's inverses) get their own
//! trapdoor `δ₁`. The prover commits to them with one more G1 element,
//!
//! `D = sum_{i in round 1} a_i [(β u_i(x) + α v_i(x) + w_i(x)) / δ₁]₁ + ρ [δ]₁`,
//!
//! derives the challenge by hashing `D` with the verifying key and the public inputs
//! ([`challenge`]), completes the witness with it, and proves as Groth16 does over the
//! remaining (second-round) witnesses, with `C` less `ρ [δ₁]₁`. The verifier recomputes the
//! challenge, appends it to the public inputs, and checks
//!
//! `e(A, B) = e([α]₁, [β]₂) · e(IC, [γ]₂) · e(D, [δ₁]₂) · e(C, [δ]₂)`.
//!
//! `ρ` makes `D` a uniformly random group element whatever the witness (gnark's 2024 advisory
//! was a commitment without such a term), and the `ρ` terms cancel in the check.
//!
//! Everything here reuses ark-groth16 unchanged: its generator with the trapdoor drawn here
//! (so that the first round's query can be rescaled from `δ` to `δ₁`), and its prover with the
//! first round's queries set to zero (so that its `C` sums the second round only).

use super::Curve;
use ark_bn254::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::pairing::Pairing;
use ark_ec::{AffineRepr, CurveGroup, VariableBaseMSM};
use ark_ff::{Field, One, PrimeField, UniformRand, Zero};
use ark_groth16::{
    Groth16, Proof as Groth16Proof, ProvingKey as Groth16ProvingKey,
    VerifyingKey as Groth16VerifyingKey,
};
use ark_relations::gr1cs::predicate::polynomial_constraint::R1CS_PREDICATE_LABEL;
use ark_relations::gr1cs::{
    ConstraintSynthesizer, ConstraintSystem, ConstraintSystemRef, OptimizationGoal, SynthesisError,
    SynthesisMode,
};
use ark_relations::utils::matrix::Matrix;
use ark_serialize::CanonicalSerialize;
use rayon::prelude::*;
use sha2::{Digest, Sha256, Sha512};
use std::cell::{Cell, RefCell};
use std::ops::Neg;
use zkc_compiler::backend::lookup::Challenger;
use zkc_compiler::backend::F;

/// The domain tag of the challenge hash.
const CHALLENGE_TAG: &[u8] = b"zkc/committed-groth16/challenge/v1";

/// The prover's key material for the first round.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundOneKey {
    /// `[(β u_i + α v_i + w_i) / δ₁]₁` for the first-round witnesses, in witness order (the
    /// Groth16 key's `l_query` holds the identity for them).
    pub query: Vec<G1Affine>,
    /// `[δ₁]₁`, which takes the commitment's blinding back out of `C`.
    pub delta1_g1: G1Affine,
    /// `[δ₁]₂`, the verifier's.
    pub delta1_g2: G2Affine,
}

/// A layer's proving key: Groth16's, and the first round's when the layer has lookups.
#[derive(Clone, Debug, PartialEq)]
pub struct ProvingKey {
    pub pk: Groth16ProvingKey<Curve>,
    pub round_one: Option<RoundOneKey>,
}

/// A layer's verifying key: Groth16's (its last public input is the challenge when the layer
/// has lookups), and `[δ₁]₂` when it has lookups.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyingKey {
    pub vk: Groth16VerifyingKey<Curve>,
    pub delta1_g2: Option<G2Affine>,
}

/// A layer's proof: Groth16's `A`, `B`, `C`, and the commitment `D` when the layer has lookups.
#[derive(Clone, Debug, PartialEq)]
pub struct Proof {
    pub proof: Groth16Proof<Curve>,
    pub commitment: Option<G1Affine>,
}

impl ProvingKey {
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey {
            vk: self.pk.vk.clone(),
            delta1_g2: self.round_one.as_ref().map(|r| r.delta1_g2),
        }
    }
}

impl VerifyingKey {
    /// The key's canonical bytes (compressed): what the challenge hashes and `KEYS/vk` stores.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.vk
            .serialize_compressed(&mut out)
            .expect("writing to a Vec cannot fail");
        self.delta1_g2
            .serialize_compressed(&mut out)
            .expect("writing to a Vec cannot fail");
        out
    }
}

/// A verifying key made ready for many checks: its G2 elements prepared for Miller loops. No
/// pairing is computed here (arkworks' prepared key computes `e(α, β)`, a millisecond per key):
/// the checks put `e(−α, β)` in their Miller loop instead.
pub struct Prepared {
    /// `[α]₁` and `[γ_abc]₁`.
    alpha_g1: G1Affine,
    gamma_abc_g1: Vec<G1Affine>,
    beta: <Curve as Pairing>::G2Prepared,
    gamma_neg: <Curve as Pairing>::G2Prepared,
    delta_neg: <Curve as Pairing>::G2Prepared,
    delta1_neg: Option<<Curve as Pairing>::G2Prepared>,
    /// SHA-256 of the key's bytes, which the challenge hashes.
    pub digest: [u8; 32],
}

impl Prepared {
    pub fn new(key: &VerifyingKey) -> Prepared {
        let neg = |g: G2Affine| g.into_group().neg().into_affine().into();
        Prepared {
            alpha_g1: key.vk.alpha_g1,
            gamma_abc_g1: key.vk.gamma_abc_g1.clone(),
            beta: key.vk.beta_g2.into(),
            gamma_neg: neg(key.vk.gamma_g2),
            delta_neg: neg(key.vk.delta_g2),
            delta1_neg: key.delta1_g2.map(neg),
            digest: Sha256::digest(key.to_bytes()).into(),
        }
    }
}

/// The challenge of a proof with commitment `d` to `publics` (the layer's public inputs before
/// the challenge) under the key with digest `key`: SHA-512 over a domain tag, the key's digest,
/// the count and the canonical bytes of the public inputs, and `d` compressed, reduced modulo
/// the scalar field's order (512 bits reduced, so its distance from uniform is below 2^-250).
pub fn challenge(key: &[u8; 32], publics: &[F], d: &G1Affine) -> F {
    let mut hash = Sha512::new();
    hash.update(CHALLENGE_TAG);
    hash.update(key);
    hash.update((publics.len() as u64).to_le_bytes());
    let mut bytes = Vec::with_capacity(32 * (publics.len() + 1));
    for p in publics {
        p.serialize_compressed(&mut bytes)
            .expect("writing to a Vec cannot fail");
    }
    d.serialize_compressed(&mut bytes)
        .expect("writing to a Vec cannot fail");
    hash.update(&bytes);
    Fr::from_le_bytes_mod_order(&hash.finalize())
}

/// Notes how many first-round witnesses the circuit has (setup synthesizes without values).
struct Counting(Cell<Option<usize>>);

impl Challenger for Counting {
    fn challenge(&self, _: &ConstraintSystemRef<F>, round_one: usize) -> Result<F, SynthesisError> {
        self.0.set(Some(round_one));
        Ok(F::zero())
    }
}

/// A circuit built by a function of where its challenge comes from; keeps the constraint
/// system it was built in.
struct Built<'a, B> {
    build: B,
    challenger: &'a dyn Challenger,
    kept: &'a RefCell<Option<ConstraintSystemRef<F>>>,
}

impl<B> ConstraintSynthesizer<F> for Built<'_, B>
where
    B: FnOnce(ConstraintSystemRef<F>, &dyn Challenger) -> Result<(), SynthesisError>,
{
    fn generate_constraints(self, cs: ConstraintSystemRef<F>) -> Result<(), SynthesisError> {
        *self.kept.borrow_mut() = Some(cs.clone());
        (self.build)(cs, self.challenger)
    }
}

/// Keys for the circuit `build` makes (given where its challenge comes from), from fresh
/// trapdoors; the first round's when the circuit asks for a challenge. Also the circuit's
/// shape: arkworks' generator builds and inlines the constraint system anyway, and the
/// matrices are then a conversion away, which spares a prover building them again (a d=768
/// block's take about 45 s).
pub fn setup(
    build: impl FnOnce(ConstraintSystemRef<F>, &dyn Challenger) -> Result<(), SynthesisError>,
    rng: &mut dyn rand_core::CryptoRngCore,
) -> Result<(ProvingKey, Shape), SynthesisError> {
    let rng = &mut rng.as_rngcore();
    let (alpha, beta, gamma, delta) = (Fr::rand(rng), Fr::rand(rng), Fr::rand(rng), Fr::rand(rng));
    let (g1, g2) = (G1Projective::rand(rng), G2Projective::rand(rng));
    let counting = Counting(Cell::new(None));
    let kept = RefCell::new(None);
    let mut pk = Groth16::<Curve>::generate_parameters_with_qap(
        Built {
            build,
            challenger: &counting,
            kept: &kept,
        },
        alpha,
        beta,
        gamma,
        delta,
        g1,
        g2,
        rng,
    )?;
    let cs = kept.into_inner().ok_or(SynthesisError::MissingCS)?;
    let shape = Shape {
        matrices: cs
            .to_matrices()?
            .remove(R1CS_PREDICATE_LABEL)
            .ok_or(SynthesisError::PredicateNotFound)?,
        inputs: cs.num_instance_variables(),
        constraints: cs.num_constraints(),
    };
    drop(cs);
    let Some(round_one) = counting.0.get() else {
        let pk = ProvingKey {
            pk,
            round_one: None,
        };
        return Ok((pk, shape));
    };
    // Rescale the first round's query from 1/δ to 1/δ₁, and take it out of the Groth16 key.
    let delta1 = Fr::rand(rng);
    let rescale = delta * delta1.inverse().ok_or(SynthesisError::DivisionByZero)?;
    let scaled: Vec<G1Projective> = pk.l_query[..round_one]
        .par_iter()
        .map(|p| *p * rescale)
        .collect();
    let query = G1Projective::normalize_batch(&scaled);
    pk.l_query[..round_one].fill(G1Affine::zero());
    let pk = ProvingKey {
        pk,
        round_one: Some(RoundOneKey {
            query,
            delta1_g1: (g1 * delta1).into_affine(),
            delta1_g2: (g2 * delta1).into_affine(),
        }),
    };
    Ok((pk, shape))
}

/// The prover's first round: when the circuit asks for its challenge, commits to the
/// first-round witnesses with the key's query and a fresh blinding `ρ`, and derives the
/// challenge from that commitment.
pub struct Commitment<'a> {
    key: &'a ProvingKey,
    digest: [u8; 32],
    rho: Fr,
    made: RefCell<Option<G1Affine>>,
}

impl<'a> Commitment<'a> {
    /// For proving with `key`, whose verifying key's digest is `digest` ([`Prepared`]).
    pub fn new(
        key: &'a ProvingKey,
        digest: [u8; 32],
        rng: &mut dyn rand_core::CryptoRngCore,
    ) -> Commitment<'a> {
        Commitment {
            key,
            digest,
            rho: Fr::rand(&mut rng.as_rngcore()),
            made: RefCell::new(None),
        }
    }
}

impl Challenger for Commitment<'_> {
    fn challenge(
        &self,
        cs: &ConstraintSystemRef<F>,
        round_one: usize,
    ) -> Result<F, SynthesisError> {
        // A key without a first round, or for another shape, cannot prove this circuit.
        let key = self
            .key
            .round_one
            .as_ref()
            .filter(|k| k.query.len() == round_one)
            .ok_or(SynthesisError::ArityMismatch)?;
        let cs = cs.borrow().ok_or(SynthesisError::MissingCS)?;
        let assigned = &cs.assignments;
        let witness = assigned
            .witness_assignment
            .get(..round_one)
            .ok_or(SynthesisError::AssignmentMissing)?;
        let scalars: Vec<_> = witness.par_iter().map(|w| w.into_bigint()).collect();
        let d = (G1Projective::msm_bigint(&key.query, &scalars) + self.key.pk.delta_g1 * self.rho)
            .into_affine();
        *self.made.borrow_mut() = Some(d);
        Ok(challenge(
            &self.digest,
            &assigned.instance_assignment[1..],
            &d,
        ))
    }
}

/// A circuit's constraint matrices and sizes: its shape, which does not depend on its values.
pub struct Shape {
    pub matrices: Vec<Matrix<F>>,
    pub inputs: usize,
    pub constraints: usize,
}

impl Shape {
    /// The memory its matrices hold: a vector per row and a coefficient and index per nonzero
    /// (by capacity: what is allocated).
    pub fn bytes(&self) -> u64 {
        let rows = self.matrices.iter().map(Vec::capacity).sum::<usize>();
        let nonzeros = self
            .matrices
            .iter()
            .flatten()
            .map(Vec::capacity)
            .sum::<usize>();
        (rows * std::mem::size_of::<Vec<(F, usize)>>()
            + nonzeros * std::mem::size_of::<(F, usize)>()) as u64
    }
}

/// Builds the circuit `build` makes (given its challenger: the prover's [`Commitment`]) and
/// proves it with `key`, whose verifying key has digest `digest`. Its matrices are built when
/// `shape` is `None`, and returned for the next proof of the same circuit, which then only
/// computes the witness (no linear combination is built and inlined again).
pub fn prove_circuit(
    key: &ProvingKey,
    digest: [u8; 32],
    build: impl FnOnce(ConstraintSystemRef<F>, &dyn Challenger) -> Result<(), SynthesisError>,
    shape: Option<&Shape>,
    rng: &mut dyn rand_core::CryptoRngCore,
) -> Result<(Proof, Option<Shape>), SynthesisError> {
    let commitment = Commitment::new(key, digest, rng);
    let cs = ConstraintSystem::<F>::new_ref();
    cs.set_optimization_goal(OptimizationGoal::Constraints);
    cs.set_mode(SynthesisMode::Prove {
        construct_matrices: shape.is_none(),
        generate_lc_assignments: false,
    });
    build(cs.clone(), &commitment)?;
    let built = match shape {
        Some(_) => None,
        None => {
            cs.finalize();
            let matrices = cs
                .to_matrices()?
                .remove(R1CS_PREDICATE_LABEL)
                .ok_or(SynthesisError::PredicateNotFound)?;
            Some(Shape {
                matrices,
                inputs: cs.num_instance_variables(),
                constraints: cs.num_constraints(),
            })
        }
    };
    let assignment = [cs.instance_assignment()?, cs.witness_assignment()?].concat();
    drop(cs);
    let proof = prove(
        key,
        Some(commitment),
        shape.or(built.as_ref()).expect("one of the two"),
        &assignment,
        rng,
    )?;
    Ok((proof, built))
}

/// The proof from the circuit's full assignment (instance then witness, as arkworks lays it
/// out) and its shape; `commitment` is the first round's, if the circuit asked for a challenge.
pub fn prove(
    key: &ProvingKey,
    commitment: Option<Commitment>,
    shape: &Shape,
    assignment: &[F],
    rng: &mut dyn rand_core::CryptoRngCore,
) -> Result<Proof, SynthesisError> {
    let (r, s) = (
        Fr::rand(&mut rng.as_rngcore()),
        Fr::rand(&mut rng.as_rngcore()),
    );
    let mut proof = Groth16::<Curve>::create_proof_with_reduction_and_matrices(
        &key.pk,
        r,
        s,
        &shape.matrices,
        shape.inputs,
        shape.constraints,
        assignment,
    )?;
    let made = commitment.and_then(|c| c.made.into_inner().map(|d| (d, c.rho)));
    let commitment = match (&key.round_one, made) {
        (Some(round_one), Some((d, rho))) => {
            proof.c = (proof.c.into_group() - round_one.delta1_g1 * rho).into_affine();
            Some(d)
        }
        (None, None) => None,
        // A circuit with lookups and a key without a first round, or the reverse.
        _ => return Err(SynthesisError::ArityMismatch),
    };
    Ok(Proof { proof, commitment })
}

/// The inputs of the key's Groth16 equation: `publics` (the layer's public inputs) and, when
/// the key has a first round, the challenge recomputed from the proof's commitment; `None` when
/// the proof does not fit the key (a commitment without a first round or the reverse, another
/// count of inputs).
fn equation_inputs(key: &Prepared, proof: &Proof, publics: &[F]) -> Option<Vec<F>> {
    let mut inputs = publics.to_vec();
    match (&key.delta1_neg, &proof.commitment) {
        (None, None) => {}
        (Some(_), Some(d)) => inputs.push(challenge(&key.digest, publics, d)),
        _ => return None,
    }
    (inputs.len() + 1 == key.gamma_abc_g1.len()).then_some(inputs)
}

/// Whether `proof` proves `publics` (the layer's public inputs, without the challenge) under
/// `key`: Groth16's check `e(A,B)·e(IC,−γ)·e(C,−δ)·e(D,−δ₁)·e(−α,β) = 1`, with the challenge
/// recomputed and the commitment's pairing when the key has a first round.
pub fn verify(key: &Prepared, proof: &Proof, publics: &[F]) -> bool {
    check(&[(key, proof, publics)], &mut || Fr::one())
}

/// Whether every `(key, proof, publics)` verifies, checked at once (docs/proving.md, "Batch
/// verification"): each proof's equation is raised to a fresh random 128-bit `r` and the
/// product over all proofs is checked to be 1. If any proof fails its own check, the product is
/// 1 with probability at most 2^-128 over the `r`s (the target group has prime order), so
/// `rng` must be the verifier's own randomness, drawn after the proofs are fixed.
pub fn verify_batch(
    items: &[(&Prepared, &Proof, &[F])],
    rng: &mut dyn rand_core::CryptoRngCore,
) -> bool {
    check(items, &mut || {
        Fr::from((u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64()))
    })
}

/// `Π e(A,B)^r · e(IC,−γ)^r · e(C,−δ)^r · e(D,−δ₁)^r · e(−α,β)^r = 1` over `items`, each with its
/// `r` from `weight`. Terms that share a key's G2 element are summed in G1 first, by one
/// multi-scalar multiplication per key and element (`Σ r·IC` as `[γ_abc]₁` times the
/// `r`-weighted inputs), so the Miller loop has one pair per proof and four or five per key,
/// and there is one final exponentiation.
fn check(items: &[(&Prepared, &Proof, &[F])], weight: &mut dyn FnMut() -> Fr) -> bool {
    /// Per key: the weighted inputs (index 0 for `[γ_abc]₁[0]`), and the `C`s, `D`s and `r`s.
    struct Sums<'k> {
        key: &'k Prepared,
        inputs: Vec<Fr>,
        c: Vec<G1Affine>,
        d: Vec<G1Affine>,
        r: Vec<Fr>,
    }
    let mut g1: Vec<<Curve as Pairing>::G1Prepared> = Vec::with_capacity(items.len() + 16);
    let mut g2: Vec<<Curve as Pairing>::G2Prepared> = Vec::with_capacity(items.len() + 16);
    let mut sums: Vec<Sums> = Vec::new();
    for &(key, proof, publics) in items {
        let Some(inputs) = equation_inputs(key, proof, publics) else {
            return false;
        };
        let r = weight();
        let p = &proof.proof;
        g1.push((p.a * r).into_affine().into());
        g2.push(p.b.into());
        let at = match sums.iter().position(|s| std::ptr::eq(s.key, key)) {
            Some(at) => at,
            None => {
                sums.push(Sums {
                    key,
                    inputs: vec![Fr::zero(); key.gamma_abc_g1.len()],
                    c: Vec::new(),
                    d: Vec::new(),
                    r: Vec::new(),
                });
                sums.len() - 1
            }
        };
        let sum = &mut sums[at];
        sum.inputs[0] += r;
        for (acc, x) in sum.inputs[1..].iter_mut().zip(&inputs) {
            *acc += r * x;
        }
        sum.c.push(p.c);
        sum.d.extend(proof.commitment);
        sum.r.push(r);
    }
    let msm = |bases: &[G1Affine], scalars: &[Fr]| {
        G1Projective::msm(bases, scalars)
            .expect("as many scalars as bases")
            .into_affine()
    };
    for sum in &sums {
        let key = sum.key;
        let total: Fr = sum.r.iter().sum();
        g1.push(msm(&key.gamma_abc_g1, &sum.inputs).into());
        g2.push(key.gamma_neg.clone());
        g1.push(msm(&sum.c, &sum.r).into());
        g2.push(key.delta_neg.clone());
        if let Some(delta1_neg) = &key.delta1_neg {
            g1.push(msm(&sum.d, &sum.r).into());
            g2.push(delta1_neg.clone());
        }
        g1.push((key.alpha_g1 * -total).into_affine().into());
        g2.push(key.beta.clone());
    }
    Curve::final_exponentiation(Curve::multi_miller_loop(g1, g2)).is_some_and(|t| t.0.is_one())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use zkc_compiler::backend::field;
    use zkc_compiler::backend::lookup;
    use zkc_compiler::backend::range::{equal, range_checked};

    type Build<'a> =
        Box<dyn Fn(ConstraintSystemRef<F>, &dyn Challenger) -> Result<(), SynthesisError> + 'a>;

    /// Public values, each range-checked to 8 bits: with a table of 16 entries (two rounds),
    /// or by bits (plain Groth16).
    fn build(values: &[i128], table: bool) -> Build<'_> {
        Box::new(move |cs, challenger| {
            if table {
                lookup::begin(&cs, 4);
            }
            for &v in values {
                let x = cs.new_input_variable(|| Ok(field(v)))?;
                let r = range_checked(&cs, v, 0, 8)?;
                equal(&cs, &r.lc, &x.into())?;
            }
            lookup::finish(&cs, challenger)
        })
    }

    fn publics(values: &[i128]) -> Vec<F> {
        values.iter().map(|&v| field(v)).collect()
    }

    const VALUES: [i128; 3] = [0, 17, 255];

    fn keys(table: bool, rng: &mut StdRng) -> (ProvingKey, Prepared) {
        let (pk, _) = setup(|cs, c| build(&VALUES, table)(cs, c), rng).unwrap();
        let prepared = Prepared::new(&pk.verifying_key());
        (pk, prepared)
    }

    /// The prover's steps one by one, with a challenger wrapped around its commitment and a
    /// chance to alter the assignment before the proof; returns the proof and the assignment.
    fn prove_with(
        (pk, prepared): &(ProvingKey, Prepared),
        values: &[i128],
        challenge: impl Fn(F) -> F,
        alter: impl FnOnce(&mut Vec<F>),
        rng: &mut StdRng,
    ) -> (Proof, Vec<F>) {
        struct Wrapped<'a, C>(&'a Commitment<'a>, C);
        impl<C: Fn(F) -> F> Challenger for Wrapped<'_, C> {
            fn challenge(
                &self,
                cs: &ConstraintSystemRef<F>,
                round_one: usize,
            ) -> Result<F, SynthesisError> {
                Ok((self.1)(self.0.challenge(cs, round_one)?))
            }
        }
        let commitment = Commitment::new(pk, prepared.digest, rng);
        let cs = ConstraintSystem::<F>::new_ref();
        cs.set_optimization_goal(OptimizationGoal::Constraints);
        build(values, pk.round_one.is_some())(cs.clone(), &Wrapped(&commitment, challenge))
            .unwrap();
        cs.finalize();
        let shape = Shape {
            matrices: cs
                .to_matrices()
                .unwrap()
                .remove(R1CS_PREDICATE_LABEL)
                .unwrap(),
            inputs: cs.num_instance_variables(),
            constraints: cs.num_constraints(),
        };
        let mut assignment = [
            cs.instance_assignment().unwrap(),
            cs.witness_assignment().unwrap(),
        ]
        .concat();
        alter(&mut assignment);
        let proof = prove(pk, Some(commitment), &shape, &assignment, rng).unwrap();
        (proof, assignment)
    }

    #[test]
    fn honest_proofs_verify_and_replays_with_other_inputs_do_not() {
        let mut rng = StdRng::seed_from_u64(1);
        for table in [true, false] {
            let (pk, prepared) = keys(table, &mut rng);
            assert_eq!(pk.round_one.is_some(), table);
            let (proof, _) =
                prove_circuit(&pk, prepared.digest, build(&VALUES, table), None, &mut rng).unwrap();
            assert_eq!(proof.commitment.is_some(), table);
            assert!(
                verify(&prepared, &proof, &publics(&VALUES)),
                "table {table}"
            );
            for other in [[1, 17, 255], [0, 17, 254]] {
                assert!(!verify(&prepared, &proof, &publics(&other)), "{other:?}");
            }
            assert!(!verify(&prepared, &proof, &publics(&VALUES[..2])));
        }
    }

    #[test]
    fn an_altered_or_missing_commitment_is_rejected() {
        let mut rng = StdRng::seed_from_u64(2);
        let keys = keys(true, &mut rng);
        let (proof, _) = prove_with(&keys, &VALUES, |c| c, |_| {}, &mut rng);
        assert!(verify(&keys.1, &proof, &publics(&VALUES)));
        let d = proof.commitment.unwrap();
        for altered in [
            Some((d + G1Affine::generator()).into_affine()),
            Some(G1Affine::zero()),
            None,
        ] {
            let forged = Proof {
                commitment: altered,
                ..proof.clone()
            };
            assert!(!verify(&keys.1, &forged, &publics(&VALUES)), "{altered:?}");
        }
        // A plain proof given a commitment it does not have.
        let plain = self::keys(false, &mut rng);
        let (proof, _) = prove_circuit(
            &plain.0,
            plain.1.digest,
            build(&VALUES, false),
            None,
            &mut rng,
        )
        .unwrap();
        let forged = Proof {
            commitment: Some(d),
            ..proof
        };
        assert!(!verify(&plain.1, &forged, &publics(&VALUES)));
    }

    /// A prover who proves with a challenge of its own choosing, not the one derived from its
    /// commitment, is caught: the verifier derives the challenge itself.
    #[test]
    fn a_challenge_not_derived_from_the_commitment_is_rejected() {
        let mut rng = StdRng::seed_from_u64(3);
        let keys = keys(true, &mut rng);
        for chosen in [|_| F::from(1u64 << 40), |c: F| c + F::from(1u64), |c: F| -c] {
            let (proof, _) = prove_with(&keys, &VALUES, chosen, |_| {}, &mut rng);
            assert!(!verify(&keys.1, &proof, &publics(&VALUES)));
        }
    }

    /// Second-round witnesses that do not answer the derived challenge (one inverse off, or all
    /// computed for another challenge while the public challenge is the derived one).
    #[test]
    fn a_second_round_witness_for_another_challenge_is_rejected() {
        let mut rng = StdRng::seed_from_u64(4);
        let keys = keys(true, &mut rng);
        let round_one = keys.0.round_one.as_ref().unwrap().query.len();
        let inputs = VALUES.len() + 2;
        let (proof, _) = prove_with(
            &keys,
            &VALUES,
            |c| c,
            |a| a[inputs + round_one] += F::from(1u64),
            &mut rng,
        );
        assert!(!verify(&keys.1, &proof, &publics(&VALUES)));
        // Inverses for β + 1 under the public, derived β.
        let derived = Cell::new(F::zero());
        let (proof, _) = prove_with(
            &keys,
            &VALUES,
            |c| {
                derived.set(c);
                c + F::from(1u64)
            },
            |a| a[inputs - 1] = derived.get(),
            &mut rng,
        );
        assert!(!verify(&keys.1, &proof, &publics(&VALUES)));
    }

    /// The commitment is blinded: it is not the bare sum over the first round (which would let
    /// anyone test a guess of the witness, gnark's 2024 advisory), and two proofs of one
    /// witness commit differently.
    #[test]
    fn the_commitment_hides_the_first_round() {
        let mut rng = StdRng::seed_from_u64(5);
        let keys = keys(true, &mut rng);
        let query = &keys.0.round_one.as_ref().unwrap().query;
        let inputs = VALUES.len() + 2;
        let (a, assignment) = prove_with(&keys, &VALUES, |c| c, |_| {}, &mut rng);
        let bare = G1Projective::msm(query, &assignment[inputs..inputs + query.len()])
            .unwrap()
            .into_affine();
        assert_ne!(a.commitment, Some(bare));
        let (b, _) = prove_with(&keys, &VALUES, |c| c, |_| {}, &mut rng);
        assert_ne!(a.commitment, b.commitment);
        assert!(verify(&keys.1, &a, &publics(&VALUES)));
        assert!(verify(&keys.1, &b, &publics(&VALUES)));
    }

    /// Proofs checked together (two keys: one with a first round, one without) verify exactly
    /// when each does alone: one bad proof among good ones, a proof under another key, or the
    /// `A`s of two proofs swapped fail the batch. Two proofs whose `C`s are shifted by
    /// opposite amounts pass a batch with equal weights (why the weights must be the
    /// verifier's random draw) and fail the random ones.
    #[test]
    fn a_batch_verifies_exactly_when_every_proof_does() {
        let mut rng = StdRng::seed_from_u64(6);
        let (table, bits) = (keys(true, &mut rng), keys(false, &mut rng));
        let values = [VALUES, [1, 2, 3], [255, 254, 0]];
        let mut proofs = Vec::new();
        for v in &values {
            for k in [&table, &bits] {
                let (p, _) = prove_circuit(
                    &k.0,
                    k.1.digest,
                    build(v, k.0.round_one.is_some()),
                    None,
                    &mut rng,
                )
                .unwrap();
                proofs.push((k, p, publics(v)));
            }
        }
        let batch = |proofs: &[(&(ProvingKey, Prepared), Proof, Vec<F>)], rng: &mut StdRng| {
            let items: Vec<_> = proofs.iter().map(|(k, p, x)| (&k.1, p, &x[..])).collect();
            verify_batch(&items, rng)
        };
        assert!(batch(&proofs, &mut rng));
        assert!(batch(&[], &mut rng));
        for i in 0..proofs.len() {
            let mut bad = proofs.clone();
            bad[i].2[1] += F::from(1u64);
            assert!(!batch(&bad, &mut rng), "proof {i} with another input");
            let mut bad = proofs.clone();
            bad[i].0 = if i % 2 == 0 { &bits } else { &table };
            assert!(!batch(&bad, &mut rng), "proof {i} under the other key");
        }
        let mut swapped = proofs.clone();
        let a = swapped[0].1.proof.a;
        swapped[0].1.proof.a = swapped[2].1.proof.a;
        swapped[2].1.proof.a = a;
        assert!(!batch(&swapped, &mut rng));

        let shift = (G1Affine::generator() * Fr::from(7u64)).into_affine();
        let mut cancelling = proofs.clone();
        cancelling[1].1.proof.c = (cancelling[1].1.proof.c + shift).into_affine();
        cancelling[3].1.proof.c = (cancelling[3].1.proof.c - shift).into_affine();
        let items: Vec<_> = cancelling
            .iter()
            .map(|(k, p, x)| (&k.1, p, &x[..]))
            .collect();
        assert!(!verify(
            &cancelling[1].0 .1,
            &cancelling[1].1,
            &cancelling[1].2
        ));
        assert!(
            check(&items, &mut || Fr::one()),
            "equal weights let the shifts cancel"
        );
        assert!(!verify_batch(&items, &mut rng));
    }
}
