use super::opt_args::OptArgs;
use super::quant_args::QuantArgs;
use crate::interp::{layers_at_step_zero, Interpreter};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use zkc_compiler::artifact;
use zkc_compiler::backend::cost;
use zkc_compiler::backend::layer::Tables;
use zkc_compiler::backend::measure::Counts;
use zkc_compiler::files::write_atomically;
use zkc_compiler::gguf::GgufFile;
use zkc_compiler::model::FloatModel;
use zkc_compiler::quantize::quantize_with;
use zkc_compiler::tokenizer::Tokenizer;

/// Compile a GGUF model, an ONNX model (or IR text) into zkc's integer IR and its proving
/// artifact.
///
/// IR text (`MODEL.zkir`: what `--emit ir` writes, edited, or written by hand, e.g.
/// `examples/gpt2_block.zkir`) is taken as it is, checked with span diagnostics and as a model
/// the runtime proves (a token loop or a single pass, docs/quantization.md), then cut, optimized
/// and joined as below; the quantization options do not apply to it.
///
/// An ONNX model (`NET.onnx`, docs/onnx.md) becomes a single-pass model, calibrated on
/// `--calibrate FILE`'s inputs (EZKL's data format, samples one after another) or, without
/// it, on seeded standard-normal inputs.
///
/// Calibrates the float model on text (`--calibrate FILE`, or zkc's built-in English text for
/// models with a tokenizer; seeded random tokens otherwise), picks fixed-point scales, quantizes the
/// weights (per output channel) and lowers every op to integer ops: one IR layer for the
/// embedding, one per transformer block, one for the head; a layer above `--max-constraints` is
/// cut into parts. Then the optimizer (equality
/// saturation, fewest constraints; `--no-opt` skips it, `--passes` picks passes, `--approx` adds
/// the approximate one, `--emit ir --after PASS` stops after PASS). Last (not with `--after`),
/// a head above `--max-constraints` is cut into slices of its vocabulary (`head.vocabK`, the
/// argmax carried from slice to slice), and adjacent layers are joined while the joined circuit
/// stays within `--join-max-constraints` (fewer proofs, links and lookup tables). The default output is the versioned
/// artifact `MODEL.circ` (a header with the model's and the IR's SHA-256, then the IR); `--emit
/// ir` writes the bare IR text (it passes `zkc check` and runs bit-identically with `zkc run`);
/// `--emit stats` prints each layer's constraint count by op (from the gadgets' formulas, at any
/// size); with `--exact` it builds each layer's constraint system (from one step of the
/// interpreter) and also counts witness variables and matrix nonzeros, for layers within
/// `--max-constraints` (a layer is held whole in memory to count, as setup holds it). Examples:
///
///     zkc compile tiny.gguf -o tiny.circ
///     zkc compile tiny.gguf --emit ir -o tiny.zkir
///     zkc compile tiny.gguf --emit stats [--exact] [--json]
///     zkc compile tiny.gguf --emit ir --after shapes --verbose -o shapes.zkir
///     zkc compile examples/gpt2_block.zkir -o block.circ
///     zkc compile net.onnx --calibrate calibration.json -o net.circ
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The GGUF model, an ONNX model (`.onnx`), or IR text (`.zkir`).
    model: PathBuf,
    /// What to produce: the artifact, the IR text, or constraint counts per layer.
    #[arg(long, value_parser = ["circ", "ir", "stats"], default_value = "circ")]
    emit: String,
    /// The output file (for `circ` and `ir`).
    #[arg(short, long, required_if_eq_any([("emit", "ir"), ("emit", "circ")]))]
    output: Option<PathBuf>,
    /// Stats as JSON.
    #[arg(long)]
    json: bool,
    /// Stats from built constraint systems: also witness variables and matrix nonzeros.
    #[arg(long)]
    exact: bool,
    /// The most constraints one circuit may have: a layer above it is cut into parts at value
    /// boundaries (`NAME.partK`, each its own circuit and proof, linked by commitments) and
    /// attention between groups of heads (`NAME.cachesK`), before the optimizer runs on them;
    /// after it, adjacent layers are joined (`A_B`) while they fit. The default, 2^21, keeps a
    /// circuit's setup and proof near 6 GB here (three d=768 blocks joined, 2.0M constraints:
    /// setup 5.7 GiB, proof 6.0 GiB).
    #[arg(long, default_value_t = 1 << 21, value_name = "N")]
    max_constraints: usize,
    /// Adjacent layers are joined into one circuit while it has at most this many constraints
    /// (and at most --max-constraints; 0 joins nothing). Joining saves proofs, links and lookup
    /// tables; a prover's memory grows with its largest circuit, which the default, 2^21 like
    /// --max-constraints, keeps near 6 GB here (it was 2^19 while setup took 16 KB per
    /// constraint).
    #[arg(long, default_value_t = 1 << 21, value_name = "N")]
    join_max_constraints: usize,
    /// With `--emit ir`: the IR as it is after this pass of the pipeline.
    #[arg(long, value_name = "PASS")]
    after: Option<String>,
    #[command(flatten)]
    quant: QuantArgs,
    #[command(flatten)]
    opt: OptArgs,
}

impl Args {
    pub fn run(self) -> ExitCode {
        super::exit_code(self.execute())
    }

    pub fn execute(&self) -> Result<(), Box<dyn std::error::Error>> {
        let start = Instant::now();
        if self.after.is_some() && self.emit != "ir" {
            return Err("--after needs --emit ir (the IR after that pass)".into());
        }
        let (quantized, tokenizer, summary) = match self.model.extension() {
            Some(e) if e == "zkir" => (self.checked_ir()?, None, "IR text".to_string()),
            _ if zkc_compiler::onnx::is_onnx(&self.model) => {
                let model = super::onnx_model::load(&self.model)?;
                let (module, summary) = super::onnx_model::quantized(&model, &self.quant)?;
                (module, None, summary)
            }
            _ => self.quantized()?,
        };
        let module = zkc_compiler::parts::split(quantized, self.max_constraints)?;
        let mut module = self.opt.optimize(module, self.after.as_deref())?;
        if self.after.is_none() {
            module = zkc_compiler::parts::slice_vocabulary(module, self.max_constraints);
            let stages = module.stages().len();
            let join_max = self.join_max_constraints.min(self.max_constraints);
            module = zkc_compiler::parts::join(module, join_max);
            if module.stages().len() < stages {
                eprintln!(
                    "joined {stages} layers into {} circuits per token (each within {join_max} constraints)",
                    module.stages().len()
                );
            }
        }
        warn_above(&module, self.max_constraints);
        zkc_compiler::backend::check::check(&module)?;
        let Some(output) = self.output.as_ref().filter(|_| self.emit != "stats") else {
            let measured = if self.exact {
                measure(&module, self.max_constraints)?
            } else {
                Vec::new()
            };
            print_stats(&module, &measured, self.json);
            return Ok(());
        };
        if self.emit == "circ" {
            let model_sha = artifact::sha256_file(&self.model)
                .map_err(|e| format!("cannot read {}: {e}", self.model.display()))?;
            let header =
                artifact::write(output, &module, tokenizer.as_ref(), &model_sha, &summary)?;
            println!(
                "wrote {} (IR {} bytes, sha256 {}) in {:.1} s",
                output.display(),
                header.ir_bytes,
                header.ir_sha256,
                start.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        let text = zkc_lang::print(&module);
        write_atomically(output, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", output.display()))?;
        let insts: usize = module.layers.iter().map(|l| l.insts.len()).sum();
        println!(
            "wrote {} ({} bytes): {} layers, {insts} instructions, {} constants ({}) in {:.1} s",
            output.display(),
            text.len(),
            module.layers.len(),
            module.consts.len(),
            summary,
            start.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// The GGUF model calibrated and quantized (at the context `--context` asks for, else the
    /// longest whose attention fits `--max-constraints` uncut), its tokenizer and the
    /// quantization's summary.
    fn quantized(
        &self,
    ) -> Result<(zkc_lang::Module, Option<Tokenizer>, String), Box<dyn std::error::Error>> {
        let gguf = GgufFile::open(&self.model)?;
        let model = FloatModel::load(&gguf)?;
        let tokenizer = Tokenizer::from_gguf(&gguf).ok();
        let mut config = self.quant.config(tokenizer.as_ref())?;
        let ranges = zkc_compiler::quantize::ranges(&model, &config)?;
        let mut quantized = quantize_with(&model, &ranges, &config)?;
        if config.context.is_none() {
            let full = quantized.contexts().last().copied();
            let uncut =
                zkc_compiler::parts::longest_uncut_context(&quantized, self.max_constraints)?;
            if let (Some(full), Some(uncut)) = (full, uncut.filter(|&c| Some(c) < full)) {
                eprintln!(
                    "note: proving up to {uncut} positions, the most whose attention fits --max-constraints {} uncut (the model has {full}); --context {full} cuts attention between heads, more proofs per token",
                    self.max_constraints
                );
                config.context = Some(uncut);
                quantized = quantize_with(&model, &ranges, &config)?;
            }
        }
        Ok((quantized, tokenizer, config.summary()))
    }

    /// A module written as IR text (`zkc compile --emit ir`'s, edited or by hand), checked with
    /// span diagnostics and as a model the runtime proves: its stages, inputs, states and
    /// outputs (a token loop or a single pass: docs/quantization.md "The model interface").
    fn checked_ir(&self) -> Result<zkc_lang::Module, Box<dyn std::error::Error>> {
        let name = self.model.display().to_string();
        let Some((source, parsed)) = super::source::load_checked(&self.model) else {
            return Err(format!("{name} is not valid IR (see above)").into());
        };
        let interface = Interpreter::new(parsed.module.clone())
            .and_then(|interp| crate::interp::ModelKind::of(interp.module()).map(|_| ()));
        match interface {
            Ok(()) => Ok(parsed.module),
            Err(e) => {
                let layer = match &e {
                    crate::interp::InterpError::Interface { layer: Some(l), .. } => {
                        parsed.module.layers.iter().position(|x| &x.name == l)
                    }
                    _ => None,
                };
                if let Some(span) = layer.and_then(|k| parsed.spans.layers.get(k)) {
                    let message = format!("not a model zkc proves: {e}");
                    super::source::report_at(&name, &source, span.name.clone(), &message);
                }
                Err(format!("{name} is not a model zkc proves: {e}").into())
            }
        }
    }
}

/// Says which circuits are still above `--max-constraints` (no value boundary cuts them:
/// attention with its KV caches at long contexts), in one line.
fn warn_above(module: &zkc_lang::Module, max: usize) {
    let above: Vec<(String, usize)> = (0..module.layers.len())
        .map(|k| {
            let n = cost::layer(module, &module.layers[k]).1;
            (cost::layer_label(module, k), n)
        })
        .filter(|&(_, n)| n > max)
        .collect();
    if let Some((largest, n)) = above.iter().max_by_key(|(_, n)| *n) {
        eprintln!(
            "warning: {} circuits are above --max-constraints {max}, the largest `{largest}` ({n}): neither a value boundary nor a cut between cache groups makes them smaller",
            above.len()
        );
    }
}

/// Each layer's measured counts by op, `None` where the layer is too large to build here.
type Measured = Vec<Option<BTreeMap<&'static str, Counts>>>;

/// Each layer within `max` constraints built and measured.
fn measure(module: &zkc_lang::Module, max: usize) -> Result<Measured, Box<dyn std::error::Error>> {
    let interp = Interpreter::new(module.clone())?;
    let fits = |index: usize| cost::layer(module, &module.layers[index]).1 <= max;
    let witness = layers_at_step_zero(&interp, &fits)?;
    let tables = Tables::new(module);
    let mut measured = Vec::new();
    for (index, run) in witness.iter().enumerate() {
        measured.push(match run {
            Some(run) => Some(zkc_compiler::backend::measure::layer(
                module,
                &tables,
                index,
                &run.values,
            )?),
            None => None,
        });
    }
    Ok(measured)
}

fn print_stats(module: &zkc_lang::Module, measured: &Measured, json: bool) {
    let layers: Vec<(String, BTreeMap<&str, usize>, usize)> = module
        .layers
        .iter()
        .enumerate()
        .map(|(k, l)| {
            let (by_op, total) = cost::layer(module, l);
            (cost::layer_label(module, k), by_op, total)
        })
        .collect();
    let costs: Vec<usize> = layers.iter().map(|l| l.2).collect();
    let per_token = cost::per_token(module, &costs);
    let sum = |m: &BTreeMap<&str, Counts>| {
        m.values().fold(Counts::default(), |mut a, &c| {
            a += c;
            a
        })
    };
    if json {
        let counts = |c: &Counts| serde_json::json!({"constraints": c.constraints, "witnesses": c.witnesses, "nonzeros": c.nonzeros});
        let value = serde_json::json!({
            "layers": layers.iter().enumerate().map(|(k, (name, by_op, total))| {
                let mut layer = serde_json::json!({ "name": name, "constraints": total, "by_op": by_op });
                if let Some(Some(m)) = measured.get(k) {
                    layer["measured"] = counts(&sum(m));
                    layer["measured_by_op"] = m.iter().map(|(op, c)| (op.to_string(), counts(c))).collect::<serde_json::Map<_, _>>().into();
                }
                layer
            }).collect::<Vec<_>>(),
            "constraints_per_token": per_token.last().map_or(0, |t| t.1),
            "buckets": per_token.iter().map(|(c, t)| serde_json::json!({"context": c, "constraints_per_token": t})).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("JSON values serialise")
        );
        return;
    }
    for (k, (name, by_op, layer_total)) in layers.iter().enumerate() {
        let ops: Vec<String> = by_op
            .iter()
            .filter(|(_, &c)| c > 0)
            .map(|(op, c)| format!("{op} {c}"))
            .collect();
        println!(
            "{name:>10}: {layer_total:>12} constraints ({})",
            ops.join(", ")
        );
        match measured.get(k) {
            Some(Some(m)) => {
                let all = sum(m);
                let ops: Vec<String> = m
                    .iter()
                    .filter(|(_, c)| c.witnesses + c.nonzeros > 0)
                    .map(|(op, c)| format!("{op} {}/{}", c.witnesses, c.nonzeros))
                    .collect();
                println!(
                    "{:>10}  {:>12} witnesses, {} nonzeros (witnesses/nonzeros: {})",
                    "",
                    all.witnesses,
                    all.nonzeros,
                    ops.join(", ")
                );
            }
            Some(None) => println!("{:>10}  not built: above --max-constraints", ""),
            None => {}
        }
    }
    for (context, total) in per_token {
        let label = context.map_or("total".to_string(), |c| format!("total@{c}"));
        println!("{label:>10}: {total:>12} constraints per token");
    }
}
