//! An ONNX file as `compile`, `run --float` and `accuracy` take it: mapped into the float model
//! graph, then calibrated and quantized as the quantization options say.

use super::quant_args::QuantArgs;
use std::path::Path;
use zkc_compiler::model::FloatModel;

/// The ONNX model's float graph and weights.
pub fn load(path: &Path) -> Result<FloatModel<'static>, Box<dyn std::error::Error>> {
    let onnx = zkc_compiler::onnx::read(path)?;
    let imported =
        zkc_compiler::onnx::import(&onnx).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(FloatModel::single_pass(imported.graph, imported.weights))
}

/// `model` calibrated (on `--calibrate`'s inputs, else seeded standard-normal ones, with a
/// note) and quantized: a single-pass module, and the quantization's summary.
pub fn quantized(
    model: &FloatModel,
    quant: &QuantArgs,
) -> Result<(zkc_lang::Module, String), Box<dyn std::error::Error>> {
    let config = quant.single_pass_config(model.input_len().unwrap_or(0))?;
    if quant.calibrates().is_none() {
        eprintln!(
            "note: calibrating on {} seeded standard-normal inputs; give real ones with --calibrate FILE (EZKL's input.json format)",
            config.calibration_len
        );
    }
    let module = zkc_compiler::quantize::quantize(model, &config)?;
    Ok((module, config.summary()))
}
