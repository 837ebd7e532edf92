//! The proof bundle (`RUN.zkp`, DESIGN §4). Of a generation: the model commitment, the prompt
//! and how many tokens were asked for, then one record per step: its number and, per layer, the
//! public inputs and the Groth16 proof. The prover rewrites the file (atomically) after every
//! step, so an interrupted run leaves a complete bundle of the steps it finished. Of a single
//! pass: the model commitment, the input (its integers, or only their commitment when it is
//! private) and the output's integers, then one record (step 0) of the layers' proofs.
//!
//! Layout: `zkc-proof 4`, a JSON line (`model`, `kind`: `generation` with `prompt`, `max_new`;
//! or `pass` with `input` (a list of integers, or `null` and `input_commitment`, `0x` and 64 hex
//! digits) and `output`), then per step a `u32` length and the record: `u32` step number, `u32`
//! stage count, and per stage the `u32` index of the layer that proved it (which context bucket:
//! an index into the verifying data's layers), a `u32` count of public inputs, the inputs (32
//! bytes each), the Groth16 proof (128 bytes) and the first round's commitment as an option (a
//! byte, then 32 bytes when the layer has lookups), all compressed. Version 3 (generations only,
//! no `kind`) is still read.

use super::committed::Proof;
use super::encoding::{
    field_0x, header_bytes, parse_field_0x, put, put_u32, split_header_of, DecodeError, Reader,
};
use serde_json::{json, Value};
use zkc_compiler::backend::F;

pub const KIND: &str = "zkc-proof";
pub const VERSION: u64 = 4;
/// The oldest version read.
pub const OLDEST: u64 = 3;

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

/// A single-pass model's input, as the bundle states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PassInput {
    /// The integers of `%input` (public, the default).
    Public(Vec<i64>),
    /// Only their commitment (`zkc prove --private-input`): the public input that stands for
    /// `%input` in its layer's proof (`backend::layer::public_value`).
    Committed(F),
}

/// What a single pass states: its input and the integers of `%output`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pass {
    pub input: PassInput,
    pub output: Vec<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Bundle {
    /// The model commitment (the SHA-256 of the keys' `vk` file).
    pub model: String,
    /// A generation's prompt and tokens asked for (empty and 0 for a single pass).
    pub prompt: Vec<u32>,
    pub max_new: usize,
    /// A single pass's input and output (`None` for a generation), proven by one step record.
    pub pass: Option<Pass>,
    pub steps: Vec<StepProof>,
}

impl Bundle {
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = match &self.pass {
            None => json!({
                "model": self.model, "kind": "generation",
                "prompt": self.prompt, "max_new": self.max_new,
            }),
            Some(pass) => {
                let (input, commitment) = match &pass.input {
                    PassInput::Public(values) => (json!(values), None),
                    PassInput::Committed(c) => (Value::Null, Some(field_0x(c))),
                };
                let mut header = json!({
                    "model": self.model, "kind": "pass", "input": input, "output": pass.output,
                });
                if let Some(c) = commitment {
                    header["input_commitment"] = json!(c);
                }
                header
            }
        };
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
        let (version, header, rest) = split_header_of(bytes, KIND, OLDEST..=VERSION)?;
        let bad = |key: &str| DecodeError::Header(format!("no valid `{key}`"));
        let model = header["model"]
            .as_str()
            .ok_or_else(|| bad("model"))?
            .to_string();
        let kind = match (version, &header["kind"]) {
            (3, Value::Null) => "generation",
            (_, kind) => kind.as_str().ok_or_else(|| bad("kind"))?,
        };
        let (prompt, max_new, pass) = match kind {
            "generation" => {
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
                let max_new = header["max_new"].as_u64().ok_or_else(|| bad("max_new"))?;
                (prompt, max_new as usize, None)
            }
            "pass" => {
                let integers = |key: &str| -> Result<Vec<i64>, DecodeError> {
                    (header[key].as_array().ok_or_else(|| bad(key))?.iter())
                        .map(|v| v.as_i64().ok_or_else(|| bad(key)))
                        .collect()
                };
                let input = match (&header["input"], &header["input_commitment"]) {
                    (Value::Null, c) => PassInput::Committed(
                        c.as_str()
                            .and_then(parse_field_0x)
                            .ok_or_else(|| bad("input_commitment"))?,
                    ),
                    (_, Value::Null) => PassInput::Public(integers("input")?),
                    _ => {
                        return Err(DecodeError::Header(
                            "both `input` and `input_commitment`".into(),
                        ))
                    }
                };
                let output = integers("output")?;
                (Vec::new(), 0, Some(Pass { input, output }))
            }
            _ => return Err(bad("kind")),
        };
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
            pass,
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

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ec::AffineRepr;
    use zkc_compiler::backend::field;

    fn proof() -> Proof {
        let g1 = ark_bn254::G1Affine::generator();
        Proof {
            proof: ark_groth16::Proof {
                a: g1,
                b: ark_bn254::G2Affine::generator(),
                c: g1,
            },
            commitment: None,
        }
    }

    fn pass(input: PassInput) -> Bundle {
        Bundle {
            model: "ab12".into(),
            prompt: Vec::new(),
            max_new: 0,
            pass: Some(Pass {
                input,
                output: vec![-3, 0, 7],
            }),
            steps: vec![StepProof {
                step: 0,
                layers: vec![LayerProof {
                    layer: 0,
                    publics: vec![field(5), field(-6)],
                    proof: proof(),
                }],
            }],
        }
    }

    #[test]
    fn single_pass_bundles_round_trip_with_a_public_or_committed_input() {
        for input in [
            PassInput::Public(vec![1, -2, i64::MIN, i64::MAX]),
            PassInput::Committed(field(-42)),
        ] {
            let bundle = pass(input);
            let bytes = bundle.to_bytes();
            assert!(bytes.starts_with(b"zkc-proof 4\n"));
            assert_eq!(Bundle::from_bytes(&bytes).unwrap(), bundle);
        }
        let text =
            String::from_utf8_lossy(&pass(PassInput::Committed(field(1))).to_bytes()).into_owned();
        assert!(
            text.contains(&format!("\"input_commitment\":\"0x{}1\"", "0".repeat(63))),
            "{text}"
        );
    }

    #[test]
    fn generations_of_version_3_are_still_read() {
        let generation = Bundle {
            prompt: vec![1, 2],
            max_new: 3,
            pass: None,
            ..pass(PassInput::Public(vec![]))
        };
        let bytes = generation.to_bytes();
        assert_eq!(Bundle::from_bytes(&bytes).unwrap(), generation);
        // The same records under a version 3 header (no `kind`): the records start after the
        // header's two lines.
        let at = (bytes.iter().enumerate())
            .filter(|(_, &b)| b == b'\n')
            .nth(1)
            .unwrap()
            .0;
        let mut old = header_bytes(
            KIND,
            3,
            &json!({"model": "ab12", "prompt": [1, 2], "max_new": 3}),
        );
        old.extend_from_slice(&bytes[at + 1..]);
        assert_eq!(Bundle::from_bytes(&old).unwrap(), generation);
        // A header of an unknown kind, or with both kinds of input, is refused.
        let mut other = header_bytes(KIND, 4, &json!({"model": "ab12", "kind": "dream"}));
        other.extend_from_slice(&bytes[at + 1..]);
        assert!(matches!(
            Bundle::from_bytes(&other),
            Err(DecodeError::Header(h)) if h.contains("kind")
        ));
        let both = header_bytes(
            KIND,
            4,
            &json!({"model": "m", "kind": "pass", "input": [1], "input_commitment": "0x00",
                    "output": [1]}),
        );
        assert!(Bundle::from_bytes(&both).is_err());
    }
}
