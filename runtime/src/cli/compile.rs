use super::quant_args::QuantArgs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use zkc_compiler::artifact;
use zkc_compiler::backend::cost;
use zkc_compiler::files::write_atomically;
use zkc_compiler::gguf::GgufFile;
use zkc_compiler::model::FloatModel;
use zkc_compiler::quantize::quantize;
use zkc_compiler::tokenizer::Tokenizer;

/// Compile a GGUF model into zkc's integer IR.
///
/// Calibrates the float model on seeded random tokens, picks fixed-point scales, quantizes the
/// weights (per output channel) and lowers every op to integer ops: one IR layer for the
/// embedding, one per transformer block, one for the head. The default output is the versioned
/// artifact `MODEL.circ` (a header with the model's and the IR's SHA-256, then the IR); `--emit
/// ir` writes the bare IR text (it passes `zkc check` and runs bit-identically with `zkc run`);
/// `--emit stats` prints each layer's constraint count by op. Examples:
///
///     zkc compile tiny.gguf -o tiny.circ
///     zkc compile tiny.gguf --emit ir -o tiny.zkir
///     zkc compile tiny.gguf --emit stats [--json]
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The GGUF model.
    model: PathBuf,
    /// What to produce: the artifact, the IR text, or constraint counts per layer.
    #[arg(long, value_parser = ["circ", "ir", "stats"], default_value = "circ")]
    emit: String,
    /// The output file (for `circ` and `ir`).
    #[arg(short, long, required_if_eq_any([("emit", "ir"), ("emit", "circ")]))]
    output: Option<PathBuf>,
    /// Stats as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    quant: QuantArgs,
}

impl Args {
    pub fn run(self) -> ExitCode {
        super::exit_code(self.execute())
    }

    pub fn execute(&self) -> Result<(), Box<dyn std::error::Error>> {
        let start = Instant::now();
        let config = self.quant.config()?;
        let gguf = GgufFile::open(&self.model)?;
        let model = FloatModel::load(&gguf)?;
        let module = quantize(&model, &config)?;
        zkc_compiler::backend::check::check(&module)?;
        let Some(output) = self.output.as_ref().filter(|_| self.emit != "stats") else {
            print_stats(&module, self.json);
            return Ok(());
        };
        if self.emit == "circ" {
            let model_sha = artifact::sha256_file(&self.model)
                .map_err(|e| format!("cannot read {}: {e}", self.model.display()))?;
            let tokenizer = Tokenizer::from_gguf(&gguf).ok();
            let header = artifact::write(
                output,
                &module,
                tokenizer.as_ref(),
                &model_sha,
                &config.summary(),
            )?;
            println!(
                "wrote {} (IR {} bytes, sha256 {}) in {:.1} s",
                output.display(),
                header.ir_bytes,
                header.ir_sha256,
                start.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        let text = zkc_lang::print(&module);
        write_atomically(output, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", output.display()))?;
        let insts: usize = module.layers.iter().map(|l| l.insts.len()).sum();
        println!(
            "wrote {} ({} bytes): {} layers, {insts} instructions, {} constants ({}) in {:.1} s",
            output.display(),
            text.len(),
            module.layers.len(),
            module.consts.len(),
            config.summary(),
            start.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

fn print_stats(module: &zkc_lang::Module, json: bool) {
    let layers: Vec<(&str, std::collections::BTreeMap<&str, usize>, usize)> = module
        .layers
        .iter()
        .map(|l| {
            let (by_op, total) = cost::layer(module, l);
            (l.name.as_str(), by_op, total)
        })
        .collect();
    let total: usize = layers.iter().map(|l| l.2).sum();
    if json {
        let value = serde_json::json!({
            "layers": layers.iter().map(|(name, by_op, total)| serde_json::json!({ "name": name, "constraints": total, "by_op": by_op })).collect::<Vec<_>>(),
            "constraints_per_token": total,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("JSON values serialise")
        );
        return;
    }
    for (name, by_op, layer_total) in &layers {
        let ops: Vec<String> = by_op
            .iter()
            .filter(|(_, &c)| c > 0)
            .map(|(op, c)| format!("{op} {c}"))
            .collect();
        println!(
            "{name:>10}: {layer_total:>12} constraints ({})",
            ops.join(", ")
        );
    }
    println!("{:>10}: {total:>12} constraints per token", "total");
}
