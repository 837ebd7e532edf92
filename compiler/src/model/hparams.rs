//! Hyperparameters, read from `{arch}.*` metadata as llama.cpp names them.

use super::ModelError;
use crate::gguf::{GgufFile, MetaValue};

#[derive(Clone, Debug, PartialEq)]
pub struct Hyperparams {
    pub arch: String,
    pub n_vocab: usize,
    pub n_ctx: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_ff: usize,
    pub n_layer: usize,
    pub norm_eps: f32,
}

impl Hyperparams {
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    pub fn read(gguf: &GgufFile, arch: &str) -> Result<Hyperparams, ModelError> {
        let int = |name: &str| -> Result<usize, ModelError> {
            let key = format!("{arch}.{name}");
            let value = gguf
                .get(&key)
                .ok_or_else(|| ModelError::MissingHyperparameter { key: key.clone() })?;
            value
                .as_u64()
                .filter(|v| (1..=1 << 24).contains(v))
                .map(|v| v as usize)
                .ok_or_else(|| ModelError::BadHyperparameter {
                    key,
                    problem: format!("must be an integer from 1 to 2^24, found {value:?}"),
                })
        };
        let n_embd = int("embedding_length")?;
        let n_head = int("attention.head_count")?;
        if n_embd % n_head != 0 {
            return Err(ModelError::BadHyperparameter {
                key: format!("{arch}.attention.head_count"),
                problem: format!("{n_head} does not divide the embedding length {n_embd}"),
            });
        }
        let eps_key = format!("{arch}.attention.layer_norm_epsilon");
        let norm_eps = gguf
            .get(&eps_key)
            .ok_or_else(|| ModelError::MissingHyperparameter {
                key: eps_key.clone(),
            })?;
        let norm_eps = match norm_eps {
            MetaValue::F32(e) if *e > 0.0 && e.is_finite() => *e,
            other => {
                return Err(ModelError::BadHyperparameter {
                    key: eps_key,
                    problem: format!("must be a positive f32, found {other:?}"),
                })
            }
        };
        let n_vocab = match gguf
            .get("tokenizer.ggml.tokens")
            .and_then(MetaValue::as_array)
        {
            Some(tokens) => tokens.items.len(),
            None => gguf
                .tensor("token_embd.weight")
                .map(|t| t.shape()[0] as usize)
                .ok_or_else(|| ModelError::MissingHyperparameter {
                    key: "tokenizer.ggml.tokens".into(),
                })?,
        };
        Ok(Hyperparams {
            arch: arch.to_string(),
            n_vocab,
            n_ctx: int("context_length")?,
            n_embd,
            n_head,
            n_ff: int("feed_forward_length")?,
            n_layer: int("block_count")?,
            norm_eps,
        })
    }
}
