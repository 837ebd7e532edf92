//! Bounded circuits end to end: a model whose blocks are above `--max-constraints` is cut into
//! parts (`zkc_compiler::parts`) that print and parse, run bit-identically to the whole layers,
//! prove and verify; a part's boundary commitment is a link the verifier checks.

use rand::rngs::StdRng;
use rand::SeedableRng;
use zkc_compiler::artifact;
use zkc_compiler::backend::cost;
use zkc_compiler::gguf::GgufFile;
use zkc_compiler::model::{generate_gpt2, FloatModel, ModelConfig, WeightType};
use zkc_compiler::parts::split;
use zkc_compiler::quantize::{quantize, QuantConfig};
use zkc_lang::Module;
use zkc_runtime::interp::{Interpreter, ModelRunner};
use zkc_runtime::proving::bundle::Bundle;
use zkc_runtime::proving::keys::{vk_path, VerifyingData};
use zkc_runtime::proving::prover::Prover;
use zkc_runtime::proving::setup::setup;
use zkc_runtime::proving::verifier::{verify, Rejection};

/// A 2-block model (d=32, context 8, buckets 4 and 8).
fn whole() -> Module {
    let cfg = ModelConfig {
        n_layer: 2,
        n_embd: 32,
        n_head: 2,
        n_ctx: 8,
        n_vocab: 256,
        n_ff: 128,
        seed: 21,
        weight_type: WeightType::F32,
    };
    let gguf = GgufFile::from_bytes(generate_gpt2(&cfg).to_bytes()).unwrap();
    let quant = QuantConfig {
        smallest_bucket: 4,
        ..QuantConfig::default()
    };
    quantize(&FloatModel::load(&gguf).unwrap(), &quant).unwrap()
}

/// The smallest block's constraints (in its largest bucket) less one: every block is cut.
fn bound(module: &Module) -> usize {
    module
        .layers
        .iter()
        .filter(|l| l.name.starts_with("block") && l.context() == Some(8))
        .map(|l| cost::layer(module, l).1)
        .min()
        .unwrap()
        - 1
}

#[test]
fn blocks_above_the_bound_are_cut_into_linked_parts_that_run_as_the_whole() {
    let whole = whole();
    let max = bound(&whole);
    let parts = split(whole.clone(), max).unwrap();
    let names: Vec<(String, Option<usize>)> = parts
        .layers
        .iter()
        .map(|l| (l.name.clone(), l.context()))
        .collect();
    let expect: Vec<(String, Option<usize>)> = [
        ("embed", None),
        ("block.0.part0", Some(4)),
        ("block.0.part0", Some(8)),
        ("block.0.part1", None),
        ("block.1.part0", Some(4)),
        ("block.1.part0", Some(8)),
        ("block.1.part1", None),
        ("head", None),
    ]
    .iter()
    .map(|(n, c)| (n.to_string(), *c))
    .collect();
    assert_eq!(
        names, expect,
        "the caches stay in the first part, in every bucket"
    );
    for l in &parts.layers {
        assert!(cost::layer(&parts, l).1 <= max, "`{}` is bounded", l.name);
    }
    // The boundary: the second part's first input is a value the first part returns.
    let (first, second) = (&parts.layers[2], &parts.layers[3]);
    let boundary = &second.value(second.inputs[0]).name;
    assert!(first
        .outputs
        .iter()
        .any(|&o| &first.value(o).name == boundary));
    // Parts are ordinary layers of the text format.
    zkc_lang::validate(&parts).unwrap();
    let text = zkc_lang::print(&parts);
    assert_eq!(zkc_lang::check(&text).ok().unwrap().module, parts);
    // And run bit-identically to the whole layers, across a bucket change.
    let (a, b) = (
        Interpreter::new(whole).unwrap(),
        Interpreter::new(parts).unwrap(),
    );
    let (mut ra, mut rb) = (ModelRunner::new(&a).unwrap(), ModelRunner::new(&b).unwrap());
    for token in [72, 105, 33, 7, 250, 1] {
        let (x, y) = (
            ra.step(token, false).unwrap(),
            rb.step(token, false).unwrap(),
        );
        assert_eq!((x.token, x.logits), (y.token, y.logits));
    }
}

#[test]
fn parts_prove_and_verify_and_their_boundary_is_a_checked_link() {
    let whole = whole();
    let max = bound(&whole);
    let module = split(whole, max).unwrap();
    let dir = std::env::temp_dir().join(format!("zkc-parts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let circ = dir.join("model.circ");
    artifact::write(&circ, &module, None, "test", "default").unwrap();
    let artifact = artifact::read(&circ).unwrap();
    let keys = dir.join("keys");
    let mut rng = StdRng::seed_from_u64(3);
    setup(
        &artifact.module,
        &artifact.header.ir_sha256,
        None,
        Some(&[4]),
        &keys,
        &mut rng,
        &mut |_, _, _| {},
    )
    .unwrap();
    let vd = VerifyingData::read(&vk_path(&keys)).unwrap();
    let interp = Interpreter::new(artifact.module).unwrap();
    let prover = Prover::new(&interp, &artifact.header.ir_sha256, &keys, &vd).unwrap();
    let out = dir.join("run.zkp");
    prover
        .generate(&[72, 105], 2, &out, &mut rng, &mut |_| {})
        .unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let verified = verify(&vd, &bytes, false).unwrap();
    assert_eq!(
        verified.proofs,
        verified.steps * 6,
        "embed, 2 x 2 parts, head"
    );
    // The second part's boundary input (its first public) changed: the link to the first
    // part's output, or the part's own proof, rejects it.
    let honest = Bundle::from_bytes(&bytes).unwrap();
    let second = honest.steps[1]
        .layers
        .iter()
        .position(|p| vd.layers[p.layer as usize].name == "block.0.part1")
        .unwrap();
    let mut b = honest.clone();
    b.steps[1].layers[second].publics[0] += zkc_compiler::backend::F::from(1u8);
    let why = verify(&vd, &b.to_bytes(), false).expect_err("rejected");
    assert!(
        matches!(&why, Rejection::Link { step: 1, layer, .. } if layer == "block.0.part1"),
        "{why}"
    );
    // A part's proof in the other part's place is refused.
    let mut b = honest;
    b.steps[0].layers.swap(1, 2);
    assert!(verify(&vd, &b.to_bytes(), false).is_err());
    std::fs::remove_dir_all(&dir).ok();
}
