use super::prove::{list, reals};
use crate::proving::bundle::PassInput;
use crate::proving::encoding::field_0x;
use crate::proving::keys::VerifyingData;
use crate::proving::verifier::{verify, Verified, VerifiedPass};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use zkc_compiler::tokenizer::Tokenizer;

/// Check a proof bundle with the verifying data alone.
///
/// Checks every proof and every link: layer to layer within a step, KV state from step to step,
/// the tokens fed back, the positions, and that the bundle is this model's (docs/proving.md).
/// Prints the prompt and the generated tokens (as text where the model has a vocabulary) and
/// exits 0, or prints the first failure with its step and layer and exits 1. For a single-pass
/// model: that the first layer proved the bundle's input (or its committed input), the last
/// its output; prints the input and output as reals. Examples:
///
///     zkc verify tiny.keys/vk run.zkp
///     zkc verify tiny.keys/vk run.zkp --json
///     zkc verify net.keys/vk run.zkp
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The verifying data (`KEYS/vk` from `zkc setup`).
    pub vk: PathBuf,
    /// The proof bundle (`zkc prove`).
    pub bundle: PathBuf,
    /// Accept a prefix of the run (an interrupted `zkc prove`).
    #[arg(long)]
    pub partial: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    pub fn run(self) -> ExitCode {
        match self.execute() {
            Ok(Ok(_)) => ExitCode::SUCCESS,
            Ok(Err(())) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    }

    /// The verdict (`Err(())` once the rejection is printed), or an error reading the files.
    pub fn execute(&self) -> Result<Result<(Verified, f64), ()>, Box<dyn std::error::Error>> {
        let vd = VerifyingData::read(&self.vk)?;
        let bytes = std::fs::read(&self.bundle)
            .map_err(|e| format!("cannot read {}: {e}", self.bundle.display()))?;
        let start = Instant::now();
        let verdict = verify(&vd, &bytes, self.partial);
        let seconds = start.elapsed().as_secs_f64();
        let decoder = vd.vocabulary.clone().and_then(Tokenizer::from_vocabulary);
        let text = |ids: &[u32]| decoder.as_ref().map(|t| t.decode(ids));
        match verdict {
            Ok(v) if v.pass.is_some() => {
                let pass = v.pass.as_ref().expect("a single pass");
                self.print_pass(&vd, pass, v.proofs, seconds);
                Ok(Ok((v, seconds)))
            }
            Ok(v) => {
                if self.json {
                    let value = serde_json::json!({
                        "ok": true, "model": vd.commitment, "prompt": v.prompt, "generated": v.generated,
                        "prompt_text": text(&v.prompt), "generated_text": text(&v.generated),
                        "steps": v.steps, "proofs": v.proofs, "complete": v.complete, "seconds": seconds,
                        "peak_rss_bytes": super::peak_rss_bytes(),
                    });
                    println!("{value}");
                } else {
                    let shown = |ids: &[u32]| match text(ids) {
                        Some(t) => format!("{} {t:?}", list(ids)),
                        None => list(ids),
                    };
                    println!(
                        "verified: {} steps, {} proofs in {:.1} ms ({:.2} ms per step){}",
                        v.steps,
                        v.proofs,
                        seconds * 1e3,
                        seconds * 1e3 / v.steps.max(1) as f64,
                        if v.complete {
                            ""
                        } else {
                            " (a prefix of the run)"
                        }
                    );
                    println!("model:     {}", vd.commitment);
                    println!("prompt:    {}", shown(&v.prompt));
                    println!("generated: {}", shown(&v.generated));
                }
                Ok(Ok((v, seconds)))
            }
            Err(rejection) => {
                if self.json {
                    println!(
                        "{}",
                        serde_json::json!({"ok": false, "reason": rejection.to_string()})
                    );
                } else {
                    println!("rejected: {rejection}");
                }
                Ok(Err(()))
            }
        }
    }
}

impl Args {
    fn print_pass(&self, vd: &VerifyingData, pass: &VerifiedPass, proofs: usize, seconds: f64) {
        let output = pass.output_reals();
        let input = pass.input_reals();
        let commitment = match &pass.input {
            PassInput::Committed(c) => Some(field_0x(c)),
            PassInput::Public(_) => None,
        };
        if self.json {
            let value = serde_json::json!({
                "ok": true, "kind": "pass", "model": vd.commitment,
                "input": input, "input_commitment": commitment,
                "input_shape": pass.types.input.shape,
                "output": output, "output_integers": pass.output,
                "output_shape": pass.types.output.shape,
                "proofs": proofs, "seconds": seconds,
                "peak_rss_bytes": super::peak_rss_bytes(),
            });
            println!("{value}");
            return;
        }
        println!(
            "verified: one pass, {proofs} {} in {:.1} ms",
            if proofs == 1 { "proof" } else { "proofs" },
            seconds * 1e3
        );
        println!("model:  {}", vd.commitment);
        match commitment {
            Some(c) => println!(
                "input:  {} committed: {c} (private; the bundle holds only this commitment)",
                pass.types.input
            ),
            None => println!(
                "input:  {} {}",
                pass.types.input,
                reals(&input.unwrap_or_default())
            ),
        }
        println!("output: {} {}", pass.types.output, reals(&output));
    }
}
