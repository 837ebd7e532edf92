//! The `zkc` binary as a user runs it: exit codes, stdout and stderr of `check` and `fmt`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn zkc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zkc"))
        .args(args)
        .output()
        .expect("zkc runs")
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn temp_copy(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zkc-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
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
    let path = temp_copy(
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
    let path = temp_copy("messy.zkir", &source);
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
    let path = temp_copy("invalid.zkir", text);
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
