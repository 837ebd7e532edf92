//! A whole model, one token per step, by the model interface: layers in module order, inputs
//! `token` and `pos` from the step, other inputs from same-named outputs of earlier layers; the
//! last layer returns `token` and holds `logits`.

use super::{zeros, InterpError, Interpreter, LayerRun};
use std::collections::HashMap;
use zkc_lang::semantics::Tensor;
use zkc_lang::{DType, Module, TensorType};

/// One generation: the interpreter, each layer's KV state, and the next position.
pub struct ModelRunner<'i> {
    interp: &'i Interpreter,
    states: Vec<Vec<Tensor>>,
    position: usize,
    /// The largest position + 1 the KV caches hold.
    context: usize,
    logits: (usize, usize),
}

/// What one step computed.
pub struct Step {
    /// The greedy next token.
    pub token: u32,
    /// The logits (integers) and the real value of one unit.
    pub logits: Vec<i64>,
    pub logit_scale: f64,
    /// Every layer's witness, when recorded.
    pub witness: Option<Vec<LayerRun>>,
}

/// Checks that `module` follows the model interface; returns the last layer's `logits` value.
fn interface(module: &Module) -> Result<(usize, usize), InterpError> {
    let bad = |m: String| InterpError::Interface(format!("{m} (see docs/quantization.md)"));
    let last = module
        .layers
        .len()
        .checked_sub(1)
        .ok_or_else(|| bad("the module has no layers".into()))?;
    let head = &module.layers[last];
    let logits = head
        .values
        .iter()
        .position(|v| v.name == "logits")
        .ok_or_else(|| bad(format!("layer `{}` has no value `%logits`", head.name)))?;
    let returns_token = head.outputs.iter().any(|&o| {
        head.value(o).name == "token" && head.value(o).ty == TensorType::index(DType::I32)
    });
    if !returns_token {
        return Err(bad(format!(
            "layer `{}` does not return `%token: i32[]`",
            head.name
        )));
    }
    Ok((last, logits))
}

impl<'i> ModelRunner<'i> {
    pub fn new(interp: &'i Interpreter) -> Result<ModelRunner<'i>, InterpError> {
        let module = interp.module();
        let logits = interface(module)?;
        let states: Vec<Vec<Tensor>> = module
            .layers
            .iter()
            .map(|l| l.states.iter().map(|&s| zeros(l, s)).collect())
            .collect();
        let context = module
            .layers
            .iter()
            .flat_map(|l| l.states.iter().map(move |&s| l.value(s).ty.shape[0]))
            .min()
            .unwrap_or(usize::MAX);
        Ok(ModelRunner {
            interp,
            states,
            position: 0,
            context,
            logits,
        })
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
        for (index, layer) in module.layers.iter().enumerate() {
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
            let run =
                self.interp
                    .run_layer(index, inputs, std::mem::take(&mut self.states[index]))?;
            for (&o, t) in layer.outputs.iter().zip(run.outputs(layer)) {
                env.insert(layer.value(o).name.as_str(), t.clone());
            }
            if index == self.logits.0 {
                logits = run.values[self.logits.1].data().to_vec();
            }
            self.states[index] = if record {
                let states = run.states_after(layer);
                witness.push(run);
                states
            } else {
                run.into_states_after(layer)
            };
        }
        let (layer, value) = self.logits;
        let logits_ty = &module.layers[layer].values[value].ty;
        let next = env["token"]
            .as_index()
            .expect("the interface checked `token: i32[]`");
        self.position += 1;
        Ok(Step {
            token: next as u32,
            logits,
            logit_scale: logits_ty.scale.to_f64(),
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
