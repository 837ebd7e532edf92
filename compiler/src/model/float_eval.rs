//! The float reference evaluator: runs the graph one token at a time with a KV cache. It is the
//! yardstick the integer model is measured against, so it favours accuracy (f64 sums in norms,
//! exact GELU-tanh) over speed.

use super::graph::{FloatOp, Graph, NodeId, RopePairs};
use super::{build_graph, Hyperparams, ModelError};
use crate::gguf::GgufFile;
use rayon::prelude::*;
use std::borrow::Cow;
use std::collections::HashMap;

/// A model ready to run: its graph and its weights, read from the file's map (F32) or
/// dequantized once (other types).
pub struct FloatModel<'g> {
    pub hparams: Hyperparams,
    pub graph: Graph,
    weights: HashMap<String, Cow<'g, [f32]>>,
}

impl<'g> FloatModel<'g> {
    pub fn load(gguf: &'g GgufFile) -> Result<FloatModel<'g>, ModelError> {
        let (hparams, graph) = build_graph(gguf)?;
        let mut weights = HashMap::new();
        for r in graph.tensors() {
            let info = gguf
                .tensor(&r.name)
                .expect("the mapping checked every tensor");
            weights.insert(r.name.clone(), gguf.tensor_f32(info)?);
        }
        Ok(FloatModel {
            hparams,
            graph,
            weights,
        })
    }

    pub fn session(&self) -> FloatSession<'_, 'g> {
        FloatSession {
            model: self,
            cache: HashMap::new(),
            position: 0,
        }
    }

    /// A weight by GGUF tensor name, as f32.
    pub fn weight(&self, name: &str) -> &[f32] {
        &self.weights[name]
    }
}

/// One generation: the KV cache of every (block, key/value head) and the next position.
pub struct FloatSession<'m, 'g> {
    model: &'m FloatModel<'g>,
    cache: HashMap<(usize, usize), (Vec<f32>, Vec<f32>)>,
    position: usize,
}

impl FloatSession<'_, '_> {
    pub fn position(&self) -> usize {
        self.position
    }

    /// Feeds one token at the next position; returns the logits for the token after it.
    pub fn step(&mut self, token: u32) -> Result<Vec<f32>, ModelError> {
        self.step_observed(token, |_, _| {})
    }

    /// [`FloatSession::step`], showing every node's value to `observe` (calibration).
    pub fn step_observed(
        &mut self,
        token: u32,
        mut observe: impl FnMut(NodeId, &[f32]),
    ) -> Result<Vec<f32>, ModelError> {
        let hp = &self.model.hparams;
        if token as usize >= hp.n_vocab {
            return Err(ModelError::TokenOutOfRange {
                token,
                vocab: hp.n_vocab,
            });
        }
        if self.position >= hp.n_ctx {
            return Err(ModelError::ContextFull { ctx: hp.n_ctx });
        }
        let graph = &self.model.graph;
        let mut values: HashMap<NodeId, Vec<f32>> = HashMap::new();
        for &id in graph.topological_order() {
            let args: Vec<&[f32]> = graph
                .operands(id)
                .iter()
                .map(|o| values[o].as_slice())
                .collect();
            let out = match &graph.node(id).op {
                FloatOp::Token => vec![token as f32],
                FloatOp::Position => vec![self.position as f32],
                FloatOp::Embed { table } => {
                    let row = args[0][0] as usize;
                    let d = table.shape[1];
                    self.model.weight(&table.name)[row * d..(row + 1) * d].to_vec()
                }
                FloatOp::Add => args[0].iter().zip(args[1]).map(|(a, b)| a + b).collect(),
                FloatOp::LayerNorm { weight, bias, eps } => layer_norm(
                    args[0],
                    self.model.weight(&weight.name),
                    self.model.weight(&bias.name),
                    *eps,
                ),
                FloatOp::Linear { weight, bias } => {
                    let b = bias.as_ref().map(|b| self.model.weight(&b.name));
                    linear(args[0], self.model.weight(&weight.name), b)
                }
                FloatOp::RmsNorm { weight, eps } => {
                    rms_norm(args[0], self.model.weight(&weight.name), *eps)
                }
                FloatOp::Slice { start, len } => args[0][*start..start + len].to_vec(),
                FloatOp::Attention { block, kv_head } => {
                    self.attend(*block, *kv_head, args[0], args[1], args[2])
                }
                FloatOp::Rope {
                    dims,
                    freq_base,
                    pairs,
                } => rope(args[0], args[1][0] as usize, *dims, *freq_base, *pairs),
                FloatOp::Concat => args.concat(),
                FloatOp::Gelu => args[0].iter().map(|&x| gelu(x)).collect(),
                FloatOp::Silu => args[0].iter().map(|&x| silu(x as f64) as f32).collect(),
                FloatOp::Mul => args[0].iter().zip(args[1]).map(|(a, b)| a * b).collect(),
            };
            observe(id, &out);
            values.insert(id, out);
        }
        self.position += 1;
        Ok(values
            .remove(&graph.logits)
            .expect("the logits node was evaluated"))
    }

    /// One query head against the cache of `(block, kv_head)`, which it first extends with `k`
    /// and `v` at the current position (the same values for every query head of a group).
    fn attend(
        &mut self,
        block: usize,
        kv_head: usize,
        q: &[f32],
        k: &[f32],
        v: &[f32],
    ) -> Vec<f32> {
        let (ctx, dh) = (self.model.hparams.n_ctx, q.len());
        let (keys, vals) = self
            .cache
            .entry((block, kv_head))
            .or_insert_with(|| (vec![0.0; ctx * dh], vec![0.0; ctx * dh]));
        let p = self.position;
        keys[p * dh..(p + 1) * dh].copy_from_slice(k);
        vals[p * dh..(p + 1) * dh].copy_from_slice(v);
        let scale = 1.0 / (dh as f32).sqrt();
        let scores: Vec<f32> = (0..=p)
            .map(|j| dot(q, &keys[j * dh..(j + 1) * dh]) * scale)
            .collect();
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f64> = scores.iter().map(|s| ((s - max) as f64).exp()).collect();
        let sum: f64 = exps.iter().sum();
        let mut out = vec![0f64; dh];
        for (j, e) in exps.iter().enumerate() {
            for (o, x) in out.iter_mut().zip(&vals[j * dh..(j + 1) * dh]) {
                *o += e / sum * *x as f64;
            }
        }
        out.into_iter().map(|x| x as f32).collect()
    }

    /// Greedy generation: feeds `prompt`, then up to `max_new` argmax tokens (stopping early
    /// when the context is full). Returns the generated tokens and the last logits.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        max_new: usize,
    ) -> Result<(Vec<u32>, Vec<f32>), ModelError> {
        let mut logits = Vec::new();
        for &t in prompt {
            logits = self.step(t)?;
        }
        let mut generated = Vec::new();
        while generated.len() < max_new && !logits.is_empty() {
            let next = argmax(&logits);
            generated.push(next);
            if self.position >= self.model.hparams.n_ctx || generated.len() == max_new {
                break;
            }
            logits = self.step(next)?;
        }
        Ok((generated, logits))
    }
}

/// Index of the largest logit, the lowest index on ties (as the integer circuit's argmax).
pub fn argmax(logits: &[f32]) -> u32 {
    logits
        .iter()
        .enumerate()
        .fold(0, |best, (i, &v)| if v > logits[best] { i } else { best }) as u32
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums: vectorises, and is more accurate than one running sum.
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().map(|&v| v as f64).sum::<f64>() as f32 + tail
}

fn linear(x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let n_in = x.len();
    w.par_chunks(n_in)
        .enumerate()
        .map(|(o, row)| dot(row, x) + bias.map_or(0.0, |b| b[o]))
        .collect()
}

fn layer_norm(x: &[f32], w: &[f32], b: &[f32], eps: f32) -> Vec<f32> {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let scale = 1.0 / (var + eps as f64).sqrt();
    x.iter()
        .zip(w)
        .zip(b)
        .map(|((&v, &w), &b)| ((v as f64 - mean) * scale) as f32 * w + b)
        .collect()
}

/// llama.cpp's `rms_norm` then the weight: `x / sqrt(mean(x^2) + eps) * w`.
fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let mean_square = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / x.len() as f64;
    let scale = 1.0 / (mean_square + eps as f64).sqrt();
    x.iter()
        .zip(w)
        .map(|(&v, &w)| (v as f64 * scale) as f32 * w)
        .collect()
}

/// RoPE at position `pos` (ggml's `rope` with no context extension): pair `i < dims/2` turns
/// by `pos * freq_base^(-2i / dims)`; elements from `dims` on pass through.
fn rope(x: &[f32], pos: usize, dims: usize, freq_base: f32, pairs: RopePairs) -> Vec<f32> {
    let mut out = x.to_vec();
    for i in 0..dims / 2 {
        let theta = pos as f64 * (freq_base as f64).powf(-2.0 * i as f64 / dims as f64);
        let (sin, cos) = theta.sin_cos();
        let (a, b) = match pairs {
            RopePairs::Adjacent => (2 * i, 2 * i + 1),
            RopePairs::Halves => (i, i + dims / 2),
        };
        let (x0, x1) = (x[a] as f64, x[b] as f64);
        out[a] = (x0 * cos - x1 * sin) as f32;
        out[b] = (x0 * sin + x1 * cos) as f32;
    }
    out
}

/// SiLU, `x * sigmoid(x)`: the one definition, which the float reference runs and the integer
/// `silu`'s coefficients are fitted to, as [`gelu_tanh`] is GELU's.
pub(crate) fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

fn gelu(x: f32) -> f32 {
    gelu_tanh(x as f64) as f32
}

/// GELU in its tanh form, as ggml and GPT-2 compute it: the one definition, which the float
/// reference runs and the integer `gelu`'s coefficients are fitted to.
pub(crate) fn gelu_tanh(x: f64) -> f64 {
    const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + 0.044715 * x * x)).tanh())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_compute_what_they_say() {
        assert_eq!(dot(&[1.0; 11], &[2.0; 11]), 22.0);
        assert_eq!(
            linear(
                &[1.0, 2.0],
                &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
                Some(&[0.5, 0.0, -1.0])
            ),
            vec![1.5, 2.0, 2.0]
        );
        let y = layer_norm(&[1.0, 3.0], &[1.0, 2.0], &[0.0, 1.0], 0.0);
        assert!((y[0] + 1.0).abs() < 1e-6 && (y[1] - 3.0).abs() < 1e-6);
        assert!((gelu(1.0) - 0.841_192).abs() < 1e-5 && gelu(-10.0).abs() < 1e-6);
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
        let y = rms_norm(&[3.0, 4.0], &[1.0, 2.0], 0.0);
        let r = (12.5f32).sqrt();
        assert!((y[0] - 3.0 / r).abs() < 1e-6 && (y[1] - 8.0 / r).abs() < 1e-6);
        assert!((silu(1.0) - 0.731_058_6).abs() < 1e-6 && silu(-20.0).abs() < 1e-7);
    }

    /// RoPE at position 0 is the identity; a pair turns by its angle (pair 0 by `pos`
    /// radians); adjacent and half pairings turn different elements; past `dims` nothing moves.
    #[test]
    fn rope_turns_pairs_by_their_angles() {
        let x = [1.0, 0.0, 0.0, 1.0, 5.0, 6.0];
        assert_eq!(rope(&x, 0, 4, 10_000.0, RopePairs::Adjacent), x.to_vec());
        let y = rope(&x, 1, 4, 10_000.0, RopePairs::Adjacent);
        let (s1, c1) = 1f64.sin_cos();
        assert!((y[0] as f64 - c1).abs() < 1e-6 && (y[1] as f64 - s1).abs() < 1e-6);
        // Pair 1 turns by 1 * 10000^(-2/4) = 0.01 rad: (0, 1) -> (-sin, cos).
        let (s2, c2) = 0.01f64.sin_cos();
        assert!((y[2] as f64 + s2).abs() < 1e-6 && (y[3] as f64 - c2).abs() < 1e-6);
        assert_eq!(&y[4..], &[5.0, 6.0]);
        // Halves: pair 0 is (x0, x2) = (1, 0), pair 1 is (x1, x3) = (0, 1).
        let z = rope(&x, 1, 4, 10_000.0, RopePairs::Halves);
        assert!((z[0] as f64 - c1).abs() < 1e-6 && (z[2] as f64 - s1).abs() < 1e-6);
        assert!((z[1] as f64 + s2).abs() < 1e-6 && (z[3] as f64 - c2).abs() < 1e-6);
        for pos in [1, 7, 100] {
            let turned = rope(&x, pos, 4, 10_000.0, RopePairs::Adjacent);
            let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>();
            assert!(
                (norm(&turned) - norm(&x)).abs() < 1e-4,
                "a rotation keeps the norm"
            );
        }
    }
}
