//! GGUF in, model graph and float reference out: zkc's own models, a model written by
//! llama.cpp's gguf-py, and files that must be refused with a clear message.

use std::path::PathBuf;
use zkc_compiler::gguf::{GgufFile, GgufWriter, MetaValue, TensorData};
use zkc_compiler::model::{
    build_graph, generate_gpt2, FloatModel, FloatOp, ModelConfig, WeightType,
};
use zkc_compiler::tokenizer::Tokenizer;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/gguf")
        .join(name)
}

fn small() -> ModelConfig {
    ModelConfig {
        n_layer: 1,
        n_embd: 32,
        n_head: 2,
        n_head_kv: 2,
        n_ctx: 16,
        n_vocab: 300,
        n_ff: 128,
        seed: 7,
        weight_type: WeightType::F32,
    }
}

fn load(writer: &GgufWriter) -> GgufFile {
    GgufFile::from_bytes(writer.to_bytes()).unwrap()
}

fn logits(gguf: &GgufFile, tokens: &[u32]) -> Vec<f32> {
    let model = FloatModel::load(gguf).unwrap();
    let mut session = model.session();
    let mut last = Vec::new();
    for &t in tokens {
        last = session.step(t).unwrap();
    }
    last
}

#[test]
fn generated_models_are_deterministic_and_complete() {
    let cfg = ModelConfig::tiny();
    let a = generate_gpt2(&cfg).to_bytes();
    assert_eq!(a, generate_gpt2(&cfg).to_bytes(), "same seed, same bytes");
    assert_ne!(
        a,
        generate_gpt2(&ModelConfig {
            seed: 1,
            ..cfg.clone()
        })
        .to_bytes()
    );
    let gguf = GgufFile::from_bytes(a).unwrap();
    let (hp, graph) = build_graph(&gguf).unwrap();
    assert_eq!(
        (hp.n_layer, hp.n_embd, hp.n_head, hp.n_ctx, hp.n_vocab, hp.n_ff),
        (2, 64, 4, 64, 256, 256)
    );
    // Two residual adds per block, and one attention node per head, all fed by the same QKV.
    let ops: Vec<&FloatOp> = graph
        .topological_order()
        .iter()
        .map(|&n| &graph.node(n).op)
        .collect();
    assert_eq!(
        ops.iter()
            .filter(|op| matches!(op, FloatOp::Attention { .. }))
            .count(),
        8
    );
    let adds = graph
        .topological_order()
        .iter()
        .filter(|&&n| graph.node(n).op == FloatOp::Add)
        .count();
    assert_eq!(adds, 1 + 2 * 2);
    let heads = graph
        .topological_order()
        .iter()
        .find(|&&n| graph.node(n).name == "blk.1.attn.heads")
        .unwrap();
    assert_eq!(graph.operands(*heads).len(), 4);
    // Tied output: no `output.weight`, the head reads the token embedding.
    match &graph.node(graph.logits().unwrap()).op {
        FloatOp::Linear { weight, .. } => assert_eq!(weight.name, "token_embd.weight"),
        other => panic!("logits from {other:?}"),
    }
}

#[test]
fn float_reference_generates_deterministically() {
    let gguf = load(&generate_gpt2(&ModelConfig::tiny()));
    let model = FloatModel::load(&gguf).unwrap();
    let (a, la) = model.session().generate(&[1, 2, 3], 8).unwrap();
    let (b, lb) = model.session().generate(&[1, 2, 3], 8).unwrap();
    assert_eq!((a.len(), &a, &la), (8, &b, &lb));
    assert_eq!(la.len(), 256);
    assert!(la.iter().all(|v| v.is_finite()));
}

#[test]
fn q8_0_weights_stay_close_to_f32() {
    let f32_model = load(&generate_gpt2(&ModelConfig::tiny()));
    let q8_model = load(&generate_gpt2(&ModelConfig {
        weight_type: WeightType::Q8_0,
        ..ModelConfig::tiny()
    }));
    assert!(q8_model.tensors().iter().any(|t| t.ty.name() == "Q8_0"));
    let (a, b) = (
        logits(&f32_model, &[5, 6, 7]),
        logits(&q8_model, &[5, 6, 7]),
    );
    let max = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        diff < 0.02 * max,
        "q8_0 moved the logits by {diff} (max {max})"
    );
}

/// `scripts/rewrite_with_gguf_py.py` rewrote zkc's `small()` model with llama.cpp's gguf-py:
/// other key order, alignment 64, other padding. Same weights, so the same logits, bit for bit.
#[test]
fn gguf_py_written_model_runs_like_zkcs_own() {
    let theirs = GgufFile::open(fixture("gpt2_by_gguf_py.gguf")).unwrap();
    assert_eq!(theirs.alignment(), 64);
    let ours = load(&generate_gpt2(&small()));
    let tokens = [1, 2, 3, 250, 299];
    assert_eq!(logits(&theirs, &tokens), logits(&ours, &tokens));
    let text = "zkc reads files it did not write";
    let t = Tokenizer::from_gguf(&theirs).unwrap();
    assert_eq!(t.decode(&t.encode(text)), text);
    assert_eq!(
        t.encode(text),
        Tokenizer::from_gguf(&ours).unwrap().encode(text)
    );
}

fn error_of(writer: &GgufWriter) -> String {
    match FloatModel::load(&load(writer)) {
        Ok(_) => panic!("the model loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_models_are_refused_by_name() {
    let mut w = generate_gpt2(&small());
    w.add_metadata("general.architecture", MetaValue::String("gpt2".into()));
    let dup = GgufFile::from_bytes(w.to_bytes()).unwrap_err().to_string();
    assert!(
        dup.contains("`general.architecture` appears twice"),
        "{dup}"
    );

    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", MetaValue::String("mamba".into()));
    assert_eq!(
        error_of(&w),
        "architecture `mamba` is not supported (zkc supports: gpt2, llama, qwen2)"
    );

    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", MetaValue::String("gpt2".into()));
    assert_eq!(
        error_of(&w),
        "the model has no `gpt2.embedding_length` metadata"
    );

    // A real model whose QKV weight has the wrong shape for its role.
    let cfg = small();
    let good = generate_gpt2(&cfg).to_bytes();
    let gguf = GgufFile::from_bytes(good).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in gguf.metadata() {
        w.add_metadata(k, v.clone());
    }
    for t in gguf.tensors() {
        let data = gguf.tensor_f32(t).unwrap().into_owned();
        let shape = if t.name == "blk.0.attn_qkv.weight" {
            vec![32, 96]
        } else {
            t.shape()
        };
        w.add_tensor(&t.name, &shape, TensorData::F32(data));
    }
    assert_eq!(
        error_of(&w),
        "tensor `blk.0.attn_qkv.weight` (attention QKV) has shape [32, 96], expected [96, 32]"
    );
}

#[test]
fn generation_stops_at_the_context() {
    let gguf = load(&generate_gpt2(&small()));
    let model = FloatModel::load(&gguf).unwrap();
    let mut s = model.session();
    let (generated, _) = s.generate(&[1; 10], 100).unwrap();
    assert_eq!(
        generated.len(),
        7,
        "16 positions: 10 prompt + 6 fed + 1 last"
    );
    assert!(s
        .step(1)
        .unwrap_err()
        .to_string()
        .contains("context is full"));
    assert!(model
        .session()
        .step(300)
        .unwrap_err()
        .to_string()
        .contains("outside the vocabulary"));
}
