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
//!
//! A single-pass model's bundle is one record, step 0, and states the input (or only its
//! commitment) and the output: the first layer's `input` public must be the input's
//! commitment, the last layer's `output` public the output's, and the links and proofs in
//! between are checked as a step's ([`verify_pass`]). A bundle of the other kind than the keys
//! is refused first.

use super::bundle::{planned_steps, Bundle, LayerProof, Pass, PassInput, StepProof};
use super::committed;
use super::encoding::DecodeError;
use super::keys::{PassTypes, PreparedKeys, VerifyingData};
use ark_ff::PrimeField;
use std::collections::HashMap;
use zkc_compiler::backend::layer::{public_value, Role};
use zkc_compiler::backend::{field, F};
use zkc_lang::TensorType;

/// The two kinds of model, as rejections name them.
pub const TOKEN_LOOP: &str = "token-loop";
pub const SINGLE_PASS: &str = "single-pass";

/// Why a bundle was rejected; the first failure found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the bundle is unreadable: {0}")]
    Malformed(DecodeError),
    #[error("the bundle is for model {bundle}; these keys are for model {keys}")]
    OtherModel { bundle: String, keys: String },
    #[error("the bundle proves a {bundle} model; these keys are for a {keys} model")]
    OtherKind {
        bundle: &'static str,
        keys: &'static str,
    },
    #[error("the bundle's {what} {problem}")]
    PassValues { what: &'static str, problem: String },
    #[error("a single-pass bundle holds one record of layer proofs; this one has {found}")]
    PassRecords { found: usize },
    #[error("layer `{layer}`: the input it proved is not {}", match .private {
        true => "the bundle's committed input (the commitments differ)",
        false => "the bundle's input (its commitment differs)",
    })]
    InputCommitment { layer: String, private: bool },
    #[error(
        "layer `{layer}`: the output it proved is not the bundle's output (its commitment differs)"
    )]
    OutputCommitment { layer: String },
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
    /// A single pass's input and output (`None` for a generation).
    pub pass: Option<VerifiedPass>,
}

/// What a valid single-pass bundle proves: the model computes `output` from `input`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPass {
    /// The input's integers, or, for a private input, the commitment the proofs were checked
    /// against (which says nothing about the integers to someone who cannot guess them).
    pub input: PassInput,
    pub output: Vec<i64>,
    /// The input's and output's types, from the keys.
    pub types: PassTypes,
}

impl VerifiedPass {
    /// The output as reals: each integer times the output's scale.
    pub fn output_reals(&self) -> Vec<f64> {
        let scale = self.types.output.scale.to_f64();
        self.output.iter().map(|&q| q as f64 * scale).collect()
    }

    /// The input as reals, when it is public.
    pub fn input_reals(&self) -> Option<Vec<f64>> {
        let scale = self.types.input.scale.to_f64();
        match &self.input {
            PassInput::Public(values) => Some(values.iter().map(|&q| q as f64 * scale).collect()),
            PassInput::Committed(_) => None,
        }
    }
}

/// Checks `bytes` (a bundle) against `vd`; `partial` accepts a prefix of the run. A single-pass
/// model's bundle is checked by [`verify_pass`]'s rules.
pub fn verify(vd: &VerifyingData, bytes: &[u8], partial: bool) -> Result<Verified, Rejection> {
    let mut bundle = Bundle::from_bytes(bytes).map_err(Rejection::Malformed)?;
    let kind = |single: bool| match single {
        true => SINGLE_PASS,
        false => TOKEN_LOOP,
    };
    if vd.pass.is_some() != bundle.pass.is_some() {
        return Err(Rejection::OtherKind {
            bundle: kind(bundle.pass.is_some()),
            keys: kind(vd.pass.is_some()),
        });
    }
    if bundle.model != vd.commitment {
        return Err(Rejection::OtherModel {
            bundle: bundle.model,
            keys: vd.commitment.clone(),
        });
    }
    if let (Some(types), Some(pass)) = (&vd.pass, bundle.pass.take()) {
        return verify_pass(vd, types, pass, &bundle.steps);
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
            let token = match bundle.prompt.get(t) {
                Some(&p) => p,
                None => outputs[t - 1],
            };
            let mut named: HashMap<&str, (F, Source)> = HashMap::new();
            named.insert("token", (field(token as i128), Source::Given));
            named.insert("pos", (field(t as i128), Source::Given));
            let wrong = |layer: &str, input: &str| Rejection::Link {
                step: t,
                layer: layer.to_string(),
                what: format!("input `{input}` is not what the step's earlier layers gave it"),
            };
            let last = link_step(
                vd,
                &stages,
                t,
                &step.layers,
                &mut named,
                &mut states,
                &mut proofs,
                &wrong,
            )?;
            let vocab = vd.vocabulary.as_ref().map_or(u64::MAX, |v| v.len() as u64);
            let output = last
                .iter()
                .find(|(name, _)| *name == "token")
                .and_then(|&(_, value)| small(value))
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
    first_failure(vd, &prepared, &proofs, walked)?;
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
        pass: None,
    })
}

/// A single pass (the keys' `types` say it is one): the bundle states the input (its integers,
/// or only their commitment) and the output's integers, of the types in the keys, and holds
/// one record, step 0, with a proof per layer. The first layer's `input` public must be the
/// input's commitment (`backend::layer::public_value` of the integers, or the commitment as
/// given); every other input links to an earlier layer's output as in a step; the last layer's
/// `output` public must be the output's commitment; every proof verifies.
fn verify_pass(
    vd: &VerifyingData,
    types: &PassTypes,
    pass: Pass,
    steps: &[StepProof],
) -> Result<Verified, Rejection> {
    let private = matches!(pass.input, PassInput::Committed(_));
    let input = match &pass.input {
        PassInput::Public(values) => {
            check_values("input", values, &types.input)?;
            public_value(&types.input, values)
        }
        PassInput::Committed(c) => *c,
    };
    check_values("output", &pass.output, &types.output)?;
    let output = public_value(&types.output, &pass.output);
    let [step] = steps else {
        return Err(Rejection::PassRecords { found: steps.len() });
    };
    if step.step != 0 {
        return Err(Rejection::StepOrder {
            record: 0,
            found: step.step,
        });
    }
    let prepared = vd.prepared();
    let stages = vd.stages();
    let mut states: Vec<Vec<F>> = vec![Vec::new(); stages.len()];
    let mut proofs = Vec::with_capacity(stages.len());
    let mut named: HashMap<&str, (F, Source)> = HashMap::new();
    named.insert("input", (input, Source::Given));
    let wrong = |layer: &str, _: &str| Rejection::InputCommitment {
        layer: layer.to_string(),
        private,
    };
    let walked = link_step(
        vd,
        &stages,
        0,
        &step.layers,
        &mut named,
        &mut states,
        &mut proofs,
        &wrong,
    )
    .and_then(
        |last| match last.iter().find(|(name, _)| *name == "output") {
            Some(&(_, value)) if value == output => Ok(()),
            _ => Err(Rejection::OutputCommitment {
                layer: vd.layers.last().map_or(String::new(), |l| l.name.clone()),
            }),
        },
    );
    first_failure(vd, &prepared, &proofs, walked)?;
    Ok(Verified {
        prompt: Vec::new(),
        generated: Vec::new(),
        steps: 1,
        proofs: stages.len(),
        complete: true,
        pass: Some(VerifiedPass {
            input: pass.input,
            output: pass.output,
            types: types.clone(),
        }),
    })
}

/// Refuses a single pass's stated `values` unless they are `ty`'s count of integers of its
/// dtype (`what`: `input` or `output`).
fn check_values(what: &'static str, values: &[i64], ty: &TensorType) -> Result<(), Rejection> {
    let expected: usize = ty.shape.iter().product();
    let problem = match values.iter().position(|&v| !ty.dtype.contains(v as i128)) {
        _ if values.len() != expected => format!(
            "has {} values; the model's `{ty}` has {expected}",
            values.len()
        ),
        Some(i) => format!("value {i}, {}, does not fit `{ty}`", values[i]),
        None => return Ok(()),
    };
    Err(Rejection::PassValues { what, problem })
}

/// Where a value a step's layers read by name comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// The statement: a step's `token` and `pos`, a single pass's input.
    Given,
    /// An earlier layer's output (a later output of the same name replaces it).
    Layer,
}

/// Checks one step's links (`layers`: one proof per stage, step `t`) and sets its proofs aside
/// in `proofs`: each proof names a layer of its stage whose bucket holds position `t`, with that
/// layer's count of public inputs; every input equals what `named` holds under its name (a
/// given value that differs is `wrong_given(layer, input)`'s rejection, any other a link's);
/// each state before is `states[s]`, which then becomes the state after; each output is added
/// to `named`. Returns the last stage's outputs by name.
#[allow(clippy::too_many_arguments)]
fn link_step<'v, 'b>(
    vd: &'v VerifyingData,
    stages: &[Vec<usize>],
    t: usize,
    layers: &'b [LayerProof],
    named: &mut HashMap<&'v str, (F, Source)>,
    states: &mut [Vec<F>],
    proofs: &mut Vec<(usize, usize, &'b LayerProof)>,
    wrong_given: &dyn Fn(&str, &str) -> Rejection,
) -> Result<Vec<(&'v str, F)>, Rejection> {
    if layers.len() != stages.len() {
        return Err(Rejection::LayerCount {
            step: t,
            found: layers.len(),
            expected: stages.len(),
        });
    }
    let mut last = Vec::new();
    for (s, (stage, proof)) in stages.iter().zip(layers).enumerate() {
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
        last.clear();
        for (public, &value) in key.publics.iter().zip(&proof.publics) {
            match public.role {
                Role::Input => match named.get(public.name.as_str()) {
                    Some(&(want, _)) if want == value => {}
                    Some((_, Source::Given)) => return Err(wrong_given(&key.name, &public.name)),
                    Some((_, Source::Layer)) => {
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
                    named.insert(public.name.as_str(), (value, Source::Layer));
                    last.push((public.name.as_str(), value));
                }
            }
        }
        proofs.push((t, k, proof));
        states[s] = after;
    }
    Ok(last)
}

/// The first failure in step and stage order: a proof among `proofs` (those before the walk
/// stopped) that does not verify, else the walk's own failure.
fn first_failure(
    vd: &VerifyingData,
    prepared: &PreparedKeys,
    proofs: &[(usize, usize, &LayerProof)],
    walked: Result<(), Rejection>,
) -> Result<(), Rejection> {
    match (bad_proof(vd, prepared, proofs), walked) {
        (Some(bad), _) => Err(bad),
        (None, walked) => walked,
    }
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
