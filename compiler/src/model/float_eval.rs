//! The float reference evaluator: runs the graph one token at a time with a KV cache. It is the
//! yardstick the integer model is measured against, so it favours accuracy (f64 sums in norms,
//! exact GELU-tanh) over speed.

use super::graph::{FloatOp, Graph, Io, NodeId, RopePairs};
use super::{build_graph, Hyperparams, ModelError};
use crate::gguf::GgufFile;
use rayon::prelude::*;
use std::borrow::Cow;
use std::collections::HashMap;

/// A model ready to run: its graph and its weights, read from the file's map (F32) or
/// dequantized once (other types).
pub struct FloatModel<'g> {
    /// A language model's hyperparameters; `None` for a single-pass model (ONNX).
    pub hparams: Option<Hyperparams>,
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
            hparams: Some(hparams),
            graph,
            weights,
        })
    }

    /// A single-pass model from a frontend's graph and the weights it names.
    pub fn single_pass(graph: Graph, weights: HashMap<String, Vec<f32>>) -> FloatModel<'static> {
        FloatModel {
            hparams: None,
            graph,
            weights: weights
                .into_iter()
                .map(|(k, v)| (k, Cow::Owned(v)))
                .collect(),
        }
    }

    /// A language model's hyperparameters, or the error of asking a single-pass model for them.
    pub fn text(&self) -> Result<&Hyperparams, ModelError> {
        self.hparams.as_ref().ok_or(ModelError::NotALanguageModel)
    }

    pub fn session(&self) -> FloatSession<'_, 'g> {
        FloatSession {
            model: self,
            cache: HashMap::new(),
            position: 0,
        }
    }

    /// A weight by tensor name, as f32.
    pub fn weight(&self, name: &str) -> &[f32] {
        &self.weights[name]
    }

    /// The element count of a single-pass model's input.
    pub fn input_len(&self) -> Option<usize> {
        let Io::Pass { input, .. } = self.graph.io else {
            return None;
        };
        match &self.graph.node(input).op {
            FloatOp::Input { shape } => Some(shape.iter().product()),
            _ => None,
        }
    }

    /// Runs a single-pass model on `input` (flattened); returns its output.
    pub fn run(&self, input: &[f32]) -> Result<Vec<f32>, ModelError> {
        self.run_observed(input, |_, _| {})
    }

    /// [`FloatModel::run`], showing every node's value to `observe` (calibration).
    pub fn run_observed(
        &self,
        input: &[f32],
        mut observe: impl FnMut(NodeId, &[f32]),
    ) -> Result<Vec<f32>, ModelError> {
        let expected = self.input_len().ok_or(ModelError::NotASinglePass)?;
        if input.len() != expected {
            return Err(ModelError::InputLength {
                expected,
                found: input.len(),
            });
        }
        let mut values: HashMap<NodeId, Vec<f32>> = HashMap::new();
        for &id in self.graph.topological_order() {
            let out = match &self.graph.node(id).op {
                FloatOp::Input { .. } => input.to_vec(),
                op => self.stateless(op, &self.graph.operands(id), &values),
            };
            observe(id, &out);
            values.insert(id, out);
        }
        Ok(values
            .remove(&self.graph.result())
            .expect("the output node was evaluated"))
    }

    /// A node whose value depends only on its operands' values.
    fn stateless(
        &self,
        op: &FloatOp,
        operands: &[NodeId],
        values: &HashMap<NodeId, Vec<f32>>,
    ) -> Vec<f32> {
        let args: Vec<&[f32]> = operands.iter().map(|o| values[o].as_slice()).collect();
        // An operand's shape: its node's, else one row.
        let shape = |k: usize| -> Vec<usize> {
            match self.graph.shape(operands[k]) {
                Some(s) => s.to_vec(),
                None => vec![1, args[k].len()],
            }
        };
        match op {
            FloatOp::Embed { table } => {
                let row = args[0][0] as usize;
                let d = table.shape[1];
                self.weight(&table.name)[row * d..(row + 1) * d].to_vec()
            }
            FloatOp::Add => args[0].iter().zip(args[1]).map(|(a, b)| a + b).collect(),
            FloatOp::Sub => args[0].iter().zip(args[1]).map(|(a, b)| a - b).collect(),
            FloatOp::LayerNorm { weight, bias, eps } => {
                let (w, b) = (self.weight(&weight.name), self.weight(&bias.name));
                rows(args[0], w.len(), |x| layer_norm(x, w, b, *eps))
            }
            FloatOp::Linear { weight, bias } => {
                let b = bias.as_ref().map(|b| self.weight(&b.name));
                let w = self.weight(&weight.name);
                rows(args[0], weight.shape[1], |x| linear(x, w, b))
            }
            FloatOp::RmsNorm { weight, eps } => {
                let w = self.weight(&weight.name);
                rows(args[0], w.len(), |x| rms_norm(x, w, *eps))
            }
            FloatOp::Slice { start, len } => {
                let row = self.graph.row_len(operands[0], args[0].len());
                rows(args[0], row, |x| x[*start..start + len].to_vec())
            }
            FloatOp::MatMul => matmul(args[0], &shape(0), args[1], &shape(1)),
            FloatOp::Softmax { scale, causal } => softmax(args[0], &shape(0), *scale, *causal),
            FloatOp::Transpose { perm } => transpose(args[0], &shape(0), perm),
            FloatOp::Reshape { .. } => args[0].to_vec(),
            FloatOp::Rope {
                dims,
                freq_base,
                pairs,
            } => rope(args[0], args[1][0] as usize, *dims, *freq_base, *pairs),
            FloatOp::Concat => args.concat(),
            FloatOp::Gelu => args[0].iter().map(|&x| gelu(x)).collect(),
            FloatOp::GeluErf => args[0].iter().map(|&x| gelu_erf(x as f64) as f32).collect(),
            FloatOp::Silu => args[0].iter().map(|&x| silu(x as f64) as f32).collect(),
            FloatOp::Relu => args[0].iter().map(|&x| x.max(0.0)).collect(),
            FloatOp::Sigmoid => args[0].iter().map(|&x| sigmoid(x as f64) as f32).collect(),
            FloatOp::Tanh => args[0].iter().map(|&x| (x as f64).tanh() as f32).collect(),
            FloatOp::LeakyRelu { alpha } => args[0]
                .iter()
                .map(|&x| leaky_relu(x as f64, *alpha as f64) as f32)
                .collect(),
            FloatOp::Mul => args[0].iter().zip(args[1]).map(|(a, b)| a * b).collect(),
            FloatOp::Token
            | FloatOp::Position
            | FloatOp::Input { .. }
            | FloatOp::Attention { .. } => {
                unreachable!("inputs and attention are evaluated by the step or the pass")
            }
        }
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
        let hp = self.model.text()?;
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
            let operands = graph.operands(id);
            let out = match &graph.node(id).op {
                FloatOp::Token => vec![token as f32],
                FloatOp::Position => vec![self.position as f32],
                FloatOp::Attention { block, kv_head } => {
                    let arg = |k: usize| values[&operands[k]].as_slice();
                    self.attend(*block, *kv_head, arg(0), arg(1), arg(2))
                }
                op => self.model.stateless(op, &operands, &values),
            };
            observe(id, &out);
            values.insert(id, out);
        }
        self.position += 1;
        Ok(values
            .remove(&graph.result())
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
        let (ctx, dh) = (self.model.text().map_or(0, |hp| hp.n_ctx), q.len());
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
            if self.position >= self.model.text()?.n_ctx || generated.len() == max_new {
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

/// `f` applied to every row of `len` elements of `x`, the results joined.
fn rows(x: &[f32], len: usize, f: impl Fn(&[f32]) -> Vec<f32>) -> Vec<f32> {
    if len == 0 || x.len() == len {
        return f(x);
    }
    x.chunks(len).flat_map(f).collect()
}

/// `a[B.., M, K] x b[B.., K, N]`, batched over equal leading axes (f64 sums).
fn matmul(a: &[f32], sa: &[usize], b: &[f32], sb: &[usize]) -> Vec<f32> {
    let (m, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let n = sb[sb.len() - 1];
    let batch = a.len() / (m * k);
    let mut out = Vec::with_capacity(batch * m * n);
    for bt in 0..batch {
        let (a, b) = (&a[bt * m * k..][..m * k], &b[bt * k * n..][..k * n]);
        for i in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k)
                    .map(|t| a[i * k + t] as f64 * b[t * n + j] as f64)
                    .sum();
                out.push(dot as f32);
            }
        }
    }
    out
}

/// Softmax of `scale * x` over the last axis of `shape` (f64); with `causal`, the row at index
/// `i` of the second-to-last axis keeps only slots `j <= i` (the rest are 0).
fn softmax(x: &[f32], shape: &[usize], scale: f32, causal: bool) -> Vec<f32> {
    let l = shape.last().copied().unwrap_or(x.len()).max(1);
    let m = match shape.len() {
        0 | 1 => 1,
        r => shape[r - 2],
    };
    let mut out = vec![0f32; x.len()];
    for (r, (row, y)) in x.chunks(l).zip(out.chunks_mut(l)).enumerate() {
        let valid = match causal {
            true => (r % m + 1).min(l),
            false => l,
        };
        let s: Vec<f64> = row[..valid]
            .iter()
            .map(|&v| scale as f64 * v as f64)
            .collect();
        let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|v| (v - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        for (y, e) in y.iter_mut().zip(&e) {
            *y = (e / sum) as f32;
        }
    }
    out
}

/// `x` of `shape` with its axes permuted: result axis `a` is axis `perm[a]` of `x`.
fn transpose(x: &[f32], shape: &[usize], perm: &[usize]) -> Vec<f32> {
    let rank = shape.len();
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    // The input stride of each result axis.
    let mut strides = vec![1usize; rank];
    for a in (0..rank.saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * shape[a + 1];
    }
    let by: Vec<usize> = perm.iter().map(|&p| strides[p]).collect();
    let mut index = vec![0usize; rank];
    let mut out = Vec::with_capacity(x.len());
    for _ in 0..x.len() {
        out.push(x[index.iter().zip(&by).map(|(i, s)| i * s).sum::<usize>()]);
        for a in (0..rank).rev() {
            index[a] += 1;
            if index[a] < out_shape[a] {
                break;
            }
            index[a] = 0;
        }
    }
    out
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

/// The logistic sigmoid, `1 / (1 + exp(-x))`: the one definition, which the float reference
/// runs and the integer piecewise cubic of [`FloatOp::Sigmoid`] is fitted to.
pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `x` for `x >= 0`, `alpha * x` below: [`FloatOp::LeakyRelu`]'s float reference.
pub(crate) fn leaky_relu(x: f64, alpha: f64) -> f64 {
    if x >= 0.0 {
        x
    } else {
        alpha * x
    }
}

/// GELU in its exact form, `x (1 + erf(x / sqrt 2)) / 2`: the one definition, which the float
/// reference runs and the integer `gelu`'s coefficients are fitted to for [`FloatOp::GeluErf`].
pub(crate) fn gelu_erf(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2))
}

/// The error function to about 1e-15: its Maclaurin series below 2.5, above it `1 - erfc` by
/// erfc's continued fraction (Abramowitz and Stegun 7.1.5 and 7.1.14).
pub(crate) fn erf(x: f64) -> f64 {
    let a = x.abs();
    let value = if a < 2.5 {
        let (mut term, mut sum, mut n) = (a, a, 0.0);
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else {
        let mut t = 0.0;
        for n in (1..=80).rev() {
            t = (n as f64 / 2.0) / (a + t);
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + t)
    };
    value.copysign(x)
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
        assert!((sigmoid(1.0) - 0.731_058_578_630_004_9).abs() < 1e-15);
        assert!(sigmoid(-800.0) == 0.0 && sigmoid(800.0) == 1.0);
        assert_eq!(
            (leaky_relu(2.0, 0.01), leaky_relu(-2.0, 0.01)),
            (2.0, -0.02)
        );
    }

    /// The structured ops of shaped graphs (ONNX): per-row application, batched products, the
    /// causal softmax, transposes.
    #[test]
    fn shaped_kernels_compute_what_they_say() {
        // Two rows through one linear map: each row on its own.
        let w = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let y = rows(&[1.0, 2.0, 3.0, 4.0], 2, |x| linear(x, &w, None));
        assert_eq!(y, vec![1.0, 2.0, 3.0, 3.0, 4.0, 7.0]);
        // Two batches of [1, 2] x [2, 2].
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [1.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 2.0];
        assert_eq!(
            matmul(&a, &[2, 1, 2], &b, &[2, 2, 2]),
            vec![1.0, 2.0, 6.0, 8.0]
        );
        // [2, 3] transposed; then a [2, 2, 2] tensor by [1, 0, 2].
        let t = transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], &[1, 0]);
        assert_eq!(t, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        let t = transpose(
            &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            &[2, 2, 2],
            &[1, 0, 2],
        );
        assert_eq!(t, vec![0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0]);
        // Causal softmax over [2, 2] (scale 2): row 0 sees slot 0 only; row 1 both.
        let p = softmax(&[0.0, 9.0, 0.0, 1.0], &[2, 2], 2.0, true);
        let e2 = 2f64.exp();
        assert_eq!(&p[..2], &[1.0, 0.0]);
        assert!((p[2] as f64 - 1.0 / (1.0 + e2)).abs() < 1e-7);
        assert!((p[3] as f64 - e2 / (1.0 + e2)).abs() < 1e-7);
        // Without the mask, every slot of every row.
        let p = softmax(&[0.0, 0.0, 0.0, 0.0], &[2, 2], 1.0, false);
        assert_eq!(p, vec![0.5; 4]);
    }

    #[test]
    fn erf_and_the_exact_gelu_match_tabulated_values() {
        for (x, want) in [
            (0.0, 0.0),
            (0.1, 0.112_462_916_018_284_9),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (2.5, 0.999_593_047_982_555),
            (3.0, 0.999_977_909_503_001_4),
            (4.0, 0.999_999_984_582_742_1),
        ] {
            assert!((erf(x) - want).abs() < 1e-14, "erf({x}) = {}", erf(x));
            assert!((erf(-x) + want).abs() < 1e-14);
        }
        assert!((gelu_erf(1.0) - 0.841_344_746_068_542_9).abs() < 1e-14);
        assert!((gelu_erf(-3.0) + 0.004_049_694_094_890_284).abs() < 1e-14);
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
