//! The integer interpreter: executes an IR module with `zkc_lang::semantics` (the one definition
//! of every op) and records every SSA value, which is the witness the circuits will prove.
//!
//! [`Interpreter`] runs single layers; [`ModelRunner`] drives a whole model one token per step by
//! the model interface of `docs/quantization.md`, carrying the KV-cache state between steps;
//! [`SinglePass`] runs a model without a token loop once per input ([`input`] reads it from
//! EZKL's `input.json`). [`ModelKind::of`] says which of the two a module is.

pub mod input;
mod model;
mod pass;

pub use model::{layers_at_step_zero, ModelKind, ModelRunner, Step};
pub use pass::{Pass, SinglePass};

use thiserror::Error;
use zkc_lang::semantics::{self as sem, SemanticsError, Tensor};
use zkc_lang::{ConstData, DType, Inst, Layer, Module, Multiplier, Op, Operand, ValueDef};

#[derive(Debug, Error)]
pub enum InterpError {
    #[error("layer `{layer}`, `%{value}` ({op}): {source}")]
    Op {
        layer: String,
        value: String,
        op: &'static str,
        #[source]
        source: SemanticsError,
    },
    /// A result past its type: this input drives the model beyond the range it was calibrated for.
    #[error("{0}")]
    OutOfRange(Box<OutOfRange>),
    #[error("constant `@{0}` has no data (`extern`): run the artifact that carries it")]
    MissingData(String),
    #[error("layer `{layer}` expects {expected} {what}, got {got}")]
    Arity {
        layer: String,
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("layer `{layer}`: input `%{input}` is {problem}")]
    Input {
        layer: String,
        input: String,
        problem: String,
    },
    /// The module does not follow the model interface (docs/quantization.md); `layer` names
    /// the layer at fault when one is.
    #[error("{problem}")]
    Interface {
        layer: Option<String>,
        problem: String,
    },
}

/// Which value left its type, and by how much (boxed in [`InterpError`], which stays small).
#[derive(Debug, Error)]
#[error(
    "layer `{layer}`, `%{value}` ({op}): the value {got} (real {real:.4}) does not fit {dtype} \
     (real ±{limit:.4} at scale {scale:e}): this input goes {factor:.2}x past the range the \
     model was compiled for. Recompile with `--margin` {factor:.2}x larger, calibrate on text \
     like this input (`--calibrate FILE`), or widen this value's role (`--bits ROLE=32`)"
)]
pub struct OutOfRange {
    pub layer: String,
    pub value: String,
    pub op: &'static str,
    pub got: i128,
    pub dtype: DType,
    pub real: f64,
    pub limit: f64,
    pub scale: f64,
    pub factor: f64,
}

/// The error of `inst` failing with `source`: a result past its type says by how much.
fn op_error(layer: &Layer, inst: &Inst, source: SemanticsError) -> InterpError {
    let result = layer.value(inst.results[0]);
    match source {
        SemanticsError::Overflow { value, dtype } => {
            let scale = result.ty.scale.to_f64();
            let limit = if value < 0 { dtype.min() } else { dtype.max() } as f64;
            InterpError::OutOfRange(Box::new(OutOfRange {
                layer: layer.name.clone(),
                value: result.name.clone(),
                op: inst.op.name(),
                got: value,
                dtype,
                real: value as f64 * scale,
                limit: limit.abs() * scale,
                scale,
                factor: value as f64 / limit,
            }))
        }
        source => InterpError::Op {
            layer: layer.name.clone(),
            value: result.name.clone(),
            op: inst.op.name(),
            source,
        },
    }
}

/// A validated module with its constants as tensors.
pub struct Interpreter {
    module: Module,
    consts: Vec<Tensor>,
}

/// Everything one layer computed: every SSA value, by `ValueId` (the witness).
#[derive(Clone, Debug)]
pub struct LayerRun {
    /// The module layer that ran (which bucket, for a stage with several).
    pub layer: usize,
    pub values: Vec<Tensor>,
}

impl Interpreter {
    /// Takes the module's constant data (so a large model is held once); the module must be
    /// valid (`zkc_lang::validate`).
    pub fn new(mut module: Module) -> Result<Interpreter, InterpError> {
        let mut consts = Vec::with_capacity(module.consts.len());
        for c in &mut module.consts {
            let ConstData::Inline(data) = std::mem::replace(&mut c.data, ConstData::Extern) else {
                return Err(InterpError::MissingData(c.name.clone()));
            };
            let tensor =
                Tensor::new(c.ty.shape.clone(), data).map_err(|source| InterpError::Op {
                    layer: "(constants)".into(),
                    value: c.name.clone(),
                    op: "const",
                    source,
                })?;
            consts.push(tensor);
        }
        Ok(Interpreter { module, consts })
    }

    /// The module (its constants' data now lives in the interpreter).
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// Each constant's data, by `ConstId`: what the circuits read ([`Tables::with_constants`]).
    ///
    /// [`Tables::with_constants`]: zkc_compiler::backend::layer::Tables::with_constants
    pub fn constants(&self) -> Vec<&[i64]> {
        self.consts.iter().map(Tensor::data).collect()
    }

    /// Runs layer `index` on its inputs and states (in declaration order).
    pub fn run_layer(
        &self,
        index: usize,
        inputs: Vec<Tensor>,
        states: Vec<Tensor>,
    ) -> Result<LayerRun, InterpError> {
        let layer = &self.module.layers[index];
        let arity = |what, expected: usize, got: usize| {
            if expected == got {
                Ok(())
            } else {
                Err(InterpError::Arity {
                    layer: layer.name.clone(),
                    what,
                    expected,
                    got,
                })
            }
        };
        arity("inputs", layer.inputs.len(), inputs.len())?;
        arity("states", layer.states.len(), states.len())?;
        let mut values: Vec<Option<Tensor>> = vec![None; layer.values.len()];
        let n_inputs = layer.inputs.len();
        for (k, (&v, t)) in layer
            .inputs
            .iter()
            .chain(&layer.states)
            .zip(inputs.into_iter().chain(states))
            .enumerate()
        {
            let ty = &layer.value(v).ty;
            // States come from this layer's own `kv_append` of checked values; inputs are checked.
            let in_range = k >= n_inputs || t.data().iter().all(|&x| ty.dtype.contains(x as i128));
            let fits = t.shape() == ty.shape.as_slice() && in_range;
            if !fits {
                let problem = format!("not a `{ty}` (shape {:?})", t.shape());
                return Err(InterpError::Input {
                    layer: layer.name.clone(),
                    input: layer.value(v).name.clone(),
                    problem,
                });
            }
            values[v.index()] = Some(t);
        }
        for inst in &layer.insts {
            let results = self
                .eval(layer, inst, &values)
                .map_err(|source| op_error(layer, inst, source))?;
            for (&r, t) in inst.results.iter().zip(results) {
                values[r.index()] = Some(t);
            }
        }
        Ok(LayerRun {
            layer: index,
            values: values
                .into_iter()
                .map(|v| v.expect("valid layers define every value"))
                .collect(),
        })
    }

    fn eval(
        &self,
        layer: &Layer,
        inst: &Inst,
        values: &[Option<Tensor>],
    ) -> Result<Vec<Tensor>, SemanticsError> {
        let arg = |k: usize| match inst.args[k] {
            Operand::Value(v) => values[v.index()].as_ref().expect("defined before use"),
            Operand::Const(c) => &self.consts[c.index()],
        };
        let out = layer.value(inst.results[0]).ty.dtype;
        let one = |t: Result<Tensor, SemanticsError>| t.map(|t| vec![t]);
        match &inst.op {
            Op::Linear => one(sem::linear(
                arg(0),
                arg(1),
                (inst.args.len() == 3).then(|| arg(2)),
                out,
            )),
            Op::MatMul => one(sem::matmul(arg(0), arg(1), out)),
            Op::Add => one(sem::add(arg(0), arg(1), out)),
            Op::Sub => one(sem::sub(arg(0), arg(1), out)),
            Op::Mul => one(sem::mul(arg(0), arg(1), out)),
            Op::Requant { mult, shift } => match mult {
                Multiplier::Uniform(m) => {
                    one(sem::requant(arg(0), &Tensor::scalar(*m), *shift, out))
                }
                Multiplier::PerChannel(c) => {
                    one(sem::requant(arg(0), &self.consts[c.index()], *shift, out))
                }
            },
            Op::Clamp { lo, hi } => one(sem::clamp(arg(0), *lo, *hi, out)),
            Op::Reshape { shape } => one(sem::reshape(arg(0), shape)),
            Op::Transpose { perm } => one(sem::transpose(arg(0), perm)),
            Op::Split { axis } => sem::split(arg(0), *axis, inst.results.len()),
            Op::Concat { axis } => one(sem::concat(
                &(0..inst.args.len()).map(arg).collect::<Vec<_>>(),
                *axis,
            )),
            Op::Softmax { ln2, b, c, shift } => one(sem::softmax(
                arg(0),
                (inst.args.len() == 2).then(|| arg(1)),
                [*ln2, *b, *c],
                *shift,
                out,
            )),
            Op::LayerNorm { eps, shift } => {
                one(sem::layernorm(arg(0), arg(1), arg(2), *eps, *shift, out))
            }
            Op::RmsNorm { eps, shift } => one(sem::rmsnorm(arg(0), arg(1), *eps, *shift, out)),
            // silu is gelu's integer function with SiLU's fitted coefficients.
            Op::Gelu(attrs) | Op::Silu(attrs) => one(sem::gelu(arg(0), arg(1), *attrs, out)),
            Op::Argmax => one(sem::argmax(arg(0), out)),
            Op::ArgmaxCarry { offset } => {
                sem::argmax_carry(arg(0), arg(1), arg(2), *offset).map(|(b, t)| vec![b, t])
            }
            Op::Gather => one(sem::gather(arg(0), arg(1))),
            Op::KvAppend => one(sem::kv_append(arg(0), arg(1), arg(2))),
        }
    }
}

impl LayerRun {
    /// The layer's outputs, in `return` order.
    pub fn outputs<'r>(&'r self, layer: &Layer) -> Vec<&'r Tensor> {
        layer
            .outputs
            .iter()
            .map(|v| &self.values[v.index()])
            .collect()
    }

    /// Each state after the step: the result of the `kv_append` that reads it.
    pub fn states_after(&self, layer: &Layer) -> Vec<Tensor> {
        state_results(layer)
            .map(|v| self.values[v].clone())
            .collect()
    }

    /// [`LayerRun::states_after`], moving the caches out instead of copying them.
    pub fn into_states_after(mut self, layer: &Layer) -> Vec<Tensor> {
        state_results(layer)
            .map(|v| std::mem::replace(&mut self.values[v], Tensor::scalar(0)))
            .collect()
    }
}

/// The value index of each state's `kv_append` result.
fn state_results(layer: &Layer) -> impl Iterator<Item = usize> + '_ {
    layer.states.iter().map(move |&s| {
        let append = layer
            .insts
            .iter()
            .find(|i| i.op == Op::KvAppend && i.args[0] == Operand::Value(s))
            .expect("valid layers append every state");
        append.results[0].index()
    })
}

/// A zero tensor of a value's type (the empty KV cache).
pub(crate) fn zeros(layer: &Layer, v: zkc_lang::ValueId) -> Tensor {
    let shape = layer.value(v).ty.shape.clone();
    let n = shape.iter().product();
    debug_assert!(matches!(layer.value(v).def, ValueDef::State(_)));
    Tensor::new(shape, vec![0; n]).expect("shape and data agree")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interp(text: &str) -> Interpreter {
        let parsed = zkc_lang::check(text).unwrap_or_else(|(e, _)| panic!("{e:?}"));
        Interpreter::new(parsed.module).unwrap()
    }

    const LAYER: &str = "zkir 1

const @w: i8[2, 2] * 2^-4 = [16, 0, 0, 16]

layer l(%x: i8[1, 2] * 2^-4) {
  %acc = linear %x, @w : i32[1, 2] * 2^-8
  %y = requant %acc, mult=3, shift=4 : i8[1, 2] * 2^-4
  return %y
}
";

    #[test]
    fn runs_a_layer_and_records_every_value() {
        let i = interp(LAYER);
        let x = Tensor::new(vec![1, 2], vec![5, -7]).unwrap();
        let run = i.run_layer(0, vec![x.clone()], vec![]).unwrap();
        assert_eq!(run.values[0], x);
        assert_eq!(run.values[1].data(), &[80, -112]);
        // 80 * 3 / 16 = 15, -112 * 3 / 16 = -21
        assert_eq!(run.outputs(&i.module().layers[0])[0].data(), &[15, -21]);
    }

    #[test]
    fn an_activation_that_does_not_fit_is_an_error_naming_it() {
        let i = interp(LAYER);
        let x = Tensor::new(vec![1, 2], vec![100, 0]).unwrap();
        let err = i.run_layer(0, vec![x], vec![]).unwrap_err().to_string();
        assert_eq!(
            err,
            "layer `l`, `%y` (requant): the value 300 (real 18.7500) does not fit i8 (real ±7.9375 \
             at scale 6.25e-2): this input goes 2.36x past the range the model was compiled for. \
             Recompile with `--margin` 2.36x larger, calibrate on text like this input \
             (`--calibrate FILE`), or widen this value's role (`--bits ROLE=32`)"
        );
    }

    #[test]
    fn inputs_are_checked_against_their_types() {
        let i = interp(LAYER);
        let err = i
            .run_layer(
                0,
                vec![Tensor::new(vec![1, 2], vec![500, 0]).unwrap()],
                vec![],
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("input `%x` is not a `i8[1, 2] * 2^-4`"),
            "{err}"
        );
        assert!(i
            .run_layer(0, vec![], vec![])
            .unwrap_err()
            .to_string()
            .contains("expects 1 inputs, got 0"));
    }

    #[test]
    fn extern_constants_cannot_run() {
        let text = LAYER.replace("[16, 0, 0, 16]", "extern");
        let parsed = zkc_lang::check(&text).unwrap_or_else(|(e, _)| panic!("{e:?}"));
        let err = Interpreter::new(parsed.module).err().unwrap().to_string();
        assert!(err.contains("`@w` has no data"), "{err}");
    }
}
