//! Calibration: run the float model and record how large each node's values get.

use crate::model::{FloatModel, Hyperparams, ModelError, NodeId};
use crate::tokenizer::Tokenizer;
use std::collections::HashMap;

/// The largest `|value|` seen at each graph node.
pub type Ranges = HashMap<NodeId, f32>;

/// Feeds `tokens` one by one (positions 0, 1, ...; wrapping to a fresh session when the context
/// is full) and records every node's largest magnitude.
pub fn calibrate(model: &FloatModel, tokens: &[u32]) -> Result<Ranges, ModelError> {
    let mut ranges = Ranges::new();
    for chunk in tokens.chunks(model.text()?.n_ctx) {
        let mut session = model.session();
        for &t in chunk {
            session.step_observed(t, |node, values| {
                let m = values.iter().fold(0f32, |m, v| m.max(v.abs()));
                let entry = ranges.entry(node).or_insert(0.0);
                *entry = entry.max(m);
            })?;
        }
    }
    Ok(ranges)
}

/// Runs a single-pass model on each of `inputs` and records every node's largest magnitude.
pub fn calibrate_inputs(model: &FloatModel, inputs: &[Vec<f32>]) -> Result<Ranges, ModelError> {
    let mut ranges = Ranges::new();
    for input in inputs {
        model.run_observed(input, |node, values| {
            let m = values.iter().fold(0f32, |m, v| m.max(v.abs()));
            let entry = ranges.entry(node).or_insert(0.0);
            *entry = entry.max(m);
        })?;
    }
    Ok(ranges)
}

/// `n` inputs of `len` values drawn from a standard normal (Box-Muller over a fixed SplitMix64
/// stream): a single-pass model's calibration when the user gives none. Real inputs calibrate
/// better (`zkc compile --calibrate FILE`; docs/onnx.md).
pub fn calibration_inputs(len: usize, n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut stream = splitmix(seed);
    let mut uniform = move || ((stream() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    (0..n)
        .map(|_| {
            (0..len)
                .map(|_| {
                    let (u, v) = (uniform(), uniform());
                    ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
                })
                .collect()
        })
        .collect()
}

/// A SplitMix64 stream from `seed`.
fn splitmix(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed ^ 0x5A4B_4331;
    move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// `n` token ids from a fixed SplitMix64 stream: reproducible calibration without a corpus.
pub fn calibration_tokens(hp: &Hyperparams, n: usize, seed: u64) -> Vec<u32> {
    let mut stream = splitmix(seed);
    (0..n)
        .map(|_| (stream() % hp.n_vocab as u64) as u32)
        .collect()
}

/// English prose (from the Rust books that ship with the toolchain, MIT/Apache-2.0), the
/// default calibration text: a text model's activations on text are not those on random tokens
/// (trained models' residual streams grow larger on text, docs/quantization.md).
pub const CALIBRATION_TEXT: &str = include_str!("../../../examples/calibration-rust-books.txt");

/// The default calibration of a model with a tokenizer: [`CALIBRATION_TEXT`] in its tokens.
pub fn default_calibration(tokenizer: &Tokenizer) -> Vec<u32> {
    tokenizer.encode(CALIBRATION_TEXT)
}
