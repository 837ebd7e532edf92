use super::setup::bytes;
use super::{gen_model, parse, prove, setup, verify};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// The main job, end to end, on zkc's own tiny GPT-2: make the model, compile, set up, prove a
/// few tokens, verify, and show that a tampered bundle is rejected.
///
/// Runs the same code as `zkc gen-model`, `compile`, `setup`, `prove` and `verify`, through the
/// files they write (in a temporary directory, removed afterwards, unless `--dir` is given).
/// Takes a few minutes on two cores. Examples:
///
///     zkc demo
///     zkc demo --dir demo --prompt "Hi" --max-new 4
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Keep the files in this directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long, default_value = "Hi")]
    prompt: String,
    #[arg(long, default_value_t = 3)]
    max_new: usize,
    /// The model's shape (default: the tiny preset, 2 blocks, d=64, context 64).
    #[command(flatten)]
    shape: gen_model::Shape,
}

impl Args {
    pub fn run(self) -> ExitCode {
        super::exit_code(self.execute())
    }

    fn execute(&self) -> Result<(), Box<dyn std::error::Error>> {
        super::in_directory(self.dir.as_deref(), "demo", |dir| self.steps(dir))
    }

    fn steps(&self, dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
        let path = |name: &str| dir.join(name).display().to_string();
        let (gguf, circ, keys, run) = (
            path("tiny.gguf"),
            path("tiny.circ"),
            path("tiny.keys"),
            path("run.zkp"),
        );
        let start = Instant::now();
        println!("== 1. make a tiny GPT-2 GGUF");
        let mut model = parse::<gen_model::Args>(&["gen-model", "gpt2", "-o", &gguf])?;
        model.shape = self.shape.clone();
        model.execute()?;
        println!("== 2. compile it");
        parse::<super::compile::Args>(&["compile", &gguf, "-o", &circ])?.execute()?;
        println!("== 3. trusted setup (one Groth16 key pair per layer)");
        let setup_start = Instant::now();
        let vd = parse::<setup::Args>(&["setup", &circ, "-o", &keys])?.execute()?;
        let setup_seconds = setup_start.elapsed().as_secs_f64();
        println!("== 4. prove a generation, token by token");
        let max_new = self.max_new.to_string();
        let report = parse::<prove::Args>(&[
            "prove",
            &circ,
            "--keys",
            &keys,
            "--prompt",
            &self.prompt,
            "--max-new",
            &max_new,
            "-o",
            &run,
        ])?
        .execute()?;
        println!("== 5. verify it with the verifying data alone");
        let vk = std::path::Path::new(&keys).join("vk").display().to_string();
        let (verified, verify_seconds) = parse::<verify::Args>(&["verify", &vk, &run])?
            .execute()?
            .map_err(|()| "the honest bundle was rejected")?;
        println!("== 6. a bundle with one proof byte flipped");
        let mut tampered = std::fs::read(&run)?;
        let at = tampered.len() - 64;
        tampered[at] ^= 1;
        let bad = path("tampered.zkp");
        std::fs::write(&bad, &tampered)?;
        if parse::<verify::Args>(&["verify", &vk, &bad])?
            .execute()?
            .is_ok()
        {
            return Err("a tampered bundle verified".into());
        }
        let constraints: usize = vd.layers.iter().map(|l| l.constraints).sum();
        let proving: f64 = report.step_seconds.iter().sum();
        println!("== summary");
        println!(
            "model: {} layers, {constraints} constraints per token",
            vd.layers.len()
        );
        println!("setup: {setup_seconds:.1} s");
        println!(
            "prove: {} steps in {proving:.1} s ({:.1} s per token), {} generated: {:?}",
            report.steps,
            proving / report.steps.max(1) as f64,
            verified.generated.len(),
            report.text.unwrap_or_default()
        );
        println!(
            "proofs: {} B of Groth16 proofs per token, bundle {}",
            report.proof_bytes_per_step,
            bytes(report.bundle_bytes)
        );
        println!(
            "verify: {:.1} ms per token; tampering rejected",
            verify_seconds * 1e3 / verified.steps.max(1) as f64
        );
        println!("total: {:.1} s", start.elapsed().as_secs_f64());
        Ok(())
    }
}
