//! Groth16 over the layer circuits (DESIGN §3, §4): keys per layer ([`setup`]), the proof
//! bundle of a generation proven step by step ([`prover`]), or unit by unit on many machines
//! ([`plan`], [`unit`], [`assemble`]), and its check from the verifying data alone
//! ([`verifier`]).

pub mod assemble;
pub mod bundle;
pub mod committed;
pub mod encoding;
pub mod keys;
pub mod plan;
pub mod prover;
pub mod reference;
pub mod setup;
pub mod shapes;
pub mod unit;
pub mod verifier;

use crate::interp::InterpError;
use keys::KeyError;
use zkc_compiler::backend::diagnose::Origin;

/// The pairing every proof uses: BN254, whose scalar field is the circuits' field.
pub type Curve = ark_bn254::Bn254;

#[derive(Debug, thiserror::Error)]
pub enum ProvingError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Interp(#[from] InterpError),
    #[error("layer `{layer}`: the circuit could not be built: {problem} (a bug in zkc: please report it with the model)")]
    Synthesis { layer: String, problem: String },
    #[error(transparent)]
    Circuit(#[from] zkc_compiler::backend::check::CircuitError),
    #[error("step {step}, layer `{layer}`: the proof does not verify against the layer's verifying key, though the witness satisfies the circuit (keys from another setup? rerun `zkc setup`)")]
    ProofRejected { step: usize, layer: String },
    #[error("step {step}, layer `{layer}`: the witness does not satisfy the layer's circuit: its first failing constraint (#{constraint}) comes from {origin}. This is a bug in zkc's witness generation for `{op}`: please report it with the model and the prompt", op = origin.op())]
    WitnessUnsatisfied {
        step: usize,
        layer: String,
        constraint: usize,
        origin: Origin,
    },
    #[error("step {step}, layer `{layer}`: the circuit could not be built from the witness at {origin}: {problem}. This is a bug in zkc's witness generation for `{op}`: please report it with the model and the prompt", op = origin.op())]
    WitnessFailed {
        step: usize,
        layer: String,
        origin: Origin,
        problem: String,
    },
    #[error("these keys were set up for IR {keys}, the artifact's IR is {artifact}: rerun `zkc setup` for this artifact")]
    KeysForAnotherModel { keys: String, artifact: String },
    #[error("{0}")]
    Request(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}
