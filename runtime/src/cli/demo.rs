use super::setup::bytes;
use super::{parse, prove, setup, verify};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use zkc_compiler::files::write_atomically;

/// The main job, end to end, on a real trained model: compile it, set up, prove a generation
/// token by token, verify it, and show that a tampered bundle is rejected.
///
/// The built-in model is a tiny GPT-2 (2 blocks, d=64, byte-level vocabulary) that zkc's
/// `scripts/train_tiny_gpt2.py` trained on the Rust books (`examples/README.md`); `--model`
/// takes any GGUF instead. Runs the same code as `zkc compile`, `setup`, `prove` and `verify`,
/// through the files they write (in a temporary directory, removed afterwards, unless `--dir`
/// is given). Keys are made for the smallest context bucket the run fits in. Takes about two
/// minutes on two cores. Examples:
///
///     zkc demo
///     zkc demo --dir demo --prompt "The compiler" --max-new 12
///     zkc demo --model tiny.gguf --prompt "Hi" --max-new 4
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Keep the files in this directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A GGUF model to use instead of the built-in one.
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long, default_value = "Rust")]
    prompt: String,
    #[arg(long, default_value_t = 8)]
    max_new: usize,
}

/// The built-in model (`examples/README.md` says how it was made).
const BUILT_IN_MODEL: &[u8] = include_bytes!("../../../examples/tiny-gpt2-rust-books.gguf");

impl Args {
    pub fn run(self) -> ExitCode {
        super::exit_code(self.execute())
    }

    fn execute(&self) -> Result<(), Box<dyn std::error::Error>> {
        super::in_directory(self.dir.as_deref(), "demo", |dir| self.steps(dir))
    }

    fn steps(&self, dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
        let path = |name: &str| dir.join(name).display().to_string();
        let (circ, keys, run) = (path("model.circ"), path("model.keys"), path("run.zkp"));
        let start = Instant::now();
        let gguf = match &self.model {
            Some(model) => {
                println!("== 1. the model: {}", model.display());
                model.display().to_string()
            }
            None => {
                let gguf = path("tiny-gpt2-rust-books.gguf");
                println!("== 1. the model: a tiny GPT-2 trained on the Rust books ({gguf})");
                write_atomically(std::path::Path::new(&gguf), BUILT_IN_MODEL)?;
                gguf
            }
        };
        println!("== 2. compile it (calibrated on text, quantized to integers, optimized)");
        parse::<super::compile::Args>(&["compile", &gguf, "-o", &circ])?.execute()?;
        // Keys for the one context bucket the run needs (the prompt has at most one token per
        // byte): the blocks' circuits for 16 positions cost a third of those for 64.
        let module = zkc_compiler::artifact::read(std::path::Path::new(&circ))?.module;
        let buckets = module
            .bucket_for(self.prompt.len() + self.max_new)
            .map(|b| b.to_string());
        println!(
            "== 3. trusted setup (one Groth16 key pair per circuit{})",
            buckets.as_ref().map_or(String::new(), |b| format!(
                ", the blocks' bucket of context {b}"
            ))
        );
        let setup_start = Instant::now();
        let mut args = vec!["setup", &circ, "-o", &keys];
        if let Some(b) = &buckets {
            args.extend(["--buckets", b]);
        }
        let vd = parse::<setup::Args>(&args)?.execute()?;
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
        let constraints: usize = vd
            .stages()
            .iter()
            .map(|s| vd.layers[s[s.len() - 1]].constraints)
            .sum();
        let proving: f64 = report.step_seconds.iter().sum();
        println!("== summary");
        println!(
            "model: {} circuits per token, {constraints} constraints per token at context {}",
            vd.stages().len(),
            vd.context
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
