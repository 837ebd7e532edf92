//! The Ray driver (`python/zkc_ray`, docs/distributed.md) proving a generation on a local Ray
//! cluster of 2 workers, one of which is killed once mid-run: the unit is retried, and the
//! assembled bundle verifies and says what a single-process `zkc prove` says.
//!
//! Needs a Python with Ray: `ZKC_RAY_PYTHON` (which `.ci/run` sets up in a venv), else
//! `python3`. Without Ray the test says so and passes, unless `ZKC_REQUIRE_RAY` is set (as
//! `.ci/run` sets it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use zkc_runtime::proving::bundle::Bundle;

fn zkc() -> &'static str {
    env!("CARGO_BIN_EXE_zkc")
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run(args: &[&str]) -> String {
    ok(
        Command::new(zkc()).args(args).output().unwrap(),
        &format!("{args:?}"),
    )
}

/// A Python that imports Ray, if there is one.
fn python_with_ray() -> Option<String> {
    let python = std::env::var("ZKC_RAY_PYTHON").unwrap_or_else(|_| "python3".into());
    let found = Command::new(&python)
        .args(["-c", "import ray"])
        .output()
        .is_ok_and(|o| o.status.success());
    match (found, std::env::var_os("ZKC_REQUIRE_RAY").is_some()) {
        (true, _) => Some(python),
        (false, true) => panic!("ZKC_REQUIRE_RAY is set but {python} cannot import ray"),
        (false, false) => {
            eprintln!("skipped: {python} cannot import ray (pip install ./python, or run .ci/run)");
            None
        }
    }
}

/// Per step, per stage: the layer and the public inputs.
fn public_content(path: &Path) -> Vec<Vec<(u32, Vec<zkc_compiler::backend::F>)>> {
    let bundle = Bundle::from_bytes(&std::fs::read(path).unwrap()).unwrap();
    bundle
        .steps
        .iter()
        .map(|s| {
            s.layers
                .iter()
                .map(|l| (l.layer, l.publics.clone()))
                .collect()
        })
        .collect()
}

#[test]
fn ray_proves_a_generation_through_a_killed_worker_and_matches_one_process() {
    let Some(python) = python_with_ray() else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("zkc-ray-")
        .tempdir()
        .unwrap();
    let file = |name: &str| dir.path().join(name).display().to_string();
    run(&[
        "gen-model",
        "gpt2",
        "--layers",
        "2",
        "--d-model",
        "32",
        "--heads",
        "2",
        "--ctx",
        "8",
        "-o",
        &file("m.gguf"),
    ]);
    run(&["compile", &file("m.gguf"), "-o", &file("m.circ")]);
    run(&["setup", &file("m.circ"), "-o", &file("m.keys")]);
    let prompt = ["--prompt", "ab", "--max-new", "3"];
    run(&[
        &["prove", &file("m.circ"), "--keys", &file("m.keys")][..],
        &prompt,
        &["-o", &file("single.zkp")],
    ]
    .concat());

    // zkc, except that the first time it is asked for unit 1 it kills the Ray worker that runs
    // it (its parent): Ray sees a worker die and retries the task on another.
    let wrapper: PathBuf = dir.path().join("zkc-killing-once");
    let marker = dir.path().join("killed");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \" $* \" in *\" --unit 1 \"*)\n  if mkdir '{m}' 2>/dev/null; then echo $PPID > '{m}/worker'; kill -9 $PPID; sleep 2; exit 1; fi;;\nesac\nexec '{z}' \"$@\"\n",
            m = marker.display(),
            z = zkc()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();

    let python_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../python");
    let out = Command::new(&python)
        .args([
            "-m",
            "zkc_ray",
            "prove",
            &file("m.circ"),
            "--keys",
            &file("m.keys"),
        ])
        .args(prompt)
        .args(["-o", &file("ray.zkp"), "--workers", "2", "--zkc"])
        .arg(&wrapper)
        .env("PYTHONPATH", &python_dir)
        .env("RAY_AUTH_MODE", "disabled")
        .output()
        .unwrap();
    let said = ok(out, "python -m zkc_ray prove");
    assert!(
        said.contains("assembled and verified 4 steps, 8 unit proofs"),
        "{said}"
    );
    assert!(
        marker.join("worker").exists(),
        "the worker proving unit 1 was killed once"
    );

    let verified = run(&["verify", &file("m.keys/vk"), &file("ray.zkp")]);
    assert!(
        verified.contains("verified: 4 steps, 8 proofs"),
        "{verified}"
    );
    let single = run(&["verify", &file("m.keys/vk"), &file("single.zkp")]);
    let generated = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("generated:"))
            .map(str::to_string)
    };
    assert_eq!(generated(&verified), generated(&single));
    assert_eq!(
        public_content(&dir.path().join("ray.zkp")),
        public_content(&dir.path().join("single.zkp"))
    );

    // The report has every unit's time, and the schedule reads it.
    let report = dir.path().join("ray.zkp.units/report.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["units"].as_array().unwrap().len(), 8);
    let out = Command::new(&python)
        .args(["-m", "zkc_ray", "schedule"])
        .arg(&report)
        .args(["--workers", "1,2"])
        .env("PYTHONPATH", &python_dir)
        .output()
        .unwrap();
    let table = ok(out, "python -m zkc_ray schedule");
    assert!(
        table.contains("8 units over 4 steps") && table.contains("| 2 |"),
        "{table}"
    );
}
