//! ONNX `Sigmoid`, `Tanh` and `LeakyRelu` end to end short of proving: a hand-built graph
//! `MatMul` by a constant (a `Linear`), then the activation, imported, lowered with existing IR
//! ops only (`gelu` on a clamped input for the sigmoid and tanh; `clamp`, `sub`, `requant`,
//! `add` for LeakyRelu), validated, optimized and checked as `zkc compile` does, and the integer
//! interpreter's output compared with the float reference's on a few inputs.

use prost::Message;
use zkc_compiler::model::FloatModel;
use zkc_compiler::onnx::{
    self,
    proto::{AttributeProto, ModelProto, NodeProto, TensorProto, ValueInfoProto},
};
use zkc_compiler::quantize::{quantize, QuantConfig};
use zkc_lang::{Module, Op};
use zkc_runtime::interp::{input, Interpreter, SinglePass};

const N: usize = 8;

fn info(name: &str) -> ValueInfoProto {
    ValueInfoProto::float_tensor(name, &[1, N as i64])
}

fn graph(op: &str, attribute: Vec<AttributeProto>, gain: f32) -> onnx::OnnxModel {
    let w: Vec<f32> = (0..N * N)
        .map(|k| gain * (((k * 37 + 11) % 17) as f32 - 8.0) / 16.0)
        .collect();
    let nodes = vec![
        NodeProto::new("MatMul", &["x", "w"], "h", vec![]),
        NodeProto::new(op, &["h"], "y", attribute),
    ];
    let w = TensorProto::floats("w", &[N as i64, N as i64], w);
    let proto = ModelProto::of_graph(17, nodes, vec![w], info("x"), info("y"));
    onnx::decode(&proto.encode_to_vec(), "act.onnx").unwrap()
}

/// Lowers and validates (`quantize` validates), then optimizes and checks as `zkc compile`.
fn compiled(model: &FloatModel) -> (Module, Module) {
    let lowered = quantize(model, &QuantConfig::default()).unwrap();
    zkc_lang::validate(&lowered).unwrap();
    let pipeline = zkc_compiler::passes::default_pipeline(false);
    let limits = zkc_compiler::passes::Limits::default();
    let (module, _) = zkc_compiler::passes::run(lowered.clone(), &pipeline, &limits).unwrap();
    zkc_compiler::backend::check::check(&module).unwrap();
    (lowered, module)
}

fn count(module: &Module, f: impl Fn(&Op) -> bool) -> usize {
    module.layers[0].insts.iter().filter(|i| f(&i.op)).count()
}

/// Five inputs in the calibration's range (standard normal).
fn inputs() -> Vec<Vec<f32>> {
    (0..5)
        .map(|s| {
            (0..N)
                .map(|i| (((i * 7 + s * 5) % 11) as f32 - 5.0) * 0.45)
                .collect()
        })
        .collect()
}

/// The largest `|integer - float|` of the module's output over [`inputs`].
fn max_error(model: &FloatModel, module: Module) -> f64 {
    let interp = Interpreter::new(module).unwrap();
    let runner = SinglePass::new(&interp).unwrap();
    let scale = runner.output_type().scale.to_f64();
    let mut worst: f64 = 0.0;
    for x in inputs() {
        let want = model.run(&x).unwrap();
        let reals: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let q = input::quantize("x", &reals, runner.input_type()).unwrap();
        let got = runner.run(q, false).unwrap().output;
        for (g, w) in got.data().iter().zip(&want) {
            worst = worst.max((*g as f64 * scale - *w as f64).abs());
        }
    }
    worst
}

/// The activation alone: the largest `|y - f(h)|` over [`inputs`], `h` the activation's input
/// (the `MatMul`'s requantized value, `%h`) and `y` the output, both as the unoptimized module
/// computes them, in reals.
fn activation_error(lowered: &Module, f: impl Fn(f64) -> f64) -> f64 {
    let layer = &lowered.layers[0];
    let find = |name: &str| {
        let k = (layer.values.iter().position(|v| v.name == name)).expect("named value");
        (k, layer.values[k].ty.scale.to_f64())
    };
    let ((h, s_h), (y, s_y)) = (find("h"), find("output"));
    let interp = Interpreter::new(lowered.clone()).unwrap();
    let runner = SinglePass::new(&interp).unwrap();
    let mut worst: f64 = 0.0;
    for x in inputs() {
        let reals: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let q = input::quantize("x", &reals, runner.input_type()).unwrap();
        let run = runner.run(q, true).unwrap();
        let values = &run.witness.expect("recorded")[0].values;
        for (hv, yv) in values[h].data().iter().zip(values[y].data()) {
            worst = worst.max((*yv as f64 * s_y - f(*hv as f64 * s_h)).abs());
        }
    }
    worst
}

fn float(op: &str, attribute: Vec<AttributeProto>, gain: f32) -> FloatModel<'static> {
    let imported = onnx::import(&graph(op, attribute, gain)).unwrap();
    FloatModel::single_pass(imported.graph, imported.weights)
}

/// The sigmoid and tanh: one `gelu` each; its input clamped into the polynomial's range when
/// that range is narrower than the input's dtype (a large gain: the 16-bit input's scale is
/// coarse enough that ±16 (±8) is inside it), no clamp otherwise. The output is i16 at 2^-14
/// (1 fits, whatever the calibration saw). The activation alone, on the integer input it is
/// given, within 1e-4 of the f64 function (the fit's 2e-5 and the output's half step 3.1e-5);
/// the whole integer run within 2e-3 of float at gain 1 and 1e-2 at gain 16, where the
/// `MatMul`'s own quantization error, 16 times larger and at a coarser 16-bit scale, dominates.
#[test]
fn sigmoid_and_tanh_lower_to_a_clamped_gelu_and_track_the_float_run() {
    for op in ["Sigmoid", "Tanh"] {
        for (gain, clamped) in [(1.0, false), (16.0, true)] {
            let model = float(op, vec![], gain);
            let (lowered, module) = compiled(&model);
            assert_eq!(count(&lowered, |o| matches!(o, Op::Gelu(_))), 1, "{op}");
            let clamps = count(&lowered, |o| matches!(o, Op::Clamp { .. }));
            assert_eq!(clamps, clamped as usize, "{op} at gain {gain}");
            let out = lowered.layers[0].outputs[0];
            let ty = &lowered.layers[0].value(out).ty;
            assert_eq!(ty.to_string(), "i16[1, 8] * 2^-14", "{op}");
            let f = match op {
                "Sigmoid" => |x: f64| 1.0 / (1.0 + (-x).exp()),
                _ => f64::tanh,
            };
            let alone = activation_error(&lowered, f);
            let err = max_error(&model, module);
            eprintln!(
                "{op} (gain {gain}): the activation alone {alone:.2e} from f64, \
                 integer vs float max abs error {err:.2e}"
            );
            assert!(alone < 1e-4, "{op} (gain {gain}): alone {alone:e}");
            let tolerance = if gain > 1.0 { 1e-2 } else { 2e-3 };
            assert!(err < tolerance, "{op} (gain {gain}): {err:e}");
        }
    }
}

/// LeakyRelu (its default alpha 0.01, and 0.2, and a negative one): `clamp`, `sub`, `requant`,
/// `add` (`sub` for a negative alpha) in the operand's class. The activation alone within one
/// output step plus 1.6e-5 of the output's largest magnitude (the 16-bit multiplier's relative
/// error, at most 2^-16) of its f64 value on the integer input; the whole run within 1e-3
/// relative to the output's largest magnitude (the `MatMul`'s 12-bit weights dominate).
#[test]
fn leaky_relu_lowers_to_clamp_sub_requant_add_and_tracks_the_float_run() {
    let alpha = |a: f32| AttributeProto {
        name: "alpha".into(),
        r#type: 1,
        f: a,
        ..Default::default()
    };
    for attrs in [vec![], vec![alpha(0.2)], vec![alpha(-0.5)]] {
        let attrs_alpha = attrs.first().map(|a| a.f);
        let shown = format!("{attrs_alpha:?}");
        let model = float("LeakyRelu", attrs, 1.0);
        let (lowered, module) = compiled(&model);
        assert_eq!(count(&lowered, |o| matches!(o, Op::Clamp { .. })), 1);
        assert_eq!(count(&lowered, |o| matches!(o, Op::Requant { .. })), 2);
        let largest = inputs()
            .iter()
            .flat_map(|x| model.run(x).unwrap())
            .fold(0f64, |m, v| m.max((v as f64).abs()));
        let a = attrs_alpha.unwrap_or(0.01) as f64;
        let alone = activation_error(&lowered, |x| if x >= 0.0 { x } else { a * x });
        let out = lowered.layers[0].outputs[0];
        let step = lowered.layers[0].value(out).ty.scale.to_f64();
        let err = max_error(&model, module);
        eprintln!(
            "LeakyRelu alpha {shown}: the activation alone {alone:.2e} from f64 (step {step:.1e}), \
             integer vs float max abs error {err:.2e} (largest {largest:.2})"
        );
        assert!(
            alone <= step + 1.6e-5 * largest,
            "alpha {shown}: alone {alone:e}"
        );
        assert!(err < 1e-3 * largest, "alpha {shown}: {err:e}");
    }
}
