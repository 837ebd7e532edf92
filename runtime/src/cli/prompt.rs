use std::path::PathBuf;
use zkc_compiler::tokenizer::Tokenizer;

/// What a model runs on, shared by `run`, `prove` and `plan`: a token-loop model's prompt
/// (token ids or text), or a single-pass model's input file.
#[derive(Debug, Clone, clap::Args)]
pub struct PromptArgs {
    /// Prompt token ids, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with_all = ["prompt", "input"],
        required_unless_present_any = ["prompt", "input"]
    )]
    pub tokens: Vec<u32>,
    /// Prompt text, tokenized with the model's own vocabulary (with its BOS token when the
    /// vocabulary asks for one, as llama.cpp's tools do).
    #[arg(long, conflicts_with = "input")]
    pub prompt: Option<String>,
    /// A single-pass model's input (an ONNX network's), in EZKL's input.json format:
    /// `{"input_data": [[x0, x1, …]]}`, the input's values flattened, as reals.
    #[arg(long, value_name = "input.json")]
    pub input: Option<PathBuf>,
}

impl PromptArgs {
    /// The prompt's token ids (never empty).
    pub fn ids(&self, tokenizer: Option<&Tokenizer>) -> Result<Vec<u32>, String> {
        if self.input.is_some() {
            return Err(
                "--input is a single-pass model's input; this runs a token-loop \
                        model, on --tokens or --prompt"
                    .into(),
            );
        }
        let ids = match (&self.prompt, tokenizer) {
            (Some(text), Some(t)) => t.encode_prompt(text),
            (Some(_), None) => {
                return Err(
                    "--prompt needs the model's tokenizer, which it lacks: give --tokens".into(),
                )
            }
            (None, _) => self.tokens.clone(),
        };
        if ids.is_empty() {
            return Err("the prompt is empty: give at least one token".into());
        }
        Ok(ids)
    }
}
