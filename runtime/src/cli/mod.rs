//! The `zkc` command line: one file per subcommand.

mod accuracy;
mod bench;
mod bundle;
mod check;
mod compile;
mod demo;
mod fmt;
mod gen_model;
mod inspect;
mod model_keys;
mod onnx_model;
mod opt_args;
mod plan;
mod progress;
mod prompt;
mod prove;
mod prove_part;
mod quant_args;
mod run;
mod setup;
mod source;
mod verify;

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
    Bench(bench::Args),
    Bundle(bundle::Args),
    Check(check::Args),
    Compile(compile::Args),
    Demo(demo::Args),
    Fmt(fmt::Args),
    GenModel(gen_model::Args),
    Inspect(inspect::Args),
    Plan(plan::Args),
    Prove(prove::Args),
    ProvePart(prove_part::Args),
    Run(run::Args),
    Setup(setup::Args),
    Verify(verify::Args),
}

impl Cli {
    pub fn run(self) -> ExitCode {
        match self.command {
            Command::Accuracy(args) => args.run(),
            Command::Bench(args) => args.run(),
            Command::Bundle(args) => args.run(),
            Command::Check(args) => args.run(),
            Command::Compile(args) => args.run(),
            Command::Demo(args) => args.run(),
            Command::Fmt(args) => args.run(),
            Command::GenModel(args) => args.run(),
            Command::Inspect(args) => args.run(),
            Command::Plan(args) => args.run(),
            Command::Prove(args) => args.run(),
            Command::ProvePart(args) => args.run(),
            Command::Run(args) => args.run(),
            Command::Setup(args) => args.run(),
            Command::Verify(args) => args.run(),
        }
    }
}

/// One subcommand's options from words, as the command line would give them (`demo` and `bench`
/// run the other subcommands this way, so they take the users' path through the code).
fn parse<T: clap::Args + clap::FromArgMatches>(words: &[&str]) -> Result<T, clap::Error> {
    let command = T::augment_args(clap::Command::new("zkc").no_binary_name(true));
    T::from_arg_matches(&command.try_get_matches_from(&words[1..])?)
}

/// This process's peak resident memory so far (`VmHWM`), for the `--json` reports. A parent's
/// `wait4` can overstate a child's: the child's figure includes the pages of the parent it was
/// spawned from, before `exec` (`zkc bench` holds gigabytes when it spawns `zkc verify`).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The exit code of a subcommand's result, printing its error.
fn exit_code<T>(result: Result<T, Box<dyn std::error::Error>>) -> ExitCode {
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `job` in `dir`, or in a temporary directory named after `what` that is removed after.
fn in_directory<T>(
    dir: Option<&std::path::Path>,
    what: &str,
    job: impl FnOnce(&std::path::Path) -> Result<T, Box<dyn std::error::Error>>,
) -> Result<T, Box<dyn std::error::Error>> {
    let temporary = std::env::temp_dir().join(format!("zkc-{what}-{}", std::process::id()));
    let path = dir.unwrap_or(&temporary);
    std::fs::create_dir_all(path)?;
    let result = job(path);
    if dir.is_none() {
        let _ = std::fs::remove_dir_all(path);
    }
    result
}
