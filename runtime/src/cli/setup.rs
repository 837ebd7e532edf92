use super::progress::bar;
use crate::proving::keys::{vk_path, VerifyingData};
use crate::proving::setup::{setup, LayerSetup};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use zkc_compiler::artifact;

/// Make the Groth16 keys of a compiled model: one proving and verifying key per layer.
///
/// Writes `KEYS/layer-N.pk` (the prover's, large) and `KEYS/vk` (what verifiers need: every
/// layer's verifying key and public-input layout; its SHA-256 is the model commitment that proof
/// bundles name). The randomness comes from the OS and is never stored, but this is a trusted
/// setup: whoever ran it could have kept it and could then forge proofs (docs/proving.md).
/// Examples:
///
///     zkc setup tiny.circ -o tiny.keys
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The compiled model (`zkc compile`).
    pub artifact: PathBuf,
    /// The key directory to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Make keys only for these context buckets (comma-separated contexts, e.g. `16,32`):
    /// setup takes less time and disk, and generations are limited to the largest bucket.
    #[arg(long, value_delimiter = ',', value_name = "CONTEXTS")]
    pub buckets: Option<Vec<usize>>,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    pub fn run(self) -> ExitCode {
        super::exit_code(self.execute())
    }

    pub fn execute(&self) -> Result<VerifyingData, Box<dyn std::error::Error>> {
        let start = Instant::now();
        let artifact = artifact::read(&self.artifact)?;
        let vocabulary = artifact.tokenizer.as_ref().map(|t| t.tokens().to_vec());
        let module = &artifact.module;
        // Progress in constraints, which setup's time follows more closely than layers.
        let constraints: usize = module
            .layers
            .iter()
            .filter(|l| zkc_lang::buckets::keyed(l, self.buckets.as_deref()))
            .map(|l| zkc_compiler::backend::cost::layer(module, l).1)
            .sum();
        let progress = bar(constraints as u64, "setup (constraints)");
        let mut layers: Vec<LayerSetup> = Vec::new();
        let vd = setup(
            &artifact.module,
            &artifact.header.ir_sha256,
            vocabulary,
            self.buckets.as_deref(),
            &self.output,
            &mut rand::rngs::OsRng,
            &mut |_, name, done| match done {
                None => progress.set_message(format!("layer {name}")),
                Some(figures) => {
                    progress.inc(figures.constraints as u64);
                    layers.push(figures.clone());
                }
            },
        )?;
        progress.finish_and_clear();
        let vk_bytes = std::fs::metadata(vk_path(&self.output)).map_or(0, |m| m.len());
        let seconds = start.elapsed().as_secs_f64();
        if self.json {
            let value = serde_json::json!({
                "layers": layers.iter().map(|l| serde_json::json!({
                    "name": l.name, "constraints": l.constraints, "seconds": l.seconds, "pk_bytes": l.pk_bytes,
                })).collect::<Vec<_>>(),
                "vk_bytes": vk_bytes,
                "seconds": seconds,
                "model": vd.commitment,
                "peak_rss_bytes": super::peak_rss_bytes(),
            });
            println!("{value}");
            return Ok(vd);
        }
        for l in &layers {
            println!(
                "{:>10}: {:>10} constraints, {:>7.1} s, proving key {}",
                l.name,
                l.constraints,
                l.seconds,
                bytes(l.pk_bytes)
            );
        }
        println!(
            "wrote {} (verifying data {}) in {seconds:.1} s; model commitment {}",
            self.output.display(),
            bytes(vk_bytes),
            vd.commitment
        );
        Ok(vd)
    }
}

/// A byte count for people.
pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
