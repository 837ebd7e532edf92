use super::source::load_checked;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use zkc_compiler::files::write_atomically;

/// Print an IR file in canonical form.
///
/// The file must be valid (as `zkc check` says). Canonical text is what zkc itself writes:
/// constants first, two-space indentation, operands before attributes, normalised scales, no
/// comments. Formatting is idempotent. Examples:
///
///     zkc fmt examples/gpt2_block.zkir            # to stdout
///     zkc fmt --write examples/gpt2_block.zkir    # in place
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The `.zkir` file to format.
    file: PathBuf,
    /// Rewrite the file in place (through a temporary file, renamed over it) instead of printing.
    #[arg(long)]
    write: bool,
}

impl Args {
    pub fn run(self) -> ExitCode {
        let Some((source, parsed)) = load_checked(&self.file) else {
            return ExitCode::FAILURE;
        };
        let text = zkc_lang::print(&parsed.module);
        let written = if !self.write {
            std::io::stdout().write_all(text.as_bytes())
        } else if text == source {
            Ok(())
        } else {
            write_atomically(&self.file, text.as_bytes())
        };
        match written {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", self.file.display());
                ExitCode::FAILURE
            }
        }
    }
}
