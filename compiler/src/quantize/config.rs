//! What the quantizer is asked for: bit widths per activation role, weight precision,
//! calibration.

use super::QuantError;
use std::collections::BTreeMap;
use zkc_lang::DType;

/// The kinds of activation, each with its own bit width. Every activation bit costs range-check
/// constraints; weight bits are nearly free (weights are circuit constants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// The residual stream between and inside blocks (and the embeddings).
    Residual,
    /// LayerNorm outputs inside blocks (the inputs of the projections).
    Norm,
    /// The final LayerNorm's output, which the logits are computed from: the logits' precision
    /// follows it, and it costs one row per token.
    HeadNorm,
    /// Q, K and V (K and V are what the KV cache stores).
    Qkv,
    /// Attention head outputs (the input of the output projection).
    Attn,
    /// The MLP's up projection (GELU's input).
    GeluIn,
    /// GELU's output (the input of the down projection).
    Mlp,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Residual,
        Role::Norm,
        Role::Qkv,
        Role::Attn,
        Role::GeluIn,
        Role::Mlp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Residual => "residual",
            Role::Norm => "norm",
            Role::HeadNorm => "head_norm",
            Role::Qkv => "qkv",
            Role::Attn => "attn",
            Role::GeluIn => "gelu_in",
            Role::Mlp => "mlp",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct QuantConfig {
    /// Bits of each weight, quantized per output channel (per tensor for the output head, whose
    /// logits are compared with each other by argmax).
    pub weight_bits: u32,
    /// Bits per activation role: 8, 16 or 32.
    pub bits: BTreeMap<Role, u32>,
    /// Softmax probabilities are `i16` with scale `2^-softmax_shift` (at most 14 so that a
    /// probability of 1 fits).
    pub softmax_shift: u32,
    /// Requantize multipliers have this many bits.
    pub mult_bits: u32,
    /// Approximate: attention scores (after the 1/sqrt(d) the softmax absorbs) are rounded to
    /// this many fractional bits before the softmax, if they are finer. Coarser scores make the
    /// integer exp's constants and the division narrower, and the softmax's input `i16`: fewer
    /// constraints per probability, for rounding the scores (`docs/optimizer.md`).
    pub score_frac_bits: Option<u32>,
    /// Headroom over the largest calibrated magnitude.
    pub margin: f64,
    /// Calibration tokens; `None` for `calibration_len` seeded random tokens.
    pub calibration: Option<Vec<u32>>,
    /// A single-pass model's calibration inputs; `None` for `calibration_len` seeded
    /// standard-normal inputs.
    pub calibration_inputs: Option<Vec<Vec<f32>>>,
    pub calibration_len: usize,
    pub calibration_seed: u64,
    /// The most positions a generation can have; `None` for the model's context.
    pub context: Option<usize>,
    /// The smallest context bucket: stages with KV caches are compiled at this context and
    /// every power of two above it below the context, and at the context itself
    /// (DESIGN §3; docs/proving.md).
    pub smallest_bucket: usize,
}

impl Default for QuantConfig {
    fn default() -> QuantConfig {
        // The residual stream at 32 bits, every other role at 16, and 12-bit weights: on
        // trained models 8-bit activations lose 1-6 points of top-1 agreement each, and a 16-bit
        // residual stream, whose one scale must hold its largest value (~10), leaves the small
        // embeddings 3 significant digits: LayerNorm then amplifies that error into Q and K,
        // and the softmax into the heads (docs/accuracy.md). Only `qkv` costs much (the KV
        // caches' range checks); 32-bit residuals cost 20k constraints a token on the tiny
        // model.
        let bits = [
            (Role::Residual, 32),
            (Role::Norm, 16),
            (Role::HeadNorm, 16),
            (Role::Qkv, 16),
            (Role::Attn, 16),
            (Role::GeluIn, 16),
            (Role::Mlp, 16),
        ];
        QuantConfig {
            weight_bits: 12,
            bits: bits.into_iter().collect(),
            softmax_shift: 14,
            mult_bits: 16,
            score_frac_bits: None,
            margin: 1.5,
            calibration: None,
            calibration_inputs: None,
            calibration_len: 128,
            calibration_seed: 0,
            context: None,
            smallest_bucket: 16,
        }
    }
}

impl QuantConfig {
    pub fn bits(&self, role: Role) -> u32 {
        self.bits[&role]
    }

    /// Sets `ROLE=BITS` (as given to `--bits`), or every activation role for `act=BITS`.
    pub fn set_bits(&mut self, spec: &str) -> Result<(), QuantError> {
        let (role, bits) = spec
            .split_once('=')
            .ok_or_else(|| QuantError::Config(format!("`{spec}` is not ROLE=BITS")))?;
        let bits: u32 = bits
            .parse()
            .map_err(|_| QuantError::Config(format!("`{bits}` is not a number of bits")))?;
        if dtype(bits).is_none() {
            return Err(QuantError::Config(format!(
                "activation bits must be 8, 16 or 32, not {bits}"
            )));
        }
        let roles: Vec<Role> = match role {
            "act" => vec![Role::Norm, Role::Qkv, Role::Attn, Role::Mlp],
            _ => vec![*Role::ALL.iter().find(|r| r.name() == role).ok_or_else(|| {
                let names: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
                QuantError::Config(format!(
                    "unknown role `{role}` (roles: act, {})",
                    names.join(", ")
                ))
            })?],
        };
        for r in roles {
            self.bits.insert(r, bits);
        }
        Ok(())
    }

    /// The context proven for a model of context `model_context`: [`QuantConfig::context`],
    /// which may not exceed it.
    pub fn context(&self, model_context: usize) -> Result<usize, QuantError> {
        match self.context {
            None => Ok(model_context),
            Some(c) if (1..=model_context).contains(&c) => Ok(c),
            Some(c) => Err(QuantError::Config(format!(
                "the context must be 1 to the model's {model_context}, not {c}"
            ))),
        }
    }

    /// The contexts of the buckets for `context`: powers of two from the smallest bucket
    /// below it, then `context` itself.
    pub fn buckets(&self, context: usize) -> Vec<usize> {
        let mut buckets: Vec<usize> =
            std::iter::successors(Some(self.smallest_bucket), |b| b.checked_mul(2))
                .take_while(|&b| b < context)
                .collect();
        buckets.push(context);
        buckets
    }

    pub fn check(&self) -> Result<(), QuantError> {
        if self.smallest_bucket == 0 || !self.smallest_bucket.is_power_of_two() {
            return Err(QuantError::Config(format!(
                "the smallest context bucket must be a power of two, not {}",
                self.smallest_bucket
            )));
        }
        if !(2..=24).contains(&self.weight_bits) {
            return Err(QuantError::Config(format!(
                "weight bits must be 2 to 24, not {}",
                self.weight_bits
            )));
        }
        if !(4..=14).contains(&self.softmax_shift) {
            return Err(QuantError::Config(format!(
                "the softmax shift must be 4 to 14, not {}",
                self.softmax_shift
            )));
        }
        if !(4..=31).contains(&self.mult_bits) {
            return Err(QuantError::Config(format!(
                "multiplier bits must be 4 to 31, not {}",
                self.mult_bits
            )));
        }
        if let Some(bits) = self.score_frac_bits.filter(|b| !(2..=29).contains(b)) {
            return Err(QuantError::Config(format!(
                "score fractional bits must be 2 to 29, not {bits}"
            )));
        }
        if !(self.margin >= 1.0 && self.margin <= 16.0) {
            return Err(QuantError::Config(format!(
                "the margin must be 1 to 16, not {}",
                self.margin
            )));
        }
        Ok(())
    }

    /// A one-line description for reports.
    pub fn summary(&self) -> String {
        let roles: Vec<String> = self
            .bits
            .iter()
            .map(|(r, b)| format!("{}={b}", r.name()))
            .collect();
        let shift = match self.score_frac_bits {
            None => String::new(),
            Some(k) => format!(", scores at 2^-{k}"),
        };
        format!(
            "weights {} bits, {}{shift}",
            self.weight_bits,
            roles.join(" ")
        )
    }
}

/// The IR dtype of an activation of `bits` bits.
pub fn dtype(bits: u32) -> Option<DType> {
    match bits {
        8 => Some(DType::I8),
        16 => Some(DType::I16),
        32 => Some(DType::I32),
        _ => None,
    }
}
