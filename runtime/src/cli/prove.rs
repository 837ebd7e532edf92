use super::model_keys::ModelKeys;
use super::progress::bar;
use super::prompt::PromptArgs;
use super::setup::bytes;
use crate::interp::input::real;
use crate::interp::SinglePass;
use crate::proving::bundle::PassInput;
use crate::proving::encoding::field_0x;
use crate::proving::prover::Event;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Generate greedily and prove every step: one Groth16 proof per layer per token; or prove a
/// single-pass model (an ONNX network) once, on one input.
///
/// Every prompt token is a step too. After each step the bundle at `-o` is rewritten with the
/// step appended, so a long run can be watched (progress on stderr) and an interrupted one
/// leaves a bundle of the steps it finished (`zkc verify --partial` accepts it).
///
/// A single-pass model takes `--input input.json` (EZKL's format) and proves each layer once.
/// Its input and output are public: the bundle holds both, as integers. With
/// `--private-input` the bundle holds only the input's commitment (Poseidon over its packed
/// integers, unsalted as EZKL's `hashed` visibility: an input that can be guessed can be
/// confirmed from it; docs/proving.md). Examples:
///
///     zkc prove tiny.circ --keys tiny.keys --prompt "Hello" --max-new 4 -o run.zkp
///     zkc prove tiny.circ --keys tiny.keys --tokens 1,2,3 --max-new 2 -o run.zkp --json
///     zkc prove net.circ --keys net.keys --input input.json -o run.zkp [--private-input]
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelKeys,
    #[command(flatten)]
    pub prompt: PromptArgs,
    /// How many tokens to generate (fewer if the context fills).
    #[arg(long, default_value_t = 4, conflicts_with = "input")]
    pub max_new: usize,
    /// Put only the input's commitment in the bundle, not its values (single-pass models).
    #[arg(long, requires = "input")]
    pub private_input: bool,
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
    /// A single pass's output, as reals.
    pub output: Option<Vec<f64>>,
}

impl Args {
    pub fn run(self) -> ExitCode {
        super::exit_code(self.execute())
    }

    pub fn execute(&self) -> Result<Report, Box<dyn std::error::Error>> {
        if let Some(input) = &self.prompt.input {
            return self.pass(input);
        }
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
            output: None,
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

impl Args {
    /// Proves a single-pass model on the input file `path`.
    fn pass(&self, path: &Path) -> Result<Report, Box<dyn std::error::Error>> {
        let start = Instant::now();
        let loaded = self.model.load()?;
        let vd = self.model.verifying_data()?;
        let prover = self.model.prover(&loaded, &vd)?;
        let runner = SinglePass::new(&loaded.interp)?;
        let input = crate::interp::input::read(path, runner.input_type())?;
        let scale = runner.output_type().scale.to_f64();
        let progress = bar(vd.layers.len() as u64, "prove (layers)");
        let mut layer_seconds = vec![None; vd.layers.len()];
        let bundle = prover.prove_pass(
            input,
            self.private_input,
            &self.output,
            &mut rand::rngs::OsRng,
            &mut |event| {
                if let Event::Layer {
                    layer,
                    key,
                    seconds,
                    ..
                } = event
                {
                    layer_seconds[key] = Some(seconds);
                    progress.inc(1);
                    progress.set_message(format!("layer {layer} proved in {seconds:.1} s"));
                }
            },
        )?;
        progress.finish_and_clear();
        let pass = bundle.pass.as_ref().expect("a single pass");
        let output: Vec<f64> = pass.output.iter().map(|&q| q as f64 * scale).collect();
        let commitment = match &pass.input {
            PassInput::Committed(c) => Some(field_0x(c)),
            PassInput::Public(_) => None,
        };
        let seconds = start.elapsed().as_secs_f64();
        let report = Report {
            generated: Vec::new(),
            steps: 1,
            step_seconds: vec![seconds],
            layer_seconds: vec![layer_seconds],
            layer_names: (vd.layers.iter())
                .map(|k| zkc_compiler::backend::cost::layer_label(loaded.interp.module(), k.layer))
                .collect(),
            bundle_bytes: std::fs::metadata(&self.output).map_or(0, |m| m.len()),
            proof_bytes_per_step: bundle.proof_bytes_per_step(),
            text: None,
            output: Some(output),
        };
        let output = report.output.as_deref().unwrap_or_default();
        if self.json {
            let value = serde_json::json!({
                "kind": "pass",
                "output": output,
                "output_integers": pass.output,
                "output_shape": runner.output_type().shape,
                "input_commitment": commitment,
                "layers": report.layer_names,
                "layer_seconds": report.layer_seconds[0],
                "bundle_bytes": report.bundle_bytes,
                "proof_bytes": report.proof_bytes_per_step,
                "seconds": seconds,
                "peak_rss_bytes": super::peak_rss_bytes(),
            });
            println!("{value}");
        } else {
            let proofs = bundle.steps[0].layers.len();
            println!(
                "proved one pass ({proofs} {}) in {seconds:.1} s; wrote {} ({})",
                if proofs == 1 { "proof" } else { "proofs" },
                self.output.display(),
                bytes(report.bundle_bytes),
            );
            match &pass.input {
                PassInput::Committed(c) => println!("input:  committed: {}", field_0x(c)),
                PassInput::Public(v) => println!("input:  public, {} values", v.len()),
            }
            println!("output: {}", reals(output));
        }
        Ok(report)
    }
}

/// Reals for people, comma-separated.
pub fn reals(values: &[f64]) -> String {
    values
        .iter()
        .map(|&x| real(x))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn list(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}
