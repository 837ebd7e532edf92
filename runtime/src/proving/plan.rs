//! A generation's plan (`zkc plan`, docs/distributed.md): the token transcript fixed by running
//! the integer model once, and the units of work it takes to prove it, one per (step, stage).
//! Every unit can then be proven on its own, in any order, on any machine that sees the
//! artifact, the keys and the plan (`zkc prove-part`), and the proofs assembled into the
//! ordinary bundle (`zkc bundle`).
//!
//! The file is JSON (so that a driver in any language reads the unit list): the model
//! commitment and IR hash it was made for, the prompt and `max_new`, the token fed and the token
//! chosen at every step, and the units in step-major order, each with the key (bucket) it
//! proves with, its constraints and an estimate of a worker's memory.

use super::prover::Prover;
use super::ProvingError;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const KIND: &str = "zkc-plan";
pub const VERSION: u64 = 1;

/// A worker proving one unit holds the artifact while it parses it and then the weights twice
/// over (its text, the module's constants, the interpreter's): measured at 3.44 GiB for
/// gpt2-small's 1.05 GB artifact, whatever the unit.
const MEMORY_PER_ARTIFACT_BYTE: u64 = 4;

/// On top of that, the layer's proving key and, while it builds them, its constraint matrices
/// and arkworks' symbolic constraint system: measured 1.63 GiB for a gpt2-small block (key
/// 225 MiB, 7.2 times) and 2.97 GiB for its head (key 259 MiB, 11.5 times).
const MEMORY_PER_KEY_BYTE: u64 = 12;

/// What any worker needs besides (the binary, the runtime's buffers).
const MEMORY_BASE_BYTES: u64 = 256 << 20;

/// One unit of proving work: one stage of one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    pub step: usize,
    pub stage: usize,
    /// The layer (bucket) it proves with, as an index into the verifying data's layers.
    pub key: usize,
    pub layer: String,
    pub constraints: usize,
    /// An estimate of a worker's peak memory (for a scheduler's memory resource).
    pub memory_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The model commitment (the SHA-256 of the keys' `vk`).
    pub model: String,
    pub ir_sha256: String,
    pub prompt: Vec<u32>,
    pub max_new: usize,
    /// Per step, the token fed in.
    pub inputs: Vec<u32>,
    /// Per step, the token chosen.
    pub outputs: Vec<u32>,
    pub units: Vec<Unit>,
}

/// Why a plan file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a zkc plan: {problem}")]
    Malformed { path: String, problem: String },
}

impl Plan {
    /// Runs the generation of `prompt` (greedy, up to `max_new` new tokens) with the integer
    /// model, without proving, and lists its units; `artifact_bytes` (the artifact file's
    /// size) enters each unit's memory estimate.
    pub fn make(
        prover: &Prover,
        prompt: &[u32],
        max_new: usize,
        artifact_bytes: u64,
    ) -> Result<Plan, ProvingError> {
        let (mut runner, steps) = prover.start(prompt, max_new)?;
        let (model, ir_sha256) = prover.model();
        let mut plan = Plan {
            model: model.to_string(),
            ir_sha256: ir_sha256.to_string(),
            prompt: prompt.to_vec(),
            max_new,
            inputs: Vec::with_capacity(steps),
            outputs: Vec::with_capacity(steps),
            units: Vec::new(),
        };
        let module = prover.module();
        for step in 0..steps {
            let input = match prompt.get(step) {
                Some(&t) => t,
                None => plan.outputs[step - 1],
            };
            let result = runner.step(input, false)?;
            plan.inputs.push(input);
            plan.outputs.push(result.token);
            for (stage, &index) in result.layers.iter().enumerate() {
                let key = prover
                    .key_of(index)
                    .expect("the runner runs layers with keys");
                plan.units.push(Unit {
                    step,
                    stage,
                    key,
                    layer: zkc_compiler::backend::cost::layer_label(module, index),
                    constraints: zkc_compiler::backend::cost::layer(module, &module.layers[index])
                        .1,
                    memory_bytes: MEMORY_BASE_BYTES
                        + MEMORY_PER_ARTIFACT_BYTE * artifact_bytes
                        + MEMORY_PER_KEY_BYTE * prover.key_bytes(index),
                });
            }
        }
        Ok(plan)
    }

    /// The stages per step.
    pub fn stages(&self) -> usize {
        self.units.len() / self.inputs.len().max(1)
    }

    /// The tokens generated: the outputs from the last prompt step on.
    pub fn generated(&self) -> &[u32] {
        self.outputs
            .get(self.prompt.len().saturating_sub(1)..)
            .unwrap_or(&[])
    }

    pub fn to_json(&self) -> String {
        let units: Vec<Value> = self
            .units
            .iter()
            .enumerate()
            .map(|(k, u)| {
                json!({"unit": k, "step": u.step, "stage": u.stage, "key": u.key, "layer": u.layer,
                       "constraints": u.constraints, "memory_bytes": u.memory_bytes})
            })
            .collect();
        let value = json!({
            "kind": KIND, "version": VERSION, "model": self.model, "ir_sha256": self.ir_sha256,
            "prompt": self.prompt, "max_new": self.max_new, "inputs": self.inputs,
            "outputs": self.outputs, "generated": self.generated(), "units": units,
        });
        serde_json::to_string_pretty(&value).expect("JSON values serialise") + "\n"
    }

    /// Parses a plan, checking its kind, version and that its units cover every (step, stage)
    /// in order.
    pub fn from_json(text: &str) -> Result<Plan, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if value["kind"] != KIND {
            return Err(format!("its `kind` is not `{KIND}`"));
        }
        if value["version"] != VERSION {
            return Err(format!(
                "it is version {} of `{KIND}`; this zkc reads version {VERSION}",
                value["version"]
            ));
        }
        let string = |key: &str| {
            value[key]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("no valid `{key}`"))
        };
        let tokens = |key: &str| -> Result<Vec<u32>, String> {
            value[key]
                .as_array()
                .ok_or_else(|| format!("no valid `{key}`"))?
                .iter()
                .map(|t| {
                    t.as_u64()
                        .and_then(|t| u32::try_from(t).ok())
                        .ok_or_else(|| format!("`{key}` holds a value that is not a token"))
                })
                .collect()
        };
        let number = |v: &Value, key: &str| -> Result<u64, String> {
            v[key]
                .as_u64()
                .ok_or_else(|| format!("no valid `{key}` in {v}"))
        };
        let units = value["units"]
            .as_array()
            .ok_or("no valid `units`")?
            .iter()
            .map(|u| {
                Ok(Unit {
                    step: number(u, "step")? as usize,
                    stage: number(u, "stage")? as usize,
                    key: number(u, "key")? as usize,
                    layer: u["layer"]
                        .as_str()
                        .ok_or_else(|| format!("no valid `layer` in {u}"))?
                        .to_string(),
                    constraints: number(u, "constraints")? as usize,
                    memory_bytes: number(u, "memory_bytes")?,
                })
            })
            .collect::<Result<Vec<Unit>, String>>()?;
        let plan = Plan {
            model: string("model")?,
            ir_sha256: string("ir_sha256")?,
            prompt: tokens("prompt")?,
            max_new: number(&value, "max_new")? as usize,
            inputs: tokens("inputs")?,
            outputs: tokens("outputs")?,
            units,
        };
        let steps = plan.inputs.len();
        if steps == 0 || plan.outputs.len() != steps || plan.units.len() % steps != 0 {
            return Err("its steps, outputs and units do not agree".into());
        }
        let stages = plan.stages();
        for (k, unit) in plan.units.iter().enumerate() {
            if (unit.step, unit.stage) != (k / stages, k % stages) {
                return Err(format!(
                    "unit {k} is step {} stage {}; units go step by step, stage by stage",
                    unit.step, unit.stage
                ));
            }
        }
        Ok(plan)
    }

    /// Reads the plan at `path`; returns it and the SHA-256 of the file (what unit proofs
    /// name it by).
    pub fn read(path: &Path) -> Result<(Plan, String), PlanError> {
        let bytes = std::fs::read(path).map_err(|source| PlanError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let malformed = |problem: String| PlanError::Malformed {
            path: path.display().to_string(),
            problem,
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| malformed("it is not text".into()))?;
        let plan = Plan::from_json(text).map_err(malformed)?;
        Ok((plan, digest(&bytes)))
    }
}

/// The SHA-256 of a plan file's bytes, in hex.
pub fn digest(bytes: &[u8]) -> String {
    super::encoding::hex(&Sha256::digest(bytes))
}

/// Where unit `unit`'s proof goes in the directory `units`.
pub fn unit_path(units: &Path, unit: usize) -> PathBuf {
    units.join(format!("unit-{unit}.zkunit"))
}
