use super::setup::bytes;
use crate::proving::assemble::assemble;
use crate::proving::keys::VerifyingData;
use crate::proving::plan::Plan;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use zkc_compiler::files::write_atomically;

/// Assemble the units' proofs of a plan into a proof bundle, checking each one and every link.
///
/// Each unit file must be the plan's own (same plan, unit, step, stage and key) and its proof
/// must verify; a set with units missing is refused with the list of them. The assembled bundle
/// is checked as `zkc verify` checks it before it is written (atomically): it is the same kind
/// of bundle a single-process `zkc prove` writes. Example:
///
///     zkc bundle tiny.keys/vk --plan run.plan --units run.units -o run.zkp
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The verifying data (`KEYS/vk` from `zkc setup`).
    pub vk: PathBuf,
    /// The plan (`zkc plan`).
    #[arg(long)]
    pub plan: PathBuf,
    /// The directory of unit proofs (`zkc prove-part -o`).
    #[arg(long)]
    pub units: PathBuf,
    /// The proof bundle to write.
    #[arg(short, long)]
    pub output: PathBuf,
}

impl Args {
    pub fn run(self) -> ExitCode {
        super::exit_code(self.execute())
    }

    pub fn execute(&self) -> Result<(), Box<dyn std::error::Error>> {
        let start = Instant::now();
        let vd = VerifyingData::read(&self.vk)?;
        let (plan, digest) = Plan::read(&self.plan)?;
        let bundle = assemble(&vd, &plan, &digest, &self.units)?;
        let out = bundle.to_bytes();
        write_atomically(&self.output, &out)
            .map_err(|e| format!("cannot write {}: {e}", self.output.display()))?;
        println!(
            "assembled and verified {} steps, {} unit proofs in {:.1} s; wrote {} ({})",
            bundle.steps.len(),
            plan.units.len(),
            start.elapsed().as_secs_f64(),
            self.output.display(),
            bytes(out.len() as u64)
        );
        Ok(())
    }
}
