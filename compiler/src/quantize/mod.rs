//! Float graph -> integer IR: calibration, fixed-point scales, and lowering every float op to
//! integer ops whose semantics are `zkc_lang::semantics`.
//!
//! The result is a plain [`zkc_lang::Module`] that follows the model interface of
//! `docs/quantization.md`: layers run in module order; inputs named `token` and `pos` are the
//! step's token id and position; every other input is the same-named output of an earlier layer;
//! the last layer returns `token` (the greedy choice) and holds the logits in value `logits`.

mod calibrate;
mod config;
mod fixed;
pub mod gelu;
mod lower;

pub use calibrate::{
    calibrate, calibrate_inputs, calibration_inputs, calibration_tokens, default_calibration,
    Ranges, CALIBRATION_TEXT,
};
pub use config::{QuantConfig, Role};
pub use lower::lower;

use crate::model::{FloatModel, ModelError};
use thiserror::Error;
use zkc_lang::Module;

#[derive(Debug, Error)]
pub enum QuantError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{0}")]
    Config(String),
    #[error("node `{node}`: {problem}")]
    Unsupported { node: String, problem: String },
    #[error("the quantized module is invalid (a zkc bug): {0}")]
    Invalid(String),
}

/// Calibrates `model` and lowers it to a validated integer module.
pub fn quantize(model: &FloatModel, config: &QuantConfig) -> Result<Module, QuantError> {
    quantize_with(model, &ranges(model, config)?, config)
}

/// `model`'s calibrated ranges on `config`'s calibration tokens (the float model run over them:
/// most of a large model's compile time, so a caller lowering twice calibrates once).
pub fn ranges(model: &FloatModel, config: &QuantConfig) -> Result<Ranges, QuantError> {
    let Some(hparams) = &model.hparams else {
        let inputs = match &config.calibration_inputs {
            Some(inputs) => inputs.clone(),
            None => calibration_inputs(
                model.input_len().unwrap_or(0),
                config.calibration_len,
                config.calibration_seed,
            ),
        };
        return Ok(calibrate_inputs(model, &inputs)?);
    };
    let tokens = match &config.calibration {
        Some(tokens) => tokens.clone(),
        None => calibration_tokens(hparams, config.calibration_len, config.calibration_seed),
    };
    Ok(calibrate(model, &tokens)?)
}

/// `model` lowered with calibrated `ranges` to a validated integer module.
pub fn quantize_with(
    model: &FloatModel,
    ranges: &Ranges,
    config: &QuantConfig,
) -> Result<Module, QuantError> {
    let module = lower(model, ranges, config)?;
    zkc_lang::validate(&module).map_err(|errors| {
        QuantError::Invalid(
            errors
                .iter()
                .map(|e| format!("{e} ({})", e.location))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    Ok(module)
}
