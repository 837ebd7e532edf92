use super::model_keys::ModelKeys;
use crate::proving::plan::{unit_path, Plan};
use crate::proving::unit::{self, UnitProof};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use zkc_compiler::files::write_atomically;

/// Environment variables that number the tasks of an array job, in the order they are read:
/// a Kubernetes Indexed Job's and a Slurm job array's (docs/distributed.md).
pub const INDEX_VARIABLES: [&str; 2] = ["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"];

/// Prove one unit of a plan (one stage of one step) into its own proof file.
///
/// Stateless: it reruns the generation with the integer model up to the unit's step (checking
/// the plan's tokens), proves the unit's layer and writes `OUT/unit-N.zkunit` atomically. If a
/// valid proof of the unit is already there it does nothing, so a retried or duplicated task is
/// harmless. Without `--unit` the unit is the array task's index from `JOB_COMPLETION_INDEX`
/// (a Kubernetes Indexed Job) or `SLURM_ARRAY_TASK_ID` (a Slurm array, `--array=0-(N-1)`).
/// Examples:
///
///     zkc prove-part tiny.circ --keys tiny.keys --plan run.plan --unit 3 -o run.units
///     JOB_COMPLETION_INDEX=3 zkc prove-part tiny.circ --keys tiny.keys --plan run.plan -o run.units
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelKeys,
    /// The plan (`zkc plan`).
    #[arg(long)]
    pub plan: PathBuf,
    /// The unit to prove (its index in the plan); default: the array task's index.
    #[arg(long)]
    pub unit: Option<usize>,
    /// The directory of unit proofs (created if absent).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    pub fn run(self) -> ExitCode {
        super::exit_code(self.execute())
    }

    pub fn execute(&self) -> Result<(), Box<dyn std::error::Error>> {
        let start = Instant::now();
        let unit = unit_index(self.unit, |name| std::env::var(name).ok())?;
        let (plan, digest) = Plan::read(&self.plan)?;
        let vd = self.model.verifying_data()?;
        let path = unit_path(&self.output, unit);
        let report = |seconds: f64, done: &str| {
            let want = &plan.units[unit];
            match self.json {
                true => println!(
                    "{}",
                    serde_json::json!({"unit": unit, "step": want.step, "stage": want.stage, "layer": want.layer,
                                       "seconds": seconds, "path": path.display().to_string(), "done": done,
                                       "peak_rss_bytes": super::peak_rss_bytes()})
                ),
                false => println!(
                    "unit {unit} (step {}, `{}`) {done} in {seconds:.1} s: {}",
                    want.step,
                    want.layer,
                    path.display()
                ),
            }
        };
        if unit < plan.units.len() {
            if let Ok(bytes) = std::fs::read(&path) {
                if UnitProof::check(&bytes, &plan, &digest, unit, &vd.prepared()).is_ok() {
                    report(start.elapsed().as_secs_f64(), "was already proven");
                    return Ok(());
                }
            }
        }
        let loaded = self.model.load()?;
        // One proof: no key or matrices kept for later; matrices it builds go to the keys'
        // directory, where the next worker proving the layer reads them.
        let prover = self
            .model
            .prover(&loaded, &vd)?
            .with_key_budget(0)
            .with_shape_budget(0);
        let proof = unit::prove(
            &prover,
            &plan,
            &digest,
            unit,
            &mut rand::rngs::OsRng,
            &mut |_| {},
        )?;
        std::fs::create_dir_all(&self.output)
            .map_err(|e| format!("cannot create {}: {e}", self.output.display()))?;
        write_atomically(&path, &proof.to_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        report(start.elapsed().as_secs_f64(), "proven");
        Ok(())
    }
}

/// The unit to prove: `--unit`, else the first of [`INDEX_VARIABLES`] that `env` has.
fn unit_index(unit: Option<usize>, env: impl Fn(&str) -> Option<String>) -> Result<usize, String> {
    if let Some(unit) = unit {
        return Ok(unit);
    }
    for name in INDEX_VARIABLES {
        if let Some(value) = env(name) {
            return value
                .trim()
                .parse()
                .map_err(|_| format!("{name}={value:?} is not a unit index"));
        }
    }
    Err(format!(
        "which unit? give --unit N, or run as an array task ({} set)",
        INDEX_VARIABLES.join(" or ")
    ))
}

#[cfg(test)]
mod tests {
    use super::unit_index;

    fn env<'a>(vars: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn an_array_task_index_names_the_unit() {
        assert_eq!(
            unit_index(None, env(&[("JOB_COMPLETION_INDEX", "7")])),
            Ok(7)
        );
        assert_eq!(
            unit_index(None, env(&[("SLURM_ARRAY_TASK_ID", "12")])),
            Ok(12)
        );
        // Kubernetes' variable first; --unit over both.
        let both = [("SLURM_ARRAY_TASK_ID", "1"), ("JOB_COMPLETION_INDEX", "2")];
        assert_eq!(unit_index(None, env(&both)), Ok(2));
        assert_eq!(unit_index(Some(5), env(&both)), Ok(5));
    }

    #[test]
    fn no_index_or_a_bad_one_is_an_error() {
        let none = unit_index(None, env(&[])).unwrap_err();
        assert!(none.contains("give --unit N"), "{none}");
        let bad = unit_index(None, env(&[("SLURM_ARRAY_TASK_ID", "x")])).unwrap_err();
        assert!(bad.contains("SLURM_ARRAY_TASK_ID=\"x\""), "{bad}");
        assert!(unit_index(None, env(&[("JOB_COMPLETION_INDEX", "-1")])).is_err());
    }
}
