use std::path::PathBuf;
use std::process::ExitCode;
use zkc_compiler::model::{generate_gpt2, generate_llama, generate_qwen2, ModelConfig, WeightType};

/// Write a random-weight GPT-2, Llama or Qwen2 GGUF (deterministic for a seed).
///
/// zkc makes its own models because no model hub can be reached: GPT-2 architecture with
/// GPT-2's initialisation scales and a byte-level BPE vocabulary (the first 256 tokens are the
/// bytes), or Llama architecture (RMSNorm, RoPE, grouped-query attention, SiLU-gated MLP) with a
/// SentencePiece-style vocabulary (`<unk>`, `<s>`, `</s>`, 256 byte tokens, then pieces); both
/// with llama.cpp's metadata and tensor names, so llama.cpp reads the file too; `qwen2` is the
/// Llama model with q/k/v biases, RoPE in halves and a byte-level BPE vocabulary. Examples:
///
///     zkc gen-model gpt2 --layers 2 --d-model 64 --heads 4 --ctx 64 --vocab 256 -o tiny.gguf
///     zkc gen-model gpt2 --preset gpt2-small --type q8_0 -o gpt2-small.gguf
///     zkc gen-model llama -o llama-tiny.gguf
///     zkc gen-model llama --preset smollm-135m -o smollm-135m.gguf
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The architecture.
    #[arg(value_parser = ["gpt2", "llama", "qwen2"])]
    arch: String,
    /// Start from a preset shape; the other options override it. `tiny` is the architecture's
    /// test model; `gpt2-small` is a GPT-2 shape, `smollm-135m` a Llama one.
    #[arg(long, value_parser = ["tiny", "gpt2-small", "smollm-135m"], default_value = "tiny")]
    preset: String,
    #[command(flatten)]
    pub shape: Shape,
    /// Vocabulary size: for gpt2 at least 256 (bytes; above 256 the last token is
    /// `<|endoftext|>`), for llama at least 259 (3 special tokens and the bytes).
    #[arg(long)]
    vocab: Option<usize>,
    /// Key/value heads (llama's grouped-query attention; must divide --heads; default: the
    /// preset's, or --heads when that is given).
    #[arg(long)]
    kv_heads: Option<usize>,
    /// MLP width (default 4 * d-model).
    #[arg(long)]
    d_ff: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Storage type of the weight matrices (norms and biases stay f32).
    #[arg(long = "type", value_parser = ["f32", "q8_0"], default_value = "f32")]
    weight_type: String,
    /// Where to write the GGUF.
    #[arg(short, long)]
    output: PathBuf,
}

impl Args {
    pub fn run(self) -> ExitCode {
        super::exit_code(self.execute())
    }

    pub fn execute(&self) -> Result<(), Box<dyn std::error::Error>> {
        let mut cfg = match (self.arch.as_str(), self.preset.as_str()) {
            ("gpt2", "gpt2-small") => ModelConfig::gpt2_small(),
            ("gpt2", "tiny") => ModelConfig::tiny(),
            ("llama" | "qwen2", "smollm-135m") => ModelConfig::smollm_135m(),
            ("llama" | "qwen2", "tiny") => ModelConfig::llama_tiny(),
            (arch, preset) => return Err(format!("--preset {preset} is not a {arch} shape").into()),
        };
        self.shape.apply(&mut cfg);
        cfg.n_head_kv = match (self.kv_heads, self.arch.as_str()) {
            (Some(kv), _) => kv,
            (None, "gpt2") => cfg.n_head,
            (None, _) if self.shape.heads_given() => cfg.n_head,
            (None, _) => cfg.n_head_kv,
        };
        cfg.n_vocab = self.vocab.unwrap_or(cfg.n_vocab);
        cfg.n_ff = self.d_ff.unwrap_or(cfg.n_ff);
        cfg.seed = self.seed;
        cfg.weight_type = if self.weight_type == "q8_0" {
            WeightType::Q8_0
        } else {
            WeightType::F32
        };
        if let Some(problem) = cfg.problem(&self.arch) {
            return Err(problem.into());
        }
        let model = match self.arch.as_str() {
            "llama" => generate_llama(&cfg),
            "qwen2" => generate_qwen2(&cfg),
            _ => generate_gpt2(&cfg),
        };
        model.write(&self.output)?;
        let size = std::fs::metadata(&self.output).map_or(0, |m| m.len());
        println!("wrote {} ({size} bytes): {cfg:?}", self.output.display());
        Ok(())
    }
}

/// The shape options of `gen-model`; each overrides the preset's.
#[derive(Debug, Clone, clap::Args)]
pub struct Shape {
    /// Transformer blocks.
    #[arg(long)]
    layers: Option<usize>,
    /// Model width (the MLP is 4 times as wide).
    #[arg(long)]
    d_model: Option<usize>,
    #[arg(long)]
    heads: Option<usize>,
    /// Maximum context (positions).
    #[arg(long)]
    ctx: Option<usize>,
}

impl Shape {
    fn heads_given(&self) -> bool {
        self.heads.is_some()
    }

    fn apply(&self, cfg: &mut ModelConfig) {
        cfg.n_layer = self.layers.unwrap_or(cfg.n_layer);
        if let Some(d) = self.d_model {
            cfg.n_embd = d;
            cfg.n_ff = 4 * d;
        }
        cfg.n_head = self.heads.unwrap_or(cfg.n_head);
        cfg.n_ctx = self.ctx.unwrap_or(cfg.n_ctx);
    }
}
