//! Hyperparameters, read from `{arch}.*` metadata as llama.cpp names them.

use super::ModelError;
use crate::gguf::{GgufFile, MetaValue};

#[derive(Clone, Debug, PartialEq)]
pub struct Hyperparams {
    pub arch: String,
    pub n_vocab: usize,
    pub n_ctx: usize,
    pub n_embd: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads: `n_head` without grouped-query attention, a divisor of it with.
    pub n_head_kv: usize,
    pub n_ff: usize,
    pub n_layer: usize,
    pub norm_eps: f32,
    /// Rotary position embedding, for architectures that use it.
    pub rope: Option<RopeParams>,
}

/// `{arch}.rope.*`: how many leading elements of a head turn, and the frequency base.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeParams {
    pub dims: usize,
    pub freq_base: f32,
}

/// The metadata keys an architecture reads beyond the common ones.
pub struct Keys {
    /// The norm's epsilon: `attention.layer_norm_epsilon` (LayerNorm) or
    /// `attention.layer_norm_rms_epsilon` (RMSNorm).
    pub norm_eps: &'static str,
    /// Whether it reads `attention.head_count_kv` and `rope.*`.
    pub rope_and_kv_heads: bool,
}

impl Hyperparams {
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Query heads per key/value head.
    pub fn group(&self) -> usize {
        self.n_head / self.n_head_kv
    }

    pub fn read(gguf: &GgufFile, arch: &str, keys: &Keys) -> Result<Hyperparams, ModelError> {
        let key = |name: &str| format!("{arch}.{name}");
        let bad = |name: &str, problem: String| ModelError::BadHyperparameter {
            key: key(name),
            problem,
        };
        let optional_int = |name: &str| -> Result<Option<usize>, ModelError> {
            let Some(value) = gguf.get(&key(name)) else {
                return Ok(None);
            };
            value
                .as_u64()
                .filter(|v| (1..=1 << 24).contains(v))
                .map(|v| Some(v as usize))
                .ok_or_else(|| {
                    bad(
                        name,
                        format!("must be an integer from 1 to 2^24, found {value:?}"),
                    )
                })
        };
        let int = |name: &str| -> Result<usize, ModelError> {
            optional_int(name)?.ok_or_else(|| ModelError::MissingHyperparameter { key: key(name) })
        };
        let optional_f32 = |name: &str| -> Result<Option<f32>, ModelError> {
            match gguf.get(&key(name)) {
                None => Ok(None),
                Some(MetaValue::F32(e)) if *e > 0.0 && e.is_finite() => Ok(Some(*e)),
                Some(other) => Err(bad(
                    name,
                    format!("must be a positive f32, found {other:?}"),
                )),
            }
        };
        let n_embd = int("embedding_length")?;
        let n_head = int("attention.head_count")?;
        if n_embd % n_head != 0 {
            return Err(bad(
                "attention.head_count",
                format!("{n_head} does not divide the embedding length {n_embd}"),
            ));
        }
        let norm_eps =
            optional_f32(keys.norm_eps)?.ok_or_else(|| ModelError::MissingHyperparameter {
                key: key(keys.norm_eps),
            })?;
        let (n_head_kv, rope) = match keys.rope_and_kv_heads {
            false => (n_head, None),
            true => {
                let n_head_kv = optional_int("attention.head_count_kv")?.unwrap_or(n_head);
                if n_head % n_head_kv != 0 {
                    return Err(bad(
                        "attention.head_count_kv",
                        format!("{n_head_kv} does not divide the query heads {n_head}"),
                    ));
                }
                let head_dim = n_embd / n_head;
                let dims = optional_int("rope.dimension_count")?.unwrap_or(head_dim);
                if dims % 2 != 0 || dims > head_dim {
                    return Err(bad(
                        "rope.dimension_count",
                        format!("{dims} must be even and at most the head size {head_dim}"),
                    ));
                }
                let freq_base = optional_f32("rope.freq_base")?.unwrap_or(10_000.0);
                (n_head_kv, Some(RopeParams { dims, freq_base }))
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
            n_head_kv,
            n_ff: int("feed_forward_length")?,
            n_layer: int("block_count")?,
            norm_eps,
            rope,
        })
    }
}
