//! The prover's reference rate on this machine: a chain `x_{i+1} = x_i · x_i` of `n`
//! constraints, one variable and one nonzero per matrix row each, proven with the same code as
//! the layers ([`committed::prove`], plain Groth16: no lookups). A layer proven far below this
//! rate is slowed by its shape (witnesses and nonzeros per constraint), not by the prover.

use super::committed::{self, Prepared};
use super::ProvingError;
use ark_relations::gr1cs::{ConstraintSystemRef, SynthesisError};
use std::time::Instant;
use zkc_compiler::backend::F;

/// Constraints per second of the chain's proof at `n` constraints, its shape already built (as
/// a layer's is from its second step on), and the proof checked.
pub fn chain_rate(n: usize, rng: &mut dyn rand_core::CryptoRngCore) -> Result<f64, ProvingError> {
    let failed = |e: SynthesisError| ProvingError::Synthesis {
        layer: "x·x chain".into(),
        problem: e.to_string(),
    };
    let (pk, _) = committed::setup(|cs, _| chain(cs, n), rng).map_err(failed)?;
    let prepared = Prepared::new(&pk.verifying_key());
    let (_, shape) =
        committed::prove_circuit(&pk, prepared.digest, |cs, _| chain(cs, n), None, rng)
            .map_err(failed)?;
    let start = Instant::now();
    let (proof, _) = committed::prove_circuit(
        &pk,
        prepared.digest,
        |cs, _| chain(cs, n),
        shape.as_ref(),
        rng,
    )
    .map_err(failed)?;
    let seconds = start.elapsed().as_secs_f64();
    match committed::verify(&prepared, &proof, &[]) {
        true => Ok(n as f64 / seconds),
        false => Err(failed(SynthesisError::Unsatisfiable)),
    }
}

fn chain(cs: ConstraintSystemRef<F>, n: usize) -> Result<(), SynthesisError> {
    let mut x = F::from(3u8);
    let mut var = cs.new_witness_variable(|| Ok(x))?;
    for _ in 0..n {
        let next = x * x;
        let new = cs.new_witness_variable(|| Ok(next))?;
        cs.enforce_r1cs_constraint(|| var.into(), || var.into(), || new.into())?;
        (x, var) = (next, new);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_short_chain_proves_and_verifies() {
        let rate = super::chain_rate(64, &mut rand::rngs::OsRng).unwrap();
        assert!(rate > 0.0);
    }
}
