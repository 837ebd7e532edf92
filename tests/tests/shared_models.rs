//! zkc on GGUF files it did not write, as a user's files arrive: llama.cpp's GPT-2 vocabulary
//! (with llama.cpp's own tokenizer test cases) and a tiny Llama model. These files live in
//! `../shared/models`; without it the tests say so and pass.

use std::path::PathBuf;
use zkc_compiler::gguf::GgufFile;
use zkc_compiler::tokenizer::Tokenizer;

fn shared(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/models")
        .join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipping: {} is absent", path.display());
        None
    }
}

#[test]
fn gpt2_tokenizer_matches_llama_cpp_test_cases() {
    let Some(path) = shared("ggml-vocab-gpt-2.gguf") else {
        return;
    };
    let gguf = GgufFile::open(&path).unwrap();
    let tokenizer = Tokenizer::from_gguf(&gguf).unwrap();
    assert_eq!(tokenizer.vocab_size(), 50257);
    let inputs = std::fs::read_to_string(path.with_extension("gguf.inp")).unwrap();
    let outputs = std::fs::read_to_string(path.with_extension("gguf.out")).unwrap();
    // Cases end with this separator (the last one too); a case may hold newlines.
    let cases: Vec<&str> = inputs.split("\n__ggml_vocab_test__\n").collect();
    let (last, cases) = cases.split_last().unwrap();
    assert_eq!(*last, "");
    let expected: Vec<Vec<u32>> = outputs
        .lines()
        .map(|l| l.split_whitespace().map(|id| id.parse().unwrap()).collect())
        .collect();
    assert_eq!(cases.len(), expected.len());
    // The tokenizer as an artifact carries it: rebuilt from its own tokens and merges.
    let rebuilt = Tokenizer::from_json(&tokenizer.to_json()).unwrap();
    for (case, want) in cases.iter().zip(&expected) {
        assert_eq!(&tokenizer.encode(case), want, "case {case:?}");
        assert_eq!(tokenizer.decode(want), *case, "decoding {want:?}");
        assert_eq!(&rebuilt.encode(case), want, "rebuilt, case {case:?}");
    }
}

#[test]
fn vocab_file_reads_as_llama_cpp_wrote_it() {
    let Some(path) = shared("ggml-vocab-gpt-2.gguf") else {
        return;
    };
    let gguf = GgufFile::open(&path).unwrap();
    assert_eq!(
        gguf.get("general.architecture").and_then(|v| v.as_str()),
        Some("gpt2")
    );
    assert!(gguf.tensors().is_empty());
    let merges = gguf
        .get("tokenizer.ggml.merges")
        .and_then(|v| v.as_array())
        .unwrap();
    assert_eq!(merges.items.len(), 50000);
}

#[test]
fn tiny_llama_reads_and_dequantizes() {
    let Some(path) = shared("llama-2-tiny-random.gguf") else {
        return;
    };
    let gguf = GgufFile::open(&path).unwrap();
    assert_eq!(
        gguf.get("general.architecture").and_then(|v| v.as_str()),
        Some("llama")
    );
    assert!(!gguf.tensors().is_empty());
    for t in gguf.tensors() {
        let values = gguf.tensor_f32(t).unwrap();
        assert_eq!(values.len() as u64, t.elements(), "{}", t.name);
        assert!(values.iter().all(|v| v.is_finite()), "{}", t.name);
    }
}
