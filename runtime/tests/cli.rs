//! The `zkc` binary as a user runs it: exit codes, stdout and stderr of `check` and `fmt`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tempfile::TempDir;

fn zkc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zkc"))
        .args(args)
        .output()
        .expect("zkc runs")
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// A fresh directory `zkc-cli-NAME-XXXXXX`, removed when dropped.
fn temp_dir(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("zkc-cli-{name}-"))
        .tempdir()
        .unwrap()
}

/// `text` written as `name` in a fresh directory, which lives as long as the returned `TempDir`.
fn temp_copy(name: &str, text: &str) -> (TempDir, PathBuf) {
    let dir = temp_dir(name);
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn check_accepts_every_example() {
    for entry in std::fs::read_dir(repo("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "zkir") {
            let out = zkc(&["check", path.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
        }
    }
}

#[test]
fn check_rejects_with_span_and_exit_1() {
    let (_dir, path) = temp_copy(
        "bad.zkir",
        "zkir 1\nlayer l(%x: i8[2]) {\n  %y = add %x, %z : i8[2]\n  return %y\n}\n",
    );
    let out = zkc(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("undefined value `%z`"), "{stderr}");
    assert!(
        stderr.contains("bad.zkir:3:16"),
        "diagnostic points at the use: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour when stderr is not a terminal"
    );
}

#[test]
fn check_reports_a_missing_file() {
    let out = zkc(&["check", "/nonexistent/model.zkir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/model.zkir"));
}

#[test]
fn fmt_is_canonical_and_idempotent() {
    let source =
        std::fs::read_to_string(repo("tests/filetests/parse/ok/comments_and_spacing.zkir"))
            .unwrap();
    let (_dir, path) = temp_copy("messy.zkir", &source);
    let once = zkc(&["fmt", path.to_str().unwrap()]);
    assert!(once.status.success());
    let formatted = String::from_utf8(once.stdout).unwrap();
    assert_ne!(formatted, source);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        source,
        "without --write the file is untouched"
    );

    let write = zkc(&["fmt", "--write", path.to_str().unwrap()]);
    assert!(write.status.success());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), formatted);
    let twice = zkc(&["fmt", path.to_str().unwrap()]);
    assert_eq!(String::from_utf8(twice.stdout).unwrap(), formatted);
    let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file is left behind");
}

#[test]
fn fmt_refuses_an_invalid_file_and_leaves_it_alone() {
    let text = "zkir 1\nlayer l(%x: i8[2]) {\n  %y = frob %x : i8[2]\n  return %y\n}\n";
    let (_dir, path) = temp_copy("invalid.zkir", text);
    let out = zkc(&["fmt", "--write", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn help_explains_each_subcommand_with_an_example() {
    for args in [&["--help"][..], &["check", "--help"], &["fmt", "--help"]] {
        let out = zkc(args);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("zkc check") || text.contains("zkc fmt"),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn gen_model_inspect_and_run_float() {
    let dir = temp_dir("model");
    let model = dir.path().join("tiny.gguf");
    let model = model.to_str().unwrap();
    let out = zkc(&[
        "gen-model",
        "gpt2",
        "--layers",
        "1",
        "--d-model",
        "32",
        "--heads",
        "2",
        "--ctx",
        "16",
        "--vocab",
        "300",
        "-o",
        model,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = zkc(&["inspect", model]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("architecture: gpt2") && text.contains("blk.0.attn_qkv.weight"),
        "{text}"
    );
    let out = zkc(&["inspect", model, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["hyperparameters"]["n_embd"], 32);
    assert_eq!(json["tokenizer"]["tokens"], 300);
    assert_eq!(json["tensors"].as_array().unwrap().len(), 16);

    let run = |args: &[&str]| {
        let out = zkc(&[&["run", model, "--float"], args].concat());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let a = run(&["--tokens", "1,2,3", "--max-new", "4", "--logits"]);
    assert_eq!(
        a,
        run(&["--tokens", "1,2,3", "--max-new", "4", "--logits"]),
        "deterministic"
    );
    let generated = a
        .lines()
        .find_map(|l| l.strip_prefix("generated: "))
        .unwrap();
    assert_eq!(generated.split(',').count(), 4);
    let logits = a.lines().find_map(|l| l.strip_prefix("logits: ")).unwrap();
    assert_eq!(logits.split(',').count(), 300);
    assert!(run(&["--prompt", "hi there", "--max-new", "2"]).contains("text: \"hi there\""));

    let circ = dir.path().join("tiny.circ");
    let circ = circ.to_str().unwrap();
    assert!(zkc(&["compile", model, "-o", circ]).status.success());
    let from_circ = zkc(&["run", circ, "--tokens", "1,2,3", "--max-new", "4"]);
    let from_gguf = zkc(&["run", model, "--tokens", "1,2,3", "--max-new", "4"]);
    let generated = |out: &Output| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with("generated: "))
            .map(String::from)
    };
    assert_eq!(
        generated(&from_circ),
        generated(&from_gguf),
        "the artifact runs as the model does"
    );
    assert!(generated(&from_circ).is_some());
    let mut bytes = std::fs::read(circ).unwrap();
    let k = bytes.len() / 2;
    bytes[k] ^= 0x20;
    std::fs::write(circ, bytes).unwrap();
    let corrupt = zkc(&["run", circ, "--tokens", "1"]);
    assert!(
        String::from_utf8_lossy(&corrupt.stderr).contains("is corrupt"),
        "{}",
        String::from_utf8_lossy(&corrupt.stderr)
    );

    let stats = zkc(&["compile", model, "--emit", "stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    let layers = stats["layers"].as_array().unwrap();
    assert_eq!(
        layers.len(),
        2,
        "the embedding joined with the block, the head"
    );
    assert!(stats["constraints_per_token"].as_u64().unwrap() > 0);
    let exact = zkc(&["compile", model, "--emit", "stats", "--exact", "--json"]);
    let exact: serde_json::Value = serde_json::from_slice(&exact.stdout).unwrap();
    for layer in exact["layers"].as_array().unwrap() {
        let measured = &layer["measured"];
        assert_eq!(measured["constraints"], layer["constraints"], "{layer}");
        assert!(measured["witnesses"].as_u64().unwrap() > 0);
        assert!(measured["nonzeros"].as_u64() > measured["constraints"].as_u64());
    }

    let refused = zkc(&["run", model, "--tokens", "1", "--float", "--compare"]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "--float and --compare exclude each other"
    );
    let bad = zkc(&[
        "gen-model",
        "gpt2",
        "--d-model",
        "30",
        "--heads",
        "4",
        "-o",
        model,
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--heads 4 must divide --d-model 30"));
    let missing = zkc(&["inspect", "/nonexistent.gguf"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read /nonexistent.gguf"));
}

/// The hand-written GPT-2 of `examples/` follows the model interface, so it runs in integers.
#[test]
fn the_handwritten_example_runs() {
    let path = repo("examples/gpt2_block.zkir");
    let out = zkc(&[
        "run",
        path.to_str().unwrap(),
        "--tokens",
        "1,2",
        "--max-new",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let generated = text
        .lines()
        .find_map(|l| l.strip_prefix("generated: "))
        .unwrap();
    assert_eq!(generated.split(',').count(), 2);
}

/// The README's main command: the whole job on the built-in trained model ("Rust", 4 byte
/// tokens, then 8 generated: 11 steps of 4 layers).
#[test]
fn demo_runs_the_main_job_end_to_end() {
    let out = zkc(&["demo"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "verified: 11 steps, 22 proofs",
        "tampering rejected",
        "== summary",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in {stdout}");
    }
}

/// A user's walk through compile, setup, prove and verify with the files in between; a
/// damaged bundle fails with exit 1 and its reason, in text and JSON.
#[test]
fn compile_setup_prove_verify_by_hand() {
    let dir = temp_dir("prove");
    let file = |name: &str| dir.path().join(name).display().to_string();
    let ok = |args: &[&str]| {
        let out = zkc(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&[
        "gen-model",
        "gpt2",
        "--layers",
        "1",
        "--d-model",
        "32",
        "--heads",
        "2",
        "--ctx",
        "8",
        "-o",
        &file("m.gguf"),
    ]);
    ok(&["compile", &file("m.gguf"), "-o", &file("m.circ")]);
    let setup = ok(&["setup", &file("m.circ"), "-o", &file("m.keys")]);
    assert!(setup.contains("model commitment"), "{setup}");
    let prove = ok(&[
        "prove",
        &file("m.circ"),
        "--keys",
        &file("m.keys"),
        "--prompt",
        "ab",
        "--max-new",
        "2",
        "-o",
        &file("run.zkp"),
    ]);
    assert!(
        prove.contains("proved 3 steps (2 generated tokens"),
        "{prove}"
    );
    let vk = file("m.keys/vk");
    let verify = ok(&["verify", &vk, &file("run.zkp")]);
    assert!(verify.contains("verified: 3 steps, 6 proofs"), "{verify}");
    assert!(verify.contains("prompt:    97,98 \"ab\""), "{verify}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["verify", &vk, &file("run.zkp"), "--json"])).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["generated"].as_array().unwrap().len(), 2);

    let mut bytes = std::fs::read(file("run.zkp")).unwrap();
    bytes.truncate(bytes.len() - 5);
    std::fs::write(file("cut.zkp"), &bytes).unwrap();
    let out = zkc(&["verify", &vk, &file("cut.zkp")]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("rejected: the bundle is unreadable: it ends inside step record 2"),
        "{stdout}"
    );
    let out = zkc(&["verify", &vk, &file("cut.zkp"), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], false);
    let out = zkc(&[
        "prove",
        &file("m.circ"),
        "--keys",
        &dir.path().join("nowhere").display().to_string(),
        "--tokens",
        "1",
        "-o",
        &file("x.zkp"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere"));
}

/// The distributed path by hand (docs/distributed.md): a plan, each unit proven by an array
/// task that knows only its index (a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX`, a Slurm
/// array's `SLURM_ARRAY_TASK_ID`), then the bundle, which refuses an incomplete set.
#[test]
fn plan_prove_parts_as_array_tasks_and_bundle() {
    let dir = temp_dir("units");
    let file = |name: &str| dir.path().join(name).display().to_string();
    let ok = |out: Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let words = "gen-model gpt2 --layers 1 --d-model 32 --heads 2 --ctx 8 -o";
    ok(zkc(&[
        words.split(' ').collect::<Vec<_>>(),
        vec![&file("m.gguf")],
    ]
    .concat()));
    ok(zkc(&["compile", &file("m.gguf"), "-o", &file("m.circ")]));
    ok(zkc(&["setup", &file("m.circ"), "-o", &file("m.keys")]));
    let planned = ok(zkc(&[
        "plan",
        &file("m.circ"),
        "--keys",
        &file("m.keys"),
        "--prompt",
        "ab",
        "--max-new",
        "2",
        "-o",
        &file("run.plan"),
    ]));
    assert!(
        planned.contains("planned 3 steps of 2 stages: 6 units"),
        "{planned}"
    );
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(file("run.plan")).unwrap()).unwrap();
    let part = |index: usize| {
        let (var, other) = match index % 2 {
            0 => ("JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"),
            _ => ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"),
        };
        Command::new(env!("CARGO_BIN_EXE_zkc"))
            .args(["prove-part", &file("m.circ"), "--keys", &file("m.keys")])
            .args(["--plan", &file("run.plan"), "-o", &file("units"), "--json"])
            .env(var, index.to_string())
            .env_remove(other)
            .output()
            .unwrap()
    };
    for index in 0..5 {
        let said: serde_json::Value = serde_json::from_str(&ok(part(index))).unwrap();
        let unit = &plan["units"][index];
        assert_eq!(said["unit"], index);
        assert_eq!(
            (&said["step"], &said["stage"]),
            (&unit["step"], &unit["stage"])
        );
        assert_eq!(said["done"], "proven");
        assert!(said["peak_rss_bytes"].as_u64().unwrap() > 1 << 20, "{said}");
        assert!(dir
            .path()
            .join(format!("units/unit-{index}.zkunit"))
            .exists());
    }
    let again: serde_json::Value = serde_json::from_str(&ok(part(3))).unwrap();
    assert_eq!(again["done"], "was already proven");
    let bundle = ["bundle", &file("m.keys/vk"), "--plan", &file("run.plan")];
    let out = zkc(&[
        &bundle[..],
        &["--units", &file("units"), "-o", &file("run.zkp")],
    ]
    .concat());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 of the plan's 6 units have no proof in")
            && stderr.contains(": 5 (prove them"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("run.zkp").exists(),
        "nothing is written for an incomplete set"
    );
    ok(part(5));
    let said = ok(zkc(&[
        &bundle[..],
        &["--units", &file("units"), "-o", &file("run.zkp")],
    ]
    .concat()));
    assert!(
        said.contains("assembled and verified 3 steps, 6 unit proofs"),
        "{said}"
    );
    let verified = ok(zkc(&["verify", &file("m.keys/vk"), &file("run.zkp")]));
    assert!(
        verified.contains("verified: 3 steps, 6 proofs"),
        "{verified}"
    );
}

#[test]
fn compile_proves_the_longest_context_whose_attention_fits_unless_told_more() {
    let dir = temp_dir("context");
    let model = dir.path().join("tiny.gguf");
    let model = model.to_str().unwrap();
    assert!(zkc(&["gen-model", "gpt2", "-o", model]).status.success());
    let stats = |extra: &[&str]| -> (serde_json::Value, String) {
        let mut args = vec!["compile", model, "--emit", "stats", "--json"];
        args.extend_from_slice(extra);
        let out = zkc(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            serde_json::from_slice(&out.stdout).unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let contexts = |v: &serde_json::Value| -> Vec<u64> {
        v["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["context"].as_u64().unwrap())
            .collect()
    };
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap().to_string())
            .collect()
    };
    // Within the bound whole: the model's context, 64.
    let (whole, stderr) = stats(&[]);
    assert_eq!(contexts(&whole), [16, 32, 64]);
    assert!(!stderr.contains("note"), "{stderr}");
    // The tiny block's attention at 64 positions is above 60,000 constraints, at 32 within.
    let (bounded, stderr) = stats(&["--max-constraints", "60000"]);
    assert_eq!(contexts(&bounded), [16, 32]);
    assert!(stderr.contains("proving up to 32 positions"), "{stderr}");
    assert!(!names(&bounded).iter().any(|n| n.contains(".caches")));
    // Asked for 64: attention is cut between heads, in every bucket.
    let (long, stderr) = stats(&["--max-constraints", "60000", "--context", "64"]);
    assert_eq!(contexts(&long), [16, 32, 64]);
    assert!(!stderr.contains("note"), "{stderr}");
    for context in ["@16", "@32", "@64"] {
        let heads = names(&long)
            .iter()
            .filter(|n| n.starts_with("block.0.part0.caches") && n.ends_with(context))
            .count();
        assert!(heads >= 2, "{context}: {:?}", names(&long));
    }
}

/// IR text is the third input: `examples/gpt2_block.zkir` (written by hand) compiles into an
/// artifact that sets up, proves a generation equal to `zkc run`'s on the IR, and verifies; IR
/// that does not validate is refused with its span diagnostics, and valid IR that is not a
/// token-loop model with what it lacks, at the layer that lacks it.
#[test]
fn ir_text_compiles_into_an_artifact_that_proves_and_verifies() {
    let dir = temp_dir("ir-in");
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let example = repo("examples/gpt2_block.zkir");
    let example = example.to_str().unwrap();
    let ok = |args: &[&str]| {
        let out = zkc(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&["compile", example, "-o", &path("block.circ")]);
    ok(&["setup", &path("block.circ"), "-o", &path("keys")]);
    let proved = ok(&[
        "prove",
        &path("block.circ"),
        "--keys",
        &path("keys"),
        "--tokens",
        "1,2",
        "--max-new",
        "2",
        "-o",
        &path("run.zkp"),
    ]);
    let ran = ok(&["run", example, "--tokens", "1,2", "--max-new", "2"]);
    let generated = ran
        .lines()
        .find_map(|l| l.strip_prefix("generated: "))
        .expect("run says what it generated");
    assert!(proved.contains(&format!("tokens: {generated}")), "{proved}");
    let verified = ok(&["verify", &path("keys/vk"), &path("run.zkp")]);
    assert!(
        verified.contains(&format!("generated: {generated}")),
        "{verified}"
    );

    let refusals = [
        (
            "invalid.zkir",
            "zkir 1\n\nlayer l(%x: i32[]) {\n  %y = add %x, %q : i32[]\n  return %y\n}\n",
            vec!["undefined value `%q`", "invalid.zkir:4:16"],
        ),
        (
            "no_model.zkir",
            "zkir 1\n\nlayer l(%x: i32[]) {\n  %y = add %x, %x : i32[]\n  return %y\n}\n",
            vec!["is not a model zkc proves", "%token", "no_model.zkir:3:7"],
        ),
    ];
    for (name, text, said) in refusals {
        let (_dir, file) = temp_copy(name, text);
        let out = zkc(&["compile", file.to_str().unwrap(), "-o", &path("x.circ")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}");
        assert!(said.iter().all(|s| stderr.contains(s)), "{name}: {stderr}");
    }
    assert!(!dir.path().join("x.circ").exists());
}

/// A single-pass model (`%input` in, `%output` out, no token loop) written as IR: compiled, set
/// up, proven once on an EZKL `input.json` and verified, with the output `zkc run` computes;
/// then proven with `--private-input`, whose bundle holds only the input's commitment.
#[test]
fn a_single_pass_model_proves_and_verifies_an_input_json() {
    let dir = temp_dir("single-pass");
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let ir = "zkir 1

const @w0: i8[4, 3] * 2^-6 = [12, -7, 3, 5, 9, -11, -4, 6, 8, 10, -2, 1]
const @b0: i32[3] * 2^-14 = [100, -50, 25]
const @w1: i8[3, 2] * 2^-6 = [7, -3, 2, 9, -5, 4]

layer dense.0(%input: i16[1, 4] * 2^-8) {
  %acc0 = linear %input, @w0, @b0 : i32[1, 3] * 2^-14
  %pre = requant %acc0, mult=1, shift=6 : i16[1, 3] * 2^-8
  %h = clamp %pre, lo=0, hi=32767 : i16[1, 3] * 2^-8
  return %h
}

layer dense.1(%h: i16[1, 3] * 2^-8) {
  %acc1 = linear %h, @w1 : i32[1, 2] * 2^-14
  %output = requant %acc1, mult=1, shift=6 : i16[1, 2] * 2^-8
  return %output
}
";
    std::fs::write(path("net.zkir"), ir).unwrap();
    std::fs::write(
        path("input.json"),
        r#"{"input_data": [[0.5, -0.25, 1.0, 0.125]]}"#,
    )
    .unwrap();
    let ok = |args: &[&str]| {
        let out = zkc(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let line = |text: &str, start: &str| {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no `{start}` in {text}"))
            .to_string()
    };
    ok(&["compile", &path("net.zkir"), "-o", &path("net.circ")]);
    ok(&["setup", &path("net.circ"), "-o", &path("keys")]);
    // [128, -64, 256, 32] -> h = [10, 0, 50] -> [-3, 3] at 2^-8.
    let ran = ok(&["run", &path("net.circ"), "--input", &path("input.json")]);
    let output = "output: i16[1, 2] * 2^-8 -0.01171875,0.01171875";
    assert_eq!(line(&ran, "output:"), output);
    let prove = |extra: &[&str], bundle: &str| {
        let mut args = vec![
            "prove",
            &path("net.circ"),
            "--keys",
            &path("keys"),
            "--input",
            &path("input.json"),
            "-o",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.push(path(bundle));
        args.extend(extra.iter().map(|s| s.to_string()));
        ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let proved = prove(&[], "run.zkp");
    assert!(
        proved.contains("output: -0.01171875,0.01171875"),
        "{proved}"
    );
    let verified = ok(&["verify", &path("keys/vk"), &path("run.zkp")]);
    assert!(verified.starts_with("verified: one pass"), "{verified}");
    assert_eq!(line(&verified, "output:"), output);
    assert_eq!(
        line(&verified, "input:"),
        "input:  i16[1, 4] * 2^-8 0.5,-0.25,1,0.125"
    );
    prove(&["--private-input"], "private.zkp");
    let verified = ok(&["verify", &path("keys/vk"), &path("private.zkp")]);
    assert_eq!(line(&verified, "output:"), output);
    assert!(
        line(&verified, "input:").contains("committed: 0x"),
        "{verified}"
    );
    // A token-loop request of a single-pass model says what it takes instead.
    let out = zkc(&["run", &path("net.circ"), "--tokens", "1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("single-pass model"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
