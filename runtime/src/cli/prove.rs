use super::model_keys::ModelKeys;
use super::progress::bar;
use super::prompt::PromptArgs;
use super::setup::bytes;
use crate::proving::prover::Event;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Generate greedily and prove every step: one Groth16 proof per layer per token.
///
/// Every prompt token is a step too. After each step the bundle at `-o` is rewritten with the
/// step appended, so a long run can be watched (progress on stderr) and an interrupted one
/// leaves a bundle of the steps it finished (`zkc verify --partial` accepts it). Examples:
///
///     zkc prove tiny.circ --keys tiny.keys --prompt "Hello" --max-new 4 -o run.zkp
///     zkc prove tiny.circ --keys tiny.keys --tokens 1,2,3 --max-new 2 -o run.zkp --json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelKeys,
    #[command(flatten)]
    pub prompt: PromptArgs,
    /// How many tokens to generate (fewer if the context fills).
    #[arg(long, default_value_t = 4)]
    pub max_new: usize,
    /// The proof bundle to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What a proving run did.
pub struct Report {
    pub generated: Vec<u32>,
    pub steps: usize,
    /// Seconds per step, and per layer within it.
    pub step_seconds: Vec<f64>,
    /// Per step, per layer of the keys (each bucket its own): seconds, `None` where the step
    /// ran another bucket.
    pub layer_seconds: Vec<Vec<Option<f64>>>,
    pub layer_names: Vec<String>,
    pub bundle_bytes: u64,
    pub proof_bytes_per_step: usize,
    pub text: Option<String>,
}

impl Args {
    pub fn run(self) -> ExitCode {
        super::exit_code(self.execute())
    }

    pub fn execute(&self) -> Result<Report, Box<dyn std::error::Error>> {
        let start = Instant::now();
        let loaded = self.model.load()?;
        let prompt = self.prompt.ids(loaded.tokenizer.as_ref())?;
        let vd = self.model.verifying_data()?;
        let prover = self.model.prover(&loaded, &vd)?;
        let interp = &loaded.interp;
        let progress = bar(0, "prove (steps)");
        let mut layer_seconds: Vec<Vec<Option<f64>>> = Vec::new();
        let mut step_seconds = Vec::new();
        let mut current = vec![None; vd.layers.len()];
        let mut outputs = Vec::new();
        let quiet = self.json;
        let bundle = prover.generate(
            &prompt,
            self.max_new,
            &self.output,
            &mut rand::rngs::OsRng,
            &mut |event| match event {
                Event::Layer {
                    layer, key, seconds, ..
                } => {
                    current[key] = Some(seconds);
                    progress.set_message(format!("layer {layer} proved in {seconds:.1} s"));
                }
                Event::Step {
                    step,
                    of,
                    input,
                    output,
                    seconds,
                } => {
                    progress.set_length(of as u64);
                    progress.inc(1);
                    let per_layer: Vec<String> =
                        current.iter().flatten().map(|s| format!("{s:.1}")).collect();
                    step_seconds.push(seconds);
                    outputs.push(output);
                    if !quiet {
                        let rate = step_seconds.len() as f64 / step_seconds.iter().sum::<f64>();
                        let line = format!(
                            "step {}/{of}: token {input} -> {output} in {seconds:.1} s (layers: {} s); {rate:.3} steps/s",
                            step + 1,
                            per_layer.join(" "),
                        );
                        if progress.is_hidden() {
                            println!("{line}");
                        } else {
                            progress.println(line);
                        }
                    }
                    layer_seconds.push(std::mem::replace(&mut current, vec![None; vd.layers.len()]));
                }
            },
        )?;
        progress.finish_and_clear();
        let generated = outputs[prompt.len() - 1..].to_vec();
        let report = Report {
            text: loaded.tokenizer.as_ref().map(|t| t.decode(&generated)),
            generated,
            steps: bundle.steps.len(),
            step_seconds,
            layer_seconds,
            layer_names: vd
                .layers
                .iter()
                .map(|k| zkc_compiler::backend::cost::layer_label(interp.module(), k.layer))
                .collect(),
            bundle_bytes: std::fs::metadata(&self.output).map_or(0, |m| m.len()),
            proof_bytes_per_step: bundle.proof_bytes_per_step(),
        };
        let seconds = start.elapsed().as_secs_f64();
        if self.json {
            let value = serde_json::json!({
                "prompt": prompt,
                "generated": report.generated,
                "steps": report.steps,
                "step_seconds": report.step_seconds,
                "layers": report.layer_names,
                "layer_seconds": report.layer_seconds,
                "bundle_bytes": report.bundle_bytes,
                "proof_bytes_per_step": report.proof_bytes_per_step,
                "seconds": seconds,
                "peak_rss_bytes": super::peak_rss_bytes(),
            });
            println!("{value}");
        } else {
            let text = report
                .text
                .as_ref()
                .map_or(String::new(), |t| format!(" {t:?}"));
            println!(
                "proved {} steps ({} generated tokens: {}{text}) in {seconds:.1} s; wrote {} ({})",
                report.steps,
                report.generated.len(),
                list(&report.generated),
                self.output.display(),
                bytes(report.bundle_bytes),
            );
        }
        Ok(report)
    }
}

pub fn list(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}
