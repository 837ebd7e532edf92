use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use zkc_compiler::gguf::GgufFile;
use zkc_compiler::model::FloatModel;
use zkc_compiler::tokenizer::Tokenizer;

/// Generate tokens greedily with a model.
///
/// `--float` runs the float reference evaluator over the model graph (f32 weights, KV cache);
/// it is the yardstick that zkc's integer model is measured against. Examples:
///
///     zkc run tiny.gguf --float --tokens 1,2,3 --max-new 8
///     zkc run tiny.gguf --float --prompt "Hello" --max-new 8 --logits
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The GGUF model.
    model: PathBuf,
    /// Run the float reference (integer execution arrives with the quantizer).
    #[arg(long)]
    float: bool,
    /// Prompt token ids, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "prompt",
        required_unless_present = "prompt"
    )]
    tokens: Vec<u32>,
    /// Prompt text, tokenized with the model's own vocabulary.
    #[arg(long)]
    prompt: Option<String>,
    /// How many tokens to generate.
    #[arg(long, default_value_t = 8)]
    max_new: usize,
    /// Also print the logits after the last token.
    #[arg(long)]
    logits: bool,
}

impl Args {
    pub fn run(self) -> ExitCode {
        match self.generate() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    }

    fn generate(&self) -> Result<(), Box<dyn std::error::Error>> {
        if !self.float {
            return Err(
                "integer execution is not built yet: pass --float for the float reference".into(),
            );
        }
        let gguf = GgufFile::open(&self.model)?;
        let tokenizer = Tokenizer::from_gguf(&gguf).ok();
        let prompt = match (&self.prompt, &tokenizer) {
            (Some(text), Some(t)) => t.encode(text),
            (Some(_), None) => {
                return Err(Tokenizer::from_gguf(&gguf)
                    .err()
                    .map_or("no tokenizer".into(), |e| e.to_string())
                    .into())
            }
            (None, _) => self.tokens.clone(),
        };
        if prompt.is_empty() {
            return Err("the prompt is empty: give at least one token".into());
        }
        let start = Instant::now();
        let model = FloatModel::load(&gguf)?;
        let loaded = start.elapsed();
        let mut session = model.session();
        let (generated, logits) = session.generate(&prompt, self.max_new)?;
        let elapsed = start.elapsed() - loaded;
        let list = |ids: &[u32]| ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        println!("prompt: {}", list(&prompt));
        println!("generated: {}", list(&generated));
        if let Some(t) = &tokenizer {
            println!("text: {:?} + {:?}", t.decode(&prompt), t.decode(&generated));
        }
        let steps = session.position();
        eprintln!(
            "load {:.2} s, {steps} steps in {:.2} s ({:.1} tokens/s)",
            loaded.as_secs_f64(),
            elapsed.as_secs_f64(),
            steps as f64 / elapsed.as_secs_f64()
        );
        if self.logits {
            println!(
                "logits: {}",
                logits
                    .iter()
                    .map(|v| format!("{v:e}"))
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
        Ok(())
    }
}
