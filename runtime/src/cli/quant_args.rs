use zkc_compiler::quantize::{QuantConfig, QuantError};

/// Quantization options shared by `compile`, `run` and `accuracy`.
#[derive(Debug, Clone, clap::Args)]
pub struct QuantArgs {
    /// Bits per weight (per output channel; per tensor for the output head).
    #[arg(long, default_value_t = 8)]
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
    /// Calibrate on this many seeded random tokens.
    #[arg(long, default_value_t = 128)]
    calib_tokens: usize,
    #[arg(long, default_value_t = 0)]
    calib_seed: u64,
}

impl QuantArgs {
    pub fn config(&self) -> Result<QuantConfig, QuantError> {
        let mut cfg = QuantConfig {
            weight_bits: self.weight_bits,
            score_frac_bits: self.score_frac_bits,
            margin: self.margin,
            ..QuantConfig::default()
        };
        cfg.calibration_len = self.calib_tokens;
        cfg.calibration_seed = self.calib_seed;
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
