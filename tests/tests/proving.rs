//! The Groth16 runtime end to end on a small model: compile -> artifact file -> setup (key
//! files) -> prove a generation (bundle file) -> verify; then the tamper suite: every way of
//! changing a bundle, or checking it with another model's keys, is rejected with its reason.

use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tempfile::TempDir;
use zkc_compiler::artifact;
use zkc_compiler::gguf::GgufFile;
use zkc_compiler::model::{generate_gpt2, FloatModel, ModelConfig, WeightType};
use zkc_compiler::quantize::{quantize, QuantConfig};
use zkc_compiler::tokenizer::Tokenizer;
use zkc_runtime::interp::Interpreter;
use zkc_runtime::proving::bundle::Bundle;
use zkc_runtime::proving::encoding::DecodeError;
use zkc_runtime::proving::keys::{vk_path, VerifyingData};
use zkc_runtime::proving::prover::Prover;
use zkc_runtime::proving::setup::setup;
use zkc_runtime::proving::verifier::{verify, Rejection};

const PROMPT: [u32; 2] = [72, 105];
const MAX_NEW: usize = 3;

fn dir(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("zkc-proving-{name}-"))
        .tempdir()
        .unwrap()
}

/// A 2-block model (d=32, context 8, context buckets 2, 4 and 8) written as an artifact and
/// set up; `seed` picks weights.
fn compiled(seed: u64, dir: &Path) -> (artifact::Artifact, VerifyingData) {
    let cfg = ModelConfig {
        n_layer: 2,
        n_embd: 32,
        n_head: 2,
        n_head_kv: 2,
        n_ctx: 8,
        n_vocab: 256,
        n_ff: 128,
        seed,
        weight_type: WeightType::F32,
    };
    let gguf = GgufFile::from_bytes(generate_gpt2(&cfg).to_bytes()).unwrap();
    let quant = QuantConfig {
        smallest_bucket: 2,
        ..QuantConfig::default()
    };
    let module = quantize(&FloatModel::load(&gguf).unwrap(), &quant).unwrap();
    let tokenizer = Tokenizer::from_gguf(&gguf).unwrap();
    let circ = dir.join("model.circ");
    artifact::write(&circ, &module, Some(&tokenizer), "test", "default").unwrap();
    let artifact = artifact::read(&circ).unwrap();
    let keys = dir.join("keys");
    let vocabulary = Some(tokenizer.tokens().to_vec());
    let mut rng = StdRng::seed_from_u64(seed);
    setup(
        &artifact.module,
        &artifact.header.ir_sha256,
        vocabulary,
        None,
        &keys,
        &mut rng,
        &mut |_, _, _| {},
    )
    .unwrap();
    let vd = VerifyingData::read(&vk_path(&keys)).unwrap();
    (artifact, vd)
}

struct Run {
    artifact: artifact::Artifact,
    keys: PathBuf,
    vd: VerifyingData,
    other: VerifyingData,
    bytes: Vec<u8>,
    generated: Vec<u32>,
    /// The directory of the keys, removed by `remove_run` at exit (a static is never dropped).
    dir: TempDir,
}

static RUN: OnceLock<Run> = OnceLock::new();

/// Removes the shared run's directory; registered with `atexit` once the run is made.
extern "C" fn remove_run() {
    if let Some(run) = RUN.get() {
        let _ = std::fs::remove_dir_all(run.dir.path());
    }
}

/// One honest run, shared by the tests: proving is the slow part.
fn run() -> &'static Run {
    RUN.get_or_init(|| {
        let here = dir("honest");
        let (artifact, vd) = compiled(11, here.path());
        let (_, other) = compiled(12, dir("other").path());
        let interp = Interpreter::new(artifact.module.clone()).unwrap();
        let prover = Prover::new(
            &interp,
            &artifact.header.ir_sha256,
            &here.path().join("keys"),
            &vd,
        )
        .unwrap();
        let out = here.path().join("run.zkp");
        let mut outputs = Vec::new();
        prover
            .generate(
                &PROMPT,
                MAX_NEW,
                &out,
                &mut StdRng::seed_from_u64(1),
                &mut |e| {
                    if let zkc_runtime::proving::prover::Event::Step { output, .. } = e {
                        outputs.push(output)
                    }
                },
            )
            .unwrap();
        // The same generation without proofs, by the interpreter alone.
        let mut runner = zkc_runtime::interp::ModelRunner::new(&interp).unwrap();
        let (generated, _) = runner.generate(&PROMPT, MAX_NEW).unwrap();
        assert_eq!(outputs[PROMPT.len() - 1..], generated[..]);
        // SAFETY: `remove_run` cannot unwind, as a handler that `exit` calls must not.
        unsafe { libc::atexit(remove_run) };
        Run {
            artifact,
            keys: here.path().join("keys"),
            vd,
            other,
            bytes: std::fs::read(&out).unwrap(),
            generated,
            dir: here,
        }
    })
}

fn bundle() -> Bundle {
    Bundle::from_bytes(&run().bytes).unwrap()
}

fn rejected(bundle: &Bundle) -> Rejection {
    verify(&run().vd, &bundle.to_bytes(), false).expect_err("a tampered bundle is rejected")
}

#[test]
fn an_honest_run_verifies_and_says_what_it_generated() {
    let run = run();
    let verified = verify(&run.vd, &run.bytes, false).unwrap();
    assert_eq!(verified.prompt, PROMPT);
    assert_eq!(verified.generated, run.generated);
    assert_eq!(verified.steps, PROMPT.len() + MAX_NEW - 1);
    assert_eq!(verified.proofs, verified.steps * 4);
    assert!(verified.complete);
}

#[test]
fn a_flipped_byte_in_any_proof_is_rejected_at_its_step_and_layer() {
    let run = run();
    let honest = bundle();
    // Where each proof's bytes sit: re-encode with one proof zeroed and find the change.
    for (t, step) in honest.steps.iter().enumerate() {
        for k in 0..step.layers.len() {
            let mut other = honest.clone();
            other.steps[t].layers[k].proof.proof.a = Default::default();
            let changed = other.to_bytes();
            let at = (0..run.bytes.len())
                .find(|&i| run.bytes[i] != changed[i])
                .expect("the proof is in the file");
            for offset in [0, 40, 100] {
                let mut bytes = run.bytes.clone();
                bytes[at + offset] ^= 0x04;
                let why = verify(&run.vd, &bytes, false).expect_err("rejected");
                let name = &run.vd.layers[step.layers[k].layer as usize].name;
                let specific = match &why {
                    Rejection::Proof { step, layer } => *step == t && layer == name,
                    Rejection::Malformed(DecodeError::Invalid(what)) => {
                        what.contains(&format!("step record {t}'s layer {k} proof"))
                    }
                    _ => false,
                };
                assert!(specific, "step {t} layer {k} +{offset}: {why}");
            }
        }
    }
}

/// The blocks check ranges by lookup, so their proofs carry a first-round commitment: a bundle
/// whose commitment is altered, dropped, or moved to another layer's proof is rejected at that
/// proof, and a commitment added to a proof of a layer without lookups too.
#[test]
fn an_altered_missing_or_added_round_one_commitment_is_rejected() {
    use ark_ec::{AffineRepr, CurveGroup};
    let honest = bundle();
    let vd = &run().vd;
    let with_lookups: Vec<usize> = (0..honest.steps[0].layers.len())
        .filter(|&k| honest.steps[0].layers[k].proof.commitment.is_some())
        .collect();
    assert!(
        !with_lookups.is_empty(),
        "some layer of the tiny model has lookups"
    );
    for t in [0, 1] {
        for (k, proof) in honest.steps[t].layers.iter().enumerate() {
            let name = &vd.layers[proof.layer as usize].name;
            let d = proof.proof.commitment;
            let other = honest.steps[t].layers[with_lookups[0]].proof.commitment;
            let altered = [
                d.map(|d| (d + ark_bn254::G1Affine::generator()).into_affine()),
                d.and(None),
                d.map_or(Some(ark_bn254::G1Affine::generator()), |_| None),
                other.filter(|&o| Some(o) != d),
                honest.steps[t + 1].layers[k].proof.commitment,
            ];
            for commitment in altered.into_iter().filter(|&c| c != d) {
                let mut b = honest.clone();
                b.steps[t].layers[k].proof.commitment = commitment;
                let why = rejected(&b);
                assert!(
                    matches!(&why, Rejection::Proof { step, layer } if *step == t && layer == name),
                    "step {t}, `{name}`, commitment {commitment:?}: {why}"
                );
            }
        }
    }
}

#[test]
fn a_changed_public_input_or_commitment_is_rejected() {
    let honest = bundle();
    let vd = &run().vd;
    for t in [0, 2] {
        for (k, proof) in honest.steps[t].layers.iter().enumerate() {
            let key = &vd.layers[proof.layer as usize];
            for i in 0..key.publics.len() {
                let mut b = honest.clone();
                b.steps[t].layers[k].publics[i] += zkc_compiler::backend::F::from(1u8);
                let why = rejected(&b);
                let at_layer = match &why {
                    Rejection::Link { step, layer, .. } | Rejection::Proof { step, layer } => {
                        *step == t && *layer == key.name
                    }
                    _ => false,
                };
                assert!(at_layer, "step {t}, `{}` public {i}: {why}", key.name);
            }
        }
    }
}

#[test]
fn a_replaced_token_is_rejected() {
    let honest = bundle();
    let head = honest.steps[0].layers.len() - 1;
    let mut b = honest.clone();
    // The generated token: the head's public output.
    let last = b.steps[2].layers[head].publics.len() - 1;
    b.steps[2].layers[head].publics[last] += zkc_compiler::backend::F::from(1u8);
    assert!(matches!(rejected(&b), Rejection::Proof { step: 2, .. }));
    // A prompt token: the embedding proved another one.
    let mut b = honest.clone();
    b.prompt[1] += 1;
    assert!(
        matches!(rejected(&b), Rejection::Link { step: 1, ref layer, ref what } if layer == "embed" && what.contains("`token`")),
        "{}",
        rejected(&b)
    );
}

#[test]
fn swapped_dropped_and_duplicated_steps_are_rejected() {
    let honest = bundle();
    let mut swapped = honest.clone();
    swapped.steps.swap(1, 2);
    assert_eq!(
        rejected(&swapped),
        Rejection::StepOrder {
            record: 1,
            found: 2
        }
    );
    let mut dropped = honest.clone();
    dropped.steps.remove(1);
    assert_eq!(
        rejected(&dropped),
        Rejection::StepOrder {
            record: 1,
            found: 2
        }
    );
    let mut duplicated = honest.clone();
    duplicated.steps.insert(2, honest.steps[1].clone());
    assert!(matches!(
        rejected(&duplicated),
        Rejection::TooLong { .. } | Rejection::StepOrder { .. }
    ));
    let mut last = honest.clone();
    last.steps.pop();
    assert_eq!(
        rejected(&last),
        Rejection::Incomplete {
            found: 3,
            expected: 4
        }
    );
    assert!(
        verify(&run().vd, &last.to_bytes(), true).is_ok(),
        "a prefix verifies with --partial"
    );
    // Renumbered so the order looks right: the KV state and positions no longer link.
    let mut renumbered = dropped.clone();
    renumbered.steps.pop();
    for (t, s) in renumbered.steps.iter_mut().enumerate() {
        s.step = t as u32;
    }
    assert!(
        matches!(rejected(&renumbered), Rejection::Link { step: 1, .. }),
        "{}",
        rejected(&renumbered)
    );
}

#[test]
fn a_dropped_layer_is_rejected() {
    let mut b = bundle();
    b.steps[1].layers.remove(1);
    assert_eq!(
        rejected(&b),
        Rejection::LayerCount {
            step: 1,
            found: 3,
            expected: 4
        }
    );
}

#[test]
fn steps_cross_context_buckets_and_each_bucket_is_checked() {
    let (honest, vd) = (bundle(), &run().vd);
    let context =
        |t: usize, stage: usize| vd.layers[honest.steps[t].layers[stage].layer as usize].context;
    // Positions 0 and 1 in the blocks' bucket of 2, positions 2 and 3 in that of 4; the caches
    // link across (the honest run verifies).
    assert_eq!(
        (0..4).map(|t| context(t, 1)).collect::<Vec<_>>(),
        [Some(2), Some(2), Some(4), Some(4)]
    );
    assert_eq!(context(0, 0), None);
    let bucket = |c: usize| {
        vd.layers
            .iter()
            .position(|l| l.name == "block.0" && l.context == Some(c))
            .unwrap() as u32
    };
    // A step proven in a bucket too small for its position: refused before any pairing.
    let mut b = honest.clone();
    b.steps[2].layers[1].layer = bucket(2);
    assert_eq!(
        rejected(&b),
        Rejection::BucketTooSmall {
            step: 2,
            layer: "block.0".into(),
            context: 2
        }
    );
    // A proof of one bucket presented as another's (large enough): its key rejects it.
    let mut b = honest.clone();
    b.steps[0].layers[1].layer = bucket(8);
    assert_eq!(
        rejected(&b),
        Rejection::Proof {
            step: 0,
            layer: "block.0".into()
        }
    );
    // A proof naming a layer of another stage.
    let mut b = honest.clone();
    b.steps[1].layers[2].layer = bucket(4);
    assert_eq!(
        rejected(&b),
        Rejection::OtherStage {
            step: 1,
            stage: "block.1".into(),
            found: bucket(4)
        }
    );
    // Stages swapped within a step.
    let mut b = honest.clone();
    b.steps[3].layers.swap(1, 2);
    assert!(matches!(
        rejected(&b),
        Rejection::OtherStage { step: 3, .. }
    ));
}

#[test]
fn keys_of_another_model_of_the_same_shape_are_refused() {
    let run = run();
    assert!(matches!(
        verify(&run.other, &run.bytes, false),
        Err(Rejection::OtherModel { .. })
    ));
    // Even with the bundle renamed to the other model, its proofs are not the other model's.
    let mut b = bundle();
    b.model = run.other.commitment.clone();
    assert!(matches!(
        verify(&run.other, &b.to_bytes(), false),
        Err(Rejection::Proof { step: 0, .. })
    ));
}

#[test]
fn truncated_files_and_appended_garbage_are_refused() {
    let bytes = &run().bytes;
    for cut in [10, bytes.len() / 2, bytes.len() - 1] {
        let why = verify(&run().vd, &bytes[..cut], false).unwrap_err();
        assert!(
            matches!(
                why,
                Rejection::Malformed(DecodeError::Truncated(_) | DecodeError::Header(_))
            ),
            "cut at {cut}: {why}"
        );
    }
    let mut appended = bytes.clone();
    appended.extend_from_slice(b"garbage!");
    let why = verify(&run().vd, &appended, false).unwrap_err();
    assert!(
        matches!(why, Rejection::Malformed(DecodeError::Truncated(_))),
        "{why}"
    );
}

#[test]
fn damaged_or_inconsistent_verifying_data_is_refused() {
    let vd = &run().vd;
    let bytes = vd.to_bytes();
    assert!(VerifyingData::from_bytes(&bytes).is_ok());
    let mut lost = vd.clone();
    lost.layers[1].initial_states.clear();
    assert!(matches!(
        VerifyingData::from_bytes(&lost.to_bytes()),
        Err(DecodeError::Header(h)) if h.contains("initial states")
    ));
    // Buckets of a stage out of order.
    let mut swapped = vd.clone();
    swapped.layers.swap(1, 2);
    assert!(matches!(
        VerifyingData::from_bytes(&swapped.to_bytes()),
        Err(DecodeError::Header(h)) if h.contains("not a larger context bucket")
    ));
    // A first-round key of zero (any commitment would pass), or one taken away.
    use ark_ec::AffineRepr;
    let k = vd
        .layers
        .iter()
        .position(|l| l.vk.delta1_g2.is_some())
        .unwrap();
    let mut zero = vd.clone();
    zero.layers[k].vk.delta1_g2 = Some(ark_bn254::G2Affine::zero());
    assert!(matches!(
        VerifyingData::from_bytes(&zero.to_bytes()),
        Err(DecodeError::Invalid(what)) if what.contains("zero")
    ));
    let mut plain = vd.clone();
    plain.layers[k].vk.delta1_g2 = None;
    assert!(matches!(
        VerifyingData::from_bytes(&plain.to_bytes()),
        Err(DecodeError::Invalid(what)) if what.contains("public inputs")
    ));
    for at in [bytes.len() - 1, bytes.len() - 40, bytes.len() / 2] {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x55;
        // Refused, or another model that the honest bundle does not verify against.
        if let Ok(read) = VerifyingData::from_bytes(&damaged) {
            assert!(verify(&read, &run().bytes, false).is_err(), "byte {at}");
        }
    }
    assert!(VerifyingData::from_bytes(&bytes[..bytes.len() - 3]).is_err());
}

#[test]
fn the_prover_refuses_keys_of_another_artifact() {
    let run = run();
    let interp = Interpreter::new(run.artifact.module.clone()).unwrap();
    let err = Prover::new(&interp, "0000", &run.keys, &run.vd)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("rerun `zkc setup`"), "{err}");
    let pk = zkc_runtime::proving::keys::pk_path(&run.keys, 0);
    let err = zkc_runtime::proving::keys::read_pk(&pk, "0000").expect_err("refused");
    assert!(err.to_string().contains("another model"), "{err}");
}

#[test]
fn a_header_asking_for_no_steps_or_a_prompt_beyond_the_context_is_refused() {
    let mut b = bundle();
    b.steps.clear();
    b.max_new = usize::MAX - 1;
    assert!(matches!(
        rejected(&b),
        Rejection::Incomplete { found: 0, .. }
    ));
    assert!(
        verify(&run().vd, &b.to_bytes(), true).is_err(),
        "a prefix of no steps proves nothing"
    );
    let mut long = bundle();
    long.prompt = vec![1; run().vd.context + 1];
    assert!(matches!(rejected(&long), Rejection::PromptTooLong { .. }));
}

/// Setup writes every layer's matrices beside the keys and the prover reads them; without them,
/// matrices beyond the prover's memory budget are written there and read back at the next
/// proofs (and by the next prover); a corrupt one is rebuilt. The proofs verify either
/// way, and the cache files are only the prover's.
#[test]
fn matrices_from_setup_or_beyond_the_budget_are_cached_on_disk_and_read_back() {
    let run = run();
    let shapes_dir = dir("shapes");
    let keys = shapes_dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    for entry in std::fs::read_dir(&run.keys).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, keys.join(path.file_name().unwrap())).unwrap();
    }
    let interp = Interpreter::new(run.artifact.module.clone()).unwrap();
    let prove = |seed: u64| {
        let prover = Prover::new(&interp, &run.artifact.header.ir_sha256, &keys, &run.vd)
            .unwrap()
            .with_shape_budget(0);
        let out = keys.join(format!("run-{seed}.zkp"));
        prover
            .generate(
                &PROMPT,
                MAX_NEW,
                &out,
                &mut StdRng::seed_from_u64(seed),
                &mut |_| {},
            )
            .unwrap();
        let verified = verify(&run.vd, &std::fs::read(&out).unwrap(), false).unwrap();
        assert_eq!(verified.generated, run.generated);
    };
    let shapes = || -> Vec<PathBuf> {
        let mut found: Vec<_> = std::fs::read_dir(&keys)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "shape"))
            .collect();
        found.sort();
        found
    };
    let written = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    // Setup wrote every layer's matrices, and the prover reads them.
    let from_setup = shapes();
    assert_eq!(from_setup.len(), run.vd.layers.len());
    let before: Vec<_> = from_setup.iter().map(|p| written(p)).collect();
    prove(4);
    let after: Vec<_> = from_setup.iter().map(|p| written(p)).collect();
    assert_eq!(before, after, "setup's matrices are read, not rebuilt");
    // Without them, a prover beyond its budget writes the ones it builds.
    for p in &from_setup {
        std::fs::remove_file(p).unwrap();
    }
    prove(5);
    let cached = shapes();
    assert!(!cached.is_empty(), "every layer's matrices went to disk");
    let before: Vec<_> = cached.iter().map(|p| written(p)).collect();
    prove(6);
    let after: Vec<_> = cached.iter().map(|p| written(p)).collect();
    assert_eq!(before, after, "read back, not rebuilt");
    let mut bytes = std::fs::read(&cached[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&cached[0], &bytes).unwrap();
    prove(7);
    assert_ne!(
        std::fs::read(&cached[0]).unwrap(),
        bytes,
        "a corrupt one is rebuilt"
    );
}

/// A witness that does not satisfy a layer's circuit (here a block's softmax result off by one,
/// as a gadget's wrong witness generation would leave it) is reported by the prover with the
/// instruction that emitted the first failing constraint, as a bug in zkc, not as wrong keys.
#[test]
fn a_wrong_witness_names_the_instruction_whose_constraint_fails() {
    use zkc_runtime::proving::ProvingError;
    let run = run();
    let module = &run.artifact.module;
    let interp = Interpreter::new(module.clone()).unwrap();
    let prover = Prover::new(&interp, &run.artifact.header.ir_sha256, &run.keys, &run.vd).unwrap();
    let mut runner = zkc_runtime::interp::ModelRunner::new(&interp).unwrap();
    let mut witness = runner.step(PROMPT[0], true).unwrap().witness.unwrap();
    let is_softmax = |i: &&zkc_lang::Inst| matches!(i.op, zkc_lang::Op::Softmax { .. });
    let (index, layer) = module
        .layers
        .iter()
        .enumerate()
        .find(|(_, l)| l.insts.iter().any(|i| is_softmax(&i)))
        .expect("a block has a softmax");
    let result = layer.insts.iter().find(is_softmax).unwrap().results[0];
    let values = &mut witness[index].values;
    let probs = &values[result.index()];
    let mut data = probs.data().to_vec();
    data[0] -= 1;
    values[result.index()] =
        zkc_lang::semantics::Tensor::new(probs.shape().to_vec(), data).unwrap();
    let err = prover
        .prove_step(0, &witness, &mut StdRng::seed_from_u64(2), &mut |_| {})
        .expect_err("the witness does not satisfy the circuit");
    let message = err.to_string();
    let ProvingError::WitnessUnsatisfied {
        step,
        layer: named,
        origin,
        ..
    } = err
    else {
        panic!("{message}");
    };
    assert_eq!((step, named.as_str()), (0, layer.name.as_str()));
    let name = &layer.value(result).name;
    assert_eq!(origin.to_string(), format!("`%{name}` (softmax)"));
    assert!(
        message.contains("bug in zkc's witness generation for `softmax`"),
        "{message}"
    );
}

#[test]
fn keys_for_some_buckets_prove_in_the_smallest_keyed_bucket() {
    let run = run();
    let bucket4 = dir("bucket4");
    let keys = bucket4.path().join("keys");
    let vd = setup(
        &run.artifact.module,
        &run.artifact.header.ir_sha256,
        None,
        Some(&[4]),
        &keys,
        &mut StdRng::seed_from_u64(3),
        &mut |_, _, _| {},
    )
    .unwrap();
    assert_eq!(
        vd.context, 4,
        "the largest keyed bucket bounds a generation"
    );
    assert_eq!(vd.layers.len(), 4, "embed, the blocks' bucket 4, head");
    let interp = Interpreter::new(run.artifact.module.clone()).unwrap();
    let prover = Prover::new(&interp, &run.artifact.header.ir_sha256, &keys, &vd).unwrap();
    let out = bucket4.path().join("run.zkp");
    let bundle = prover
        .generate(
            &PROMPT,
            MAX_NEW,
            &out,
            &mut StdRng::seed_from_u64(2),
            &mut |_| {},
        )
        .unwrap();
    // Positions 0 and 1 too run in bucket 4 (bucket 2 has no keys); the same tokens.
    for step in &bundle.steps {
        assert_eq!(vd.layers[step.layers[1].layer as usize].context, Some(4));
    }
    let verified = verify(&vd, &std::fs::read(&out).unwrap(), false).unwrap();
    assert_eq!(verified.generated, run.generated);
    // Buckets the artifact does not have are refused.
    let err = setup(
        &run.artifact.module,
        &run.artifact.header.ir_sha256,
        None,
        Some(&[3]),
        &keys,
        &mut StdRng::seed_from_u64(3),
        &mut |_, _, _| {},
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("has the buckets [2, 4, 8]"),
        "{err}"
    );
}
