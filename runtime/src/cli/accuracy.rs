use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use zkc_compiler::files::write_atomically;
use zkc_compiler::gguf::GgufFile;
use zkc_compiler::model::{generate_gpt2, FloatModel, ModelConfig};
use zkc_compiler::quantize::{calibration_tokens, quantize, QuantConfig};

use super::opt_args::OptArgs;
use crate::accuracy::{evaluate, Summary};
use crate::interp::{Interpreter, ModelRunner};

/// Measure the integer model against the float reference and write `docs/accuracy.md`.
///
/// For zkc's tiny model and the gpt2-small-shape model (both generated, seed 0), and for the
/// default bit widths and alternatives, feeds the same seeded random tokens to both (teacher
/// forcing; seed 1, unlike calibration's seed 0) and reports top-1 agreement (all positions, and
/// those where the float model's choice is clear), mean KL divergence, logit errors, and the
/// interpreter's speed. Example (takes a few minutes):
///
///     zkc accuracy --positions 256 -o docs/accuracy.md
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Teacher-forced positions per model and configuration.
    #[arg(long, default_value_t = 256)]
    positions: usize,
    /// Skip the gpt2-small-shape model (minutes) and measure the tiny one only.
    #[arg(long)]
    tiny_only: bool,
    /// Where to write the report (Markdown).
    #[arg(short, long)]
    output: PathBuf,
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
        ("all activations 16-bit", with(&["act=16"], 8), exact()),
        (
            "all activations 8-bit",
            with(&["residual=8", "gelu_in=8"], 8),
            exact(),
        ),
        ("4-bit weights", with(&[], 4), exact()),
        ("12-bit weights", with(&[], 12), exact()),
        ("16-bit GELU output", with(&["mlp=16"], 8), exact()),
        (
            "12-bit weights, all activations 16-bit",
            with(&["act=16"], 12),
            exact(),
        ),
    ]
}

impl Args {
    pub fn run(self) -> ExitCode {
        match self.measure() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    }

    fn measure(&self) -> Result<(), Box<dyn std::error::Error>> {
        let mut report = String::from(HEADER);
        let mut models = vec![("tiny", ModelConfig::tiny())];
        if !self.tiny_only {
            models.push(("gpt2-small shape", ModelConfig::gpt2_small()));
        }
        for (label, shape) in models {
            let gguf = GgufFile::from_bytes(generate_gpt2(&shape).to_bytes())?;
            let model = FloatModel::load(&gguf)?;
            let tokens = calibration_tokens(&model.hparams, self.positions, 1);
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
        write_atomically(&self.output, report.as_bytes())?;
        println!("wrote {}", self.output.display());
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

    cargo run --release -- accuracy --positions 256 -o docs/accuracy.md

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
