//! zkc-runtime: the `zkc` command line (and, in later stages, the integer interpreter that makes
//! witnesses, the Groth16 prover and verifier, and the autoregressive driver).

pub mod accuracy;
pub mod cli;
pub mod interp;
pub mod proving;
