//! zkc's own models: deterministic random-weight GPT-2 GGUFs with a byte-level BPE vocabulary
//! and Llama GGUFs with a SentencePiece-style one, since no model hub can be reached. The random numbers come from a fixed SplitMix64 stream so
//! a seed gives the same file on every machine and every zkc version.

use crate::gguf::{GgufWriter, MetaArray, MetaValue, TensorData, ValueType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightType {
    F32,
    Q8_0,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    /// Key/value heads: `n_head` for GPT-2; fewer for grouped-query attention (llama).
    pub n_head_kv: usize,
    pub n_ctx: usize,
    pub n_vocab: usize,
    pub n_ff: usize,
    pub seed: u64,
    pub weight_type: WeightType,
}

impl ModelConfig {
    /// The test model: 2 blocks, d=64, 4 heads, context 64, byte vocabulary.
    pub fn tiny() -> ModelConfig {
        ModelConfig {
            n_layer: 2,
            n_embd: 64,
            n_head: 4,
            n_head_kv: 4,
            n_ctx: 64,
            n_vocab: 256,
            n_ff: 256,
            seed: 0,
            weight_type: WeightType::F32,
        }
    }

    /// GPT-2 small's shape: 12 blocks, d=768, 12 heads, context 1024, vocab 50257 (124M weights).
    pub fn gpt2_small() -> ModelConfig {
        ModelConfig {
            n_layer: 12,
            n_embd: 768,
            n_head: 12,
            n_head_kv: 12,
            n_ctx: 1024,
            n_vocab: 50257,
            n_ff: 3072,
            seed: 0,
            weight_type: WeightType::F32,
        }
    }

    /// The Llama test model: 2 blocks, d=64, 4 query heads sharing 2 key/value heads, context
    /// 64, a 320-token vocabulary (3 special tokens, 256 bytes, 61 pieces).
    pub fn llama_tiny() -> ModelConfig {
        ModelConfig {
            n_layer: 2,
            n_embd: 64,
            n_head: 4,
            n_head_kv: 2,
            n_ctx: 64,
            n_vocab: 320,
            n_ff: 172,
            seed: 0,
            weight_type: WeightType::F32,
        }
    }

    /// SmolLM-135M's shape: 30 blocks, d=576, 9 query heads over 3 key/value heads, d_ff 1536,
    /// vocabulary 49,152, context 2048: the Llama-family benchmark shape.
    pub fn smollm_135m() -> ModelConfig {
        ModelConfig {
            n_layer: 30,
            n_embd: 576,
            n_head: 9,
            n_head_kv: 3,
            n_ctx: 2048,
            n_vocab: 49152,
            n_ff: 1536,
            seed: 0,
            weight_type: WeightType::F32,
        }
    }

    /// What makes a configuration of architecture `arch` (`gpt2` or `llama`) unbuildable, if
    /// anything.
    pub fn problem(&self, arch: &str) -> Option<String> {
        if arch == "gpt2" && self.n_head_kv != self.n_head {
            return Some(
                "GPT-2 has no grouped-query attention: --kv-heads must equal --heads".into(),
            );
        }
        if arch == "llama" && self.n_vocab < 259 {
            return Some(format!(
                "--vocab {} is below 259: a llama vocabulary has 3 special tokens and 256 bytes",
                self.n_vocab
            ));
        }
        let dims = [
            self.n_layer,
            self.n_embd,
            self.n_head,
            self.n_ctx,
            self.n_ff,
        ];
        if dims.contains(&0) {
            return Some("every dimension must be at least 1".into());
        }
        if self.n_head_kv == 0 || self.n_head % self.n_head_kv != 0 {
            return Some(format!(
                "--kv-heads {} must divide --heads {}",
                self.n_head_kv, self.n_head
            ));
        }
        if self.n_embd % self.n_head != 0 {
            return Some(format!(
                "--heads {} must divide --d-model {}",
                self.n_head, self.n_embd
            ));
        }
        if self.n_vocab < 256 {
            return Some(format!(
                "--vocab {} is below 256: the vocabulary starts with one token per byte",
                self.n_vocab
            ));
        }
        let params = self.n_vocab * self.n_embd + self.n_layer * 12 * self.n_embd * self.n_embd;
        if params > 2_000_000_000 {
            return Some(format!(
                "{params} parameters is more than zkc generates (2e9)"
            ));
        }
        None
    }
}

/// SplitMix64: tiny, fast and fixed forever, unlike a general-purpose RNG crate's streams.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Normal(0, std) by Box-Muller.
    fn normal(&mut self, std: f64) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos() * std) as f32
    }

    fn normals(&mut self, n: usize, std: f64) -> Vec<f32> {
        (0..n).map(|_| self.normal(std)).collect()
    }

    /// Norm gains near 1, so that every parameter matters.
    fn ones_ish(&mut self, n: usize) -> Vec<f32> {
        self.normals(n, 0.1).into_iter().map(|x| 1.0 + x).collect()
    }
}

/// A weight matrix `[out, in]`, in `weight_type` when its rows are whole Q8_0 blocks.
fn add_matrix(
    w: &mut GgufWriter,
    weight_type: WeightType,
    name: &str,
    shape: [usize; 2],
    data: Vec<f32>,
) {
    let whole_blocks = shape[1] % 32 == 0;
    let data = match weight_type {
        WeightType::Q8_0 if whole_blocks => TensorData::Q8_0(data),
        _ => TensorData::F32(data),
    };
    w.add_tensor(name, &[shape[0] as u64, shape[1] as u64], data);
}

/// A vector (norms, biases), always f32.
fn add_vector(w: &mut GgufWriter, name: &str, data: Vec<f32>) {
    w.add_tensor(name, &[data.len() as u64], TensorData::F32(data))
}

/// `general.*` and the shape keys every architecture has, under `arch.`.
fn common_metadata(w: &mut GgufWriter, arch: &str, cfg: &ModelConfig) {
    let u32v = |x: usize| MetaValue::U32(x as u32);
    w.add_metadata("general.architecture", MetaValue::String(arch.into()));
    w.add_metadata(
        "general.name",
        MetaValue::String(format!("zkc random {arch} (seed {})", cfg.seed)),
    );
    let file_type = match cfg.weight_type {
        WeightType::F32 => 0,
        WeightType::Q8_0 => 7,
    };
    w.add_metadata("general.file_type", MetaValue::U32(file_type));
    w.add_metadata(&format!("{arch}.context_length"), u32v(cfg.n_ctx));
    w.add_metadata(&format!("{arch}.embedding_length"), u32v(cfg.n_embd));
    w.add_metadata(&format!("{arch}.feed_forward_length"), u32v(cfg.n_ff));
    w.add_metadata(&format!("{arch}.block_count"), u32v(cfg.n_layer));
    w.add_metadata(&format!("{arch}.attention.head_count"), u32v(cfg.n_head));
}

/// GPT-2's byte-to-character map (the vocabulary's first 256 tokens), in byte order.
fn byte_tokens() -> Vec<String> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut next = 0x100u32;
    (0..=255u8)
        .map(|b| {
            if printable(b) {
                char::from(b).to_string()
            } else {
                next += 1;
                char::from_u32(next - 1)
                    .expect("below the surrogates")
                    .to_string()
            }
        })
        .collect()
}

/// The vocabulary: bytes, then merges of an earlier token with a byte (each a new string), then
/// `<|endoftext|>` as the last token when there is room for it.
fn vocabulary(n_vocab: usize, rng: &mut Rng) -> (Vec<String>, Vec<String>) {
    let mut tokens = byte_tokens();
    let mut merges = Vec::new();
    let mut seen: std::collections::HashSet<String> = tokens.iter().cloned().collect();
    let n_merged = n_vocab.saturating_sub(257);
    while merges.len() < n_merged {
        let left = tokens[(rng.next_u64() % tokens.len() as u64) as usize].clone();
        let right = tokens[(rng.next_u64() % 256) as usize].clone();
        let merged = format!("{left}{right}");
        if merged.chars().count() <= 16 && seen.insert(merged.clone()) {
            merges.push(format!("{left} {right}"));
            tokens.push(merged);
        }
    }
    if n_vocab > 256 {
        tokens.push("<|endoftext|>".into());
    }
    (tokens, merges)
}

fn strings(items: &[String]) -> MetaValue {
    MetaValue::Array(MetaArray {
        elem: ValueType::String,
        items: items.iter().map(|s| MetaValue::String(s.clone())).collect(),
    })
}

/// GPT-2's byte-level BPE vocabulary ([`vocabulary`]) as `tokenizer.ggml.*` metadata, with
/// llama.cpp's pre-tokenizer name `pre`.
fn bpe_tokenizer(w: &mut GgufWriter, v: usize, pre: &str, rng: &mut Rng) {
    let u32v = |x: usize| MetaValue::U32(x as u32);
    let (tokens, merges) = vocabulary(v, rng);
    let types: Vec<MetaValue> = (0..tokens.len())
        .map(|i| MetaValue::I32(if i == 256 + merges.len() { 3 } else { 1 }))
        .collect();
    w.add_metadata("tokenizer.ggml.model", MetaValue::String("gpt2".into()));
    w.add_metadata("tokenizer.ggml.pre", MetaValue::String(pre.into()));
    w.add_metadata("tokenizer.ggml.tokens", strings(&tokens));
    w.add_metadata(
        "tokenizer.ggml.token_type",
        MetaValue::Array(MetaArray {
            elem: ValueType::I32,
            items: types,
        }),
    );
    w.add_metadata("tokenizer.ggml.merges", strings(&merges));
    if v > 256 {
        w.add_metadata("tokenizer.ggml.bos_token_id", u32v(v - 1));
        w.add_metadata("tokenizer.ggml.eos_token_id", u32v(v - 1));
    }
}

/// A GPT-2-architecture GGUF with GPT-2's initialisation scales: weights N(0, 0.02), the
/// projections into the residual stream scaled by 1/sqrt(2 * blocks), small random biases and
/// norm parameters (so that every parameter matters).
pub fn generate_gpt2(cfg: &ModelConfig) -> GgufWriter {
    let mut rng = Rng(cfg.seed);
    let (d, ff, v) = (cfg.n_embd, cfg.n_ff, cfg.n_vocab);
    let mut w = GgufWriter::new();
    common_metadata(&mut w, "gpt2", cfg);
    w.add_metadata("gpt2.attention.layer_norm_epsilon", MetaValue::F32(1e-5));
    bpe_tokenizer(&mut w, v, "gpt-2", &mut rng);
    let matrix = |w: &mut GgufWriter, name: &str, shape: [usize; 2], data: Vec<f32>| {
        add_matrix(w, cfg.weight_type, name, shape, data)
    };
    let proj_std = 0.02 / (2.0 * cfg.n_layer as f64).sqrt();
    matrix(
        &mut w,
        "token_embd.weight",
        [v, d],
        rng.normals(v * d, 0.02),
    );
    matrix(
        &mut w,
        "position_embd.weight",
        [cfg.n_ctx, d],
        rng.normals(cfg.n_ctx * d, 0.01),
    );
    for b in 0..cfg.n_layer {
        let p = format!("blk.{b}");
        let g = rng.ones_ish(d);
        add_vector(&mut w, &format!("{p}.attn_norm.weight"), g);
        add_vector(&mut w, &format!("{p}.attn_norm.bias"), rng.normals(d, 0.02));
        matrix(
            &mut w,
            &format!("{p}.attn_qkv.weight"),
            [3 * d, d],
            rng.normals(3 * d * d, 0.02),
        );
        add_vector(
            &mut w,
            &format!("{p}.attn_qkv.bias"),
            rng.normals(3 * d, 0.02),
        );
        matrix(
            &mut w,
            &format!("{p}.attn_output.weight"),
            [d, d],
            rng.normals(d * d, proj_std),
        );
        add_vector(
            &mut w,
            &format!("{p}.attn_output.bias"),
            rng.normals(d, 0.02),
        );
        let g = rng.ones_ish(d);
        add_vector(&mut w, &format!("{p}.ffn_norm.weight"), g);
        add_vector(&mut w, &format!("{p}.ffn_norm.bias"), rng.normals(d, 0.02));
        matrix(
            &mut w,
            &format!("{p}.ffn_up.weight"),
            [ff, d],
            rng.normals(ff * d, 0.02),
        );
        add_vector(&mut w, &format!("{p}.ffn_up.bias"), rng.normals(ff, 0.02));
        matrix(
            &mut w,
            &format!("{p}.ffn_down.weight"),
            [d, ff],
            rng.normals(d * ff, proj_std),
        );
        add_vector(&mut w, &format!("{p}.ffn_down.bias"), rng.normals(d, 0.02));
    }
    let g = rng.ones_ish(d);
    add_vector(&mut w, "output_norm.weight", g);
    add_vector(&mut w, "output_norm.bias", rng.normals(d, 0.02));
    w
}

/// A SentencePiece-style vocabulary as llama.cpp's `llama` tokenizer reads it: `<unk>`, `<s>`,
/// `</s>`, the 256 byte tokens `<0xXX>`, then pieces of `▁` and letters (each new, its score
/// falling with its rank). Returns the tokens, scores and llama.cpp token types (2 unknown,
/// 3 control, 6 byte, 1 normal).
fn spm_vocabulary(n_vocab: usize, rng: &mut Rng) -> (Vec<String>, Vec<f32>, Vec<i32>) {
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).into();
    let mut types = vec![2, 3, 3];
    tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    types.extend([6; 256]);
    let alphabet: Vec<char> = "▁etaoinshrdlucmfwypvbgk".chars().collect();
    let mut seen: std::collections::HashSet<String> = tokens.iter().cloned().collect();
    let mut pieces: Vec<String> = alphabet.iter().map(|c| c.to_string()).collect();
    let mut added = 0;
    while tokens.len() < n_vocab {
        let piece = match added < pieces.len() {
            true => pieces[added].clone(),
            false => {
                let left = &pieces[(rng.next_u64() % pieces.len() as u64) as usize];
                let right = alphabet[(rng.next_u64() % alphabet.len() as u64) as usize];
                format!("{left}{right}")
            }
        };
        if piece.chars().count() <= 12 && seen.insert(piece.clone()) {
            if added >= pieces.len() {
                pieces.push(piece.clone());
            }
            tokens.push(piece);
            types.push(1);
        }
        added += 1;
    }
    let scores = (0..tokens.len())
        .map(|i| match types[i] {
            1 => -((i - 259) as f32),
            _ => 0.0,
        })
        .collect();
    (tokens, scores, types)
}

/// [`spm_vocabulary`] as `tokenizer.ggml.*` metadata, as llama.cpp's converter writes a
/// SentencePiece model.
fn spm_tokenizer(w: &mut GgufWriter, v: usize, rng: &mut Rng) {
    let u32v = |x: usize| MetaValue::U32(x as u32);
    let (tokens, scores, types) = spm_vocabulary(v, rng);
    w.add_metadata("tokenizer.ggml.model", MetaValue::String("llama".into()));
    w.add_metadata("tokenizer.ggml.tokens", strings(&tokens));
    let array =
        |elem: ValueType, items: Vec<MetaValue>| MetaValue::Array(MetaArray { elem, items });
    let scores = scores.into_iter().map(MetaValue::F32).collect();
    w.add_metadata("tokenizer.ggml.scores", array(ValueType::F32, scores));
    let types = types.into_iter().map(MetaValue::I32).collect();
    w.add_metadata("tokenizer.ggml.token_type", array(ValueType::I32, types));
    w.add_metadata("tokenizer.ggml.unknown_token_id", u32v(0));
    w.add_metadata("tokenizer.ggml.bos_token_id", u32v(1));
    w.add_metadata("tokenizer.ggml.eos_token_id", u32v(2));
    w.add_metadata("tokenizer.ggml.add_bos_token", MetaValue::Bool(true));
}

/// A Llama-architecture GGUF as llama.cpp's converter writes one: RMSNorm, q/k/v projections
/// without biases (k and v `n_head_kv` heads wide), RoPE (base 10,000, the whole head), the
/// SiLU-gated MLP, an untied output projection, a SentencePiece vocabulary. Weights N(0, 0.02),
/// the projections into the residual stream scaled by 1/sqrt(2 * blocks), norm gains near 1.
pub fn generate_llama(cfg: &ModelConfig) -> GgufWriter {
    llama_family(cfg, Family::Llama)
}

/// A Qwen2-architecture GGUF: [`generate_llama`]'s model with biases on q, k and v (read by
/// RoPE in halves, as llama.cpp does for `qwen2`) and a byte-level BPE vocabulary.
pub fn generate_qwen2(cfg: &ModelConfig) -> GgufWriter {
    llama_family(cfg, Family::Qwen2)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Llama,
    Qwen2,
}

fn llama_family(cfg: &ModelConfig, family: Family) -> GgufWriter {
    let arch = match family {
        Family::Llama => "llama",
        Family::Qwen2 => "qwen2",
    };
    let mut rng = Rng(cfg.seed);
    let (d, ff, v) = (cfg.n_embd, cfg.n_ff, cfg.n_vocab);
    let kv = cfg.n_head_kv * (d / cfg.n_head);
    let mut w = GgufWriter::new();
    let u32v = |x: usize| MetaValue::U32(x as u32);
    common_metadata(&mut w, arch, cfg);
    let key = |name: &str| format!("{arch}.{name}");
    w.add_metadata(&key("attention.head_count_kv"), u32v(cfg.n_head_kv));
    let eps = MetaValue::F32(1e-5);
    w.add_metadata(&key("attention.layer_norm_rms_epsilon"), eps);
    w.add_metadata(&key("rope.freq_base"), MetaValue::F32(10_000.0));
    w.add_metadata(&key("rope.dimension_count"), u32v(d / cfg.n_head));
    w.add_metadata(&key("vocab_size"), u32v(v));
    match family {
        Family::Llama => spm_tokenizer(&mut w, v, &mut rng),
        Family::Qwen2 => bpe_tokenizer(&mut w, v, "qwen2", &mut rng),
    }
    let mut matrix = |w: &mut GgufWriter, name: &str, shape: [usize; 2], std: f64| {
        let data = rng.normals(shape[0] * shape[1], std);
        add_matrix(w, cfg.weight_type, name, shape, data)
    };
    let proj_std = 0.02 / (2.0 * cfg.n_layer as f64).sqrt();
    matrix(&mut w, "token_embd.weight", [v, d], 0.02);
    let mut norms = Rng(cfg.seed ^ 0x6e6f_726d);
    let mut biases = Rng(cfg.seed ^ 0x6269_6173);
    for b in 0..cfg.n_layer {
        let p = format!("blk.{b}");
        add_vector(&mut w, &format!("{p}.attn_norm.weight"), norms.ones_ish(d));
        matrix(&mut w, &format!("{p}.attn_q.weight"), [d, d], 0.02);
        matrix(&mut w, &format!("{p}.attn_k.weight"), [kv, d], 0.02);
        matrix(&mut w, &format!("{p}.attn_v.weight"), [kv, d], 0.02);
        if family == Family::Qwen2 {
            for (name, n) in [("attn_q", d), ("attn_k", kv), ("attn_v", kv)] {
                add_vector(&mut w, &format!("{p}.{name}.bias"), biases.normals(n, 0.02));
            }
        }
        matrix(&mut w, &format!("{p}.attn_output.weight"), [d, d], proj_std);
        add_vector(&mut w, &format!("{p}.ffn_norm.weight"), norms.ones_ish(d));
        matrix(&mut w, &format!("{p}.ffn_gate.weight"), [ff, d], 0.02);
        matrix(&mut w, &format!("{p}.ffn_up.weight"), [ff, d], 0.02);
        matrix(&mut w, &format!("{p}.ffn_down.weight"), [d, ff], proj_std);
    }
    add_vector(&mut w, "output_norm.weight", norms.ones_ish(d));
    matrix(&mut w, "output.weight", [v, d], 0.02);
    w
}
