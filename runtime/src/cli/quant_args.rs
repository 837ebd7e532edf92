use std::path::PathBuf;
use zkc_compiler::quantize::{default_calibration, QuantConfig, QuantError};
use zkc_compiler::tokenizer::Tokenizer;

/// Quantization options shared by `compile`, `run` and `accuracy`.
#[derive(Debug, Clone, clap::Args)]
pub struct QuantArgs {
    /// Bits per weight (per output channel; per tensor for the output head).
    #[arg(long, default_value_t = 12)]
    weight_bits: u32,
    /// Bits of the block-internal activations (norm outputs, Q/K/V and the KV cache, head
    /// outputs, GELU outputs): 8, 16 or 32.
    #[arg(long)]
    act_bits: Option<u32>,
    /// Bits of the residual stream: 8, 16 or 32.
    #[arg(long)]
    residual_bits: Option<u32>,
    /// Bits of one activation role, `ROLE=BITS` (roles: residual, norm, head_norm, qkv, attn,
    /// gelu_in, mlp); repeatable, applied after the options above.
    #[arg(long = "bits", value_name = "ROLE=BITS")]
    bits: Vec<String>,
    /// Approximate: round the attention scores to this many fractional bits before the softmax
    /// (a cheaper softmax for rounded scores; docs/accuracy.md measures 7).
    #[arg(long, value_name = "BITS")]
    score_frac_bits: Option<u32>,
    /// Headroom over the largest calibrated magnitude.
    #[arg(long, default_value_t = 1.5)]
    margin: f64,
    /// Calibrate on this text, tokenized with the model's own tokenizer, or on these token ids
    /// (a file of integers separated by commas or whitespace); for an ONNX model, on these
    /// inputs (EZKL's data format, samples one after another). Without it, models with a
    /// tokenizer are calibrated on zkc's built-in English text (docs/quantization.md), ONNX
    /// models on seeded standard-normal inputs, others on seeded random tokens.
    #[arg(long, value_name = "FILE")]
    calibrate: Option<PathBuf>,
    /// Calibrate on this many seeded random tokens instead (and not on text).
    #[arg(long, conflicts_with = "calibrate")]
    calib_tokens: Option<usize>,
    #[arg(long, default_value_t = 0)]
    calib_seed: u64,
    /// The most positions a proven generation can have (default: the model's context; `zkc
    /// compile` stops at the longest context whose attention fits `--max-constraints` without
    /// a cut between heads, which would multiply every step's proofs). Stages with KV caches are
    /// compiled in context buckets up to it (docs/proving.md).
    #[arg(long, value_name = "N")]
    context: Option<usize>,
    /// The smallest context bucket (a power of two); buckets double from it up to `--context`.
    #[arg(long, value_name = "N", default_value_t = 16)]
    smallest_bucket: usize,
}

impl QuantArgs {
    /// The configuration for a model with `tokenizer` (if it has one).
    pub fn config(&self, tokenizer: Option<&Tokenizer>) -> Result<QuantConfig, QuantError> {
        let mut cfg = self.base();
        cfg.calibration = match (&self.calibrate, self.calib_tokens, tokenizer) {
            (Some(file), _, _) => Some(calibration_file(file, tokenizer)?),
            (None, Some(n), _) => {
                cfg.calibration_len = n;
                None
            }
            (None, None, Some(t)) => Some(default_calibration(t)),
            (None, None, None) => None,
        };
        self.finish(cfg)
    }

    /// The configuration for a single-pass model of `input_len` inputs: `--calibrate` is then
    /// a file of inputs in EZKL's format (docs/onnx.md); without it, seeded standard-normal
    /// inputs.
    pub fn single_pass_config(&self, input_len: usize) -> Result<QuantConfig, QuantError> {
        let mut cfg = self.base();
        if let Some(file) = &self.calibrate {
            let samples = crate::interp::input::samples(file, input_len)
                .map_err(|e| QuantError::Config(format!("--calibrate: {e}")))?;
            cfg.calibration_inputs = Some(samples);
        }
        self.finish(cfg)
    }

    /// The `--calibrate` file, if one is given.
    pub fn calibrates(&self) -> Option<&PathBuf> {
        self.calibrate.as_ref()
    }

    /// Everything but the calibration.
    fn base(&self) -> QuantConfig {
        let mut cfg = QuantConfig {
            weight_bits: self.weight_bits,
            score_frac_bits: self.score_frac_bits,
            margin: self.margin,
            context: self.context,
            smallest_bucket: self.smallest_bucket,
            ..QuantConfig::default()
        };
        cfg.calibration_seed = self.calib_seed;
        cfg
    }

    /// `cfg` with the bit options applied, checked.
    fn finish(&self, mut cfg: QuantConfig) -> Result<QuantConfig, QuantError> {
        if let Some(b) = self.act_bits {
            cfg.set_bits(&format!("act={b}"))?;
        }
        if let Some(b) = self.residual_bits {
            cfg.set_bits(&format!("residual={b}"))?;
        }
        for spec in &self.bits {
            cfg.set_bits(spec)?;
        }
        cfg.check()?;
        Ok(cfg)
    }
}

/// A calibration file's token ids: integers, or text for the model's tokenizer.
fn calibration_file(file: &PathBuf, tokenizer: Option<&Tokenizer>) -> Result<Vec<u32>, QuantError> {
    let bad =
        |problem: String| QuantError::Config(format!("--calibrate {}: {problem}", file.display()));
    let text = std::fs::read_to_string(file)
        .map_err(|e| bad(format!("cannot read it as UTF-8 text: {e}")))?;
    let ids: Option<Vec<u32>> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().ok())
        .collect();
    let ids = match (ids, tokenizer) {
        (Some(ids), _) => ids,
        (None, Some(t)) => t.encode(&text),
        (None, None) => {
            return Err(bad(
                "the model has no tokenizer to read text with: give token ids".into(),
            ))
        }
    };
    if ids.is_empty() {
        return Err(bad("it holds no tokens".into()));
    }
    Ok(ids)
}
