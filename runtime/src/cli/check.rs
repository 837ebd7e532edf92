use super::source::load_checked;
use std::path::PathBuf;
use std::process::ExitCode;

/// Check that an IR file parses and is valid.
///
/// Prints every syntax, name and validation error with the span it points at, and exits 1 if
/// there is any; exits 0 and prints a one-line summary if the file is valid. Example:
///
///     zkc check examples/gpt2_block.zkir
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The `.zkir` file to check.
    file: PathBuf,
}

impl Args {
    pub fn run(self) -> ExitCode {
        let Some((_, parsed)) = load_checked(&self.file) else {
            return ExitCode::FAILURE;
        };
        let m = &parsed.module;
        let insts: usize = m.layers.iter().map(|l| l.insts.len()).sum();
        println!(
            "{}: valid ({} layer(s), {} instruction(s), {} constant(s))",
            self.file.display(),
            m.layers.len(),
            insts,
            m.consts.len()
        );
        ExitCode::SUCCESS
    }
}
