//! The `zkc` command line: one file per subcommand.

mod accuracy;
mod check;
mod compile;
mod fmt;
mod gen_model;
mod inspect;
mod quant_args;
mod run;
mod source;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// zkc compiles machine-learning models into zero-knowledge circuits and proves their inference.
///
/// Its intermediate representation is a textual, quantized, integer-only IR (`.zkir`); see
/// docs/ir.md. Example:
///
///     zkc check examples/gpt2_block.zkir
#[derive(Debug, Parser)]
#[command(name = "zkc", version, about, long_about, verbatim_doc_comment)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Accuracy(accuracy::Args),
    Check(check::Args),
    Compile(compile::Args),
    Fmt(fmt::Args),
    GenModel(gen_model::Args),
    Inspect(inspect::Args),
    Run(run::Args),
}

impl Cli {
    pub fn run(self) -> ExitCode {
        match self.command {
            Command::Accuracy(args) => args.run(),
            Command::Check(args) => args.run(),
            Command::Compile(args) => args.run(),
            Command::Fmt(args) => args.run(),
            Command::GenModel(args) => args.run(),
            Command::Inspect(args) => args.run(),
            Command::Run(args) => args.run(),
        }
    }
}
