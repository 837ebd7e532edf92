//! `zkc`: compile GGUF models into zero-knowledge circuits and prove their inference.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    zkc_runtime::cli::Cli::parse().run()
}
