//! The pass pipeline as data: named passes, each a set of rules from [`super::rules::RULES`]
//! saturated on one layer at a time, the IR validated after each.

use super::graph::LayerGraph;
use super::rules::{self, Exactness};
use crate::backend::cost;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use thiserror::Error;
use zkc_lang::validate::ValidationError;
use zkc_lang::{ConstId, Module, Multiplier, Op, Operand};

pub struct Pass {
    pub name: &'static str,
    pub about: &'static str,
    pub exactness: Exactness,
    pub rules: &'static [&'static str],
}

/// Every pass, in the order the default pipeline runs them.
pub const PASSES: &[Pass] = &[
    Pass {
        name: "approx",
        about: "approximate: requantize multipliers of fewer bits (changes rounding)",
        exactness: Exactness::Approximate,
        rules: &["requant-narrow"],
    },
    Pass {
        name: "shapes",
        about: "reshape/transpose chains and identities, split of concat, concat of split",
        exactness: Exactness::Exact,
        rules: &[
            "reshape-identity",
            "reshape-reshape",
            "transpose-identity",
            "transpose-transpose",
            "split-concat",
            "concat-split",
        ],
    },
    Pass {
        name: "attention",
        about: "attention reads the old cache and writes one slot of the product",
        exactness: Exactness::Exact,
        rules: &["attend-keys", "attend-values"],
    },
    Pass {
        name: "arith",
        about: "requantize by powers of two, implied clamps, identities of 0 and 1",
        exactness: Exactness::Exact,
        rules: &[
            "requant-identity",
            "requant-pow2",
            "clamp-implied",
            "clamp-clamp",
            "add-zero",
            "sub-zero",
            "mul-one",
        ],
    },
];

/// Every pass also merges common subexpressions and drops unused instructions: that is what
/// building an e-graph and extracting from the outputs does.
pub fn pass(name: &str) -> Option<&'static Pass> {
    PASSES.iter().find(|p| p.name == name)
}

/// The default pipeline: the exact passes, after the approximate one if asked for.
pub fn default_pipeline(approximate: bool) -> Vec<&'static Pass> {
    PASSES
        .iter()
        .filter(|p| approximate || p.exactness == Exactness::Exact)
        .collect()
}

/// A pipeline from a comma-separated list of pass names.
pub fn parse_pipeline(list: &str) -> Result<Vec<&'static Pass>, PassError> {
    list.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| pass(name).ok_or_else(|| PassError::Unknown(name.to_string())))
        .collect()
}

/// The runner's limits per layer and pass. Iterations and nodes decide where a run stops, the
/// same on every machine; the time limit only guards against a runaway rule set, since a
/// result that depends on the machine's speed would give another circuit (and other keys).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub iterations: usize,
    pub nodes: usize,
    pub time: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            iterations: 30,
            nodes: 100_000,
            time: Duration::from_secs(600),
        }
    }
}

/// What one pass did to one layer.
pub struct LayerReport {
    /// Whether the run stopped on its time limit (its result may differ on another machine).
    pub timed_out: bool,
    pub layer: String,
    /// Constraints of the layer (boundary included) before and after.
    pub before: usize,
    pub after: usize,
    pub runner: egg::Report,
    /// Times each rule changed the e-graph.
    pub applied: BTreeMap<String, usize>,
}

pub struct PassReport {
    pub pass: &'static str,
    pub layers: Vec<LayerReport>,
}

#[derive(Debug, Error)]
pub enum PassError {
    #[error(
        "unknown pass `{0}` (passes: {names})",
        names = PASSES.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
    )]
    Unknown(String),
    #[error(
        "pass `{pass}` produced invalid IR ({}); this is a bug in its rules: compile with \
         --no-opt, or --passes without it, meanwhile",
        errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
    )]
    Invalid {
        pass: &'static str,
        errors: Vec<ValidationError>,
    },
}

/// Runs `passes` in order, validating after each.
pub fn run(
    mut module: Module,
    passes: &[&'static Pass],
    limits: &Limits,
) -> Result<(Module, Vec<PassReport>), PassError> {
    let mut reports = Vec::new();
    for &pass in passes {
        let (optimized, report) = run_pass(module, pass, limits);
        zkc_lang::validate(&optimized).map_err(|errors| PassError::Invalid {
            pass: pass.name,
            errors,
        })?;
        module = optimized;
        reports.push(report);
    }
    Ok((module, reports))
}

fn run_pass(mut module: Module, pass: &'static Pass, limits: &Limits) -> (Module, PassReport) {
    let rewrites: Vec<_> = pass
        .rules
        .iter()
        .map(|&name| rules::rewrite(rules::rule(name).expect("passes name existing rules")))
        .collect();
    let made = module.consts.len();
    let mut consts = super::facts::Facts::of_constants(&module);
    let mut layers = Vec::new();
    for index in 0..module.layers.len() {
        let layer = &module.layers[index];
        // The e-graph has no node with results of two types: a slice of the head's vocabulary
        // (`argmax_carry`, made after the optimizer by `parts::slice_vocabulary`) stays as it is.
        if layer
            .insts
            .iter()
            .any(|i| matches!(i.op, Op::ArgmaxCarry { .. }))
        {
            continue;
        }
        let ranges = cost::ranges(&module, layer);
        let before = cost::layer_with(&module, layer, ranges).1;
        let mut graph = LayerGraph::new(consts, layer, ranges);
        let (runner, applied) = graph.saturate(&rewrites, limits);
        let (optimized, _) = graph.extract();
        let (known, new_consts) = graph.into_constants();
        consts = known;
        module.consts.extend(new_consts);
        module.layers[index] = optimized;
        layers.push(LayerReport {
            timed_out: matches!(runner.stop_reason, egg::StopReason::TimeLimit(_)),
            layer: module.layers[index].name.clone(),
            before,
            after: cost::layer(&module, &module.layers[index]).1,
            runner,
            applied,
        });
    }
    drop_unused_constants(&mut module, made);
    (
        module,
        PassReport {
            pass: pass.name,
            layers,
        },
    )
}

/// Removes the constants no layer uses (those rules replaced), merges equal constants the
/// rules made (numbered from `made`; each layer makes its own), and gives new ones unique names.
pub(crate) fn drop_unused_constants(module: &mut Module, made: usize) {
    let mut used = vec![false; module.consts.len()];
    for inst in module.layers.iter().flat_map(|l| &l.insts) {
        for_each_constant(inst, |c| used[c.index()] = true);
    }
    let mut renumber = HashMap::new();
    let mut kept = Vec::new();
    let mut names = HashSet::new();
    let mut made_here: HashMap<(zkc_lang::TensorType, Vec<i64>), ConstId> = HashMap::new();
    for (k, mut c) in std::mem::take(&mut module.consts).into_iter().enumerate() {
        if !used[k] {
            continue;
        }
        if let (true, zkc_lang::ConstData::Inline(data)) = (k >= made, &c.data) {
            let key = (c.ty.clone(), data.clone());
            if let Some(&same) = made_here.get(&key) {
                renumber.insert(ConstId(k as u32), same);
                continue;
            }
            made_here.insert(key, ConstId(kept.len() as u32));
        }
        let base = c.name.clone();
        let mut n = 1;
        while !names.insert(c.name.clone()) {
            c.name = format!("{base}.{n}");
            n += 1;
        }
        renumber.insert(ConstId(k as u32), ConstId(kept.len() as u32));
        kept.push(c);
    }
    module.consts = kept;
    for inst in module.layers.iter_mut().flat_map(|l| &mut l.insts) {
        for arg in &mut inst.args {
            if let Operand::Const(c) = arg {
                *c = renumber[c];
            }
        }
        if let Op::Requant {
            mult: Multiplier::PerChannel(c),
            ..
        } = &mut inst.op
        {
            *c = renumber[c];
        }
    }
}

fn for_each_constant(inst: &zkc_lang::Inst, mut f: impl FnMut(ConstId)) {
    for arg in &inst.args {
        if let Operand::Const(c) = arg {
            f(*c);
        }
    }
    if let Op::Requant {
        mult: Multiplier::PerChannel(c),
        ..
    } = inst.op
    {
        f(c);
    }
}
