//! One unit of a plan proven on its own (`zkc prove-part`, docs/distributed.md), and the file
//! that carries its proof to the assembly (`zkc bundle`).
//!
//! A worker needs no state from any other: it reruns the generation with the integer model up
//! to the unit's step (feeding the plan's tokens and checking the plan's choices), records that
//! step's witness and proves the unit's layer. Witnesses are deterministic (no commitment takes
//! randomness), so the unit's public inputs are those a single-process run would have, and a
//! retried or duplicated unit gives an interchangeable proof.
//!
//! Layout: `zkc-unit 1`, a JSON line (`plan`: the plan file's SHA-256, `unit`, `step`,
//! `stage`), then the layer's proof record as a bundle holds it.

use super::bundle::LayerProof;
use super::committed;
use super::encoding::{header_bytes, split_header, DecodeError, Reader};
use super::keys::PreparedKeys;
use super::plan::Plan;
use super::prover::{Event, Prover};
use super::ProvingError;
use serde_json::json;

pub const KIND: &str = "zkc-unit";
pub const VERSION: u64 = 1;

/// A unit's proof, and which plan and unit it is for.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitProof {
    /// The SHA-256 of the plan file it was proven from.
    pub plan: String,
    pub unit: usize,
    pub step: usize,
    pub stage: usize,
    pub proof: LayerProof,
}

/// Why a unit's proof file cannot serve its unit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("it is unreadable: {0}")]
    Malformed(DecodeError),
    #[error("it was proven from another plan (plan {found}, this one is {expected})")]
    OtherPlan { found: String, expected: String },
    #[error("it holds unit {found} (step {step}, stage {stage}), not unit {expected}")]
    OtherUnit {
        found: usize,
        step: usize,
        stage: usize,
        expected: usize,
    },
    #[error("it proves with layer {found}; the plan's unit uses layer {expected}")]
    OtherKey { found: u32, expected: usize },
    #[error("its proof does not verify against the layer's key")]
    Invalid,
}

impl UnitProof {
    pub fn to_bytes(&self) -> Vec<u8> {
        let header =
            json!({"plan": self.plan, "unit": self.unit, "step": self.step, "stage": self.stage});
        let mut out = header_bytes(KIND, VERSION, &header);
        self.proof.write(&mut out);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<UnitProof, DecodeError> {
        let (header, rest) = split_header(bytes, KIND, VERSION)?;
        let number = |key: &str| {
            header[key]
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| DecodeError::Header(format!("no valid `{key}`")))
        };
        let plan = header["plan"]
            .as_str()
            .ok_or_else(|| DecodeError::Header("no valid `plan`".into()))?
            .to_string();
        let mut reader = Reader::new(rest);
        let proof = LayerProof::read(&mut reader, "the unit's proof")?;
        if !reader.is_empty() {
            return Err(DecodeError::Invalid("the bytes after the proof".into()));
        }
        Ok(UnitProof {
            plan,
            unit: number("unit")?,
            step: number("step")?,
            stage: number("stage")?,
            proof,
        })
    }

    /// Reads `bytes` as the proof of unit `unit` of `plan` (whose file has SHA-256 `digest`)
    /// and checks that it is: the same plan, unit, step, stage and key, and a proof that
    /// verifies against the key with its public inputs. The links between units are the
    /// bundle verifier's to check.
    pub fn check(
        bytes: &[u8],
        plan: &Plan,
        digest: &str,
        unit: usize,
        keys: &PreparedKeys,
    ) -> Result<LayerProof, UnitError> {
        let found = UnitProof::from_bytes(bytes).map_err(UnitError::Malformed)?;
        if found.plan != digest {
            return Err(UnitError::OtherPlan {
                found: found.plan,
                expected: digest.to_string(),
            });
        }
        let want = &plan.units[unit];
        if (found.unit, found.step, found.stage) != (unit, want.step, want.stage) {
            return Err(UnitError::OtherUnit {
                found: found.unit,
                step: found.step,
                stage: found.stage,
                expected: unit,
            });
        }
        if found.proof.layer as usize != want.key {
            return Err(UnitError::OtherKey {
                found: found.proof.layer,
                expected: want.key,
            });
        }
        let proof = found.proof;
        match committed::verify(keys.get(want.key), &proof.proof, &proof.publics) {
            true => Ok(proof),
            false => Err(UnitError::Invalid),
        }
    }
}

/// Proves unit `unit` of `plan` (whose file has SHA-256 `digest`): reruns the generation up to
/// the unit's step, checking that the integer model chooses the plan's tokens, and proves the
/// unit's stage of that step.
pub fn prove(
    prover: &Prover,
    plan: &Plan,
    digest: &str,
    unit: usize,
    rng: &mut dyn rand_core::CryptoRngCore,
    on_event: &mut dyn FnMut(Event),
) -> Result<UnitProof, ProvingError> {
    let (model, ir_sha256) = prover.model();
    if plan.model != model || plan.ir_sha256 != ir_sha256 {
        return Err(ProvingError::Request(format!(
            "the plan is for model {} (IR {}); these keys are for model {model} (IR {ir_sha256}): make the plan with these keys and artifact (`zkc plan`)",
            plan.model, plan.ir_sha256
        )));
    }
    let want = plan.units.get(unit).ok_or_else(|| {
        ProvingError::Request(format!(
            "the plan has units 0 to {}; there is no unit {unit}",
            plan.units.len().saturating_sub(1)
        ))
    })?;
    let (mut runner, steps) = prover.start(&plan.prompt, plan.max_new)?;
    if steps != plan.inputs.len() {
        return Err(ProvingError::Request(format!(
            "the plan has {} steps; its prompt and max_new take {steps} with these keys",
            plan.inputs.len()
        )));
    }
    let mut witness = None;
    for step in 0..=want.step {
        let result = runner.step(plan.inputs[step], step == want.step)?;
        if result.token != plan.outputs[step] {
            return Err(ProvingError::Request(format!(
                "step {step}: the model chooses token {}, the plan says {}: the plan was made from another artifact",
                result.token, plan.outputs[step]
            )));
        }
        witness = result.witness;
    }
    let run = &witness.expect("the unit's step records")[want.stage];
    if prover.key_of(run.layer) != Some(want.key) {
        return Err(ProvingError::Request(format!(
            "unit {unit}: step {} runs another bucket of stage {} than the plan's (layer {})",
            want.step, want.stage, want.key
        )));
    }
    Ok(UnitProof {
        plan: digest.to_string(),
        unit,
        step: want.step,
        stage: want.stage,
        proof: prover.prove_unit(want.step, run, rng, on_event)?,
    })
}
