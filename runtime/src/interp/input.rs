//! A single-pass model's input from EZKL's `input.json`: `{"input_data": [[x0, x1, …]]}`, one
//! flattened (row-major) list of reals per model input; zkc's models have exactly one. Other
//! keys (EZKL's `output_data`, …) are ignored. Each real becomes the integer
//! `round(x / scale)` of `%input`'s fixed-point type, rounding half away from zero; an integer
//! past the type's dtype is an error, never a wrap.

use std::path::Path;
use zkc_lang::semantics::Tensor;
use zkc_lang::TensorType;

/// Why an input file does not give the model's input.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {problem} (EZKL's input.json: {{\"input_data\": [[x0, x1, …]]}}, one flattened list of numbers per model input)")]
    Format { path: String, problem: String },
    #[error("{path}: the input has {found} values; the model's input `{ty}` has {expected}")]
    Length {
        path: String,
        ty: TensorType,
        expected: usize,
        found: usize,
    },
    #[error("{path}: value {index} of the input, {}, is {} at the input's scale ({scale:e}), past {dtype}'s range (reals {} to {}): the model was compiled for a narrower input range; recompile it with a range that holds this input (calibrate on inputs like it, or widen the input's type)", real(*.value), real(*.quantized), real(*.min), real(*.max))]
    Range {
        path: String,
        index: usize,
        value: f64,
        quantized: f64,
        scale: f64,
        dtype: zkc_lang::DType,
        min: f64,
        max: f64,
    },
}

/// `x` for people: plain digits, or with an exponent when very large or small.
pub fn real(x: f64) -> String {
    match x.abs() {
        a if a != 0.0 && !(1e-4..1e16).contains(&a) => format!("{x:e}"),
        _ => format!("{x}"),
    }
}

/// Reads `path` and quantizes its values to `ty`, the type of `%input`.
pub fn read(path: &Path, ty: &TensorType) -> Result<Tensor, InputError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| InputError::Io {
        path: name.clone(),
        source,
    })?;
    quantize(&name, &parse(&name, &text)?, ty)
}

/// The reals of the one input in `text` (an `input.json`; `path` names it in errors).
pub fn parse(path: &str, text: &str) -> Result<Vec<f64>, InputError> {
    let format = |problem: String| InputError::Format {
        path: path.to_string(),
        problem,
    };
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format(format!("not JSON: {e}")))?;
    let lists = json
        .get("input_data")
        .ok_or_else(|| format("no `input_data`".into()))?
        .as_array()
        .ok_or_else(|| format("`input_data` is not a list of lists".into()))?;
    let [list] = &lists[..] else {
        return Err(format(format!(
            "`input_data` holds {} inputs; the model has one",
            lists.len()
        )));
    };
    let list = list
        .as_array()
        .ok_or_else(|| format("`input_data[0]` is not a list of numbers".into()))?;
    list.iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_f64()
                .ok_or_else(|| format(format!("`input_data[0][{i}]` is {x}, not a number")))
        })
        .collect()
}

/// Calibration samples of `len` values each from an EZKL data file (`path`): its one list cut
/// into samples, as EZKL's `calibrate_settings` reads a batch (docs/onnx.md).
pub fn samples(path: &Path, len: usize) -> Result<Vec<Vec<f32>>, InputError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| InputError::Io {
        path: name.clone(),
        source,
    })?;
    let values = parse(&name, &text)?;
    if len == 0 || values.is_empty() || values.len() % len != 0 {
        return Err(InputError::Format {
            path: name,
            problem: format!(
                "its {} numbers are not whole samples of the model's {len} inputs",
                values.len()
            ),
        });
    }
    Ok(values
        .chunks(len)
        .map(|c| c.iter().map(|&v| v as f32).collect())
        .collect())
}

/// The integers of `ty` for `values`: `round(x / scale)`, half away from zero. `path` names
/// the file in errors.
pub fn quantize(path: &str, values: &[f64], ty: &TensorType) -> Result<Tensor, InputError> {
    let expected: usize = ty.shape.iter().product();
    if values.len() != expected {
        return Err(InputError::Length {
            path: path.to_string(),
            ty: ty.clone(),
            expected,
            found: values.len(),
        });
    }
    let scale = ty.scale.to_f64();
    let data = values
        .iter()
        .enumerate()
        .map(|(index, &value)| {
            // `f64::round` rounds half away from zero; the cast saturates, so a value past
            // every i64 still fails the range check.
            let quantized = (value / scale).round();
            match quantized.is_finite() && ty.dtype.contains(quantized as i128) {
                true => Ok(quantized as i64),
                false => Err(InputError::Range {
                    path: path.to_string(),
                    index,
                    value,
                    quantized,
                    scale,
                    dtype: ty.dtype,
                    min: ty.dtype.min() as f64 * scale,
                    max: ty.dtype.max() as f64 * scale,
                }),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Tensor::new(ty.shape.clone(), data).expect("the count was checked"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zkc_lang::{DType, Scale};

    fn ty() -> TensorType {
        TensorType::new(DType::I8, vec![2, 2], Scale::pow2(-4).unwrap())
    }

    #[test]
    fn ezkl_input_is_quantized_rounding_half_away_from_zero() {
        let text = r#"{"input_data": [[0.5, -0.03125, 0.03125, 7.9375]], "output_data": [[1]]}"#;
        let values = parse("in.json", text).unwrap();
        let t = quantize("in.json", &values, &ty()).unwrap();
        assert_eq!(t.shape(), &[2, 2]);
        // 0.5 * 16 = 8; -0.5 -> -1 and 0.5 -> 1 (half away from zero); 127.
        assert_eq!(t.data(), &[8, -1, 1, 127]);
        // Integers are numbers too.
        assert_eq!(
            parse("in.json", r#"{"input_data": [[1, -2]]}"#).unwrap(),
            [1.0, -2.0]
        );
    }

    #[test]
    fn a_wrong_count_names_the_file_and_both_counts() {
        let err = quantize("in.json", &[0.0; 3], &ty())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "in.json: the input has 3 values; the model's input `i8[2, 2] * 2^-4` has 4"
        );
    }

    #[test]
    fn malformed_files_say_what_is_wrong() {
        for (text, said) in [
            ("[1, 2]", "no `input_data`"),
            ("{\"input_data\": [[1, 2]", "not JSON"),
            ("{\"input_data\": [1, 2]}", "holds 2 inputs"),
            ("{\"input_data\": 3}", "not a list of lists"),
            (
                "{\"input_data\": [[1], [2]]}",
                "holds 2 inputs; the model has one",
            ),
            (
                "{\"input_data\": [[1, \"2\"]]}",
                "`input_data[0][1]` is \"2\", not a number",
            ),
            (
                "{\"input_data\": [[1, null]]}",
                "`input_data[0][1]` is null",
            ),
            ("{\"input_data\": [{\"a\": 1}]}", "is not a list of numbers"),
        ] {
            let err = parse("in.json", text).unwrap_err().to_string();
            assert!(err.starts_with("in.json: "), "{err}");
            assert!(err.contains(said), "{text}: {err}");
        }
        assert!(matches!(
            read(Path::new("/nonexistent/in.json"), &ty()),
            Err(InputError::Io { .. })
        ));
    }

    #[test]
    fn a_value_past_the_dtype_names_its_index_and_value() {
        // 8.0 * 16 = 128 > 127; -8.0 -> -128 fits; 7.97 -> 127.52 -> 128 does not.
        assert!(quantize("in.json", &[0.0, 0.0, 0.0, -8.0], &ty()).is_ok());
        for (values, index) in [([0.0, 0.0, 8.0, 0.0], 2), ([7.97, 0.0, 0.0, 0.0], 0)] {
            let err = quantize("in.json", &values, &ty()).unwrap_err();
            assert!(matches!(err, InputError::Range { index: i, .. } if i == index));
            let text = err.to_string();
            assert!(
                text.contains(&format!("value {index} of the input")),
                "{text}"
            );
            assert!(text.contains("recompile"), "{text}");
        }
        let huge = quantize("in.json", &[1e300, 0.0, 0.0, 0.0], &ty()).unwrap_err();
        assert!(huge.to_string().contains("1e300"), "{huge}");
    }
}
