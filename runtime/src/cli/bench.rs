use super::setup::bytes;
use super::{compile, gen_model, parse};
use crate::proving::reference::chain_rate;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// Measure the main job: setup, proving per token and per layer, verification, sizes and peak
/// memory, each stage in its own process (as a user runs them).
///
/// Makes a model of the preset's shape, compiles it, then runs `zkc setup` (keys for the one
/// context bucket the run needs), `zkc prove` (one prompt token, `--tokens` generated) and `zkc
/// verify` as child processes and reads their figures and peak RSS, then proves an x·x chain of
/// 2^19 constraints in-process: the reference rate the blocks' is compared with. Prints a
/// Markdown table; with `-o`, also writes it into that file
/// between `<!-- bench:NAME -->` markers (replacing an earlier run of the same name). A model
/// whose largest layer cannot be set up in this machine's memory is refused with the estimate.
/// Examples:
///
///     zkc bench
///     zkc bench --preset tiny --tokens 4 -o docs/benchmarks.md
///     zkc bench --preset gpt2-small --context 64 --tokens 3
///     zkc bench --preset llama-tiny --tokens 4
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The model's shape: GPT-2's (`tiny`, `gpt2-small`) or Llama's (`llama-tiny`, 4 query
    /// heads over 2 key/value heads; `smollm-135m`), as `zkc gen-model` makes them.
    #[arg(
        long,
        value_parser = ["tiny", "gpt2-small", "llama-tiny", "smollm-135m"],
        default_value = "tiny"
    )]
    preset: String,
    /// The largest context the artifact proves (`zkc compile --context`; default: the model's).
    #[arg(long)]
    context: Option<usize>,
    /// Tokens to generate (after a one-token prompt).
    #[arg(long, default_value_t = 2)]
    tokens: usize,
    /// Keep the model, keys and bundle in this directory (default: a temporary one, removed).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A Markdown file to write the table into.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

/// Bytes of proving key per constraint, measured on the tiny model's blocks with lookups
/// (26.5 MiB for 51,633 constraints at bucket 16: more witnesses per constraint than with bits);
/// with setup's peak at [`SETUP_PEAK_PER_KEY`] times the key, what decides feasibility.
const PK_BYTES_PER_CONSTRAINT: f64 = 540.0;

/// Setup's peak memory over the proving key's size: 3.1 on tiny (548 MiB for 174 MiB of keys);
/// a gpt2-small block's setup (21.1M constraints, an 8.5 GB key by the estimate) was at 15 GB a
/// minute in and still growing.
const SETUP_PEAK_PER_KEY: f64 = 3.0;

impl Args {
    pub fn run(self) -> ExitCode {
        super::exit_code(self.execute())
    }

    fn execute(&self) -> Result<(), Box<dyn std::error::Error>> {
        let table = super::in_directory(self.dir.as_deref(), "bench", |dir| self.measure(dir))?;
        println!("{table}");
        if let Some(path) = &self.output {
            write_section(path, &self.preset, &table)?;
            println!("wrote the table into {}", path.display());
        }
        Ok(())
    }

    fn measure(&self, dir: &Path) -> Result<String, Box<dyn std::error::Error>> {
        let file = |name: &str| dir.join(name).display().to_string();
        let (gguf, circ, keys, run) = (
            file("model.gguf"),
            file("model.circ"),
            file("model.keys"),
            file("run.zkp"),
        );
        let (arch, shape) = match self.preset.as_str() {
            "llama-tiny" => ("llama", "tiny"),
            "smollm-135m" => ("llama", "smollm-135m"),
            gpt2 => ("gpt2", gpt2),
        };
        parse::<gen_model::Args>(&["gen-model", arch, "--preset", shape, "-o", &gguf])?
            .execute()?;
        // Calibrated on random tokens: the bench measures proving, and a float pass over the
        // built-in text takes minutes on gpt2-small shape for random weights that gain nothing.
        let context = self.context.map(|c| c.to_string());
        let mut compile = vec!["compile", &gguf, "--calib-tokens", "128", "-o", &circ];
        if let Some(c) = &context {
            compile.extend(["--context", c]);
        }
        parse::<compile::Args>(&compile)?.execute()?;
        let module = zkc_compiler::artifact::read(Path::new(&circ))?.module;
        let bucket = module.bucket_for(1 + self.tokens);
        let buckets: Option<Vec<usize>> = bucket.map(|b| vec![b]);
        // The keyed layers' constraints, in the setup's order.
        let counts: Vec<usize> = module
            .layers
            .iter()
            .filter(|l| zkc_lang::buckets::keyed(l, buckets.as_deref()))
            .map(|l| zkc_compiler::backend::cost::layer(&module, l).1)
            .collect();
        let largest = counts.iter().copied().max().unwrap_or(0);
        let key = largest as f64 * PK_BYTES_PER_CONSTRAINT;
        let memory = physical_memory();
        if SETUP_PEAK_PER_KEY * key > memory as f64 {
            return Err(format!(
                "the largest layer has {largest} constraints: its proving key would be about {} and setup needs about three times that, more than this machine's {} (see docs/benchmarks.md)",
                bytes(key as u64),
                bytes(memory)
            )
            .into());
        }
        let bucket = bucket.map(|b| b.to_string());
        let mut setup_args = vec!["setup", &circ, "-o", &keys, "--json"];
        if let Some(b) = &bucket {
            setup_args.extend(["--buckets", b]);
        }
        let setup = child(&setup_args)?;
        let max_new = self.tokens.to_string();
        let prove = child(&[
            "prove",
            &circ,
            "--keys",
            &keys,
            "--tokens",
            "1",
            "--max-new",
            &max_new,
            "-o",
            &run,
            "--json",
        ])?;
        let vk = Path::new(&keys).join("vk").display().to_string();
        let verify = child(&["verify", &vk, &run, "--json"])?;
        let reference = chain_rate(REFERENCE_CHAIN, &mut rand::rngs::OsRng)?;
        Ok(table(
            &self.preset,
            &counts,
            [&setup, &prove, &verify],
            reference,
        ))
    }
}

/// Constraints of the reference `x·x` chain the layers' proving rate is compared with (about a
/// d=768 block's size).
const REFERENCE_CHAIN: usize = 1 << 19;

/// A child's JSON report and peak resident memory.
struct Child {
    report: Value,
    rss: u64,
}

/// The table from the setup, prove and verify children's reports.
fn table(preset: &str, counts: &[usize], children: [&Child; 3], reference: f64) -> String {
    let [setup, prove, verify] = children.map(|c| &c.report);
    let [setup_rss, prove_rss, verify_rss] = children.map(|c| c.rss);
    let num = |v: &Value| v.as_f64().unwrap_or(0.0);
    let steps = prove["steps"].as_u64().unwrap_or(0).max(1) as f64;
    let step_seconds: Vec<f64> = prove["step_seconds"]
        .as_array()
        .map_or(vec![], |a| a.iter().map(num).collect());
    let per_step = step_seconds.iter().sum::<f64>() / steps;
    let mut out = format!(
        "| `{preset}` | figure |\n| --- | --- |\n\
         | constraints per token | {} |\n\
         | setup | {:.1} s, peak RSS {} |\n\
         | proving keys | {} in all; verifying data {} |\n\
         | prove | {per_step:.2} s per token ({:.0} constraints/s), peak RSS {} |\n\
         | verify | {:.1} ms per token, peak RSS {} |\n\
         | proof | {} B of Groth16 proofs per token; bundle {} for {} steps |\n",
        counts.iter().sum::<usize>(),
        num(&setup["seconds"]),
        bytes(setup_rss),
        bytes(setup["layers"].as_array().map_or(0, |a| {
            a.iter().map(|l| l["pk_bytes"].as_u64().unwrap_or(0)).sum()
        })),
        bytes(setup["vk_bytes"].as_u64().unwrap_or(0)),
        counts.iter().sum::<usize>() as f64 / per_step.max(1e-9),
        bytes(prove_rss),
        num(&verify["seconds"]) * 1e3 / steps,
        bytes(verify_rss),
        prove["proof_bytes_per_step"],
        bytes(prove["bundle_bytes"].as_u64().unwrap_or(0)),
        steps,
    );
    let layer_seconds = prove["layer_seconds"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // Per layer, over the steps that ran it (its bucket): the mean and the fastest. The blocks'
    // rate is over the circuits holding a block (joined or not).
    let ran =
        |k: usize| -> Vec<f64> { layer_seconds.iter().filter_map(|s| s[k].as_f64()).collect() };
    let layers: Vec<&Value> = setup["layers"].as_array().into_iter().flatten().collect();
    let blocks: Vec<usize> = (0..layers.len())
        .filter(|&k| layers[k]["name"].as_str().unwrap_or("").contains("block"))
        .filter(|&k| !ran(k).is_empty())
        .collect();
    let block_constraints: usize = blocks
        .iter()
        .map(|&k| counts.get(k).copied().unwrap_or(0))
        .sum();
    let block_seconds: f64 = blocks
        .iter()
        .map(|&k| ran(k).into_iter().fold(f64::MAX, f64::min))
        .sum();
    let block_rate = block_constraints as f64 / block_seconds.max(1e-9);
    out += &format!(
        "| prover rate | blocks {block_rate:.0} constraints/s at their fastest step; an x·x chain of {REFERENCE_CHAIN} constraints {reference:.0}/s in the same run (ratio {:.2}) |\n",
        block_rate / reference
    );
    out += "\n| layer | constraints | setup s | proving key | prove s per token |\n| --- | --- | --- | --- | --- |\n";
    for (k, layer) in layers.iter().enumerate() {
        let ran = ran(k);
        let mean = ran.iter().sum::<f64>() / ran.len().max(1) as f64;
        out += &format!(
            "| {} | {} | {:.1} | {} | {mean:.2} |\n",
            layer["name"].as_str().unwrap_or("?"),
            counts.get(k).copied().unwrap_or(0),
            num(&layer["seconds"]),
            bytes(layer["pk_bytes"].as_u64().unwrap_or(0)),
        );
    }
    out
}

/// Runs `zkc ARGS` as a child; its JSON output and its peak resident memory.
fn child(args: &[&str]) -> Result<Child, Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let child = Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let pid = child.id();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.expect("piped"), &mut stdout)?;
    let (status, rss) = wait_with_rusage(pid)?;
    if status != 0 {
        return Err(format!("`zkc {}` failed", args.join(" ")).into());
    }
    let report: Value = serde_json::from_str(stdout.trim())?;
    // The child's own figure where it gives one: wait4's counts this process's pages too.
    let rss = report["peak_rss_bytes"].as_u64().unwrap_or(rss);
    Ok(Child { report, rss })
}

#[cfg(unix)]
fn wait_with_rusage(pid: u32) -> std::io::Result<(i32, u64)> {
    let mut status = 0;
    // SAFETY: wait4 writes only into the two out-parameters, both valid for the call.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((code, usage.ru_maxrss as u64 * 1024))
}

fn physical_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(u64::MAX, |kib| kib * 1024)
}

/// Writes `table` into `path` between this run's markers, replacing an earlier one.
fn write_section(path: &Path, name: &str, table: &str) -> std::io::Result<()> {
    let (open, close) = (
        format!("<!-- bench:{name} -->"),
        format!("<!-- /bench:{name} -->"),
    );
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let section = format!("{open}\n{table}{close}");
    let updated = match (text.find(&open), text.find(&close)) {
        (Some(a), Some(b)) if a < b => {
            format!("{}{section}{}", &text[..a], &text[b + close.len()..])
        }
        _ => format!("{text}\n{section}\n"),
    };
    zkc_compiler::files::write_atomically(path, updated.as_bytes())
}

#[cfg(not(unix))]
fn wait_with_rusage(_pid: u32) -> std::io::Result<(i32, u64)> {
    Err(std::io::Error::other(
        "zkc bench measures memory on Unix only",
    ))
}
