//! Bounded circuits end to end: a model whose blocks are above `--max-constraints` is cut into
//! parts (`zkc_compiler::parts`) that print and parse, run bit-identically to the whole layers,
//! prove and verify; a part's boundary commitment is a link the verifier checks. Layers within
//! the bound are joined into one circuit, which does the same. A head above the bound is cut
//! into slices of its vocabulary with the argmax carried between them, exact to the tie. An
//! attention part above the bound is cut between groups of its caches (heads), each with its
//! own chain.

use rand::rngs::StdRng;
use rand::SeedableRng;
use zkc_compiler::artifact;
use zkc_compiler::backend::cost;
use zkc_compiler::gguf::GgufFile;
use zkc_compiler::model::{generate_gpt2, FloatModel, ModelConfig, WeightType};
use zkc_compiler::parts::{join, longest_uncut_context, slice_vocabulary, split};
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
        n_head_kv: 2,
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

/// Runs `a` and `b` over `tokens` (crossing the bucket of 4) and checks equal tokens and logits.
fn assert_same_runs(a: Module, b: Module, tokens: &[u32]) {
    let (a, b) = (Interpreter::new(a).unwrap(), Interpreter::new(b).unwrap());
    let (mut ra, mut rb) = (ModelRunner::new(&a).unwrap(), ModelRunner::new(&b).unwrap());
    for &token in tokens {
        let (x, y) = (
            ra.step(token, false).unwrap(),
            rb.step(token, false).unwrap(),
        );
        assert_eq!((x.token, x.logits), (y.token, y.logits));
    }
}

/// A generation proven from `module` written as an artifact in a temporary directory, removed
/// when `_dir` is dropped.
struct Proven {
    _dir: tempfile::TempDir,
    vd: VerifyingData,
    bytes: Vec<u8>,
}

/// `module` set up (keys for `buckets`, all when `None`) and `prompt` then `max_new` tokens
/// proven.
fn prove(
    name: &str,
    module: &Module,
    seed: u64,
    buckets: Option<&[usize]>,
    prompt: &[u32],
    max_new: usize,
) -> Proven {
    let dir = tempfile::Builder::new()
        .prefix(&format!("{name}-"))
        .tempdir()
        .unwrap();
    let circ = dir.path().join("model.circ");
    artifact::write(&circ, module, None, "test", "default").unwrap();
    let artifact = artifact::read(&circ).unwrap();
    let keys = dir.path().join("keys");
    let mut rng = StdRng::seed_from_u64(seed);
    let ir = &artifact.header.ir_sha256;
    setup(
        &artifact.module,
        ir,
        None,
        buckets,
        &keys,
        &mut rng,
        &mut |_, _, _| {},
    )
    .unwrap();
    let vd = VerifyingData::read(&vk_path(&keys)).unwrap();
    let interp = Interpreter::new(artifact.module).unwrap();
    let out = dir.path().join("run.zkp");
    Prover::new(&interp, ir, &keys, &vd)
        .unwrap()
        .generate(prompt, max_new, &out, &mut rng, &mut |_| {})
        .unwrap();
    let bytes = std::fs::read(&out).unwrap();
    Proven {
        _dir: dir,
        vd,
        bytes,
    }
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
    assert_same_runs(whole, parts, &[72, 105, 33, 7, 250, 1]);
}

#[test]
fn parts_prove_and_verify_and_their_boundary_is_a_checked_link() {
    let whole = whole();
    let max = bound(&whole);
    let module = split(whole, max).unwrap();
    let Proven { _dir, vd, bytes } = prove("zkc-parts", &module, 3, Some(&[4]), &[72, 105], 2);
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
    // A part's proof (with its public inputs) from another step in its place.
    let mut b = honest.clone();
    b.steps[1].layers[second] = honest.steps[0].layers[second].clone();
    let why = verify(&vd, &b.to_bytes(), false).expect_err("rejected");
    assert!(matches!(&why, Rejection::Link { step: 1, .. }), "{why}");
    // A part's proof in the other part's place is refused.
    let mut b = honest;
    b.steps[0].layers.swap(1, 2);
    assert!(verify(&vd, &b.to_bytes(), false).is_err());
}

/// `module`'s layers as (name, context).
fn layout(module: &Module) -> Vec<(String, Option<usize>)> {
    module
        .layers
        .iter()
        .map(|l| (l.name.clone(), l.context()))
        .collect()
}

#[test]
fn layers_within_the_bound_are_joined_into_circuits_that_run_prove_and_verify_as_the_model() {
    let whole = whole();
    let cost_of = |name: &str| {
        let l = whole.layers.iter().rev().find(|l| l.name == name).unwrap();
        cost::layer(&whole, l).1
    };
    // A bound 16 times the embedding: room for a block and the embedding, not for two blocks;
    // the embedding is small enough to join the blocks' buckets, the head (three times its
    // size) is not.
    let max = 16 * cost_of("embed");
    assert!(cost_of("block.0") + cost_of("embed") <= max && cost_of("head") > max / 16);
    let joined = join(whole.clone(), max);
    let expect: Vec<(String, Option<usize>)> = [
        ("embed_block.0", Some(4)),
        ("embed_block.0", Some(8)),
        ("block.1", Some(4)),
        ("block.1", Some(8)),
        ("head", None),
    ]
    .iter()
    .map(|(n, c)| (n.to_string(), *c))
    .collect();
    assert_eq!(layout(&joined), expect);
    for l in &joined.layers {
        assert!(cost::layer(&joined, l).1 <= max, "`{}` is bounded", l.name);
    }
    let total = |m: &Module| -> usize {
        m.layers
            .iter()
            .filter(|l| l.context() != Some(4))
            .map(|l| cost::layer(m, l).1)
            .sum()
    };
    assert!(
        total(&joined) < total(&whole),
        "a join saves a link's commitments and a lookup table"
    );
    // The block 0 -> block 1 link stays a link; the embedding's output is a wire now.
    let first = &joined.layers[0];
    let outputs: Vec<&str> = first
        .outputs
        .iter()
        .map(|&o| first.value(o).name.as_str())
        .collect();
    assert_eq!(outputs, ["blk.0.ffn_residual"]);
    zkc_compiler::backend::check::check(&joined).unwrap();
    zkc_lang::validate(&joined).unwrap();
    let text = zkc_lang::print(&joined);
    assert_eq!(zkc_lang::check(&text).ok().unwrap().module, joined);
    // Without a bound the blocks join too, and the head joins them, but never the embedding:
    // its `%token` is the embedding's input of the next step (one layer cannot have both).
    let names = |m: Module| -> Vec<String> { m.stages().into_iter().map(|s| s.name).collect() };
    assert_eq!(
        names(join(whole.clone(), usize::MAX)),
        ["embed_block.0_block.1", "head"]
    );
    let blocks_and_head = Module {
        consts: whole.consts.clone(),
        layers: whole.layers[1..].to_vec(),
    };
    assert_eq!(
        names(join(blocks_and_head, usize::MAX)),
        ["block.0_block.1_head"]
    );
    assert_eq!(join(whole.clone(), 1), whole, "nothing fits: nothing joins");

    // Bit-identical runs, across a bucket change.
    assert_same_runs(whole, joined.clone(), &[72, 105, 33, 7, 250, 1]);

    // Proven across the bucket change (positions 0-4), verified; the joined caches' chain is a
    // link across steps like any layer's.
    let Proven { _dir, vd, bytes } = prove("zkc-joined", &joined, 5, None, &[72, 105, 33], 3);
    let verified = verify(&vd, &bytes, false).unwrap();
    assert_eq!(verified.steps, 5);
    assert_eq!(verified.proofs, 5 * 3, "three circuits per token");
    let honest = Bundle::from_bytes(&bytes).unwrap();
    let proof = &honest.steps[4].layers[0];
    let first = &vd.layers[proof.layer as usize];
    assert_eq!(first.name, "embed_block.0");
    assert_ne!(
        honest.steps[3].layers[0].layer, proof.layer,
        "step 4 is proven in the bucket of 8"
    );
    // The joined caches' chain before step 4 (one chain over both blocks' caches) moved.
    let before = first
        .publics
        .iter()
        .position(|p| p.role == zkc_compiler::backend::layer::Role::StateBefore)
        .unwrap();
    let mut b = honest.clone();
    b.steps[4].layers[0].publics[before] += zkc_compiler::backend::F::from(1u8);
    let why = verify(&vd, &b.to_bytes(), false).expect_err("rejected");
    assert!(
        matches!(&why, Rejection::Link { step: 4, layer, .. } if layer == "embed_block.0"),
        "{why}"
    );
    // A circuit's proof dropped.
    let mut b = honest;
    b.steps[2].layers.remove(0);
    assert!(matches!(
        verify(&vd, &b.to_bytes(), false),
        Err(Rejection::LayerCount { step: 2, .. })
    ));
}

#[test]
fn a_head_above_the_bound_is_cut_into_vocabulary_slices_whose_carried_argmax_is_exact() {
    let whole = whole();
    let head = whole.layers.last().unwrap();
    // Each slice repeats commitments (and the first the head's LayerNorm): a fifth less than
    // the whole head takes a dozen slices of the 256 logits.
    let max = cost::layer(&whole, head).1 * 4 / 5;
    let sliced = slice_vocabulary(whole.clone(), max);
    let names: Vec<String> = sliced.stages().into_iter().map(|s| s.name).collect();
    let slices: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("head.vocab"))
        .collect();
    assert!(slices.len() >= 3, "{names:?}");
    assert_eq!(names.len(), 3 + slices.len(), "embed, 2 blocks, the slices");
    for l in sliced.layers.iter().filter(|l| l.name.starts_with("head")) {
        assert!(cost::layer(&sliced, l).1 <= max, "`{}` is bounded", l.name);
    }
    assert!(
        !sliced.consts.iter().any(|c| c.name == "output.w"),
        "the whole weights are gone: each slice has its columns"
    );
    zkc_compiler::backend::check::check(&sliced).unwrap();
    zkc_lang::validate(&sliced).unwrap();
    let text = zkc_lang::print(&sliced);
    assert!(text.contains("argmax_carry"));
    assert_eq!(zkc_lang::check(&text).ok().unwrap().module, sliced);

    // The same tokens and logits as the whole head, including a row with ties across slices.
    assert_same_runs(whole, sliced.clone(), &[72, 105, 33, 7, 250]);

    // Proven and verified; a slice dropped, two slices swapped and a carried logit changed are
    // each refused.
    let Proven { _dir, vd, bytes } = prove("zkc-vocab", &sliced, 9, Some(&[4]), &[72, 105], 2);
    let verified = verify(&vd, &bytes, false).unwrap();
    assert_eq!(verified.proofs, verified.steps * names.len());
    let honest = Bundle::from_bytes(&bytes).unwrap();
    let at = |name: &str| {
        honest.steps[1]
            .layers
            .iter()
            .position(|p| vd.layers[p.layer as usize].name == name)
            .unwrap()
    };
    let (first, second) = (at("head.vocab0"), at("head.vocab1"));
    let mut b = honest.clone();
    b.steps[1].layers.remove(second);
    assert!(matches!(
        verify(&vd, &b.to_bytes(), false),
        Err(Rejection::LayerCount { step: 1, .. })
    ));
    let mut b = honest.clone();
    b.steps[1].layers.swap(first, second);
    assert!(verify(&vd, &b.to_bytes(), false).is_err(), "slices swapped");
    // Slice 1's inputs: %h, the carried index, the carried logit (a commitment each).
    let mut b = honest;
    b.steps[1].layers[second].publics[2] += zkc_compiler::backend::F::from(1u8);
    let why = verify(&vd, &b.to_bytes(), false).expect_err("rejected");
    assert!(
        matches!(&why, Rejection::Link { step: 1, layer, .. } if layer == "head.vocab1"),
        "{why}"
    );
}

#[test]
fn attention_above_the_bound_is_cut_between_cache_groups_that_run_prove_and_verify_as_the_whole() {
    let whole = whole();
    // Below the attention part's constraints in the largest bucket, above one head's.
    let attention = split(whole.clone(), bound(&whole)).unwrap();
    let max = attention
        .layers
        .iter()
        .filter(|l| l.name.ends_with("part0") && l.context() == Some(8))
        .map(|l| cost::layer(&attention, l).1)
        .min()
        .unwrap()
        - 1;
    // The longest context proven without a cut between caches: 4 here.
    assert_eq!(longest_uncut_context(&whole, max).unwrap(), Some(4));
    assert_eq!(longest_uncut_context(&whole, usize::MAX).unwrap(), Some(8));
    assert_eq!(longest_uncut_context(&whole, 1).unwrap(), None);
    let cut = split(whole.clone(), max).unwrap();
    let names = |m: &Module| -> Vec<String> { m.stages().into_iter().map(|s| s.name).collect() };
    let block0: Vec<String> = names(&cut)
        .into_iter()
        .filter(|n| n.starts_with("block.0"))
        .collect();
    assert_eq!(
        block0,
        [
            "block.0.part0.in",
            "block.0.part0.caches0",
            "block.0.part0.caches1",
            "block.0.part0.out",
            "block.0.part1"
        ],
        "what reads no cache, a group per head (2 heads), what combines them, the MLP"
    );
    let layer = |name: &str, context: Option<usize>| {
        cut.layers
            .iter()
            .find(|l| l.name == name && l.context() == context)
            .unwrap_or_else(|| panic!("{name} at {context:?}"))
    };
    for g in ["block.0.part0.caches0", "block.0.part0.caches1"] {
        for context in [4, 8] {
            let part = layer(g, Some(context));
            assert_eq!(
                part.states.len(),
                2,
                "a head's keys and values, in every bucket"
            );
            assert!(cost::layer(&cut, part).1 <= max, "`{g}` is bounded");
        }
    }
    // The groups share no state, and each group's head reads nothing of the other's.
    let states = |name: &str| -> Vec<String> {
        let l = layer(name, Some(8));
        l.states.iter().map(|&s| l.value(s).name.clone()).collect()
    };
    assert_eq!(
        states("block.0.part0.caches0"),
        ["blk.0.attn.head.1.k_cache", "blk.0.attn.head.1.v_cache"]
    );
    assert_eq!(
        states("block.0.part0.caches1"),
        ["blk.0.attn.head.0.k_cache", "blk.0.attn.head.0.v_cache"]
    );
    assert!(layer("block.0.part0.in", None).states.is_empty());
    assert!(layer("block.0.part0.out", None).states.is_empty());
    zkc_compiler::backend::check::check(&cut).unwrap();
    zkc_lang::validate(&cut).unwrap();
    let text = zkc_lang::print(&cut);
    assert_eq!(zkc_lang::check(&text).ok().unwrap().module, cut);
    // Bit-identical runs, across a bucket change.
    assert_same_runs(whole, cut.clone(), &[72, 105, 33, 7, 250, 1]);

    // Proven across the bucket change (positions 0-4) and verified: each group's caches are a
    // chain of their own, linked across steps and buckets.
    let Proven { _dir, vd, bytes } = prove("zkc-cache-groups", &cut, 11, None, &[72, 105, 33], 3);
    let verified = verify(&vd, &bytes, false).unwrap();
    assert_eq!(verified.steps, 5);
    assert_eq!(verified.proofs, 5 * cut.stages().len());
    let honest = Bundle::from_bytes(&bytes).unwrap();
    let at = |step: usize, name: &str| {
        honest.steps[step]
            .layers
            .iter()
            .position(|p| vd.layers[p.layer as usize].name == name)
            .unwrap()
    };
    let (g0, g1) = (
        at(4, "block.0.part0.caches0"),
        at(4, "block.0.part0.caches1"),
    );
    assert_ne!(
        honest.steps[3].layers[g1].layer, honest.steps[4].layers[g1].layer,
        "step 4 is proven in the bucket of 8"
    );
    let before = |k: usize| {
        vd.layers[honest.steps[4].layers[k].layer as usize]
            .publics
            .iter()
            .position(|p| p.role == zkc_compiler::backend::layer::Role::StateBefore)
            .unwrap()
    };
    // Group 1's chain before step 4 moved.
    let mut b = honest.clone();
    b.steps[4].layers[g1].publics[before(g1)] += zkc_compiler::backend::F::from(1u8);
    let why = verify(&vd, &b.to_bytes(), false).expect_err("rejected");
    assert!(
        matches!(&why, Rejection::Link { step: 4, layer, .. } if layer == "block.0.part0.caches1"),
        "{why}"
    );
    // Group 1 claiming group 0's chain.
    let mut b = honest.clone();
    b.steps[4].layers[g1].publics[before(g1)] = honest.steps[4].layers[g0].publics[before(g0)];
    assert!(
        verify(&vd, &b.to_bytes(), false).is_err(),
        "another group's chain"
    );
    // The two groups' proofs swapped, and one dropped.
    let mut b = honest.clone();
    b.steps[4].layers.swap(g0, g1);
    assert!(verify(&vd, &b.to_bytes(), false).is_err(), "groups swapped");
    let mut b = honest;
    b.steps[2].layers.remove(g0);
    assert!(matches!(
        verify(&vd, &b.to_bytes(), false),
        Err(Rejection::LayerCount { step: 2, .. })
    ));
}
