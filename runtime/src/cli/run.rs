use super::opt_args::OptArgs;
use super::prompt::PromptArgs;
use super::quant_args::QuantArgs;
use super::source::load_checked;
use crate::accuracy::{Position, Summary};
use crate::interp::{Interpreter, ModelRunner, SinglePass};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use zkc_compiler::gguf::GgufFile;
use zkc_compiler::model::FloatModel;
use zkc_compiler::quantize::quantize;
use zkc_compiler::tokenizer::Tokenizer;

/// Generate tokens greedily, in integers (the default) or with the float reference.
///
/// A GGUF model is quantized first (as `zkc compile` does); a `.zkir` file runs as it is. The
/// integer model is what the proofs will prove. `--compare` runs float and integer side by side
/// (the float model is fed the integer model's tokens) and prints, per position, both top-1
/// tokens and the logit error. Examples:
///
///     zkc run tiny.gguf --tokens 1,2,3 --max-new 8
///     zkc run tiny.circ --tokens 1,2,3 --max-new 8
///     zkc run tiny.gguf --float --prompt "Hello" --max-new 8 --logits
///     zkc run tiny.gguf --compare --tokens 1,2,3 --max-new 16
///     zkc run net.circ --input input.json [--json]
///     zkc run net.onnx --input input.json [--float] [--calibrate calibration.json]
///
/// A single-pass model (an ONNX network's artifact or IR) runs once on `--input` (EZKL's
/// input.json) and prints its output as reals (the integers times the output's scale).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The model: a GGUF file, or an artifact (`.circ`) or IR file (`.zkir`) from `zkc compile`.
    model: PathBuf,
    /// Run the float reference instead of the integer model.
    #[arg(long, conflicts_with = "compare")]
    float: bool,
    /// Run both and compare them position by position.
    #[arg(long)]
    compare: bool,
    #[command(flatten)]
    prompt: PromptArgs,
    /// How many tokens to generate.
    #[arg(long, default_value_t = 8, conflicts_with = "input")]
    max_new: usize,
    /// Print a single pass's output as JSON.
    #[arg(long, requires = "input")]
    json: bool,
    /// Also print the logits after the last token (dequantized for the integer model).
    #[arg(long)]
    logits: bool,
    #[command(flatten)]
    quant: QuantArgs,
    #[command(flatten)]
    opt: OptArgs,
}

fn list(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

fn print_logits(values: impl Iterator<Item = f64>) {
    println!(
        "logits: {}",
        values
            .map(|v| format!("{v:e}"))
            .collect::<Vec<_>>()
            .join(",")
    );
}

impl Args {
    pub fn run(self) -> ExitCode {
        match self.generate() {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    }

    fn generate(&self) -> Result<ExitCode, Box<dyn std::error::Error>> {
        if self.model.extension().is_some_and(|e| e == "circ") {
            if self.float || self.compare {
                return Err("--float and --compare need the GGUF model, not its artifact".into());
            }
            let artifact = zkc_compiler::artifact::read(&self.model)?;
            let tokenizer = artifact.tokenizer.as_ref();
            let interp = Interpreter::new(artifact.module)?;
            match &self.prompt.input {
                Some(input) => self.pass(&interp, input)?,
                None => self.integer(&interp, tokenizer, &self.prompt.ids(tokenizer)?)?,
            }
            return Ok(ExitCode::SUCCESS);
        }
        if self.model.extension().is_some_and(|e| e == "zkir") {
            if self.float || self.compare {
                return Err("--float and --compare need the GGUF model, not its IR".into());
            }
            let Some((_, parsed)) = load_checked(&self.model) else {
                return Ok(ExitCode::FAILURE);
            };
            let interp = Interpreter::new(parsed.module)?;
            match &self.prompt.input {
                Some(input) => self.pass(&interp, input)?,
                None => self.integer(&interp, None, &self.prompt.ids(None)?)?,
            }
            return Ok(ExitCode::SUCCESS);
        }
        if zkc_compiler::onnx::is_onnx(&self.model) {
            return self.onnx().map(|()| ExitCode::SUCCESS);
        }
        let gguf = GgufFile::open(&self.model)?;
        let tokenizer = Tokenizer::from_gguf(&gguf).ok();
        let prompt = self.prompt.ids(tokenizer.as_ref())?;
        let start = Instant::now();
        let model = FloatModel::load(&gguf)?;
        if self.float {
            let mut session = model.session();
            let (generated, logits) = session.generate(&prompt, self.max_new)?;
            self.report(
                &prompt,
                &generated,
                tokenizer.as_ref(),
                session.position(),
                start,
            );
            if self.logits {
                print_logits(logits.iter().map(|&v| v as f64));
            }
            return Ok(ExitCode::SUCCESS);
        }
        let module = self.opt.optimize(
            quantize(&model, &self.quant.config(tokenizer.as_ref())?)?,
            None,
        )?;
        let interp = Interpreter::new(module)?;
        eprintln!("quantized in {:.2} s", start.elapsed().as_secs_f64());
        if self.compare {
            self.compare(&interp, &model, &prompt)?;
        } else {
            self.integer(&interp, tokenizer.as_ref(), &prompt)?;
        }
        Ok(ExitCode::SUCCESS)
    }

    fn report(
        &self,
        prompt: &[u32],
        generated: &[u32],
        tokenizer: Option<&Tokenizer>,
        steps: usize,
        start: Instant,
    ) {
        println!("prompt: {}", list(prompt));
        println!("generated: {}", list(generated));
        if let Some(t) = tokenizer {
            println!("text: {:?} + {:?}", t.decode(prompt), t.decode(generated));
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "{steps} steps in {secs:.2} s ({:.1} tokens/s)",
            steps as f64 / secs
        );
    }

    fn integer(
        &self,
        interp: &Interpreter,
        tokenizer: Option<&Tokenizer>,
        prompt: &[u32],
    ) -> Result<(), Box<dyn std::error::Error>> {
        let start = Instant::now();
        let mut runner = ModelRunner::new(interp)?;
        let (generated, last) = runner.generate(prompt, self.max_new)?;
        self.report(prompt, &generated, tokenizer, runner.position(), start);
        if let (true, Some(step)) = (self.logits, last) {
            print_logits(step.logits.iter().map(|&q| q as f64 * step.logit_scale));
        }
        Ok(())
    }

    /// An ONNX model on `--input`: its float graph (`--float`), or the integer model it
    /// quantizes to.
    fn onnx(&self) -> Result<(), Box<dyn std::error::Error>> {
        let Some(path) = &self.prompt.input else {
            return Err(
                "an ONNX model runs on an input: give --input FILE (EZKL's input.json)".into(),
            );
        };
        if self.compare {
            return Err("--compare is for language models; `zkc accuracy NET.onnx --inputs FILE` compares float and integer runs".into());
        }
        let model = super::onnx_model::load(&self.model)?;
        if self.float {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let values = crate::interp::input::parse(&path.display().to_string(), &text)?;
            let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
            let output: Vec<f64> = model.run(&values)?.iter().map(|&v| v as f64).collect();
            match self.json {
                true => println!("{}", serde_json::json!({ "output": output })),
                false => println!("output (float): {}", super::prove::reals(&output)),
            }
            return Ok(());
        }
        let (module, _) = super::onnx_model::quantized(&model, &self.quant)?;
        let interp = Interpreter::new(self.opt.optimize(module, None)?)?;
        self.pass(&interp, path)
    }

    /// A single-pass model on the input file `path`: its output as reals.
    fn pass(&self, interp: &Interpreter, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let runner = SinglePass::new(interp)?;
        let input = crate::interp::input::read(path, runner.input_type())?;
        let start = Instant::now();
        let output = runner.run(input, false)?.output;
        let ty = runner.output_type();
        let scale = ty.scale.to_f64();
        let reals: Vec<f64> = output.data().iter().map(|&q| q as f64 * scale).collect();
        if self.json {
            let value = serde_json::json!({
                "output": reals, "output_integers": output.data(), "output_shape": ty.shape,
                "scale": scale,
            });
            println!("{value}");
        } else {
            println!("output: {ty} {}", super::prove::reals(&reals));
        }
        eprintln!("one pass in {:.3} s", start.elapsed().as_secs_f64());
        Ok(())
    }

    /// Teacher forcing on the integer model's own tokens.
    fn compare(
        &self,
        interp: &Interpreter,
        model: &FloatModel,
        prompt: &[u32],
    ) -> Result<(), Box<dyn std::error::Error>> {
        let mut runner = ModelRunner::new(interp)?;
        let mut session = model.session();
        let steps = (prompt.len() + self.max_new).min(runner.context());
        let mut positions = Vec::new();
        let mut token = prompt[0];
        println!(
            "{:>4} {:>7} {:>10} {:>8} {:>6} {:>12} {:>10}",
            "pos", "token", "float top1", "int top1", "agree", "max |error|", "KL"
        );
        for pos in 0..steps {
            let int = runner.step(token, false)?;
            let float = session.step(token)?;
            let p = Position::new(&float, &int.logits, int.logit_scale, None);
            println!(
                "{pos:>4} {token:>7} {:>10} {:>8} {:>6} {:>12.4e} {:>10.3e}",
                p.float_top1,
                p.int_top1,
                if p.agrees() { "yes" } else { "NO" },
                p.max_abs_error,
                p.kl
            );
            positions.push(p);
            token = prompt.get(pos + 1).copied().unwrap_or(int.token);
        }
        let s = Summary::new(&positions, 0.0);
        println!(
            "top-1 agreement {:.1}% over {} positions, mean KL {:.2e} nats, logit error max {:.3e} mean {:.3e}",
            100.0 * s.top1_agreement,
            s.positions,
            s.mean_kl,
            s.max_abs_error,
            s.mean_abs_error
        );
        Ok(())
    }
}
