//! `zkc verify`: checks a proof bundle against the verifying data alone. Beyond every Groth16
//! proof, it checks every link of DESIGN §3 from the layouts in the keys, so a bundle cannot
//! splice steps, layers or commitments:
//!
//! - the bundle names this model's commitment, and has one record per step, numbered from 0,
//!   each with one proof per stage and each layer's count of public inputs;
//! - each stage's proof names a layer of that stage: for a stage with context buckets, one whose
//!   caches hold the step's position (`pos < context`; any such bucket is sound, the prover
//!   uses the smallest), and is checked with that bucket's verifying key;
//! - `pos` is the step number; `token` is the prompt's token for prompt steps, then the previous
//!   step's output token;
//! - every other input is the commitment that an earlier layer of the same step output under
//!   the same name (so the first block's input is the embedding of the step's token at its
//!   position, as the embedding layer proved);
//! - each state before a step is the commitment after the previous step, whichever bucket
//!   proved either (before step 0: the empty state's, from the keys);
//! - the prompt fits the context, and the run is complete: as many steps as its prompt and
//!   `max_new` call for (or `partial` is asked for, accepting an interrupted run's non-empty
//!   prefix);
//! - every proof verifies: all at once (`committed::verify_batch`, with the verifier's own
//!   randomness), and only when that fails one by one, so that the rejection names the first
//!   failure in step and stage order, a proof or a link, as checking each proof in turn would.

use super::bundle::{planned_steps, Bundle, LayerProof};
use super::committed;
use super::encoding::DecodeError;
use super::keys::{PreparedKeys, VerifyingData};
use ark_ff::PrimeField;
use std::collections::HashMap;
use zkc_compiler::backend::layer::Role;
use zkc_compiler::backend::{field, F};

/// Why a bundle was rejected; the first failure found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the bundle is unreadable: {0}")]
    Malformed(DecodeError),
    #[error("the bundle is for model {bundle}; these keys are for model {keys}")]
    OtherModel { bundle: String, keys: String },
    #[error("the bundle's prompt is empty or `max_new` is 0")]
    EmptyRun,
    #[error("the bundle's prompt has {prompt} tokens; the model's context holds {context}")]
    PromptTooLong { prompt: usize, context: usize },
    #[error(
        "record {record} is numbered step {found}: steps are missing, repeated or out of order"
    )]
    StepOrder { record: usize, found: u32 },
    #[error("step {step} has {found} layer proofs; the model has {expected} stages")]
    LayerCount {
        step: usize,
        found: usize,
        expected: usize,
    },
    #[error("step {step}: the proof for stage `{stage}` names layer {found}, which is not one of its buckets")]
    OtherStage {
        step: usize,
        stage: String,
        found: u32,
    },
    #[error("step {step}, layer `{layer}`: proven in the bucket of context {context}, which does not hold position {step}")]
    BucketTooSmall {
        step: usize,
        layer: String,
        context: usize,
    },
    #[error("step {step}, layer `{layer}`: {found} public inputs, the layer has {expected}")]
    PublicCount {
        step: usize,
        layer: String,
        found: usize,
        expected: usize,
    },
    #[error("step {step}, layer `{layer}`: {what}")]
    Link {
        step: usize,
        layer: String,
        what: String,
    },
    #[error("step {step}, layer `{layer}`: the proof does not verify")]
    Proof { step: usize, layer: String },
    #[error("the bundle stops after {found} of its {expected} steps (an interrupted run; `--partial` accepts its prefix)")]
    Incomplete { found: usize, expected: usize },
    #[error("the bundle has {found} steps; its prompt and max_new call for {expected}")]
    TooLong { found: usize, expected: usize },
}

/// What a valid bundle proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub prompt: Vec<u32>,
    pub generated: Vec<u32>,
    pub steps: usize,
    pub proofs: usize,
    pub complete: bool,
}

/// Checks `bytes` (a bundle) against `vd`; `partial` accepts a prefix of the run.
pub fn verify(vd: &VerifyingData, bytes: &[u8], partial: bool) -> Result<Verified, Rejection> {
    let bundle = Bundle::from_bytes(bytes).map_err(Rejection::Malformed)?;
    if bundle.model != vd.commitment {
        return Err(Rejection::OtherModel {
            bundle: bundle.model,
            keys: vd.commitment.clone(),
        });
    }
    if bundle.prompt.is_empty() || bundle.max_new == 0 {
        return Err(Rejection::EmptyRun);
    }
    if bundle.prompt.len() > vd.context {
        return Err(Rejection::PromptTooLong {
            prompt: bundle.prompt.len(),
            context: vd.context,
        });
    }
    let expected = planned_steps(bundle.prompt.len(), bundle.max_new, vd.context);
    let found = bundle.steps.len();
    if found > expected {
        return Err(Rejection::TooLong { found, expected });
    }
    let prepared = vd.prepared();
    let stages = vd.stages();
    let mut states: Vec<Vec<F>> = stages
        .iter()
        .map(|s| vd.layers[s[0]].initial_states.clone())
        .collect();
    let mut outputs: Vec<u32> = Vec::with_capacity(found);
    // Every (step, key, proof), checked together once the links hold.
    let mut proofs = Vec::with_capacity(found * stages.len());
    // The steps in order: each one's links, its proofs set aside. The first failure is the one
    // reported, so a link that fails after a proof that does not verify reports the proof.
    let walked = (|| {
        for (t, step) in bundle.steps.iter().enumerate() {
            if step.step as usize != t {
                return Err(Rejection::StepOrder {
                    record: t,
                    found: step.step,
                });
            }
            if step.layers.len() != stages.len() {
                return Err(Rejection::LayerCount {
                    step: t,
                    found: step.layers.len(),
                    expected: stages.len(),
                });
            }
            let token = match bundle.prompt.get(t) {
                Some(&p) => p,
                None => outputs[t - 1],
            };
            let mut named: HashMap<&str, F> = HashMap::new();
            named.insert("token", field(token as i128));
            named.insert("pos", field(t as i128));
            let mut output = None;
            for (s, (stage, proof)) in stages.iter().zip(&step.layers).enumerate() {
                let k = proof.layer as usize;
                if !stage.contains(&k) {
                    return Err(Rejection::OtherStage {
                        step: t,
                        stage: vd.layers[stage[0]].name.clone(),
                        found: proof.layer,
                    });
                }
                let key = &vd.layers[k];
                if let Some(context) = key.context.filter(|&c| t >= c) {
                    return Err(Rejection::BucketTooSmall {
                        step: t,
                        layer: key.name.clone(),
                        context,
                    });
                }
                let link = |what: String| Rejection::Link {
                    step: t,
                    layer: key.name.clone(),
                    what,
                };
                if proof.publics.len() != key.publics.len() {
                    return Err(Rejection::PublicCount {
                        step: t,
                        layer: key.name.clone(),
                        found: proof.publics.len(),
                        expected: key.publics.len(),
                    });
                }
                let (mut before, mut after) = (0, Vec::new());
                for (public, &value) in key.publics.iter().zip(&proof.publics) {
                    match public.role {
                        Role::Input => match named.get(public.name.as_str()) {
                            Some(&want) if want == value => {}
                            Some(_) => {
                                return Err(link(format!(
                                    "input `{}` is not what the step's earlier layers gave it",
                                    public.name
                                )))
                            }
                            None => {
                                return Err(link(format!(
                                    "input `{}` is no earlier layer's output",
                                    public.name
                                )))
                            }
                        },
                        Role::StateBefore => {
                            if states[s].get(before) != Some(&value) {
                                let previous = match t {
                                    0 => "the empty state".to_string(),
                                    _ => format!("its state after step {}", t - 1),
                                };
                                return Err(link(format!(
                                    "state `{}` before the step is not {previous}",
                                    public.name
                                )));
                            }
                            before += 1;
                        }
                        Role::StateAfter => after.push(value),
                        Role::Output => {
                            named.insert(public.name.as_str(), value);
                            if public.name == "token" && s + 1 == stages.len() {
                                output = Some(value);
                            }
                        }
                    }
                }
                proofs.push((t, k, proof));
                states[s] = after;
            }
            let vocab = vd.vocabulary.as_ref().map_or(u64::MAX, |v| v.len() as u64);
            let output = output
                .and_then(small)
                .filter(|&v| (v as u64) < vocab)
                .ok_or_else(|| Rejection::Link {
                    step: t,
                    layer: vd.layers.last().map_or(String::new(), |l| l.name.clone()),
                    what: "the output token is not a token of the vocabulary".into(),
                })?;
            outputs.push(output);
        }
        Ok(())
    })();
    let first_bad = |found: Option<Rejection>| bad_proof(vd, &prepared, &proofs).or(found);
    if let Err(e) = walked {
        return Err(first_bad(Some(e)).expect("some failure"));
    }
    if let Some(e) = first_bad(None) {
        return Err(e);
    }
    // A prefix must hold at least one proven step to say anything.
    if found < expected && (!partial || found == 0) {
        return Err(Rejection::Incomplete { found, expected });
    }
    let proofs = found * stages.len();
    let prompt_steps = bundle.prompt.len();
    let generated = outputs
        .get(prompt_steps.saturating_sub(1)..)
        .unwrap_or(&[])
        .to_vec();
    Ok(Verified {
        prompt: bundle.prompt,
        generated,
        steps: found,
        proofs,
        complete: found == expected,
    })
}

/// The first of `proofs` (step, key, proof) that does not verify, as its rejection: all are
/// checked at once, and only when that fails one by one.
fn bad_proof(
    vd: &VerifyingData,
    prepared: &PreparedKeys,
    proofs: &[(usize, usize, &LayerProof)],
) -> Option<Rejection> {
    let batch: Vec<_> = proofs
        .iter()
        .map(|&(_, k, p)| (prepared.get(k), &p.proof, &p.publics[..]))
        .collect();
    if committed::verify_batch(&batch, &mut rand::rngs::OsRng) {
        return None;
    }
    proofs
        .iter()
        .find(|&&(_, k, p)| !committed::verify(prepared.get(k), &p.proof, &p.publics))
        .map(|&(t, k, _)| Rejection::Proof {
            step: t,
            layer: vd.layers[k].name.clone(),
        })
}

/// The field element as a `u32`, if it is one.
fn small(f: F) -> Option<u32> {
    let limbs = f.into_bigint().0;
    if limbs[1..].iter().any(|&l| l != 0) {
        return None;
    }
    u32::try_from(limbs[0]).ok()
}
