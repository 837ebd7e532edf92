//! A single-pass model (docs/quantization.md, "The model interface"): no token loop and no
//! state. Its layers run once, in module order: the first takes the model's input `%input`,
//! every other input is the same-named output of an earlier layer, and the last layer returns
//! `%output`. An ONNX network compiles into one; so does IR text written that way.

use super::{InterpError, Interpreter, LayerRun};
use std::collections::{HashMap, HashSet};
use zkc_lang::semantics::Tensor;
use zkc_lang::{Layer, Module, TensorType};

/// Runs a single-pass module, one input at a time.
pub struct SinglePass<'i> {
    interp: &'i Interpreter,
    input: TensorType,
    output: TensorType,
}

/// What one run computed.
pub struct Pass {
    /// `%output`'s integers (its type, with the scale that makes them reals, is
    /// [`SinglePass::output_type`]).
    pub output: Tensor,
    /// Every layer's witness, when recorded, in module order.
    pub witness: Option<Vec<LayerRun>>,
}

/// Checks that `module` is a single-pass model; returns the types of `%input` and `%output`.
/// Errors name the layer at fault and say what the interface asks.
pub(super) fn interface<'m>(module: &'m Module) -> Result<(TensorType, TensorType), InterpError> {
    let bad = |layer: &Layer, m: String| InterpError::Interface {
        layer: Some(layer.name.clone()),
        problem: format!("{m} (see docs/quantization.md, \"The model interface\")"),
    };
    let (Some(first), Some(last)) = (module.layers.first(), module.layers.last()) else {
        return Err(InterpError::Interface {
            layer: None,
            problem: "the module has no layers".into(),
        });
    };
    let names = |layer: &Layer| -> Vec<String> {
        (layer.inputs.iter())
            .map(|&v| format!("`%{}`", layer.value(v).name))
            .collect()
    };
    let input = match first.inputs[..] {
        [v] if first.value(v).name == "input" => first.value(v).ty.clone(),
        _ => {
            let takes = match names(first).join(", ") {
                n if n.is_empty() => "no input".to_string(),
                n => n,
            };
            return Err(bad(
                first,
                format!(
                    "layer `{}` takes {takes}: the first layer of a single-pass model takes one \
                     input, `%input`; a token-loop model's layers take `%token` and `%pos`, and \
                     its last layer returns `%token`",
                    first.name
                ),
            ));
        }
    };
    let outputs = |layer: &'m Layer| layer.outputs.iter().map(|&o| layer.value(o).name.as_str());
    let mut defined: HashSet<&str> = outputs(first).collect();
    for layer in &module.layers[1..] {
        for &v in &layer.inputs {
            let name = layer.value(v).name.as_str();
            if name == "input" {
                return Err(bad(
                    layer,
                    format!(
                        "layer `{}` takes `%input`: only the first layer of a single-pass model \
                         does; later layers take outputs of earlier layers",
                        layer.name
                    ),
                ));
            }
            if !defined.contains(name) {
                return Err(bad(
                    layer,
                    format!(
                        "layer `{}` takes `%{name}`, which no earlier layer returns",
                        layer.name
                    ),
                ));
            }
        }
        defined.extend(outputs(layer));
    }
    let output = (last.outputs.iter())
        .find(|&&o| last.value(o).name == "output")
        .ok_or_else(|| {
            bad(
                last,
                format!(
                    "layer `{}`, the last, does not return `%output`: a single-pass model's last \
                     layer returns `%output` (a token-loop model's returns `%token`)",
                    last.name
                ),
            )
        })?;
    Ok((input, last.value(*output).ty.clone()))
}

impl<'i> SinglePass<'i> {
    /// The runner of `interp`'s module, which must be a single-pass model.
    pub fn new(interp: &'i Interpreter) -> Result<SinglePass<'i>, InterpError> {
        let module = interp.module();
        let (input, output) = match super::ModelKind::of(module)? {
            super::ModelKind::SinglePass { input, output } => (input, output),
            super::ModelKind::TokenLoop => {
                return Err(InterpError::Interface {
                    layer: None,
                    problem: "this is a token-loop model (its layers take `%token` and `%pos`): \
                              it runs on tokens (`--tokens`, `--prompt`), not on an input file"
                        .into(),
                })
            }
        };
        Ok(SinglePass {
            interp,
            input,
            output,
        })
    }

    /// The type of `%input`: its dtype, shape and the scale its integers are read at.
    pub fn input_type(&self) -> &TensorType {
        &self.input
    }

    /// The type of `%output`, whose scale turns its integers into reals.
    pub fn output_type(&self) -> &TensorType {
        &self.output
    }

    /// Runs every layer on `input` (the integers of `%input`, checked against its type),
    /// recording every layer's values if `record`.
    pub fn run(&self, input: Tensor, record: bool) -> Result<Pass, InterpError> {
        let module = self.interp.module();
        let mut env: HashMap<&str, Tensor> = HashMap::new();
        env.insert("input", input);
        let mut witness = Vec::new();
        for (index, layer) in module.layers.iter().enumerate() {
            let inputs = (layer.inputs.iter())
                .map(|&v| {
                    let name = layer.value(v).name.as_str();
                    env.get(name).cloned().ok_or_else(|| InterpError::Input {
                        layer: layer.name.clone(),
                        input: name.to_string(),
                        problem: "neither `input` nor an output of an earlier layer".into(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let run = self.interp.run_layer(index, inputs, Vec::new())?;
            for (&o, t) in layer.outputs.iter().zip(run.outputs(layer)) {
                env.insert(layer.value(o).name.as_str(), t.clone());
            }
            if record {
                witness.push(run);
            }
        }
        let output = env
            .remove("output")
            .expect("the interface checked `%output`");
        Ok(Pass {
            output,
            witness: record.then_some(witness),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::ModelKind;

    fn module(text: &str) -> Module {
        zkc_lang::check(text)
            .unwrap_or_else(|(e, _)| panic!("{e:?}"))
            .module
    }

    const TWO_LAYERS: &str = "zkir 1

const @w: i8[2, 2] * 2^-4 = [16, 0, 0, -16]

layer first(%input: i8[1, 2] * 2^-4) {
  %acc = linear %input, @w : i32[1, 2] * 2^-8
  %h = requant %acc, mult=1, shift=4 : i8[1, 2] * 2^-4
  return %h
}

layer second(%h: i8[1, 2] * 2^-4) {
  %output = clamp %h, lo=0, hi=127 : i8[1, 2] * 2^-4
  return %output
}
";

    #[test]
    fn runs_each_layer_once_from_input_to_output() {
        let interp = Interpreter::new(module(TWO_LAYERS)).unwrap();
        let pass = SinglePass::new(&interp).unwrap();
        assert_eq!(pass.output_type().to_string(), "i8[1, 2] * 2^-4");
        let x = Tensor::new(vec![1, 2], vec![5, 7]).unwrap();
        let run = pass.run(x, true).unwrap();
        // [5, 7] -> [5, -7] -> relu [5, 0]
        assert_eq!(run.output.data(), &[5, 0]);
        let witness = run.witness.unwrap();
        assert_eq!(witness.iter().map(|r| r.layer).collect::<Vec<_>>(), [0, 1]);
        // An input of the wrong shape names the layer and the input.
        let err = pass
            .run(Tensor::new(vec![2], vec![1, 2]).unwrap(), false)
            .err()
            .unwrap();
        assert!(err.to_string().contains("`first`: input `%input`"), "{err}");
    }

    #[test]
    fn the_kind_is_recognised_and_setup_runs_it_on_zeros() {
        let interp = Interpreter::new(module(TWO_LAYERS)).unwrap();
        assert!(matches!(
            ModelKind::of(interp.module()).unwrap(),
            ModelKind::SinglePass { .. }
        ));
        let runs = crate::interp::layers_at_step_zero(&interp, &|l| l == 1).unwrap();
        assert!(runs[0].is_none());
        assert_eq!(runs[1].as_ref().unwrap().layer, 1);
        let err = crate::interp::ModelRunner::new(&interp).err().unwrap();
        assert!(err.to_string().contains("single-pass model"), "{err}");
    }

    #[test]
    fn a_module_of_neither_kind_is_refused_at_the_layer_at_fault() {
        let cases = [
            (TWO_LAYERS.replace("%input", "%x"), "first", "takes `%x`"),
            (
                TWO_LAYERS.replace("%output", "%y"),
                "second",
                "does not return `%output`",
            ),
            (
                TWO_LAYERS
                    .replace("second(%h", "second(%g")
                    .replace("clamp %h", "clamp %g"),
                "second",
                "takes `%g`, which no earlier layer returns",
            ),
            (
                TWO_LAYERS
                    .replace(
                        "second(%h: i8[1, 2] * 2^-4)",
                        "second(%input: i8[1, 2] * 2^-4)",
                    )
                    .replace("clamp %h", "clamp %input"),
                "second",
                "only the first layer",
            ),
        ];
        for (text, layer, said) in cases {
            let err = ModelKind::of(&module(&text)).unwrap_err();
            let InterpError::Interface {
                layer: Some(at), ..
            } = &err
            else {
                panic!("{err}");
            };
            assert_eq!(at, layer, "{err}");
            assert!(err.to_string().contains(said), "{err}");
        }
    }
}
