//! The optimizer, file-driven and on a real model.
//!
//! - `filetests/opt/*.zkir`: each names its passes on a `; passes: a,b` line. The optimized IR
//!   with its constraints before and after is a snapshot; a file of exact passes must give
//!   bit-identical outputs (or the same failure) before and after on random inputs; and every
//!   rule of the table must fire in some file.
//! - The tiny model: the default pipeline's module gives bit-identical outputs, states and
//!   logits over random generations and random direct layer inputs, and its counted constraints
//!   equal extraction's (the cost model is the backend's).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;
use zkc_compiler::backend::cost;
use zkc_compiler::gguf::GgufFile;
use zkc_compiler::model::{generate_gpt2, FloatModel, ModelConfig};
use zkc_compiler::passes::rules::{Exactness, RULES};
use zkc_compiler::passes::{self, Limits};
use zkc_compiler::quantize::{quantize, QuantConfig};
use zkc_lang::semantics::Tensor;
use zkc_lang::{Layer, Module, ValueId};
use zkc_runtime::interp::{Interpreter, ModelRunner};

/// The passes a filetest names on its `; passes:` line.
fn passes_of(path: &Path, source: &str) -> Vec<&'static passes::Pass> {
    let line = source
        .lines()
        .find_map(|l| l.strip_prefix("; passes:"))
        .unwrap_or_else(|| panic!("{}: no `; passes:` line", path.display()));
    passes::parse_pipeline(line).unwrap()
}

/// Random values for one layer signature: scalars (indices, positions) small, each tensor
/// anywhere in its dtype or, half the time, within the square root of its range (where most
/// programs run without overflowing).
fn random_inputs(layer: &Layer, ids: &[ValueId], rng: &mut StdRng) -> Vec<Tensor> {
    ids.iter()
        .map(|&v| {
            let ty = &layer.value(v).ty;
            let n: usize = ty.shape.iter().product();
            let small = 1i64 << (ty.dtype.bits() / 2 - 1);
            let (lo, hi) = match rng.gen_bool(0.5) {
                true => (ty.dtype.min(), ty.dtype.max()),
                false => (-small, small),
            };
            let data = (0..n)
                .map(|_| match ty.is_scalar() {
                    true => rng.gen_range(0..4),
                    false => rng.gen_range(lo..=hi),
                })
                .collect();
            Tensor::new(ty.shape.clone(), data).unwrap()
        })
        .collect()
}

/// Every layer's outputs and states after one run, or that it failed.
fn run_all(
    interp: &Interpreter,
    inputs: &[(Vec<Tensor>, Vec<Tensor>)],
) -> Vec<Option<Vec<Tensor>>> {
    let module = interp.module();
    inputs
        .iter()
        .enumerate()
        .map(|(k, (ins, states))| {
            let layer = &module.layers[k];
            let run = interp.run_layer(k, ins.clone(), states.clone()).ok()?;
            let mut out: Vec<Tensor> = run.outputs(layer).into_iter().cloned().collect();
            out.extend(run.states_after(layer));
            Some(out)
        })
        .collect()
}

/// The default pipeline's module (with the approximate pass if asked) and its reports.
fn default_passes(module: &Module, approximate: bool) -> (Module, Vec<passes::PassReport>) {
    let pipeline = passes::default_pipeline(approximate);
    passes::run(module.clone(), &pipeline, &Limits::default()).unwrap()
}

fn interpreters(a: &Module, b: &Module) -> (Interpreter, Interpreter) {
    (
        Interpreter::new(a.clone()).unwrap(),
        Interpreter::new(b.clone()).unwrap(),
    )
}

/// The two modules agree on `trials` random inputs (values, or failing together).
fn assert_same_semantics(before: &Module, after: &Module, trials: usize, what: &str) {
    let (a, b) = interpreters(before, after);
    let mut rng = StdRng::seed_from_u64(7);
    let mut succeeded = 0;
    for _ in 0..trials {
        let inputs: Vec<_> = before
            .layers
            .iter()
            .map(|l| {
                let ins = random_inputs(l, &l.inputs, &mut rng);
                // Any cache, not only one with zeros from `pos` on: the exact rules may not
                // rely on what the circuit enforces.
                let states = random_inputs(l, &l.states, &mut rng);
                (ins, states)
            })
            .collect();
        let (x, y) = (run_all(&a, &inputs), run_all(&b, &inputs));
        assert_eq!(x, y, "{what}: results differ on {inputs:?}");
        succeeded += x.iter().filter(|r| r.is_some()).count();
    }
    assert!(succeeded > 0, "{what}: no random input ran without error");
}

fn optimize_file(path: &Path, applied: &mut BTreeSet<String>) -> String {
    let source = std::fs::read_to_string(path).unwrap();
    let pipeline = passes_of(path, &source);
    let before = zkc_lang::check(&source)
        .unwrap_or_else(|_| panic!("{} must check", path.display()))
        .module;
    let (after, reports) = passes::run(before.clone(), &pipeline, &Limits::default()).unwrap();
    for report in &reports {
        for layer in &report.layers {
            applied.extend(layer.applied.keys().cloned());
        }
    }
    let exact = pipeline.iter().all(|p| p.exactness == Exactness::Exact);
    if exact {
        assert_same_semantics(&before, &after, 200, &path.display().to_string());
    }
    let total = |m: &Module| m.layers.iter().map(|l| cost::layer(m, l).1).sum::<usize>();
    format!(
        "constraints: {} -> {}\n\n{}",
        total(&before),
        total(&after),
        zkc_lang::print(&after)
    )
}

#[test]
fn optimizer_filetests() {
    let applied = RefCell::new(BTreeSet::new());
    insta::glob!("../filetests", "opt/*.zkir", |path| {
        insta::assert_snapshot!(optimize_file(path, &mut applied.borrow_mut()));
    });
    let missing: Vec<&str> = RULES
        .iter()
        .map(|r| r.name)
        .filter(|name| !applied.borrow().contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "rules no filetest exercises: {missing:?}"
    );
}

fn tiny() -> Module {
    let gguf = GgufFile::from_bytes(generate_gpt2(&ModelConfig::tiny()).to_bytes()).unwrap();
    quantize(&FloatModel::load(&gguf).unwrap(), &QuantConfig::default()).unwrap()
}

#[test]
fn round_trip_without_rules_is_the_identity() {
    let module = tiny();
    // A pass whose rules find nothing to do rebuilds every layer through the e-graph.
    let shapes = passes::parse_pipeline("shapes").unwrap();
    let (rebuilt, reports) = passes::run(module.clone(), &shapes, &Limits::default()).unwrap();
    assert!(reports[0].layers.iter().all(|l| l.applied.is_empty()));
    assert_eq!(rebuilt, module);
}

#[test]
fn the_tiny_model_is_bit_identical_after_the_exact_passes() {
    let module = tiny();
    let (optimized, reports) = default_passes(&module, false);
    assert_ne!(
        optimized, module,
        "the default passes find something in the tiny model"
    );
    assert!(zkc_compiler::backend::check::check(&optimized).is_ok());
    // Extraction's cost is the backend's count (less the boundary, which no pass changes).
    for (layer, report) in optimized.layers.iter().zip(&reports.last().unwrap().layers) {
        let counted = cost::layer(&optimized, layer).1;
        assert_eq!(report.after, counted);
        let ranges = cost::ranges(&optimized, layer);
        let consts = passes::facts::Facts::of_constants(&optimized);
        let graph = passes::graph::LayerGraph::new(consts, layer, ranges);
        let (again, constraints) = graph.extract();
        assert_eq!(
            &again, layer,
            "extraction of an optimized layer is a fixed point"
        );
        assert_eq!(
            constraints + cost::boundary(layer, ranges) + ranges.table(),
            counted,
            "{}",
            layer.name
        );
    }
    // Generation: every token, logit and cache of every step.
    let (a, b) = interpreters(&module, &optimized);
    let mut rng = StdRng::seed_from_u64(11);
    for _ in 0..3 {
        let (mut x, mut y) = (ModelRunner::new(&a).unwrap(), ModelRunner::new(&b).unwrap());
        for _ in 0..12 {
            let token = rng.gen_range(0..256);
            let (p, q) = (x.step(token, true).unwrap(), y.step(token, true).unwrap());
            assert_eq!((p.token, &p.logits), (q.token, &q.logits));
            for (r, s) in p.witness.unwrap().iter().zip(&q.witness.unwrap()) {
                assert_eq!(r.layer, s.layer, "the same bucket");
                let (l, m) = (&module.layers[r.layer], &optimized.layers[s.layer]);
                assert_eq!(r.outputs(l), s.outputs(m));
                assert_eq!(r.states_after(l), s.states_after(m));
            }
        }
    }
    // Random direct inputs to every layer (most overflow somewhere: then both must fail).
    assert_same_semantics(&module, &optimized, 40, "tiny model");
}

/// The approximate pass does change results (so the checks above would see a wrong rule).
#[test]
fn the_approximate_pass_changes_rounding_on_the_tiny_model() {
    let module = tiny();
    let (approx, _) = default_passes(&module, true);
    let (a, b) = interpreters(&module, &approx);
    let (mut x, mut y) = (ModelRunner::new(&a).unwrap(), ModelRunner::new(&b).unwrap());
    let differs =
        (0..8).any(|t| x.step(t, false).unwrap().logits != y.step(t, false).unwrap().logits);
    assert!(differs);
}
