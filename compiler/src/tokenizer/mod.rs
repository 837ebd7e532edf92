//! Text to token ids and back with the model's own vocabulary, as llama.cpp does: GPT-2's
//! byte-level BPE ([`bpe`], `tokenizer.ggml.model = "gpt2"`) or llama.cpp's SentencePiece
//! tokenizer ([`spm`], `"llama"`), chosen by the file.

pub mod bpe;
pub mod spm;

use crate::gguf::{GgufFile, MetaValue};
use bpe::{BpeError, BpeTokenizer};
use serde_json::{json, Value};
use spm::{SpecialTokens, SpmError, SpmTokenizer};
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum TokenizerError {
    #[error("the model has no `tokenizer.ggml.model` metadata (a vocabulary is needed for text)")]
    Missing,
    #[error("tokenizer model `{0}` is not supported (zkc reads `gpt2` byte-level BPE and `llama` SentencePiece)")]
    Unsupported(String),
    #[error(transparent)]
    Bpe(#[from] BpeError),
    #[error(transparent)]
    Spm(#[from] SpmError),
}

/// A model's tokenizer.
pub enum Tokenizer {
    Bpe(BpeTokenizer),
    Spm(SpmTokenizer),
}

impl Tokenizer {
    /// The tokenizer `tokenizer.ggml.model` names, from the file's own vocabulary.
    pub fn from_gguf(gguf: &GgufFile) -> Result<Tokenizer, TokenizerError> {
        let model = gguf
            .get("tokenizer.ggml.model")
            .and_then(MetaValue::as_str)
            .ok_or(TokenizerError::Missing)?;
        match model {
            "gpt2" => Ok(Tokenizer::Bpe(BpeTokenizer::from_gguf(gguf)?)),
            "llama" => Ok(Tokenizer::Spm(SpmTokenizer::from_gguf(gguf)?)),
            other => Err(TokenizerError::Unsupported(other.to_string())),
        }
    }

    /// A decoder from token texts alone (what the verifying data keeps): SentencePiece when the
    /// vocabulary has llama.cpp's byte tokens `<0x00>`..`<0xFF>` (decoded as their bytes, `▁` as
    /// a space), else GPT-2's byte-level BPE.
    pub fn from_vocabulary(tokens: Vec<String>) -> Option<Tokenizer> {
        let byte = |t: &str| {
            t.len() == 6
                && t.starts_with("<0x")
                && t.ends_with('>')
                && u8::from_str_radix(&t[3..5], 16).is_ok()
        };
        if tokens.iter().filter(|t| byte(t)).count() < 256 {
            return BpeTokenizer::new(tokens, &[], None)
                .ok()
                .map(Tokenizer::Bpe);
        }
        let types = tokens.iter().map(|t| if byte(t) { 6 } else { 1 }).collect();
        let scores = vec![0.0; tokens.len()];
        let special = SpecialTokens {
            bos: None,
            eos: None,
            unk: None,
            add_bos: false,
            add_eos: false,
        };
        let spm = SpmTokenizer::new(tokens, scores, types, special, true).ok()?;
        Some(Tokenizer::Spm(spm))
    }

    pub fn encode(&self, text: &str) -> Vec<u32> {
        match self {
            Tokenizer::Bpe(t) => t.encode(text),
            Tokenizer::Spm(t) => t.encode(text),
        }
    }

    /// A prompt's ids as llama.cpp's tools tokenize one (`add_special`): with the vocabulary's
    /// BOS (and EOS) when it asks for them (SentencePiece's `add_bos_token`, true by default);
    /// GPT-2's byte-level BPE adds none.
    pub fn encode_prompt(&self, text: &str) -> Vec<u32> {
        match self {
            Tokenizer::Bpe(t) => t.encode(text),
            Tokenizer::Spm(t) => t.encode_with_special(text),
        }
    }

    pub fn decode(&self, ids: &[u32]) -> String {
        match self {
            Tokenizer::Bpe(t) => t.decode(ids),
            Tokenizer::Spm(t) => t.decode(ids),
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Bpe(t) => t.vocab_size(),
            Tokenizer::Spm(t) => t.vocab_size(),
        }
    }

    /// The token texts, by id.
    pub fn tokens(&self) -> &[String] {
        match self {
            Tokenizer::Bpe(t) => t.tokens(),
            Tokenizer::Spm(t) => t.tokens(),
        }
    }

    pub fn eos(&self) -> Option<u32> {
        match self {
            Tokenizer::Bpe(t) => t.eos,
            Tokenizer::Spm(t) => t.eos(),
        }
    }

    /// Everything that rebuilds this tokenizer ([`Tokenizer::from_json`]): the artifact's
    /// tokenizer section.
    pub fn to_json(&self) -> Value {
        match self {
            Tokenizer::Bpe(t) => json!({"tokens": t.tokens(), "merges": t.merges(), "eos": t.eos}),
            Tokenizer::Spm(t) => {
                let (scores, types, special, add_space_prefix) = t.parts();
                json!({
                    "model": "llama", "tokens": t.tokens(), "scores": scores, "types": types,
                    "bos": special.bos, "eos": special.eos, "unk": special.unk,
                    "add_bos": special.add_bos, "add_eos": special.add_eos,
                    "add_space_prefix": add_space_prefix,
                })
            }
        }
    }

    /// The tokenizer [`Tokenizer::to_json`] wrote; `Err` says what is missing or wrong.
    pub fn from_json(value: &Value) -> Result<Tokenizer, String> {
        let list = |key: &str| value[key].as_array().ok_or(format!("has no `{key}` list"));
        let strings = |key: &str| -> Result<Vec<String>, String> {
            list(key)?
                .iter()
                .map(|t| t.as_str().map(String::from))
                .collect::<Option<_>>()
                .ok_or(format!("`{key}` holds a non-string"))
        };
        let id = |key: &str| value[key].as_u64().and_then(|v| u32::try_from(v).ok());
        let flag = |key: &str| value[key].as_bool().ok_or(format!("has no `{key}` flag"));
        match value["model"].as_str() {
            None => {
                let merges = strings("merges")?;
                let merges: Vec<&str> = merges.iter().map(String::as_str).collect();
                BpeTokenizer::new(strings("tokens")?, &merges, id("eos"))
                    .map(Tokenizer::Bpe)
                    .map_err(|e| e.to_string())
            }
            Some("llama") => {
                let scores = list("scores")?
                    .iter()
                    .map(|s| s.as_f64().map(|s| s as f32))
                    .collect::<Option<_>>()
                    .ok_or("`scores` holds a non-number")?;
                let types = list("types")?
                    .iter()
                    .map(|t| t.as_i64().and_then(|t| i32::try_from(t).ok()))
                    .collect::<Option<_>>()
                    .ok_or("`types` holds a non-integer")?;
                let special = SpecialTokens {
                    bos: id("bos"),
                    eos: id("eos"),
                    unk: id("unk"),
                    add_bos: flag("add_bos")?,
                    add_eos: flag("add_eos")?,
                };
                let prefix = flag("add_space_prefix")?;
                SpmTokenizer::new(strings("tokens")?, scores, types, special, prefix)
                    .map(Tokenizer::Spm)
                    .map_err(|e| e.to_string())
            }
            Some(other) => Err(format!("has an unknown model `{other}`")),
        }
    }
}
