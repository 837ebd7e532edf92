//! How far the integer model is from the float reference: per-position metrics and their
//! summary (the numbers of `zkc run --compare` and `docs/accuracy.md`).

use crate::interp::{Interpreter, ModelRunner};
use zkc_compiler::model::FloatModel;

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
}

impl Position {
    pub fn new(float: &[f32], int: &[i64], scale: f64) -> Position {
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
        }
    }
}

/// Teacher forcing: feeds `tokens` to both models (a fresh sequence every `context` tokens)
/// and compares the logits at every position.
pub fn evaluate(
    model: &FloatModel,
    interp: &Interpreter,
    tokens: &[u32],
) -> Result<Vec<Position>, Box<dyn std::error::Error>> {
    let context = model.hparams.n_ctx;
    let mut positions = Vec::with_capacity(tokens.len());
    for sequence in tokens.chunks(context) {
        let mut runner = ModelRunner::new(interp)?;
        let mut session = model.session();
        for &t in sequence {
            let int = runner.step(t, false)?;
            let float = session.step(t)?;
            positions.push(Position::new(&float, &int.logits, int.logit_scale));
        }
    }
    Ok(positions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_logits_agree_with_zero_error() {
        let p = Position::new(&[1.0, 3.0, 2.0], &[4, 12, 8], 0.25);
        assert_eq!((p.float_top1, p.int_top1, p.margin), (1, 1, 1.0));
        assert_eq!((p.max_abs_error, p.mean_abs_error), (0.0, 0.0));
        assert!(p.kl.abs() < 1e-12);
    }

    #[test]
    fn summary_counts_clear_positions() {
        let tie = Position::new(&[1.0, 1.01, 0.0], &[1, 0, 0], 1.0);
        let clear = Position::new(&[0.0, 5.0], &[0, 5], 1.0);
        let s = Summary::new(&[tie, clear], 0.1);
        assert_eq!(
            (s.top1_agreement, s.clear_positions, s.clear_agreement),
            (0.5, 1, 1.0)
        );
        assert!(s.mean_kl > 0.0);
    }
}
