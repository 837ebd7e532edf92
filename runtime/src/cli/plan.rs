use super::model_keys::ModelKeys;
use super::prompt::PromptArgs;
use super::prove::list;
use crate::proving::plan::Plan;
use std::path::PathBuf;
use std::process::ExitCode;
use zkc_compiler::files::write_atomically;

/// Fix a generation's transcript and list its units of proving work, without proving.
///
/// Runs the integer model greedily over the prompt (as `zkc prove` would) and writes the plan: the
/// token fed and chosen at every step, and one unit per (step, stage), each with the key it
/// proves with and an estimate of a worker's memory. Each unit is then proven on its own by
/// `zkc prove-part`, on any machine that sees the artifact, the keys and the plan, and `zkc
/// bundle` assembles the proofs into the bundle `zkc verify` reads (docs/distributed.md).
/// Examples:
///
///     zkc plan tiny.circ --keys tiny.keys --prompt "Hello" --max-new 4 -o run.plan
///     zkc prove-part tiny.circ --keys tiny.keys --plan run.plan --unit 0 -o run.units
///     zkc bundle tiny.keys/vk --plan run.plan --units run.units -o run.zkp
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelKeys,
    #[command(flatten)]
    pub prompt: PromptArgs,
    /// How many tokens to generate (fewer if the context fills).
    #[arg(long, default_value_t = 4)]
    pub max_new: usize,
    /// The plan to write (JSON).
    #[arg(short, long)]
    pub output: PathBuf,
}

impl Args {
    pub fn run(self) -> ExitCode {
        super::exit_code(self.execute())
    }

    pub fn execute(&self) -> Result<Plan, Box<dyn std::error::Error>> {
        let loaded = self.model.load()?;
        let prompt = self.prompt.ids(loaded.tokenizer.as_ref())?;
        let vd = self.model.verifying_data()?;
        let prover = self.model.prover(&loaded, &vd)?;
        let artifact_bytes = std::fs::metadata(&self.model.artifact).map_or(0, |m| m.len());
        let plan = Plan::make(&prover, &prompt, self.max_new, artifact_bytes)?;
        write_atomically(&self.output, plan.to_json().as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", self.output.display()))?;
        let text = loaded.tokenizer.as_ref().map_or(String::new(), |t| {
            format!(" {:?}", t.decode(plan.generated()))
        });
        println!(
            "planned {} steps of {} stages: {} units; generates {}{text}; wrote {}",
            plan.inputs.len(),
            plan.stages(),
            plan.units.len(),
            list(plan.generated()),
            self.output.display()
        );
        Ok(plan)
    }
}
