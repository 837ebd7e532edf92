//! `model.circ`: the compiled model, versioned and self-describing (DESIGN §4).
//!
//! Layout: the line `zkc-circ 2`, one line of JSON (the format version, the zkc version, the
//! SHA-256 of the source GGUF, the quantization, and the SHA-256 and length of the IR text and
//! of the tokenizer), then the IR text with its constants inline, then the tokenizer as JSON
//! (`tokens`, `merges`, `eos`; absent when the model has none), so that prompts can be given as
//! text without the GGUF. Loading checks the magic, the version, the lengths and hashes, then
//! parses and validates the IR: a corrupt, truncated or foreign file is refused with what was
//! wrong.

use crate::files::write_atomically;
use crate::tokenizer::Tokenizer;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::Path;
use thiserror::Error;
use zkc_lang::Module;

pub const MAGIC: &str = "zkc-circ";
pub const VERSION: u64 = 2;

#[derive(Debug, Error)]
pub enum ArtifactError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a zkc artifact (it does not start with `{MAGIC}`)")]
    NotAnArtifact { path: String },
    #[error("{path} is artifact version {found}; this zkc reads version {VERSION} (recompile the model)")]
    Version { path: String, found: String },
    #[error("{path}: the header is malformed: {problem}")]
    Header { path: String, problem: String },
    #[error("{path} is corrupt: {problem} (recompile the model)")]
    Corrupt { path: String, problem: String },
    #[error("{path}: the IR does not check: {errors}")]
    Invalid { path: String, errors: String },
}

/// What the header records.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub zkc_version: String,
    pub model_sha256: String,
    pub quantization: String,
    pub ir_sha256: String,
    pub ir_bytes: u64,
    /// SHA-256 and length of the tokenizer section (empty and 0 when there is none).
    pub tokenizer_sha256: String,
    pub tokenizer_bytes: u64,
}

/// A loaded artifact.
pub struct Artifact {
    pub header: Header,
    pub module: Module,
    pub tokenizer: Option<Tokenizer>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The SHA-256 of a file, streamed (a model is not read into memory for it).
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Writes the artifact (through a temporary file renamed into place).
pub fn write(
    path: &Path,
    module: &Module,
    tokenizer: Option<&Tokenizer>,
    model_sha256: &str,
    quantization: &str,
) -> Result<Header, ArtifactError> {
    let ir = zkc_lang::print(module);
    let tokens = tokenizer.map_or(String::new(), |t| t.to_json().to_string());
    let header = Header {
        zkc_version: env!("CARGO_PKG_VERSION").to_string(),
        model_sha256: model_sha256.to_string(),
        quantization: quantization.to_string(),
        ir_sha256: sha256_hex(ir.as_bytes()),
        ir_bytes: ir.len() as u64,
        tokenizer_sha256: if tokens.is_empty() {
            String::new()
        } else {
            sha256_hex(tokens.as_bytes())
        },
        tokenizer_bytes: tokens.len() as u64,
    };
    let line = json!({
        "version": VERSION,
        "zkc": header.zkc_version,
        "model_sha256": header.model_sha256,
        "quantization": header.quantization,
        "ir_sha256": header.ir_sha256,
        "ir_bytes": header.ir_bytes,
        "tokenizer_sha256": header.tokenizer_sha256,
        "tokenizer_bytes": header.tokenizer_bytes,
    });
    let bytes = format!("{MAGIC} {VERSION}\n{line}\n{ir}{tokens}");
    write_atomically(path, bytes.as_bytes()).map_err(|source| ArtifactError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(header)
}

/// Reads and checks an artifact: its header, its validated module and its tokenizer.
pub fn read(path: &Path) -> Result<Artifact, ArtifactError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ArtifactError::Io {
        path: name.clone(),
        source,
    })?;
    parse(&name, &bytes)
}

/// [`read`] on bytes in memory; `name` is used in errors.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Artifact, ArtifactError> {
    let path = name.to_string();
    let corrupt = |problem: String| ArtifactError::Corrupt {
        path: path.clone(),
        problem,
    };
    let (first, rest) =
        split_line(bytes).ok_or_else(|| ArtifactError::NotAnArtifact { path: path.clone() })?;
    let first = std::str::from_utf8(first)
        .map_err(|_| ArtifactError::NotAnArtifact { path: path.clone() })?;
    let version = first
        .strip_prefix(&format!("{MAGIC} "))
        .ok_or_else(|| ArtifactError::NotAnArtifact { path: path.clone() })?;
    if version != VERSION.to_string() {
        return Err(ArtifactError::Version {
            path: path.clone(),
            found: version.to_string(),
        });
    }
    let (line, rest) =
        split_line(rest).ok_or_else(|| corrupt("it ends inside the header".into()))?;
    let header: Value = serde_json::from_slice(line).map_err(|e| ArtifactError::Header {
        path: path.clone(),
        problem: e.to_string(),
    })?;
    let field = |key: &str| -> Result<String, ArtifactError> {
        header[key]
            .as_str()
            .map(String::from)
            .ok_or_else(|| ArtifactError::Header {
                path: path.clone(),
                problem: format!("no `{key}`"),
            })
    };
    let count = |key: &str| {
        header[key].as_u64().ok_or_else(|| ArtifactError::Header {
            path: path.clone(),
            problem: format!("no `{key}`"),
        })
    };
    let header = Header {
        zkc_version: field("zkc")?,
        model_sha256: field("model_sha256")?,
        quantization: field("quantization")?,
        ir_sha256: field("ir_sha256")?,
        ir_bytes: count("ir_bytes")?,
        tokenizer_sha256: field("tokenizer_sha256")?,
        tokenizer_bytes: count("tokenizer_bytes")?,
    };
    let expected = header.ir_bytes.checked_add(header.tokenizer_bytes);
    if expected != Some(rest.len() as u64) {
        return Err(corrupt(format!(
            "{} bytes follow the header, it says {} of IR and {} of tokenizer",
            rest.len(),
            header.ir_bytes,
            header.tokenizer_bytes
        )));
    }
    let (ir, tokens) = rest.split_at(header.ir_bytes as usize);
    if sha256_hex(ir) != header.ir_sha256 {
        return Err(corrupt("the IR's SHA-256 does not match the header".into()));
    }
    let tokenizer = if tokens.is_empty() {
        None
    } else {
        if sha256_hex(tokens) != header.tokenizer_sha256 {
            return Err(corrupt(
                "the tokenizer's SHA-256 does not match the header".into(),
            ));
        }
        Some(tokenizer(tokens).map_err(|problem| corrupt(format!("the tokenizer {problem}")))?)
    };
    let text = std::str::from_utf8(ir).map_err(|_| corrupt("the IR is not UTF-8".into()))?;
    let module = zkc_lang::check(text)
        .map_err(|(errors, _)| ArtifactError::Invalid {
            path: path.clone(),
            errors: errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        })?
        .module;
    Ok(Artifact {
        header,
        module,
        tokenizer,
    })
}

fn tokenizer(bytes: &[u8]) -> Result<Tokenizer, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("is not JSON: {e}"))?;
    Tokenizer::from_json(&value)
}

fn split_line(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|&b| b == b'\n')?;
    Some((&bytes[..end], &bytes[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::bpe::BpeTokenizer;

    const IR: &str = "zkir 1\n\nlayer l(%x: i8[2]) {\n  %y = add %x, %x : i16[2]\n  return %y\n}\n";

    /// A byte-level vocabulary (GPT-2's byte characters) with one merge, `h` + `i`.
    fn tokenizer() -> Tokenizer {
        let mut tokens: Vec<String> = (0..=255u8)
            .map(|b| match b {
                b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF => char::from(b).to_string(),
                _ => String::new(),
            })
            .collect();
        for (next, t) in (0x100..).zip(tokens.iter_mut().filter(|t| t.is_empty())) {
            *t = char::from_u32(next).unwrap().to_string();
        }
        tokens.push("hi".into());
        Tokenizer::Bpe(BpeTokenizer::new(tokens, &["h i"], Some(256)).unwrap())
    }

    fn artifact(test: &str, tokenizer: Option<&Tokenizer>) -> Vec<u8> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("zkc-artifact-{test}-"))
            .tempdir()
            .unwrap();
        let path = dir.path().join("m.circ");
        let module = zkc_lang::check(IR).ok().unwrap().module;
        write(&path, &module, tokenizer, "abc", "default").unwrap();
        std::fs::read(&path).unwrap()
    }

    #[test]
    fn writes_and_reads_back() {
        let bytes = artifact("round_trip", None);
        let read = parse("m.circ", &bytes).unwrap();
        assert_eq!(zkc_lang::print(&read.module), IR);
        assert_eq!(
            (read.header.model_sha256.as_str(), read.header.ir_bytes),
            ("abc", IR.len() as u64)
        );
        assert!(read.tokenizer.is_none());
        let with = parse("m.circ", &artifact("tokenizer", Some(&tokenizer()))).unwrap();
        let t = with.tokenizer.expect("the tokenizer is carried");
        assert_eq!(t.encode("hi!"), vec![256, u32::from(b'!')]);
        assert_eq!(t.eos(), Some(256));
    }

    /// A llama model's SentencePiece tokenizer is carried whole: scores, types, special ids and
    /// the space prefix come back, and it encodes and decodes as the file's own.
    #[test]
    fn a_sentencepiece_tokenizer_is_carried() {
        use crate::model::{generate_llama, ModelConfig};
        let gguf = crate::gguf::GgufFile::from_bytes(
            generate_llama(&ModelConfig::llama_tiny()).to_bytes(),
        )
        .unwrap();
        let ours = Tokenizer::from_gguf(&gguf).unwrap();
        let read = parse("m.circ", &artifact("spm", Some(&ours))).unwrap();
        let carried = read.tokenizer.expect("the tokenizer is carried");
        assert_eq!(carried.to_json(), ours.to_json());
        let text = "the cat sat on a mat, 42 times";
        assert_eq!(carried.encode(text), ours.encode(text));
        assert_eq!(carried.decode(&carried.encode(text)), text);
        assert_eq!(carried.eos(), Some(2));
    }

    #[test]
    fn refuses_corrupt_truncated_foreign_and_future_files() {
        let bytes = artifact("refusals", Some(&tokenizer()));
        let err = |b: &[u8]| match parse("m.circ", b) {
            Ok(_) => panic!("refused"),
            Err(e) => e.to_string(),
        };
        let mut flipped = bytes.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 1;
        assert!(
            err(&flipped).contains("SHA-256 does not match"),
            "{}",
            err(&flipped)
        );
        assert!(
            err(&flipped).contains("tokenizer's SHA-256"),
            "the last bytes are the tokenizer's"
        );
        let ir_at = bytes.len() - tokenizer_len(&bytes) - 3;
        let mut flipped_ir = bytes.clone();
        flipped_ir[ir_at] ^= 1;
        assert!(err(&flipped_ir).contains("IR's SHA-256 does not match"));
        assert!(err(&bytes[..bytes.len() - 1]).contains("it says"));
        assert!(err(b"GGUF\x03\x00").contains("not a zkc artifact"));
        let future =
            String::from_utf8(bytes.clone())
                .unwrap()
                .replacen("zkc-circ 2", "zkc-circ 3", 1);
        assert!(err(future.as_bytes()).contains("version 3"));
        let mut appended = bytes.clone();
        appended.extend(b"garbage");
        assert!(err(&appended).contains("corrupt"));
    }

    fn tokenizer_len(bytes: &[u8]) -> usize {
        let (_, rest) = split_line(bytes).unwrap();
        let (line, _) = split_line(rest).unwrap();
        let header: Value = serde_json::from_slice(line).unwrap();
        header["tokenizer_bytes"].as_u64().unwrap() as usize
    }
}
