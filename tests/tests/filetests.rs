//! File-driven tests of the IR front end (cranelift filetests / naga's in-out corpus style).
//!
//! - `filetests/{parse,verify}/ok/*.zkir` and `examples/*.zkir` must check; their canonical
//!   print is a snapshot, reparses to the same module, and prints again identically. Files named
//!   `canonical_*` must already be canonical text.
//! - `filetests/{parse,verify}/err/*.zkir` must fail; the rendered diagnostics (no colour) are a
//!   snapshot.

use std::path::Path;
use zkc_lang::diagnostics::render;

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn check_ok(path: &Path) -> String {
    let source = std::fs::read_to_string(path).unwrap();
    let parsed = match zkc_lang::check(&source) {
        Ok(parsed) => parsed,
        Err((errors, spans)) => panic!(
            "{} should be valid:\n{}",
            path.display(),
            render(&file_name(path), &source, &errors, spans.as_ref())
        ),
    };
    let printed = zkc_lang::print(&parsed.module);
    let reparsed = zkc_lang::check(&printed)
        .unwrap_or_else(|_| panic!("{}: printed text does not check", path.display()));
    assert_eq!(
        reparsed.module,
        parsed.module,
        "{}: parse(print(m)) != m",
        path.display()
    );
    assert_eq!(
        zkc_lang::print(&reparsed.module),
        printed,
        "{}: printing is not idempotent",
        path.display()
    );
    if file_name(path).starts_with("canonical_") {
        assert_eq!(
            printed,
            source,
            "{}: print(parse(text)) != text",
            path.display()
        );
    }
    printed
}

fn check_err(path: &Path) -> String {
    let source = std::fs::read_to_string(path).unwrap();
    match zkc_lang::check(&source) {
        Ok(_) => panic!("{} should be rejected", path.display()),
        Err((errors, spans)) => render(&file_name(path), &source, &errors, spans.as_ref()),
    }
}

#[test]
fn valid_files_check_and_round_trip() {
    insta::glob!("../filetests", "*/ok/*.zkir", |path| {
        insta::assert_snapshot!(check_ok(path));
    });
}

#[test]
fn examples_check_and_round_trip() {
    insta::glob!("../../examples", "*.zkir", |path| {
        check_ok(path);
    });
}

#[test]
fn invalid_files_are_rejected_with_diagnostics() {
    insta::glob!("../filetests", "*/err/*.zkir", |path| {
        insta::assert_snapshot!(check_err(path));
    });
}

/// The corpus exercises every op, so the round trip above covers every construct.
#[test]
fn ok_corpus_uses_every_op() {
    let mut seen = std::collections::BTreeSet::new();
    let dirs = ["filetests/parse/ok", "filetests/verify/ok", "../examples"];
    for dir in dirs {
        for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)).unwrap() {
            let path = entry.unwrap().path();
            // examples/ also holds models and texts.
            if path.extension().is_none_or(|e| e != "zkir") {
                continue;
            }
            let source = std::fs::read_to_string(path).unwrap();
            let module = zkc_lang::parse(&source).unwrap().module;
            for inst in module.layers.iter().flat_map(|l| &l.insts) {
                seen.insert(inst.op.name());
            }
        }
    }
    let all: std::collections::BTreeSet<_> = zkc_lang::attrs::OP_NAMES.into_iter().collect();
    assert_eq!(seen, all);
}

/// Every prefix of a real file (every way a file can be cut short) is handled without a panic.
#[test]
fn truncated_files_never_panic() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/gpt2_block.zkir");
    let source = std::fs::read_to_string(path).unwrap();
    let layers = source.find("\nlayer").unwrap();
    for (cut, _) in source.char_indices().filter(|(i, _)| *i > layers) {
        let prefix = &source[..cut];
        if let Err((errors, spans)) = zkc_lang::check(prefix) {
            assert!(!errors.is_empty());
            render("cut.zkir", prefix, &errors, spans.as_ref());
        }
    }
}
