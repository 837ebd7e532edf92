//! Groth16 over the layer circuits (DESIGN §3, §4): keys per layer ([`setup`]), the proof
//! bundle of a generation proven step by step ([`prover`]), and its check from the verifying
//! data alone ([`verifier`]).

pub mod bundle;
pub mod encoding;
pub mod keys;
pub mod prover;
pub mod setup;
pub mod verifier;

use crate::interp::InterpError;
use keys::KeyError;

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
    #[error("step {step}, layer `{layer}`: the proof does not verify against the layer's verifying key (keys from another setup? rerun `zkc setup`)")]
    ProofRejected { step: usize, layer: String },
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
