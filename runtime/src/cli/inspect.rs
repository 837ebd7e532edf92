use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use zkc_compiler::gguf::{GgufFile, MetaValue};

/// Describe a model: a GGUF's architecture, hyperparameters, tokenizer and tensors (reading
/// only the header), or an ONNX graph's ops, shapes and parameter count, and whether zkc maps
/// it (the ops it cannot lower, and the first node it refuses). Examples:
///
///     zkc inspect tiny.gguf
///     zkc inspect tiny.gguf --json
///     zkc inspect net.onnx
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The GGUF or ONNX file.
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
        if zkc_compiler::onnx::is_onnx(&self.model) {
            return super::exit_code(self.onnx());
        }
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

impl Args {
    fn onnx(&self) -> Result<(), Box<dyn std::error::Error>> {
        let model = zkc_compiler::onnx::read(&self.model)?;
        let summary = zkc_compiler::onnx::summarize(&model);
        if self.json {
            let info = summary.to_json();
            println!(
                "{}",
                serde_json::to_string_pretty(&info).expect("JSON values serialise")
            );
            return Ok(());
        }
        println!(
            "{}: ONNX, opset {}, {} nodes (producer: {})",
            self.model.display(),
            summary.opset,
            summary.nodes,
            match summary.producer.is_empty() {
                true => "unnamed",
                false => &summary.producer,
            }
        );
        let io = |v: &[(String, Vec<String>)]| {
            v.iter()
                .map(|(n, s)| format!("{n} [{}]", s.join(", ")))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("inputs: {}", io(&summary.inputs));
        println!("outputs: {}", io(&summary.outputs));
        println!(
            "parameters: {} in {} initializers",
            summary.parameters,
            summary.initializers.len()
        );
        let ops: Vec<String> = summary
            .ops
            .iter()
            .map(|o| {
                format!(
                    "{} x{}{}",
                    o.op,
                    o.count,
                    if o.supported { "" } else { " (not mapped)" }
                )
            })
            .collect();
        println!("ops: {}", ops.join(", "));
        for (name, shape) in &summary.initializers {
            println!("  {name:40} {shape:?}");
        }
        let unsupported = summary.unsupported();
        match (&summary.problem, summary.graph_nodes) {
            (None, Some(n)) => {
                println!("zkc maps it: {n} model-graph nodes (zkc compile takes it)")
            }
            (Some(problem), _) => {
                if !unsupported.is_empty() {
                    println!("ops zkc cannot lower yet: {}", unsupported.join(", "));
                }
                println!("zkc does not map it yet: {problem}");
            }
            (None, None) => {}
        }
        Ok(())
    }
}
