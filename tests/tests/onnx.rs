//! ONNX models as users bring them: the fixtures PyTorch exported (`scripts/onnx_fixtures.sh`,
//! tests/fixtures/onnx/README.md) with onnxruntime's outputs. Each is mapped into the model
//! graph, whose float run must equal onnxruntime's; compiled as `zkc compile NET.onnx
//! --calibrate NET.calibration.json` compiles it, whose integer run must stay within the stated
//! tolerance of onnxruntime's; and each is proven (input public, then private), verified, and
//! refused when its output or input is changed.
//! Ops zkc does not map are refused naming the node, the op and the opset.

use prost::Message;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::PathBuf;
use zkc_compiler::artifact;
use zkc_compiler::model::FloatModel;
use zkc_compiler::onnx::proto::{
    AttributeProto, Dimension, ModelProto, NodeProto, TensorProto, TensorShapeProto, ValueInfoProto,
};
use zkc_compiler::onnx::{self, OnnxError};
use zkc_compiler::quantize::{quantize, QuantConfig};
use zkc_lang::Module;
use zkc_runtime::interp::{input, Interpreter, SinglePass};
use zkc_runtime::proving::bundle::{Bundle, PassInput};
use zkc_runtime::proving::keys::{vk_path, VerifyingData};
use zkc_runtime::proving::prover::Prover;
use zkc_runtime::proving::setup::setup;
use zkc_runtime::proving::verifier::verify;

/// The fixtures zkc maps, with the largest integer-run error allowed against onnxruntime, as a
/// fraction of the output's largest magnitude (measured: mlp 2.3e-4, convnet 4.0e-4,
/// decomposed 2.6e-4 at the default 32-bit linear outputs and 12-bit weights).
const MAPPED: [(&str, f64); 4] = [
    ("mlp", 1e-3),
    ("convnet", 1e-3),
    ("decomposed", 1e-3),
    ("gpt2_block", 1e-3),
];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/onnx")
        .join(name)
}

/// onnxruntime's output for `NAME.input.json`.
fn reference(name: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(fixture(&format!("{name}.output.json"))).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["output_data"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn float_model(name: &str) -> FloatModel<'static> {
    let model = onnx::read(&fixture(&format!("{name}.onnx"))).unwrap();
    let imported = onnx::import(&model).unwrap_or_else(|e| panic!("{name}: {e}"));
    FloatModel::single_pass(imported.graph, imported.weights)
}

/// The input's reals (f32, as onnxruntime read them).
fn input_values(name: &str) -> Vec<f32> {
    let path = fixture(&format!("{name}.input.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    input::parse("input", &text)
        .unwrap()
        .iter()
        .map(|&v| v as f32)
        .collect()
}

/// Compiled as `zkc compile NAME.onnx --calibrate NAME.calibration.json` compiles it.
fn compiled(name: &str) -> Module {
    let model = float_model(name);
    let samples = input::samples(
        &fixture(&format!("{name}.calibration.json")),
        model.input_len().unwrap(),
    )
    .unwrap();
    let config = QuantConfig {
        calibration_inputs: Some(samples),
        ..QuantConfig::default()
    };
    let module = quantize(&model, &config).unwrap();
    let max = 1 << 21;
    let module = zkc_compiler::parts::split(module, max).unwrap();
    let pipeline = zkc_compiler::passes::default_pipeline(false);
    let limits = zkc_compiler::passes::Limits::default();
    let (module, _) = zkc_compiler::passes::run(module, &pipeline, &limits).unwrap();
    let module = zkc_compiler::parts::join(module, max);
    zkc_compiler::backend::check::check(&module).unwrap();
    module
}

fn max_abs(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn the_float_graph_of_every_mapped_fixture_computes_what_onnxruntime_does() {
    for (name, _) in MAPPED {
        let out = float_model(name).run(&input_values(name)).unwrap();
        let out: Vec<f64> = out.iter().map(|&v| v as f64).collect();
        let err = max_abs(&out, &reference(name));
        assert!(err < 1e-5, "{name}: float run {err:e} from onnxruntime");
    }
}

#[test]
fn the_integer_run_of_every_mapped_fixture_stays_near_onnxruntime() {
    for (name, tolerance) in MAPPED {
        let interp = Interpreter::new(compiled(name)).unwrap();
        let runner = SinglePass::new(&interp).unwrap();
        let x = input::read(&fixture(&format!("{name}.input.json")), runner.input_type()).unwrap();
        let scale = runner.output_type().scale.to_f64();
        let pass = runner.run(x, false).unwrap();
        let out: Vec<f64> = pass
            .output
            .data()
            .iter()
            .map(|&v| v as f64 * scale)
            .collect();
        let want = reference(name);
        let largest = want.iter().fold(0f64, |m, v| m.max(v.abs()));
        let err = max_abs(&out, &want);
        assert!(
            err <= tolerance * largest,
            "{name}: integer run {err:e} from onnxruntime (largest output {largest})"
        );
    }
}

#[test]
fn every_mapped_fixture_is_proven_verified_and_refused_when_tampered_with() {
    for (name, tolerance) in MAPPED {
        proven(name, tolerance);
    }
}

/// `name` compiled into an artifact, set up, proven on its input (public, then private), the
/// proofs verified with the interpreter's output, and a forged output or input refused.
fn proven(name: &str, tolerance: f64) {
    let dir = tempfile::Builder::new()
        .prefix("zkc-onnx-")
        .tempdir()
        .unwrap();
    let circ = dir.path().join(format!("{name}.circ"));
    artifact::write(&circ, &compiled(name), None, name, "onnx").unwrap();
    let artifact = artifact::read(&circ).unwrap();
    let keys = dir.path().join("keys");
    let ir = &artifact.header.ir_sha256;
    let mut rng = StdRng::seed_from_u64(7);
    setup(
        &artifact.module,
        ir,
        None,
        None,
        &keys,
        &mut rng,
        &mut |_, _, _| {},
    )
    .unwrap();
    let vd = VerifyingData::read(&vk_path(&keys)).unwrap();
    let interp = Interpreter::new(artifact.module.clone()).unwrap();
    let runner = SinglePass::new(&interp).unwrap();
    let x = input::read(&fixture(&format!("{name}.input.json")), runner.input_type()).unwrap();
    let expected = runner.run(x.clone(), false).unwrap().output;
    let prover = Prover::new(&interp, ir, &keys, &vd).unwrap();
    let out = dir.path().join("run.zkp");
    let mut prove = |private: bool| {
        prover
            .prove_pass(x.clone(), private, &out, &mut rng, &mut |_| {})
            .unwrap()
    };
    let (bundle, private) = (prove(false), prove(true));
    let verified = verify(&vd, &bundle.to_bytes(), false).expect("the honest proof verifies");
    let pass = verified.pass.expect("a single pass");
    assert_eq!(pass.output, expected.data(), "{name}");
    // The proven output's reals are within the stated tolerance of onnxruntime's.
    let want = reference(name);
    let largest = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    assert!(
        max_abs(&pass.output_reals(), &want) <= tolerance * largest,
        "{name}"
    );
    // A private input verifies against its commitment alone.
    let hidden = verify(&vd, &private.to_bytes(), false).expect("a private input verifies");
    let hidden = hidden.pass.expect("a single pass");
    assert!(matches!(hidden.input, PassInput::Committed(_)) && hidden.output == pass.output);
    // A claimed output off by one unit, or another input, is refused.
    let mut forged = bundle.clone();
    forged.pass.as_mut().expect("a pass").output[0] += 1;
    assert!(verify(&vd, &forged.to_bytes(), false).is_err(), "{name}");
    let mut forged = bundle.clone();
    match &mut forged.pass.as_mut().expect("a pass").input {
        PassInput::Public(values) => values[3] += 1,
        PassInput::Committed(_) => panic!("the input is public by default"),
    }
    assert!(verify(&vd, &forged.to_bytes(), false).is_err(), "{name}");
    assert_eq!(
        Bundle::from_bytes(&std::fs::read(&out).unwrap()).unwrap(),
        private
    );
}

#[test]
fn inspect_summarizes_the_block_and_finds_every_op_mapped() {
    let model = onnx::read(&fixture("gpt2_block.onnx")).unwrap();
    let summary = onnx::summarize(&model);
    assert_eq!(summary.opset, 17);
    assert_eq!(summary.inputs[0].1, ["1", "8", "32"]);
    assert_eq!(summary.nodes, 45);
    assert_eq!(summary.parameters, 12_768);
    assert!(summary.unsupported().is_empty() && summary.problem.is_none());
}

/// A one-node graph `input [dims] -> OP -> output`, as an exporter would write it.
fn one_node_graph(op: &str, dims: Vec<Dimension>) -> Vec<u8> {
    let tensor = |name: &str, dims: Vec<Dimension>| {
        let mut info = ValueInfoProto::float_tensor(name, &[]);
        let ty = info.r#type.as_mut().and_then(|t| t.tensor_type.as_mut());
        ty.expect("a tensor type").shape = Some(TensorShapeProto { dim: dims });
        info
    };
    let mut node = NodeProto::new(op, &["input"], "output", vec![]);
    node.name = "the_node".into();
    let (input, output) = (tensor("input", dims.clone()), tensor("output", dims));
    ModelProto::of_graph(13, vec![node], vec![], input, output).encode_to_vec()
}

fn dim(n: i64) -> Dimension {
    Dimension {
        dim_value: Some(n),
        dim_param: None,
    }
}

#[test]
fn what_zkc_cannot_map_is_refused_naming_the_node_op_and_opset() {
    let bytes = one_node_graph("MaxPool", vec![dim(1), dim(4)]);
    let model = onnx::decode(&bytes, "maxpool.onnx").unwrap();
    match onnx::import(&model) {
        Err(OnnxError::Node {
            node,
            op,
            opset,
            problem,
        }) => {
            assert_eq!(
                (node.as_str(), op.as_str(), opset),
                ("the_node", "MaxPool", 13)
            );
            assert!(problem.contains("not supported"), "{problem}");
        }
        other => panic!("not refused by node: {:?}", other.err()),
    }
    let summary = onnx::summarize(&model);
    assert_eq!(summary.unsupported(), ["MaxPool"]);
    assert!(summary.problem.unwrap().contains("the_node"));
    // A symbolic batch dimension: the export must fix its shapes.
    let symbolic = Dimension {
        dim_value: None,
        dim_param: Some("batch".into()),
    };
    let bytes = one_node_graph("Relu", vec![symbolic, dim(4)]);
    let model = onnx::decode(&bytes, "dynamic.onnx").unwrap();
    let e = onnx::import(&model).err().expect("refused");
    assert!(
        matches!(e, OnnxError::Interface { .. }) && e.to_string().contains("`batch`"),
        "{e}"
    );
    // Bytes that are no ONNX file.
    assert!(matches!(
        onnx::decode(b"\xff\xff\xff", "junk.onnx"),
        Err(OnnxError::Decode { .. })
    ));
}

/// Corrupt files are errors, never panics: each fixture with bytes changed at seeded places is
/// decoded and, when it still decodes, imported and summarized.
#[test]
fn corrupt_onnx_files_are_refused_without_panicking() {
    let mut state = 0x5eed_u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    for (name, _) in MAPPED {
        let bytes = std::fs::read(fixture(&format!("{name}.onnx"))).unwrap();
        for _ in 0..300 {
            let mut bad = bytes.clone();
            for _ in 0..1 + next() % 4 {
                let at = next() % bad.len();
                bad[at] = next() as u8;
            }
            bad.truncate(bad.len() - next() % 3 * (next() % bad.len()) / 4);
            let outcome = std::panic::catch_unwind(|| {
                if let Ok(model) = onnx::decode(&bad, "corrupt.onnx") {
                    let _ = onnx::import(&model);
                    let _ = onnx::summarize(&model);
                }
            });
            assert!(
                outcome.is_ok(),
                "{name}: a corrupt file panicked the reader"
            );
        }
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto::new(op, inputs, output, attribute)
}

/// A hand-built graph `input [1, n_in] -> nodes -> output [1, n_out]`, mapped into a float
/// model.
fn hand_built(
    nodes: Vec<NodeProto>,
    initializer: Vec<TensorProto>,
    n_in: i64,
    n_out: i64,
) -> FloatModel<'static> {
    let input = ValueInfoProto::float_tensor("input", &[1, n_in]);
    let output = ValueInfoProto::float_tensor("output", &[1, n_out]);
    let bytes = ModelProto::of_graph(17, nodes, initializer, input, output).encode_to_vec();
    let model = onnx::decode(&bytes, "hand-built.onnx").unwrap();
    let imported = onnx::import(&model).unwrap_or_else(|e| panic!("{e}"));
    FloatModel::single_pass(imported.graph, imported.weights)
}

/// `model`'s integer run on `x` (calibrated on it) against `want`: within `abs`, or one unit of
/// the output's scale if that is more.
fn integer_run_within(model: &FloatModel, x: &[f32], want: &[f32], abs: f64) {
    let config = QuantConfig {
        calibration_inputs: Some(vec![x.to_vec()]),
        ..QuantConfig::default()
    };
    let interp = Interpreter::new(quantize(model, &config).unwrap()).unwrap();
    let runner = SinglePass::new(&interp).unwrap();
    let reals: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let q = input::quantize("x", &reals, runner.input_type()).unwrap();
    let scale = runner.output_type().scale.to_f64();
    let out = runner.run(q, false).unwrap().output;
    for (o, w) in out.data().iter().zip(want) {
        assert!(
            (*o as f64 * scale - *w as f64).abs() <= abs.max(scale),
            "{o} vs {w}"
        );
    }
}

/// `input - relu(input)`, two computed tensors subtracted: `min(input, 0)` in floats and, at
/// the input's scale, in integers.
#[test]
fn a_difference_of_two_computed_tensors_maps_to_sub() {
    let model = hand_built(
        vec![
            node("Relu", &["input"], "r", vec![]),
            node("Sub", &["input", "r"], "output", vec![]),
        ],
        vec![],
        8,
        8,
    );
    let x = [-1.5f32, -0.25, 0.0, 0.5, 2.0, -3.0, 0.75, -0.125];
    let want: Vec<f32> = x.iter().map(|v| v.min(0.0)).collect();
    assert_eq!(model.run(&x).unwrap(), want);
    integer_run_within(&model, &x, &want, 0.0);
}

/// `[input, relu(input)]` joined along the last axis, then a linear map: the elements one
/// after another, in floats and in integers.
#[test]
fn computed_tensors_concatenate_along_their_row() {
    let weights: Vec<f32> = (0..24).map(|k| ((k * 7 % 11) as f32 - 5.0) / 8.0).collect();
    let axis = AttributeProto {
        name: "axis".into(),
        r#type: 2,
        i: 1,
        ..Default::default()
    };
    let trans_b = AttributeProto {
        name: "transB".into(),
        r#type: 2,
        i: 1,
        ..Default::default()
    };
    let model = hand_built(
        vec![
            node("Relu", &["input"], "r", vec![]),
            node("Concat", &["input", "r"], "c", vec![axis]),
            node("Gemm", &["c", "w"], "output", vec![trans_b]),
        ],
        vec![TensorProto::floats("w", &[3, 8], weights.clone())],
        4,
        3,
    );
    let x = [-1.5f32, 0.25, 2.0, -0.5];
    let joined: Vec<f32> = x
        .iter()
        .copied()
        .chain(x.iter().map(|v| v.max(0.0)))
        .collect();
    let want: Vec<f32> = weights
        .chunks(8)
        .map(|row| row.iter().zip(&joined).map(|(w, v)| w * v).sum())
        .collect();
    let got = model.run(&x).unwrap();
    assert!(
        got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6),
        "{got:?} vs {want:?}"
    );
    integer_run_within(&model, &x, &want, 1e-3);
}
