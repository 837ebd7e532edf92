//! How far the integer model is from the float reference: per-position metrics and their
//! summary (the numbers of `zkc run --compare` and `docs/accuracy.md`).

use crate::interp::{Interpreter, ModelRunner};
use std::collections::HashMap;
use zkc_compiler::model::{FloatModel, NodeId};

/// One position's comparison of float logits with integer logits (dequantized).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Position {
    pub float_top1: u32,
    pub int_top1: u32,
    /// The float model's top-1 minus its top-2 logit: how clear its choice was.
    pub margin: f64,
    /// The float logits' range (max - min), the yardstick for "clear".
    pub range: f64,
    pub max_abs_error: f64,
    pub mean_abs_error: f64,
    /// KL(float || integer) of the softmax distributions, in nats.
    pub kl: f64,
    /// `-ln p(next)` under the float and the integer distributions, when the next token is known
    /// (text, teacher forced): their means give the perplexities.
    pub nll: Option<(f64, f64)>,
}

impl Position {
    /// `next`: the token that actually follows, if known.
    pub fn new(float: &[f32], int: &[i64], scale: f64, next: Option<u32>) -> Position {
        let int: Vec<f64> = int.iter().map(|&q| q as f64 * scale).collect();
        let float: Vec<f64> = float.iter().map(|&v| v as f64).collect();
        let top = |xs: &[f64]| {
            xs.iter()
                .enumerate()
                .fold(0, |best, (i, &v)| if v > xs[best] { i } else { best })
        };
        let (ft, it) = (top(&float), top(&int));
        let second = float
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != ft)
            .map(|(_, &v)| v)
            .fold(f64::NEG_INFINITY, f64::max);
        let errors: Vec<f64> = float.iter().zip(&int).map(|(a, b)| (a - b).abs()).collect();
        let (lp, lq) = (log_softmax(&float), log_softmax(&int));
        let kl = lp
            .iter()
            .zip(&lq)
            .map(|(p, q)| p.exp() * (p - q))
            .sum::<f64>()
            .max(0.0);
        Position {
            float_top1: ft as u32,
            int_top1: it as u32,
            margin: float[ft] - second,
            range: float[ft] - float.iter().copied().fold(f64::INFINITY, f64::min),
            max_abs_error: errors.iter().copied().fold(0.0, f64::max),
            mean_abs_error: errors.iter().sum::<f64>() / errors.len().max(1) as f64,
            kl,
            nll: next.and_then(|t| Some((-*lp.get(t as usize)?, -*lq.get(t as usize)?))),
        }
    }

    pub fn agrees(&self) -> bool {
        self.float_top1 == self.int_top1
    }

    /// Whether the float model's choice is clear: its margin is at least `fraction` of the
    /// logits' range (below that, a disagreement is a near tie).
    pub fn clear(&self, fraction: f64) -> bool {
        self.margin >= fraction * self.range
    }
}

fn log_softmax(xs: &[f64]) -> Vec<f64> {
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let log_sum = xs.iter().map(|x| (x - max).exp()).sum::<f64>().ln() + max;
    xs.iter().map(|x| x - log_sum).collect()
}

/// Totals over positions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub positions: usize,
    pub top1_agreement: f64,
    /// Agreement over the positions whose float margin is at least `clear_fraction` of the
    /// logit range.
    pub clear_positions: usize,
    pub clear_agreement: f64,
    pub clear_fraction: f64,
    pub mean_kl: f64,
    pub max_abs_error: f64,
    pub mean_abs_error: f64,
    /// Perplexity of the float and the integer model over the positions whose next token is
    /// known (`exp` of the mean negative log-likelihood); `None` without such positions.
    pub perplexity: Option<(f64, f64)>,
}

impl Summary {
    /// `clear_fraction`: see [`Position::clear`] (random-weight models have many near ties).
    pub fn new(positions: &[Position], clear_fraction: f64) -> Summary {
        let n = positions.len().max(1) as f64;
        let clear: Vec<&Position> = positions
            .iter()
            .filter(|p| p.clear(clear_fraction))
            .collect();
        let agree =
            |ps: &mut dyn Iterator<Item = &Position>| ps.filter(|p| p.agrees()).count() as f64;
        Summary {
            positions: positions.len(),
            top1_agreement: agree(&mut positions.iter()) / n,
            clear_positions: clear.len(),
            clear_agreement: agree(&mut clear.iter().copied()) / clear.len().max(1) as f64,
            clear_fraction,
            mean_kl: positions.iter().map(|p| p.kl).sum::<f64>() / n,
            max_abs_error: positions
                .iter()
                .map(|p| p.max_abs_error)
                .fold(0.0, f64::max),
            mean_abs_error: positions.iter().map(|p| p.mean_abs_error).sum::<f64>() / n,
            perplexity: perplexity(positions),
        }
    }
}

fn perplexity(positions: &[Position]) -> Option<(f64, f64)> {
    let nll: Vec<(f64, f64)> = positions.iter().filter_map(|p| p.nll).collect();
    let n = nll.len() as f64;
    (!nll.is_empty()).then(|| {
        let (f, i) = nll.iter().fold((0.0, 0.0), |(a, b), (f, i)| (a + f, b + i));
        ((f / n).exp(), (i / n).exp())
    })
}

/// Teacher forcing: feeds `tokens` to both models (a fresh sequence every `context` tokens)
/// and compares the logits at every position (with the next token of the same sequence, when
/// there is one, for perplexity).
pub fn evaluate(
    model: &FloatModel,
    interp: &Interpreter,
    tokens: &[u32],
) -> Result<Vec<Position>, Box<dyn std::error::Error>> {
    let context = model.text()?.n_ctx;
    let mut positions = Vec::with_capacity(tokens.len());
    for sequence in tokens.chunks(context) {
        let mut runner = ModelRunner::new(interp)?;
        let mut session = model.session();
        for (i, &t) in sequence.iter().enumerate() {
            let int = runner.step(t, false)?;
            let float = session.step(t)?;
            let next = sequence.get(i + 1).copied();
            positions.push(Position::new(&float, &int.logits, int.logit_scale, next));
        }
    }
    Ok(positions)
}

/// How far one value of the integer model is from the float node of the same name, over every
/// position fed: where the error enters (`zkc accuracy --per-value`).
#[derive(Clone, Debug, PartialEq)]
pub struct ValueError {
    pub layer: String,
    pub name: String,
    /// `||int - float|| / ||float||` over all positions and elements.
    pub relative_rms: f64,
    pub max_abs_error: f64,
    pub float_max_abs: f64,
    /// The largest `|value|` the value's type holds at its scale.
    pub type_max_abs: f64,
}

/// Teacher forcing as in [`evaluate`], comparing every integer value that has a float twin.
pub fn value_errors(
    model: &FloatModel,
    interp: &Interpreter,
    tokens: &[u32],
) -> Result<Vec<ValueError>, Box<dyn std::error::Error>> {
    let module = interp.module();
    let by_name: HashMap<&str, NodeId> = model
        .graph
        .topological_order()
        .iter()
        .map(|&id| (model.graph.node(id).name.as_str(), id))
        .collect();
    // (layer, value) -> (node, squared error, squared float, max error, max float, steps)
    let mut sums: Vec<((usize, usize), NodeId, [f64; 5])> = Vec::new();
    for (l, layer) in module.layers.iter().enumerate() {
        for (v, value) in layer.values.iter().enumerate() {
            if let Some(&id) = by_name.get(value.name.as_str()) {
                sums.push(((l, v), id, [0.0; 5]));
            }
        }
    }
    for sequence in tokens.chunks(model.text()?.n_ctx) {
        let mut runner = ModelRunner::new(interp)?;
        let mut session = model.session();
        for &t in sequence {
            let witness = runner.step(t, true)?.witness.expect("recorded");
            let mut float: HashMap<NodeId, Vec<f32>> = HashMap::new();
            session.step_observed(t, |id, values| {
                float.insert(id, values.to_vec());
            })?;
            for ((l, v), id, acc) in &mut sums {
                // Only the stages' buckets that ran this step.
                let Some(run) = witness.iter().find(|r| r.layer == *l) else {
                    continue;
                };
                acc[4] += 1.0;
                let scale = module.layers[*l].values[*v].ty.scale.to_f64();
                let int = run.values[*v].data();
                for (&q, &f) in int.iter().zip(&float[id]) {
                    let (q, f) = (q as f64 * scale, f as f64);
                    acc[0] += (q - f).powi(2);
                    acc[1] += f * f;
                    acc[2] = acc[2].max((q - f).abs());
                    acc[3] = acc[3].max(f.abs());
                }
            }
        }
    }
    Ok(sums
        .into_iter()
        .filter(|(_, _, acc)| acc[4] > 0.0)
        .map(|((l, v), _, [se, sf, max_err, max_f, _])| {
            let layer = &module.layers[l];
            let ty = &layer.values[v].ty;
            ValueError {
                layer: zkc_compiler::backend::cost::layer_label(module, l),
                name: layer.values[v].name.clone(),
                relative_rms: (se / sf.max(f64::MIN_POSITIVE)).sqrt(),
                max_abs_error: max_err,
                float_max_abs: max_f,
                type_max_abs: ty.dtype.max() as f64 * ty.scale.to_f64(),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_logits_agree_with_zero_error() {
        let p = Position::new(&[1.0, 3.0, 2.0], &[4, 12, 8], 0.25, Some(1));
        assert_eq!((p.float_top1, p.int_top1, p.margin), (1, 1, 1.0));
        assert_eq!((p.max_abs_error, p.mean_abs_error), (0.0, 0.0));
        assert!(p.kl.abs() < 1e-12);
        let (f, i) = p.nll.unwrap();
        assert!((f - i).abs() < 1e-12 && f > 0.0);
    }

    #[test]
    fn summary_counts_clear_positions() {
        let tie = Position::new(&[1.0, 1.01, 0.0], &[1, 0, 0], 1.0, Some(0));
        let clear = Position::new(&[0.0, 5.0], &[0, 5], 1.0, None);
        let s = Summary::new(&[tie, clear], 0.1);
        assert_eq!(
            (s.top1_agreement, s.clear_positions, s.clear_agreement),
            (0.5, 1, 1.0)
        );
        assert!(s.mean_kl > 0.0);
        // Only the tie has a next token: its perplexities are exp of its NLLs.
        let (f, i) = s.perplexity.unwrap();
        let (nll_f, nll_i) = tie.nll.unwrap();
        assert!((f.ln() - nll_f).abs() < 1e-12 && (i.ln() - nll_i).abs() < 1e-12);
        // The integer logits (1, 0, 0) give token 0 more weight than the float (1, 1.01, 0).
        assert!(i < f);
    }
}
