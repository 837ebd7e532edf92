//! A single-pass model (no token loop: `%input` in, `%output` out) end to end: IR text written
//! by hand -> compiled as `zkc compile MODEL.zkir` compiles it (without joining, so that it
//! stays two circuits and the link between them is checked) -> artifact file -> setup -> an
//! input from EZKL's `input.json` -> proven once -> verified, with the output the interpreter
//! computes; then every way of changing the bundle, or checking it with keys of another model
//! or kind, is rejected with its reason.

use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::Path;
use std::sync::OnceLock;
use tempfile::TempDir;
use zkc_compiler::artifact;
use zkc_compiler::backend::layer::public_value;
use zkc_compiler::backend::F;
use zkc_lang::semantics::Tensor;
use zkc_lang::Module;
use zkc_runtime::interp::{input, Interpreter, ModelKind, SinglePass};
use zkc_runtime::proving::bundle::{Bundle, PassInput};
use zkc_runtime::proving::encoding::DecodeError;
use zkc_runtime::proving::keys::{vk_path, PassTypes, VerifyingData};
use zkc_runtime::proving::prover::Prover;
use zkc_runtime::proving::setup::setup;
use zkc_runtime::proving::verifier::{verify, Rejection, SINGLE_PASS, TOKEN_LOOP};

/// Two dense layers, ReLU between: `i16[1, 8] * 2^-8` in, `i16[1, 4] * 2^-8` out. `seed` varies
/// the weights (another model of the same shape).
fn module_text(seed: i64) -> String {
    let weights = |k: usize, n: usize, salt: i64| -> String {
        let w: Vec<String> = (0..k * n)
            .map(|i| (((i as i64) * 7 + salt * 13 + seed * 5) % 31 - 15).to_string())
            .collect();
        w.join(", ")
    };
    let bias = |n: usize, salt: i64| -> String {
        let b: Vec<String> = (0..n)
            .map(|i| (((i as i64) * 97 + salt + seed) % 401 - 200).to_string())
            .collect();
        b.join(", ")
    };
    format!(
        "zkir 1

const @w0: i8[8, 16] * 2^-6 = [{}]
const @b0: i32[16] * 2^-14 = [{}]
const @w1: i8[16, 4] * 2^-6 = [{}]
const @b1: i32[4] * 2^-14 = [{}]

; dense, then ReLU
layer dense.0(%input: i16[1, 8] * 2^-8) {{
  %acc0 = linear %input, @w0, @b0 : i32[1, 16] * 2^-14
  %pre = requant %acc0, mult=1, shift=6 : i16[1, 16] * 2^-8
  %h = clamp %pre, lo=0, hi=32767 : i16[1, 16] * 2^-8
  return %h
}}

layer dense.1(%h: i16[1, 16] * 2^-8) {{
  %acc1 = linear %h, @w1, @b1 : i32[1, 4] * 2^-14
  %output = requant %acc1, mult=1, shift=6 : i16[1, 4] * 2^-8
  return %output
}}
",
        weights(8, 16, 1),
        bias(16, 2),
        weights(16, 4, 3),
        bias(4, 4)
    )
}

/// The module as `zkc compile MODEL.zkir --join-max-constraints 0` makes it: checked, cut,
/// optimized, its head sliced (a no-op here), checked by the backend.
fn compiled_module(seed: i64) -> Module {
    let parsed = zkc_lang::check(&module_text(seed)).unwrap_or_else(|(e, _)| panic!("{e:?}"));
    let max = 1 << 21;
    let module = zkc_compiler::parts::split(parsed.module, max).unwrap();
    let pipeline = zkc_compiler::passes::default_pipeline(false);
    let limits = zkc_compiler::passes::Limits::default();
    let (module, _) = zkc_compiler::passes::run(module, &pipeline, &limits).unwrap();
    let module = zkc_compiler::parts::slice_vocabulary(module, max);
    let module = zkc_compiler::parts::join(module, 0);
    zkc_compiler::backend::check::check(&module).unwrap();
    module
}

/// The artifact written and read back, and its keys (in `dir/keys`).
fn set_up(seed: i64, dir: &Path) -> (artifact::Artifact, VerifyingData) {
    std::fs::create_dir_all(dir).unwrap();
    let circ = dir.join("net.circ");
    artifact::write(&circ, &compiled_module(seed), None, "test", "ir").unwrap();
    let artifact = artifact::read(&circ).unwrap();
    let vd = setup(
        &artifact.module,
        &artifact.header.ir_sha256,
        None,
        None,
        &dir.join("keys"),
        &mut StdRng::seed_from_u64(seed as u64),
        &mut |_, _, _| {},
    )
    .unwrap();
    let read = VerifyingData::read(&vk_path(&dir.join("keys"))).unwrap();
    assert_eq!((&read.pass, &read.commitment), (&vd.pass, &vd.commitment));
    (artifact, vd)
}

const INPUT: &str = r#"{"input_data": [[0.5, -1.25, 0.0039, 1.999, -2.0, 0.75, 0.1, -0.3]]}"#;
const OTHER_INPUT: &str = r#"{"input_data": [[1.5, 0.25, -0.5, 0.0, 1.0, -0.75, 0.6, 0.3]]}"#;

struct Run {
    artifact: artifact::Artifact,
    vd: VerifyingData,
    /// The same shape, other weights.
    other: VerifyingData,
    /// The input's integers, and the bundles of it (public and private) and of another input.
    input: Vec<i64>,
    public: Bundle,
    private: Bundle,
    other_input: Bundle,
    /// What the interpreter alone computes for the input.
    output: Tensor,
    dir: TempDir,
}

static RUN: OnceLock<Run> = OnceLock::new();

/// Removes the shared run's directory; registered with `atexit` once the run is made (a
/// static is never dropped).
extern "C" fn remove_run() {
    if let Some(run) = RUN.get() {
        let _ = std::fs::remove_dir_all(run.dir.path());
    }
}

/// One setup and three proofs, shared by the tests.
fn run() -> &'static Run {
    RUN.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("zkc-single-pass-")
            .tempdir()
            .unwrap();
        let (artifact, vd) = set_up(1, dir.path());
        let other_dir = dir.path().join("other");
        let (_, other) = set_up(2, &other_dir);
        let interp = Interpreter::new(artifact.module.clone()).unwrap();
        let runner = SinglePass::new(&interp).unwrap();
        let read = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            input::read(&path, runner.input_type()).unwrap()
        };
        let (x, y) = (read("input.json", INPUT), read("other.json", OTHER_INPUT));
        let prover = Prover::new(
            &interp,
            &artifact.header.ir_sha256,
            &dir.path().join("keys"),
            &vd,
        )
        .unwrap();
        let prove = |t: &Tensor, private: bool, seed: u64| {
            let out = dir.path().join(format!("run-{seed}.zkp"));
            let bundle = prover
                .prove_pass(
                    t.clone(),
                    private,
                    &out,
                    &mut StdRng::seed_from_u64(seed),
                    &mut |_| {},
                )
                .unwrap();
            assert_eq!(
                Bundle::from_bytes(&std::fs::read(&out).unwrap()).unwrap(),
                bundle
            );
            bundle
        };
        let (public, private, other_input) =
            (prove(&x, false, 1), prove(&x, true, 2), prove(&y, false, 3));
        let output = runner.run(x.clone(), false).unwrap().output;
        // SAFETY: `remove_run` cannot unwind, as a handler that `exit` calls must not.
        unsafe { libc::atexit(remove_run) };
        Run {
            input: x.data().to_vec(),
            artifact,
            vd,
            other,
            public,
            private,
            other_input,
            output,
            dir,
        }
    })
}

fn rejected(bundle: &Bundle) -> Rejection {
    verify(&run().vd, &bundle.to_bytes(), false).expect_err("a tampered bundle is rejected")
}

fn one() -> F {
    F::from(1u8)
}

#[test]
fn the_module_is_a_single_pass_and_its_keys_say_so() {
    let run = run();
    let module = &run.artifact.module;
    let names: Vec<&str> = module.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["dense.0", "dense.1"], "compiled without joining");
    let kind = ModelKind::of(module).unwrap();
    let types = PassTypes {
        input: module.layers[0]
            .value(module.layers[0].inputs[0])
            .ty
            .clone(),
        output: module.layers[1]
            .value(module.layers[1].outputs[0])
            .ty
            .clone(),
    };
    assert_eq!(
        kind,
        ModelKind::SinglePass {
            input: types.input.clone(),
            output: types.output.clone()
        }
    );
    assert_eq!(types.input.to_string(), "i16[1, 8] * 2^-8");
    assert_eq!(run.vd.pass.as_ref(), Some(&types));
    assert_eq!(run.vd.context, 0);
}

#[test]
fn the_input_is_quantized_from_input_json() {
    // round(x * 256), half away from zero: 0.0039 * 256 = 0.998 -> 1, 1.999 -> 511.744 -> 512.
    assert_eq!(run().input, [128, -320, 1, 512, -512, 192, 26, -77]);
}

#[test]
fn an_honest_pass_verifies_with_the_interpreters_output() {
    let run = run();
    let verified = verify(&run.vd, &run.public.to_bytes(), false).unwrap();
    let pass = verified.pass.expect("a single pass");
    assert_eq!(pass.input, PassInput::Public(run.input.clone()));
    assert_eq!(pass.output, run.output.data());
    assert!(
        pass.output.iter().any(|&v| v != 0),
        "a test output of zeros would prove little"
    );
    assert_eq!((verified.steps, verified.proofs), (1, 2));
    let reals = pass.output_reals();
    assert_eq!(reals[0], run.output.data()[0] as f64 / 256.0);
    let inputs = pass.input_reals().unwrap();
    assert_eq!(inputs[0], 0.5);
}

#[test]
fn a_private_input_verifies_against_its_commitment_and_nothing_else() {
    let run = run();
    let ty = &run.vd.pass.as_ref().unwrap().input;
    let commitment = public_value(ty, &run.input);
    assert_eq!(
        run.private.pass.as_ref().unwrap().input,
        PassInput::Committed(commitment)
    );
    let bytes = run.private.to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.lines().nth(1).unwrap().contains("\"input\":null"),
        "the bundle does not hold the input's integers"
    );
    let verified = verify(&run.vd, &bytes, false).unwrap();
    let pass = verified.pass.unwrap();
    assert_eq!(pass.input, PassInput::Committed(commitment));
    assert_eq!(pass.input_reals(), None);
    assert_eq!(pass.output, run.output.data());
    // Another commitment, or another input's integers in its place, are refused.
    let mut b = run.private.clone();
    b.pass.as_mut().unwrap().input = PassInput::Committed(commitment + one());
    assert_eq!(
        rejected(&b),
        Rejection::InputCommitment {
            layer: "dense.0".into(),
            private: true
        }
    );
    let mut b = run.private.clone();
    let mut other = run.input.clone();
    other[3] -= 1;
    b.pass.as_mut().unwrap().input = PassInput::Public(other);
    assert_eq!(
        rejected(&b),
        Rejection::InputCommitment {
            layer: "dense.0".into(),
            private: false
        }
    );
    // The public bundle made private: its commitment is the right one, so it verifies.
    let mut b = run.public.clone();
    b.pass.as_mut().unwrap().input = PassInput::Committed(commitment);
    assert!(verify(&run.vd, &b.to_bytes(), false).is_ok());
}

#[test]
fn a_changed_input_or_output_integer_is_rejected() {
    let run = run();
    for i in [0, 5, 7] {
        let mut b = run.public.clone();
        let PassInput::Public(values) = &mut b.pass.as_mut().unwrap().input else {
            unreachable!()
        };
        values[i] += 1;
        assert_eq!(
            rejected(&b),
            Rejection::InputCommitment {
                layer: "dense.0".into(),
                private: false
            }
        );
    }
    for i in 0..4 {
        let mut b = run.public.clone();
        b.pass.as_mut().unwrap().output[i] -= 1;
        assert_eq!(
            rejected(&b),
            Rejection::OutputCommitment {
                layer: "dense.1".into()
            }
        );
    }
    // Values of the wrong count, or past the type, are refused before any proof.
    let mut b = run.public.clone();
    b.pass.as_mut().unwrap().output.pop();
    assert!(
        matches!(rejected(&b), Rejection::PassValues { what: "output", ref problem } if problem.contains("has 3 values"))
    );
    let mut b = run.public.clone();
    b.pass.as_mut().unwrap().input = PassInput::Public(vec![1 << 20; 8]);
    assert!(
        matches!(rejected(&b), Rejection::PassValues { what: "input", ref problem } if problem.contains("does not fit"))
    );
}

#[test]
fn proofs_of_another_input_spliced_in_are_rejected() {
    let run = run();
    let (mine, theirs) = (&run.public, &run.other_input);
    // Their first layer's proof: it proved another input.
    let mut b = mine.clone();
    b.steps[0].layers[0] = theirs.steps[0].layers[0].clone();
    assert_eq!(
        rejected(&b),
        Rejection::InputCommitment {
            layer: "dense.0".into(),
            private: false
        }
    );
    // With their input too: the second layer proved another hidden value.
    b.pass.as_mut().unwrap().input = theirs.pass.as_ref().unwrap().input.clone();
    assert!(
        matches!(rejected(&b), Rejection::Link { step: 0, ref layer, .. } if layer == "dense.1"),
        "{}",
        rejected(&b)
    );
    // Their last layer's proof: it links to neither my hidden value nor my output.
    let mut b = mine.clone();
    b.steps[0].layers[1] = theirs.steps[0].layers[1].clone();
    assert!(
        matches!(rejected(&b), Rejection::Link { step: 0, ref layer, .. } if layer == "dense.1")
    );
    // All their proofs under my statement.
    let mut b = mine.clone();
    b.steps = theirs.steps.clone();
    assert!(matches!(rejected(&b), Rejection::InputCommitment { .. }));
    // Their statement and proofs, but my output.
    let mut b = theirs.clone();
    b.pass.as_mut().unwrap().output = mine.pass.as_ref().unwrap().output.clone();
    assert_ne!(b, *theirs, "the two inputs give different outputs");
    assert!(matches!(rejected(&b), Rejection::OutputCommitment { .. }));
    assert!(verify(&run.vd, &theirs.to_bytes(), false).is_ok());
}

#[test]
fn a_changed_public_of_any_layer_is_rejected_at_that_layer() {
    let run = run();
    let honest = &run.public;
    for (k, proof) in honest.steps[0].layers.iter().enumerate() {
        let key = &run.vd.layers[proof.layer as usize];
        for i in 0..key.publics.len() {
            let mut b = honest.clone();
            b.steps[0].layers[k].publics[i] += one();
            let why = rejected(&b);
            let at = match &why {
                Rejection::Link { layer, .. }
                | Rejection::Proof { layer, .. }
                | Rejection::InputCommitment { layer, .. }
                | Rejection::OutputCommitment { layer } => layer,
                _ => panic!("{why}"),
            };
            assert_eq!(at, &key.name, "public {i}: {why}");
        }
    }
}

#[test]
fn damaged_proofs_and_records_are_rejected() {
    let run = run();
    let honest = &run.public;
    let mut b = honest.clone();
    b.steps[0].layers[1].proof.proof.a = b.steps[0].layers[0].proof.proof.a;
    assert_eq!(
        rejected(&b),
        Rejection::Proof {
            step: 0,
            layer: "dense.1".into()
        }
    );
    let mut b = honest.clone();
    b.steps[0].layers.swap(0, 1);
    assert!(matches!(rejected(&b), Rejection::OtherStage { .. }));
    let mut b = honest.clone();
    b.steps[0].layers.pop();
    assert!(matches!(rejected(&b), Rejection::LayerCount { .. }));
    let mut b = honest.clone();
    b.steps.push(honest.steps[0].clone());
    assert_eq!(rejected(&b), Rejection::PassRecords { found: 2 });
    b.steps.clear();
    assert_eq!(rejected(&b), Rejection::PassRecords { found: 0 });
    let mut b = honest.clone();
    b.steps[0].step = 1;
    assert!(matches!(rejected(&b), Rejection::StepOrder { .. }));
    let bytes = honest.to_bytes();
    let why = verify(&run.vd, &bytes[..bytes.len() - 5], false).unwrap_err();
    assert!(
        matches!(why, Rejection::Malformed(DecodeError::Truncated(_))),
        "{why}"
    );
}

#[test]
fn keys_of_another_model_or_kind_are_refused() {
    let run = run();
    let bytes = run.public.to_bytes();
    assert!(matches!(
        verify(&run.other, &bytes, false),
        Err(Rejection::OtherModel { .. })
    ));
    // Renamed to the other model, the proofs are not the other model's.
    let mut b = run.public.clone();
    b.model = run.other.commitment.clone();
    assert!(matches!(
        verify(&run.other, &b.to_bytes(), false),
        Err(Rejection::Proof { .. } | Rejection::InputCommitment { .. })
    ));
    // A token loop's keys and bundle: examples/gpt2_block.zkir, set up and proven one step.
    let (loop_vd, loop_bundle) = token_loop(run.dir.path());
    assert_eq!(
        verify(&loop_vd, &bytes, false).unwrap_err(),
        Rejection::OtherKind {
            bundle: SINGLE_PASS,
            keys: TOKEN_LOOP
        }
    );
    assert_eq!(
        verify(&run.vd, &loop_bundle, false).unwrap_err(),
        Rejection::OtherKind {
            bundle: TOKEN_LOOP,
            keys: SINGLE_PASS
        }
    );
    assert!(verify(&loop_vd, &loop_bundle, false).is_ok());
}

/// The hand-written GPT-2 block of `examples/`, set up in `dir/loop` and proven for one step:
/// its verifying data and bundle. Its `vk` also reads as version 3 (before single passes).
fn token_loop(dir: &Path) -> (VerifyingData, Vec<u8>) {
    let dir = dir.join("loop");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/gpt2_block.zkir"),
    )
    .unwrap();
    let module = zkc_lang::check(&text).ok().unwrap().module;
    let vd = setup(
        &module,
        "gpt2-block",
        None,
        None,
        &dir,
        &mut StdRng::seed_from_u64(9),
        &mut |_, _, _| {},
    )
    .unwrap();
    assert_eq!(vd.pass, None);
    let interp = Interpreter::new(module).unwrap();
    let prover = Prover::new(&interp, "gpt2-block", &dir, &vd).unwrap();
    let out = dir.join("run.zkp");
    prover
        .generate(&[1], 1, &out, &mut StdRng::seed_from_u64(9), &mut |_| {})
        .unwrap();
    // The same keys as a version 3 file: no `pass`, read as a token loop.
    let bytes = std::fs::read(vk_path(&dir)).unwrap();
    let lines: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] == b'\n').collect();
    let header = std::str::from_utf8(&bytes[lines[0] + 1..lines[1]]).unwrap();
    let old_header = header.replace("\"pass\":null,", "");
    assert_ne!(old_header, header);
    let mut old = format!("zkc-vk 3\n{old_header}\n").into_bytes();
    old.extend_from_slice(&bytes[lines[1] + 1..]);
    let read = VerifyingData::from_bytes(&old).unwrap();
    assert_eq!((read.pass, read.layers.len()), (None, vd.layers.len()));
    (vd, std::fs::read(out).unwrap())
}
