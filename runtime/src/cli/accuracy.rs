use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use zkc_compiler::files::write_atomically;
use zkc_compiler::gguf::GgufFile;
use zkc_compiler::model::{generate_gpt2, FloatModel, ModelConfig};
use zkc_compiler::quantize::{calibration_tokens, quantize, QuantConfig};

use super::opt_args::OptArgs;
use super::quant_args::QuantArgs;
use crate::accuracy::{evaluate, value_errors, Summary};
use crate::interp::{input, Interpreter, ModelRunner, SinglePass};
use zkc_compiler::tokenizer::Tokenizer;

/// Measure the integer model against the float reference.
///
/// With a MODEL and `--text`: feeds the text (in the model's tokens, windows of the model's
/// context, each from an empty cache) to the float and the integer model and prints top-1
/// agreement, mean KL divergence, perplexity of both, and logit errors; `--per-value` also prints,
/// for every integer value with a float twin, its relative error: where the error enters. The
/// quantizer and optimizer options are those of `zkc compile`. Use text the model was not trained
/// on.
///
/// With an ONNX model and `--inputs` (EZKL's data format, one or more samples one after
/// another in its list): runs the float graph and the integer model on each sample and prints
/// the largest and mean absolute error, the error relative to the largest float output, and how
/// often both pick the same largest output (a classifier's top-1).
///
/// Without a MODEL: the report on zkc's own generated models (the tiny one and the
/// gpt2-small-shape one, seed 0) at the default bit widths and alternatives, on seeded random
/// tokens (seed 1), written to `-o`. Examples:
///
///     zkc accuracy model.gguf --text heldout.txt
///     zkc accuracy model.gguf --text heldout.txt --per-value --calibrate calib.txt
///     zkc accuracy net.onnx --inputs samples.json --calibrate calibration.json
///     zkc accuracy --positions 256 -o docs/accuracy-generated.md
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
#[command(group(clap::ArgGroup::new("data").args(["text", "inputs"])))]
pub struct Args {
    /// A GGUF model to measure on `--text`, or an ONNX model to measure on `--inputs`.
    #[arg(requires = "data")]
    model: Option<PathBuf>,
    /// Held-out text (UTF-8), tokenized with the model's own tokenizer.
    #[arg(long, requires = "model")]
    text: Option<PathBuf>,
    /// Inputs of an ONNX model (EZKL's data format; several samples one after another).
    #[arg(long, requires = "model", conflicts_with = "text")]
    inputs: Option<PathBuf>,
    /// Also print each integer value's error against its float twin.
    #[arg(long, requires = "model")]
    per_value: bool,
    /// Teacher-forced positions: per model and configuration for the report (default 256); the
    /// first N tokens of `--text` (default all).
    #[arg(long)]
    positions: Option<usize>,
    /// Skip the gpt2-small-shape model (minutes) and measure the tiny one only.
    #[arg(long, conflicts_with = "model")]
    tiny_only: bool,
    /// Where to write the report (Markdown); needed without a MODEL.
    #[arg(short, long, required_unless_present = "model")]
    output: Option<PathBuf>,
    #[command(flatten)]
    quant: QuantArgs,
    #[command(flatten)]
    opt: OptArgs,
}

/// A position is "clear" when the float top-1 leads by at least this fraction of the logit range.
const CLEAR_FRACTION: f64 = 0.02;

/// The configurations measured: quantizer options, and the optimizer's (exact passes, or with
/// the approximate one too).
fn configurations() -> Vec<(&'static str, QuantConfig, OptArgs)> {
    let with = |specs: &[&str], weight_bits: u32| {
        let mut cfg = QuantConfig {
            weight_bits,
            ..QuantConfig::default()
        };
        for s in specs {
            cfg.set_bits(s).expect("valid specs");
        }
        cfg
    };
    let exact = OptArgs::default;
    let scores = |bits| QuantConfig {
        score_frac_bits: Some(bits),
        ..QuantConfig::default()
    };
    vec![
        ("default", QuantConfig::default(), exact()),
        (
            "default, approximate pass",
            QuantConfig::default(),
            OptArgs::approximate(),
        ),
        (
            "default, approximate pass, scores at 2^-7",
            scores(7),
            OptArgs::approximate(),
        ),
        (
            "default, approximate pass, scores at 2^-5",
            scores(5),
            OptArgs::approximate(),
        ),
        (
            "8-bit block activations and weights (the defaults before 2026-12)",
            with(&["act=8"], 8),
            exact(),
        ),
        ("8-bit Q/K/V and KV cache", with(&["qkv=8"], 12), exact()),
        ("8-bit GELU output", with(&["mlp=8"], 12), exact()),
        ("8-bit weights", with(&[], 8), exact()),
        ("4-bit weights", with(&[], 4), exact()),
        ("16-bit weights", with(&[], 16), exact()),
    ]
}

impl Args {
    pub fn run(self) -> ExitCode {
        super::exit_code(match (&self.model, &self.text, &self.output) {
            (Some(model), Some(text), _) => self.measure_text(model, text),
            (Some(model), None, _) => match &self.inputs {
                Some(inputs) => self.measure_inputs(model, inputs),
                None => Err("give --text (a GGUF model) or --inputs (an ONNX model)".into()),
            },
            (_, _, Some(output)) => self.report(output),
            _ => Err("give a MODEL with --text, or -o for the report".into()),
        })
    }

    /// An ONNX model on input samples.
    fn measure_inputs(&self, path: &Path, inputs: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let model = super::onnx_model::load(path)?;
        let (module, summary) = super::onnx_model::quantized(&model, &self.quant)?;
        let interp = Interpreter::new(self.opt.optimize(module, None)?)?;
        let runner = SinglePass::new(&interp)?;
        let ty = runner.input_type().clone();
        let samples = input::samples(inputs, ty.shape.iter().product())?;
        let scale = runner.output_type().scale.to_f64();
        let (mut max, mut sum, mut count, mut largest, mut same_top) =
            (0f64, 0f64, 0usize, 0f64, 0);
        for (k, sample) in samples.iter().enumerate() {
            let float = model.run(sample)?;
            let reals: Vec<f64> = sample.iter().map(|&v| v as f64).collect();
            let x = input::quantize(&format!("sample {k}"), &reals, &ty)?;
            let int = runner.run(x, false)?.output;
            let int: Vec<f64> = int.data().iter().map(|&q| q as f64 * scale).collect();
            for (f, i) in float.iter().zip(&int) {
                let e = (*f as f64 - i).abs();
                (max, sum, count) = (max.max(e), sum + e, count + 1);
                largest = largest.max((*f as f64).abs());
            }
            let top = |v: &[f64]| {
                v.iter()
                    .enumerate()
                    .fold(0, |b, (i, &x)| if x > v[b] { i } else { b })
            };
            let float: Vec<f64> = float.iter().map(|&v| v as f64).collect();
            same_top += usize::from(top(&float) == top(&int));
        }
        println!("{} ({summary})", path.display());
        println!(
            "{} samples, {} outputs each: error max {max:.3e}, mean {:.3e}, max relative to the largest float output ({largest:.4}) {:.3e}; largest output agrees on {same_top} of {}",
            samples.len(),
            count / samples.len().max(1),
            sum / count.max(1) as f64,
            max / largest.max(f64::MIN_POSITIVE),
            samples.len()
        );
        Ok(())
    }

    /// One model on held-out text.
    fn measure_text(&self, path: &Path, text: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let gguf = GgufFile::open(path)?;
        let model = FloatModel::load(&gguf)?;
        let tokenizer = Tokenizer::from_gguf(&gguf).map_err(|e| {
            format!(
                "{}: --text needs the model's tokenizer: {e}",
                path.display()
            )
        })?;
        let text = std::fs::read_to_string(text)
            .map_err(|e| format!("cannot read {} as UTF-8 text: {e}", text.display()))?;
        let mut tokens = tokenizer.encode(&text);
        tokens.truncate(self.positions.unwrap_or(usize::MAX));
        if tokens.len() < 2 {
            return Err("the text holds fewer than two tokens".into());
        }
        let cfg = self.quant.config(Some(&tokenizer))?;
        let interp = Interpreter::new(self.opt.optimize(quantize(&model, &cfg)?, None)?)?;
        let positions = evaluate(&model, &interp, &tokens)?;
        let s = Summary::new(&positions, CLEAR_FRACTION);
        println!("{} ({})", path.display(), cfg.summary());
        println!(
            "{} positions in windows of {}: top-1 agreement {:.2}% ({:.2}% of {} clear), mean KL {:.2e} nats",
            s.positions,
            model.text()?.n_ctx,
            100.0 * s.top1_agreement,
            100.0 * s.clear_agreement,
            s.clear_positions,
            s.mean_kl
        );
        if let Some((f, i)) = s.perplexity {
            println!(
                "perplexity float {f:.4}, integer {i:.4} ({:+.2}%)",
                100.0 * (i / f - 1.0)
            );
        }
        println!(
            "logit error max {:.3e}, mean {:.3e}",
            s.max_abs_error, s.mean_abs_error
        );
        if self.per_value {
            println!(
                "\n{:<10} {:<32} {:>12} {:>12} {:>12} {:>12}",
                "layer", "value", "rel. RMS", "max |error|", "max |float|", "type holds"
            );
            for e in value_errors(&model, &interp, &tokens)? {
                println!(
                    "{:<10} {:<32} {:>12.3e} {:>12.3e} {:>12.3e} {:>12.3e}",
                    e.layer,
                    e.name,
                    e.relative_rms,
                    e.max_abs_error,
                    e.float_max_abs,
                    e.type_max_abs
                );
            }
        }
        Ok(())
    }

    /// The report on zkc's generated models.
    fn report(&self, output: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let positions = self.positions.unwrap_or(256);
        let mut report = String::from(HEADER);
        let mut models = vec![("tiny", ModelConfig::tiny())];
        if !self.tiny_only {
            models.push(("gpt2-small shape", ModelConfig::gpt2_small()));
        }
        for (label, shape) in models {
            let gguf = GgufFile::from_bytes(generate_gpt2(&shape).to_bytes())?;
            let model = FloatModel::load(&gguf)?;
            let tokens = calibration_tokens(model.text()?, positions, 1);
            writeln!(
                report,
                "\n## {label} ({} blocks, d={}, ctx {}, vocab {})\n",
                shape.n_layer, shape.n_embd, shape.n_ctx, shape.n_vocab
            )?;
            report.push_str("| configuration | top-1 | top-1, clear positions | mean KL (nats) | max logit error | mean logit error | logit range | interpreter tokens/s |\n");
            report.push_str("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
            for (name, cfg, opt) in configurations() {
                eprintln!("{label}: {name} ({})", cfg.summary());
                let interp = Interpreter::new(opt.optimize(quantize(&model, &cfg)?, None)?)?;
                // An activation past its calibrated range is an error by design: report it.
                let positions = match evaluate(&model, &interp, &tokens) {
                    Ok(p) => p,
                    Err(e) => {
                        writeln!(
                            report,
                            "| {name} ({}) | fails: {e} | | | | | | |",
                            cfg.summary()
                        )?;
                        continue;
                    }
                };
                let s = Summary::new(&positions, CLEAR_FRACTION);
                let range =
                    positions.iter().map(|p| p.range).sum::<f64>() / positions.len().max(1) as f64;
                let speed = tokens_per_second(&interp, &tokens[..tokens.len().min(16)])?;
                writeln!(
                    report,
                    "| {name} ({}) | {:.1}% | {:.1}% of {} | {:.2e} | {:.3e} | {:.3e} | {:.3} | {:.1} |",
                    cfg.summary(),
                    100.0 * s.top1_agreement,
                    100.0 * s.clear_agreement,
                    s.clear_positions,
                    s.mean_kl,
                    s.max_abs_error,
                    s.mean_abs_error,
                    range,
                    speed
                )?;
            }
        }
        write_atomically(output, report.as_bytes())?;
        println!("wrote {}", output.display());
        Ok(())
    }
}

fn tokens_per_second(
    interp: &Interpreter,
    tokens: &[u32],
) -> Result<f64, Box<dyn std::error::Error>> {
    let mut runner = ModelRunner::new(interp)?;
    runner.step(tokens[0], false)?;
    let start = Instant::now();
    for &t in &tokens[1..] {
        runner.step(t, false)?;
    }
    Ok((tokens.len() - 1) as f64 / start.elapsed().as_secs_f64())
}

const HEADER: &str = "# Accuracy of the integer model

How far zkc's integer model (what the circuits prove) is from the float reference evaluator
(which agrees with llama.cpp to ~1e-4, `docs/gguf.md`). Regenerate with

    cargo run --release -- accuracy --positions 256 -o docs/accuracy-generated.md

Method: zkc's own random-weight GPT-2 models (seed 0), calibrated on 128 seeded random tokens
(seed 0); then 256 other seeded random tokens (seed 1) are fed to both models (teacher forcing,
a fresh sequence whenever the context is full) and the logits compared at every position.
*top-1*: the integer model's greedy token equals the float one's. *clear positions*: those where
the float top-1 leads its runner-up by at least 2% of the logit range; random-weight models have
many near ties, where a disagreement says little. *KL*: KL(float || integer) of the softmax
distributions. Logit errors are absolute, in logit units (the *logit range* column gives the
scale). *tokens/s*: the interpreter alone, one token per step, after the first step. Every
configuration runs the optimizer's exact passes (bit-identical results, `docs/optimizer.md`); the
*approximate pass* row also rounds each requantize multiplier to 10 significant bits.
";
