use zkc_compiler::backend::cost;
use zkc_compiler::passes::{self, Limits, Pass, PassReport};
use zkc_lang::Module;

/// Optimizer options shared by `compile`, `run` and `accuracy`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OptArgs {
    /// Run these passes, in this order, instead of the default ones (comma-separated: approx,
    /// shapes, arith).
    #[arg(long, value_name = "PASS,..", conflicts_with_all = ["no_opt", "approx"])]
    passes: Option<String>,
    /// Skip the optimizer: the quantizer's IR as it is.
    #[arg(long)]
    no_opt: bool,
    /// Run the approximate pass first (multipliers of fewer bits; changes rounding, see
    /// docs/accuracy.md).
    #[arg(long)]
    approx: bool,
    /// Print each pass's effect per layer and egg's runner report.
    #[arg(long)]
    verbose: bool,
}

impl OptArgs {
    pub fn approximate() -> OptArgs {
        OptArgs {
            approx: true,
            ..OptArgs::default()
        }
    }

    fn pipeline(&self) -> Result<Vec<&'static Pass>, passes::PassError> {
        match (&self.passes, self.no_opt) {
            (_, true) => Ok(Vec::new()),
            (Some(list), _) => passes::parse_pipeline(list),
            (None, _) => Ok(passes::default_pipeline(self.approx)),
        }
    }

    /// The module after the pipeline, or after pass `after` of it.
    pub fn optimize(&self, module: Module, after: Option<&str>) -> Result<Module, String> {
        let mut pipeline = self.pipeline().map_err(|e| e.to_string())?;
        if let Some(last) = after {
            let Some(k) = pipeline.iter().position(|p| p.name == last) else {
                let names: Vec<&str> = pipeline.iter().map(|p| p.name).collect();
                return Err(format!(
                    "--after {last}: the pipeline has no such pass (it runs: {})",
                    match names.is_empty() {
                        true => "none".to_string(),
                        false => names.join(", "),
                    }
                ));
            };
            pipeline.truncate(k + 1);
        }
        let (module, reports) =
            passes::run(module, &pipeline, &Limits::default()).map_err(|e| e.to_string())?;
        if let (Some(first), Some(last)) = (reports.first(), reports.last()) {
            // Per token at the largest context (the last bucket).
            let total = |r: &PassReport, f: fn(&passes::pipeline::LayerReport) -> usize| {
                let costs: Vec<usize> = r.layers.iter().map(f).collect();
                cost::per_token(&module, &costs).last().map_or(0, |t| t.1)
            };
            let (before, after) = (total(first, |l| l.before), total(last, |l| l.after));
            eprintln!(
                "optimized ({}): {before} -> {after} constraints per token at the full context ({:+.2}%)",
                pipeline
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", "),
                100.0 * (after as f64 - before as f64) / before.max(1) as f64
            );
        }
        for report in &reports {
            for layer in report.layers.iter().filter(|l| l.timed_out) {
                eprintln!(
                    "warning: pass {} stopped on its time limit in layer {}: the result may differ on a faster or slower machine",
                    report.pass, layer.layer
                );
            }
        }
        if self.verbose {
            for report in &reports {
                for layer in &report.layers {
                    let applied: Vec<String> = layer
                        .applied
                        .iter()
                        .map(|(r, n)| format!("{r} x{n}"))
                        .collect();
                    eprintln!(
                        "pass {} layer {}: {} -> {} constraints; applied: {}\n{}",
                        report.pass,
                        layer.layer,
                        layer.before,
                        layer.after,
                        match applied.is_empty() {
                            true => "nothing".to_string(),
                            false => applied.join(", "),
                        },
                        layer.runner
                    );
                }
            }
        }
        Ok(module)
    }
}
