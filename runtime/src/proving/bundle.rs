//! The proof bundle (`RUN.zkp`, DESIGN §4): the model commitment, the prompt and how many tokens
//! were asked for, then one record per step: its number and, per layer, the public inputs and
//! the Groth16 proof. The prover rewrites the file (atomically) after every step, so an
//! interrupted run leaves a complete bundle of the steps it finished.
//!
//! Layout: `zkc-proof 3`, a JSON line (`model`, `prompt`, `max_new`), then per step a `u32`
//! length and the record: `u32` step number, `u32` stage count, and per stage the `u32` index of
//! the layer that proved it (which context bucket: an index into the verifying data's layers), a
//! `u32` count of public inputs, the inputs (32 bytes each), the Groth16 proof (128 bytes) and
//! the first round's commitment as an option (a byte, then 32 bytes when the layer has
//! lookups), all compressed.

use super::committed::Proof;
use super::encoding::{header_bytes, put, put_u32, split_header, DecodeError, Reader};
use serde_json::json;
use zkc_compiler::backend::F;

pub const KIND: &str = "zkc-proof";
pub const VERSION: u64 = 3;

/// One stage's proof for one step.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerProof {
    /// The layer (bucket) that proved it, by its index in the verifying data.
    pub layer: u32,
    pub publics: Vec<F>,
    pub proof: Proof,
}

impl LayerProof {
    /// Appends the record: the layer index, the count of public inputs, the inputs, the proof
    /// and the optional first-round commitment.
    pub fn write(&self, out: &mut Vec<u8>) {
        put_u32(out, self.layer);
        put_u32(out, self.publics.len() as u32);
        for p in &self.publics {
            put(out, p);
        }
        put(out, &self.proof.proof);
        put(out, &self.proof.commitment);
    }

    /// Reads a record [`LayerProof::write`] wrote; `what` names it in errors.
    pub fn read(record: &mut Reader, what: &str) -> Result<LayerProof, DecodeError> {
        let layer = record.u32(&format!("{what} index"))?;
        let n = record.u32(&format!("{what} input count"))? as usize;
        if n > record.remaining() / 32 {
            return Err(DecodeError::Truncated(format!("{what} inputs")));
        }
        let publics = (0..n)
            .map(|i| record.value(&format!("{what} public input {i}")))
            .collect::<Result<_, _>>()?;
        let proof = Proof {
            proof: record.value(&format!("{what} proof"))?,
            commitment: record.value(&format!("{what} commitment"))?,
        };
        Ok(LayerProof {
            layer,
            publics,
            proof,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct StepProof {
    pub step: u32,
    pub layers: Vec<LayerProof>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Bundle {
    /// The model commitment (the SHA-256 of the keys' `vk` file).
    pub model: String,
    pub prompt: Vec<u32>,
    pub max_new: usize,
    pub steps: Vec<StepProof>,
}

impl Bundle {
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = json!({"model": self.model, "prompt": self.prompt, "max_new": self.max_new});
        let mut out = header_bytes(KIND, VERSION, &header);
        for step in &self.steps {
            let mut record = Vec::new();
            put_u32(&mut record, step.step);
            put_u32(&mut record, step.layers.len() as u32);
            for layer in &step.layers {
                layer.write(&mut record);
            }
            put_u32(&mut out, record.len() as u32);
            out.extend_from_slice(&record);
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Bundle, DecodeError> {
        let (header, rest) = split_header(bytes, KIND, VERSION)?;
        let bad = |key: &str| DecodeError::Header(format!("no valid `{key}`"));
        let model = header["model"]
            .as_str()
            .ok_or_else(|| bad("model"))?
            .to_string();
        let prompt = header["prompt"]
            .as_array()
            .ok_or_else(|| bad("prompt"))?
            .iter()
            .map(|t| {
                t.as_u64()
                    .and_then(|t| u32::try_from(t).ok())
                    .ok_or_else(|| bad("prompt"))
            })
            .collect::<Result<_, _>>()?;
        let max_new = header["max_new"].as_u64().ok_or_else(|| bad("max_new"))? as usize;
        let mut reader = Reader::new(rest);
        let mut steps = Vec::new();
        while !reader.is_empty() {
            let k = steps.len();
            let mut record = Reader::new(reader.sized(&format!("step record {k}"))?);
            let what = |part: &str| format!("step record {k}'s {part}");
            let step = record.u32(&what("number"))?;
            let n_layers = record.u32(&what("layer count"))? as usize;
            // Each layer takes at least its index, count, proof and option byte: bound the
            // count before allocating.
            if n_layers > record.remaining() / 137 {
                return Err(DecodeError::Invalid(what("layer count")));
            }
            let mut layers = Vec::with_capacity(n_layers);
            for l in 0..n_layers {
                layers.push(LayerProof::read(&mut record, &what(&format!("layer {l}")))?);
            }
            if !record.is_empty() {
                return Err(DecodeError::Invalid(what("trailing bytes")));
            }
            steps.push(StepProof { step, layers });
        }
        Ok(Bundle {
            model,
            prompt,
            max_new,
            steps,
        })
    }

    /// Bytes of proofs per step: 128 per Groth16 proof and 32 per commitment (the figure the
    /// benchmarks report beside the bundle).
    pub fn proof_bytes_per_step(&self) -> usize {
        self.steps.first().map_or(0, |s| {
            s.layers
                .iter()
                .map(|l| 128 + 32 * usize::from(l.proof.commitment.is_some()))
                .sum()
        })
    }
}

/// How many steps a run of `prompt` tokens asking for `max_new` new ones takes: every prompt
/// token is a step, and each generated token but the last is fed back as one; no more steps
/// than the context has positions.
pub fn planned_steps(prompt: usize, max_new: usize, context: usize) -> usize {
    prompt.saturating_add(max_new.max(1) - 1).min(context)
}
