use zkc_compiler::tokenizer::Tokenizer;

/// The prompt options shared by `run` and `prove`: token ids or text.
#[derive(Debug, Clone, clap::Args)]
pub struct PromptArgs {
    /// Prompt token ids, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "prompt",
        required_unless_present = "prompt"
    )]
    pub tokens: Vec<u32>,
    /// Prompt text, tokenized with the model's own vocabulary (with its BOS token when the
    /// vocabulary asks for one, as llama.cpp's tools do).
    #[arg(long)]
    pub prompt: Option<String>,
}

impl PromptArgs {
    /// The prompt's token ids (never empty).
    pub fn ids(&self, tokenizer: Option<&Tokenizer>) -> Result<Vec<u32>, String> {
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
