use super::quant_args::QuantArgs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use zkc_compiler::files::write_atomically;
use zkc_compiler::gguf::GgufFile;
use zkc_compiler::model::FloatModel;
use zkc_compiler::quantize::quantize;

/// Compile a GGUF model into zkc's integer IR.
///
/// Calibrates the float model on seeded random tokens, picks fixed-point scales, quantizes the
/// weights (per output channel) and lowers every op to integer ops: one IR layer for the
/// embedding, one per transformer block, one for the head. The `.zkir` file holds the constants
/// inline, passes `zkc check`, and runs with `zkc run FILE.zkir` bit-identically. Example:
///
///     zkc compile tiny.gguf --emit ir -o tiny.zkir
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The GGUF model.
    model: PathBuf,
    /// What to write (the per-layer constraint systems come with the R1CS backend).
    #[arg(long, value_parser = ["ir"], default_value = "ir")]
    emit: String,
    /// The output file.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    quant: QuantArgs,
}

impl Args {
    pub fn run(self) -> ExitCode {
        match self.compile() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    }

    fn compile(&self) -> Result<(), Box<dyn std::error::Error>> {
        let start = Instant::now();
        let config = self.quant.config()?;
        let gguf = GgufFile::open(&self.model)?;
        let model = FloatModel::load(&gguf)?;
        let module = quantize(&model, &config)?;
        let text = zkc_lang::print(&module);
        write_atomically(&self.output, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", self.output.display()))?;
        let insts: usize = module.layers.iter().map(|l| l.insts.len()).sum();
        println!(
            "wrote {} ({} bytes): {} layers, {insts} instructions, {} constants ({}) in {:.1} s",
            self.output.display(),
            text.len(),
            module.layers.len(),
            module.consts.len(),
            config.summary(),
            start.elapsed().as_secs_f64()
        );
        Ok(())
    }
}
