//! A whole model, one token per step, by the model interface: stages in module order (each step
//! runs, per stage, the smallest context bucket holding its position: `zkc_lang::buckets`),
//! inputs `token` and `pos` from the step, other inputs from same-named outputs of earlier
//! layers; the last stage's layers return `token`, and the logits are `%logits` (or its
//! vocabulary slices). [`ModelKind::of`] tells this kind from the single pass (`super::pass`).

use super::pass::{self, SinglePass};
use super::{zeros, InterpError, Interpreter, LayerRun};
use std::collections::HashMap;
use zkc_lang::semantics::Tensor;
use zkc_lang::{DType, Module, Stage, TensorType, ValueId};

/// Which of the two model interfaces of docs/quantization.md a module follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// One token per step ([`ModelRunner`]): layers take `token` and `pos`, blocks carry KV
    /// caches, the last stage returns `%token`.
    TokenLoop,
    /// One run per input ([`SinglePass`]): no `token`, `pos` or states; the first layer takes
    /// `%input`, the last returns `%output`.
    SinglePass {
        input: TensorType,
        output: TensorType,
    },
}

impl ModelKind {
    /// The kind `module` is, checking it follows that kind's interface. A module with states,
    /// a `token` or `pos` input, or a last layer returning `token` is held to the token loop's
    /// rules; any other to the single pass's. The error names the layer at fault.
    pub fn of(module: &Module) -> Result<ModelKind, InterpError> {
        let looped = module.layers.iter().any(|l| {
            !l.states.is_empty()
                || l.inputs
                    .iter()
                    .any(|&v| matches!(l.value(v).name.as_str(), "token" | "pos"))
        }) || module
            .layers
            .last()
            .is_some_and(|l| l.outputs.iter().any(|&o| l.value(o).name == "token"));
        if looped {
            interface(module)?;
            return Ok(ModelKind::TokenLoop);
        }
        let (input, output) = pass::interface(module)?;
        Ok(ModelKind::SinglePass { input, output })
    }
}

/// One generation: the interpreter, each stage's KV state, and the next position.
pub struct ModelRunner<'i> {
    interp: &'i Interpreter,
    stages: Vec<Stage>,
    /// Per stage, its caches at the slot count of the bucket that last ran (zeros before).
    states: Vec<Vec<Tensor>>,
    /// Run every stage in its bucket of this context instead of the smallest that fits.
    bucket: Option<usize>,
    /// The layers a step may run (those with keys, when proving), by module layer.
    allowed: Vec<bool>,
    position: usize,
    /// The largest position + 1 the KV caches hold.
    context: usize,
    /// Per module layer, its logits (or a slice of them), if it holds them.
    logits: Vec<Option<usize>>,
}

/// What one step computed.
pub struct Step {
    /// The greedy next token.
    pub token: u32,
    /// The logits (integers) and the real value of one unit.
    pub logits: Vec<i64>,
    pub logit_scale: f64,
    /// Per stage, the module layer that ran (which bucket).
    pub layers: Vec<usize>,
    /// Every layer's witness, when recorded.
    pub witness: Option<Vec<LayerRun>>,
}

/// Checks that `module` follows the model interface; returns, per module layer, its logits
/// value if it has one: `%logits`, or a slice of the vocabulary's `%logits.vocabK`
/// (`compiler::parts::slice_vocabulary`), which a step concatenates in module order.
fn interface(module: &Module) -> Result<Vec<Option<usize>>, InterpError> {
    let bad = |layer: Option<&str>, m: String| InterpError::Interface {
        layer: layer.map(String::from),
        problem: format!("{m} (see docs/quantization.md)"),
    };
    let stages = module.stages();
    let last = stages
        .last()
        .ok_or_else(|| bad(None, "the module has no layers".into()))?;
    for &l in &last.layers {
        let head = &module.layers[l];
        let returns_token = head.outputs.iter().any(|&o| {
            head.value(o).name == "token" && head.value(o).ty == TensorType::index(DType::I32)
        });
        if !returns_token {
            return Err(bad(
                Some(&head.name),
                format!("layer `{}` does not return `%token: i32[]`", head.name),
            ));
        }
    }
    let logits: Vec<Option<usize>> = module
        .layers
        .iter()
        .map(|layer| {
            layer.values.iter().position(|v| {
                v.name == "logits"
                    || v.name
                        .strip_prefix("logits.vocab")
                        .is_some_and(|k| k.parse::<usize>().is_ok())
            })
        })
        .collect();
    let head = &module.layers[last.layers[0]];
    match last.layers.iter().any(|&l| logits[l].is_some()) {
        true => Ok(logits),
        false => Err(bad(
            Some(&head.name),
            format!("layer `{}` has no value `%logits`", head.name),
        )),
    }
}

impl<'i> ModelRunner<'i> {
    pub fn new(interp: &'i Interpreter) -> Result<ModelRunner<'i>, InterpError> {
        let module = interp.module();
        if let ModelKind::SinglePass { .. } = ModelKind::of(module)? {
            return Err(InterpError::Interface {
                layer: None,
                problem: "this is a single-pass model (its first layer takes `%input`, its last \
                          returns `%output`): it runs once per input (`--input input.json`), \
                          not token by token"
                    .into(),
            });
        }
        let logits = interface(module)?;
        let stages = module.stages();
        let states: Vec<Vec<Tensor>> = stages
            .iter()
            .map(|s| {
                let l = &module.layers[s.layers[0]];
                l.states.iter().map(|&v| zeros(l, v)).collect()
            })
            .collect();
        let mut runner = ModelRunner {
            interp,
            stages,
            states,
            bucket: None,
            allowed: vec![true; module.layers.len()],
            position: 0,
            context: 0,
            logits,
        };
        runner.context = runner.largest_context();
        Ok(runner)
    }

    /// Runs every stage with caches in its bucket of `context` (which must be one of each such
    /// stage's), whatever the position: what setup needs to synthesize each bucket's circuits.
    pub fn in_bucket(mut self, context: usize) -> Self {
        self.bucket = Some(context);
        self
    }

    /// Runs only the layers `allowed` says (a stage's other buckets are skipped, a step taking
    /// the smallest allowed bucket that holds it): proving with keys for some buckets.
    pub fn only(mut self, allowed: &dyn Fn(usize) -> bool) -> Self {
        self.allowed = (0..self.allowed.len()).map(allowed).collect();
        self.context = self.largest_context();
        self
    }

    /// The smallest, over stages with caches, of the largest allowed bucket.
    fn largest_context(&self) -> usize {
        let module = self.interp.module();
        self.stages
            .iter()
            .filter(|s| s.context(module).is_some())
            .map(|s| {
                s.layers
                    .iter()
                    .filter(|&&l| self.allowed[l])
                    .filter_map(|&l| module.layers[l].context())
                    .max()
                    .unwrap_or(0)
            })
            .min()
            .unwrap_or(usize::MAX)
    }

    pub fn position(&self) -> usize {
        self.position
    }

    pub fn context(&self) -> usize {
        self.context
    }

    /// Runs every layer for `token` at the next position.
    pub fn step(&mut self, token: u32, record: bool) -> Result<Step, InterpError> {
        let module = self.interp.module();
        let mut env: HashMap<&str, Tensor> = HashMap::new();
        env.insert("token", Tensor::scalar(token as i64));
        env.insert("pos", Tensor::scalar(self.position as i64));
        let mut witness = Vec::new();
        let mut logits = Vec::new();
        let mut logit_scale = 0.0;
        let mut layers = Vec::with_capacity(self.stages.len());
        for (k, stage) in self.stages.iter().enumerate() {
            let index = match self.bucket {
                Some(c) => stage.layers.iter().copied().find(|&l| {
                    module.layers[l]
                        .context()
                        .is_none_or(|context| context == c)
                }),
                None => stage.layers.iter().copied().find(|&l| {
                    self.allowed[l]
                        && module.layers[l]
                            .context()
                            .is_none_or(|context| self.position < context)
                }),
            }
            .ok_or_else(|| InterpError::Interface {
                layer: None,
                problem: format!(
                    "stage `{}` has no bucket for position {}",
                    stage.name, self.position
                ),
            })?;
            layers.push(index);
            let layer = &module.layers[index];
            let inputs = layer
                .inputs
                .iter()
                .map(|&v| {
                    let name = layer.value(v).name.as_str();
                    env.get(name).cloned().ok_or_else(|| InterpError::Input {
                        layer: layer.name.clone(),
                        input: name.to_string(),
                        problem: "neither `token`, `pos` nor an output of an earlier layer".into(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let states = std::mem::take(&mut self.states[k])
                .into_iter()
                .zip(&layer.states)
                .map(|(t, &v)| resized(t, &layer.value(v).ty.shape))
                .collect();
            let run = self.interp.run_layer(index, inputs, states)?;
            for (&o, t) in layer.outputs.iter().zip(run.outputs(layer)) {
                env.insert(layer.value(o).name.as_str(), t.clone());
            }
            if let Some(v) = self.logits[index] {
                logits.extend_from_slice(run.values[v].data());
                logit_scale = layer.value(ValueId(v as u32)).ty.scale.to_f64();
            }
            self.states[k] = if record {
                let states = run.states_after(layer);
                witness.push(run);
                states
            } else {
                run.into_states_after(layer)
            };
        }
        let next = env["token"]
            .as_index()
            .expect("the interface checked `token: i32[]`");
        self.position += 1;
        Ok(Step {
            token: next as u32,
            logits,
            logit_scale,
            layers,
            witness: record.then_some(witness),
        })
    }

    /// Greedy generation: feeds `prompt`, then up to `max_new` chosen tokens (stopping when the
    /// context is full). Returns the generated tokens and the last step.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        max_new: usize,
    ) -> Result<(Vec<u32>, Option<Step>), InterpError> {
        let mut last = None;
        for &t in prompt {
            last = Some(self.step(t, false)?);
        }
        let mut generated = Vec::new();
        while let Some(step) = &last {
            if generated.len() == max_new {
                break;
            }
            generated.push(step.token);
            if generated.len() == max_new || self.position >= self.context {
                break;
            }
            last = Some(self.step(step.token, false)?);
        }
        Ok((generated, last))
    }
}

/// A cache at another slot count (`shape`): slots past the old count are zeros; a smaller count
/// drops slots, which hold zeros past the position (the caches before a step are zero there).
fn resized(cache: Tensor, shape: &[usize]) -> Tensor {
    if cache.shape() == shape {
        return cache;
    }
    let n: usize = shape.iter().product();
    let mut data = cache.data().to_vec();
    data.resize(n, 0);
    Tensor::new(shape.to_vec(), data).expect("shape and data agree")
}

/// A witness of step 0 for each layer of the module that `wanted` names, each bucket included
/// (a bucket runs step 0 like any other position): what setup and `--emit stats --exact`
/// synthesize circuits from, whose shape does not depend on the values. Indexed by module
/// layer; `None` for layers not wanted. Only the buckets of wanted layers run (a stateless
/// stage runs in whichever does), and only wanted layers' records are kept: setting up one
/// bucket of gpt2-small at context 1024 no longer runs and holds all seven. A single-pass
/// model runs once, on an input of zeros.
pub fn layers_at_step_zero(
    interp: &Interpreter,
    wanted: &dyn Fn(usize) -> bool,
) -> Result<Vec<Option<LayerRun>>, InterpError> {
    let module = interp.module();
    if let ModelKind::SinglePass { input, .. } = ModelKind::of(module)? {
        let zeros = Tensor::new(input.shape.clone(), vec![0; input.shape.iter().product()])
            .expect("shape and data agree");
        let witness = SinglePass::new(interp)?
            .run(zeros, true)?
            .witness
            .expect("recorded");
        let mut runs: Vec<Option<LayerRun>> = vec![None; module.layers.len()];
        for run in witness.into_iter().filter(|r| wanted(r.layer)) {
            let slot = run.layer;
            runs[slot] = Some(run);
        }
        return Ok(runs);
    }
    let mut contexts: Vec<usize> = module
        .layers
        .iter()
        .enumerate()
        .filter(|&(index, _)| wanted(index))
        .filter_map(|(_, l)| l.context())
        .collect();
    contexts.sort_unstable();
    contexts.dedup();
    if contexts.is_empty() {
        // Stateless layers only: any bucket runs them (the smallest is the cheapest).
        contexts.extend(module.contexts().first());
    }
    let mut runs: Vec<Option<LayerRun>> = vec![None; module.layers.len()];
    let mut collect = |witness: Vec<LayerRun>| {
        for run in witness.into_iter().filter(|r| wanted(r.layer)) {
            let slot = &mut runs[run.layer];
            slot.get_or_insert(run);
        }
    };
    match contexts.is_empty() {
        true => collect(
            ModelRunner::new(interp)?
                .step(0, true)?
                .witness
                .expect("recorded"),
        ),
        false => {
            for c in contexts {
                let mut runner = ModelRunner::new(interp)?.in_bucket(c);
                collect(runner.step(0, true)?.witness.expect("recorded"));
            }
        }
    }
    Ok(runs)
}
