use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use zkc_compiler::gguf::{GgufFile, MetaValue};

/// Describe a GGUF model: architecture, hyperparameters, tokenizer and tensors.
///
/// Reads only the header (tensor data stays on disk). Examples:
///
///     zkc inspect tiny.gguf
///     zkc inspect tiny.gguf --json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The GGUF file.
    model: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// A metadata value as JSON; arrays longer than 8 items are summarised.
fn value_json(v: &MetaValue) -> Value {
    match v {
        MetaValue::String(s) => json!(s),
        MetaValue::Bool(b) => json!(b),
        MetaValue::F32(f) => json!(f),
        MetaValue::F64(f) => json!(f),
        MetaValue::I8(x) => json!(x),
        MetaValue::I16(x) => json!(x),
        MetaValue::I32(x) => json!(x),
        MetaValue::I64(x) => json!(x),
        MetaValue::U8(x) => json!(x),
        MetaValue::U16(x) => json!(x),
        MetaValue::U32(x) => json!(x),
        MetaValue::U64(x) => json!(x),
        MetaValue::Array(a) if a.items.len() > 8 => {
            json!({ "array_of": format!("{:?}", a.elem), "len": a.items.len(), "first": a.items[..3].iter().map(value_json).collect::<Vec<_>>() })
        }
        MetaValue::Array(a) => Value::Array(a.items.iter().map(value_json).collect()),
    }
}

fn describe(gguf: &GgufFile) -> Value {
    let arch = gguf
        .get("general.architecture")
        .and_then(MetaValue::as_str)
        .unwrap_or("(none)");
    let hparams = match zkc_compiler::model::hyperparams(gguf) {
        Ok(hp) => json!({
            "n_vocab": hp.n_vocab, "n_ctx": hp.n_ctx, "n_embd": hp.n_embd, "n_head": hp.n_head,
            "n_head_kv": hp.n_head_kv, "n_ff": hp.n_ff, "n_layer": hp.n_layer,
            "norm_eps": hp.norm_eps,
            "rope": hp.rope.map(|r| json!({ "dims": r.dims, "freq_base": r.freq_base })),
        }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let count = |key: &str| {
        gguf.get(key)
            .and_then(MetaValue::as_array)
            .map_or(0, |a| a.items.len())
    };
    let tokenizer = json!({
        "model": gguf.get("tokenizer.ggml.model").and_then(MetaValue::as_str),
        "tokens": count("tokenizer.ggml.tokens"),
        "merges": count("tokenizer.ggml.merges"),
        "bos": gguf.get("tokenizer.ggml.bos_token_id").and_then(MetaValue::as_u64),
        "eos": gguf.get("tokenizer.ggml.eos_token_id").and_then(MetaValue::as_u64),
    });
    let tensors: Vec<Value> = gguf
        .tensors()
        .iter()
        .map(|t| json!({ "name": t.name, "type": t.ty.name(), "shape": t.shape(), "bytes": t.n_bytes }))
        .collect();
    let metadata: serde_json::Map<String, Value> = gguf
        .metadata()
        .iter()
        .map(|(k, v)| (k.clone(), value_json(v)))
        .collect();
    json!({
        "architecture": arch,
        "gguf_version": gguf.version(),
        "alignment": gguf.alignment(),
        "file_bytes": gguf.len(),
        "parameters": gguf.tensors().iter().map(|t| t.elements()).sum::<u64>(),
        "hyperparameters": hparams,
        "tokenizer": tokenizer,
        "tensors": tensors,
        "metadata": metadata,
    })
}

impl Args {
    pub fn run(self) -> ExitCode {
        let gguf = match GgufFile::open(&self.model) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("error: {}: {e}", self.model.display());
                return ExitCode::FAILURE;
            }
        };
        let info = describe(&gguf);
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&info).expect("JSON values serialise")
            );
            return ExitCode::SUCCESS;
        }
        println!(
            "{}: GGUF v{}, {} bytes, alignment {}",
            self.model.display(),
            info["gguf_version"],
            info["file_bytes"],
            info["alignment"]
        );
        println!(
            "architecture: {}",
            info["architecture"].as_str().unwrap_or("")
        );
        match info["hyperparameters"].as_object() {
            Some(hp) if !hp.contains_key("error") => {
                let line: Vec<String> = hp.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("hyperparameters: {}", line.join(" "));
            }
            _ => println!("hyperparameters: {}", info["hyperparameters"]["error"]),
        }
        let t = &info["tokenizer"];
        println!(
            "tokenizer: {} ({} tokens, {} merges, bos {}, eos {})",
            t["model"], t["tokens"], t["merges"], t["bos"], t["eos"]
        );
        println!("parameters: {}", info["parameters"]);
        println!("{} tensors:", gguf.tensors().len());
        let width = gguf
            .tensors()
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(0);
        for t in gguf.tensors() {
            println!(
                "  {:width$}  {:5}  {:>16}  {:>12} bytes",
                t.name,
                t.ty.name(),
                format!("{:?}", t.shape()),
                t.n_bytes
            );
        }
        ExitCode::SUCCESS
    }
}
