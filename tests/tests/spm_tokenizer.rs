//! zkc's SentencePiece ("llama") tokenizer against llama.cpp: its test vocabulary
//! `ggml-vocab-llama-spm.gguf` with its own test cases (`.inp` / `.out`), fetched into
//! `target/vocab/` by `scripts/fetch_llama_spm_vocab.sh` (as `.ci/run` does), and the vocabulary
//! of a real Llama GGUF from `../shared/models`. Without those files the tests say so and pass.

use std::path::PathBuf;
use zkc_compiler::gguf::GgufFile;
use zkc_compiler::tokenizer::spm::SpmTokenizer;

const VOCAB: &str = "ggml-vocab-llama-spm.gguf";

fn present(path: PathBuf, hint: &str) -> Option<PathBuf> {
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipping: {} is absent ({hint})", path.display());
        None
    }
}

fn vocab_file(name: &str) -> Option<PathBuf> {
    present(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/vocab")
            .join(name),
        "run scripts/fetch_llama_spm_vocab.sh",
    )
}

fn shared(name: &str) -> Option<PathBuf> {
    present(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/models")
            .join(name),
        "../shared/models holds it",
    )
}

/// llama.cpp's cases: texts separated (and ended) by the separator line, expected ids one line
/// per case, space-separated.
fn cases(path: &std::path::Path) -> Vec<(String, Vec<u32>)> {
    let inputs = std::fs::read_to_string(path.with_extension("gguf.inp")).unwrap();
    let outputs = std::fs::read_to_string(path.with_extension("gguf.out")).unwrap();
    let texts: Vec<&str> = inputs.split("\n__ggml_vocab_test__\n").collect();
    let (last, texts) = texts.split_last().unwrap();
    assert_eq!(*last, "");
    let expected: Vec<Vec<u32>> = outputs
        .lines()
        .map(|l| l.split_whitespace().map(|id| id.parse().unwrap()).collect())
        .collect();
    assert_eq!(texts.len(), expected.len());
    texts.iter().map(|t| t.to_string()).zip(expected).collect()
}

#[test]
fn spm_tokenizer_matches_llama_cpp_test_cases() {
    let Some(path) = vocab_file(VOCAB) else {
        return;
    };
    for suffix in [".inp", ".out"] {
        assert!(
            path.with_extension(format!("gguf{suffix}")).exists(),
            "{VOCAB}{suffix} is missing beside the vocabulary"
        );
    }
    let gguf = GgufFile::open(&path).unwrap();
    let tokenizer = SpmTokenizer::from_gguf(&gguf).unwrap();
    assert_eq!(tokenizer.vocab_size(), 32000);
    assert_eq!((tokenizer.bos(), tokenizer.eos()), (Some(1), Some(2)));
    let cases = cases(&path);
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut wrong = Vec::new();
    for (text, want) in &cases {
        let got = tokenizer.encode(text);
        if &got != want {
            wrong.push(format!("{text:?}: got {got:?}, llama.cpp {want:?}"));
        }
        // Every case decodes back to its text (llama.cpp's round trip holds for all of them),
        // from our ids and from llama.cpp's.
        assert_eq!(tokenizer.decode(&got), *text, "decoding {got:?}");
        assert_eq!(tokenizer.decode(want), *text, "decoding {want:?}");
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases differ:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    eprintln!("all {} llama.cpp cases match and round-trip", cases.len());
    // With BOS, as a prompt: llama SPM vocabularies add it by default.
    assert_eq!(
        tokenizer.encode_with_special("Hello world"),
        [1, 15043, 3186]
    );
}

#[test]
fn a_real_llama_gguf_s_vocabulary_encodes_text() {
    let Some(path) = shared("llama-2-tiny-random.gguf") else {
        return;
    };
    let gguf = GgufFile::open(&path).unwrap();
    assert_eq!(
        gguf.get("tokenizer.ggml.model").and_then(|v| v.as_str()),
        Some("llama")
    );
    let tokenizer = SpmTokenizer::from_gguf(&gguf).unwrap();
    assert_eq!(tokenizer.vocab_size(), 32000);
    assert_eq!((tokenizer.bos(), tokenizer.eos()), (Some(1), Some(2)));
    for text in [
        "Hello world",
        " leading space and  two",
        "línea\nnueva\t🦙 ünïcödé",
        "<s> is text here, not BOS </s>",
        "",
    ] {
        let ids = tokenizer.encode(text);
        assert!(
            ids.iter().all(|&id| (id as usize) < tokenizer.vocab_size()),
            "{text:?}: {ids:?}"
        );
        assert_eq!(tokenizer.decode(&ids), text, "{ids:?}");
        assert_eq!(tokenizer.encode_with_special(text)[0], 1);
    }
}
