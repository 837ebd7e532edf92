//! Constraint counts without building a circuit: each instruction's count from its gadget's
//! formula (docs/ir.md §4), the same numbers the gadgets' tests check against real constraint
//! systems. This is what `zkc compile --emit stats` reports and what a cost model for passes
//! can use.

use super::range::Ranges;
use super::{argmax, clamp, gelu, layernorm, requant, softmax};
use std::collections::BTreeMap;
use zkc_lang::semantics::GeluAttrs;
use zkc_lang::{Inst, Layer, Module, Op, Operand, TensorType};

/// An operand as the cost formulas see it: its type, and whether it is a circuit constant.
#[derive(Clone, Copy, Debug)]
pub struct Arg<'a> {
    pub ty: &'a TensorType,
    pub constant: bool,
}

/// The constraints of one instruction in a circuit that checks ranges by `r` (a state's update
/// that nothing reads costs none, [`super::layer::unused_state_updates`]).
pub fn instruction(module: &Module, layer: &Layer, inst: &Inst, r: Ranges) -> usize {
    if inst.op == Op::KvAppend
        && super::layer::unused_state_updates(layer).contains(&inst.results[0])
    {
        return 0;
    }
    op(
        &inst.op,
        &args(module, layer, inst),
        &layer.value(inst.results[0]).ty,
        r,
    )
}

/// The instruction's operands as the cost formulas see them.
fn args<'a>(module: &'a Module, layer: &'a Layer, inst: &Inst) -> Vec<Arg<'a>> {
    inst.args
        .iter()
        .map(|&a| match a {
            Operand::Value(v) => Arg {
                ty: &layer.value(v).ty,
                constant: false,
            },
            Operand::Const(c) => Arg {
                ty: &module.constant(c).ty,
                constant: true,
            },
        })
        .collect()
}

/// A `gelu`'s signature from its operands (input, coefficient table) and result type.
fn gelu_signature(attrs: GeluAttrs, args: &[Arg], out: &TensorType) -> gelu::Signature {
    gelu::Signature {
        attrs,
        degree: args[1].ty.shape[1] - 1,
        input: args[0].ty.dtype,
        output: out.dtype,
    }
}

/// The constraints of `op` on `args` with (first) result type `out` in a circuit that checks
/// ranges by `r`: the one cost model, used by the stats, the backend's tests and the
/// optimizer's extraction.
pub fn op(op: &Op, args: &[Arg], out: &TensorType, r: Ranges) -> usize {
    let ty = |k: usize| args[k].ty;
    let n = out.shape.iter().product::<usize>();
    let last = |k: usize| *ty(k).shape.last().unwrap_or(&1);
    match op {
        // Each input bound once when more than one output column reads it (`arith::linear`).
        Op::Linear => match last(1) > 1 {
            true => args[0].ty.shape.iter().product(),
            false => 0,
        },
        Op::Add
        | Op::Sub
        | Op::Reshape { .. }
        | Op::Transpose { .. }
        | Op::Split { .. }
        | Op::Concat { .. } => 0,
        Op::MatMul => n * last(0),
        Op::Mul => match args[1].constant {
            true => 0,
            false => n,
        },
        Op::Requant { shift, .. } => requant::cost(n, *shift, out.dtype, r),
        Op::Clamp { lo, hi } => clamp::cost(n, *lo, *hi, ty(0).dtype, r),
        Op::Softmax { ln2, b, c, shift } => {
            let params = softmax::SoftmaxParams::of([*ln2, *b, *c], *shift, ty(0), out);
            softmax::cost(n / last(0), &params, args.len() == 2, r)
        }
        Op::LayerNorm { eps, shift } => {
            let dtypes = (ty(0).dtype, out.dtype);
            layernorm::cost(n / last(0), last(0), *eps, *shift, dtypes, r)
        }
        Op::RmsNorm { eps, shift } => {
            let dtypes = (ty(0).dtype, out.dtype);
            layernorm::rms_cost(n / last(0), last(0), *eps, *shift, dtypes, r)
        }
        Op::Gelu(attrs) | Op::Silu(attrs) => gelu::cost(n, gelu_signature(*attrs, args, out), r),
        Op::Argmax => argmax::cost(n, last(0), ty(0).dtype.bits(), r),
        Op::ArgmaxCarry { .. } => {
            argmax::carry_cost(n, last(0), ty(0).dtype.bits(), !args[1].constant, r)
        }
        Op::Gather => {
            let (rows, width) = (ty(0).shape[0], ty(0).shape[1..].iter().product());
            if super::merkle::cheaper(rows, width, ty(0).dtype) {
                super::merkle::cost(rows, width, ty(0).dtype, r)
            } else {
                rows + 2
            }
        }
        Op::KvAppend => ty(0).shape.iter().product::<usize>(),
    }
}

/// Making the layer's boundary public (docs/ir.md §4.4): per tensor its range checks bound to
/// its wires, the sponge over its `f` packed elements and the public input
/// (`n * (rc(w) + 1) + sponge(f) + 1`), per scalar 1; the caches' hash chain
/// (`backend::cache`).
pub fn boundary(layer: &Layer, r: Ranges) -> usize {
    let tensors: usize = super::layer::boundary(layer)
        .map(|v| {
            let ty = &layer.value(v).ty;
            if ty.is_scalar() {
                return 1;
            }
            let n: usize = ty.shape.iter().product();
            let packed = n.div_ceil(super::commit::per_element(ty.dtype));
            n * (r.rc(ty.dtype.bits()) + 1)
                + super::commit::sponge_cost(super::commit::Domain::Tensor, packed)
                + 1
        })
        .sum();
    let caches = super::cache::Caches::of(layer).map_or(0, |c| c.cost(r) + 2);
    tensors + caches
}

/// The name [`layer`] gives the lookup table's constraints.
pub const TABLE: &str = "lookup table";

/// Per layer: constraints by op name (and `commitments` for the boundary, [`TABLE`] for the
/// lookup table), and the total, with the layer's cheapest way to check ranges ([`ranges`]).
pub fn layer(module: &Module, layer: &Layer) -> (BTreeMap<&'static str, usize>, usize) {
    layer_with(module, layer, ranges(module, layer))
}

/// [`layer`] with ranges checked by `r`.
pub fn layer_with(
    module: &Module,
    layer: &Layer,
    r: Ranges,
) -> (BTreeMap<&'static str, usize>, usize) {
    let mut by_op = BTreeMap::new();
    for inst in &layer.insts {
        *by_op.entry(inst.op.name()).or_insert(0) += instruction(module, layer, inst, r);
    }
    let one_hots = extra_one_hots(module, layer);
    if one_hots > 0 {
        *by_op.entry("kv_append").or_insert(0) += one_hots;
    }
    by_op.insert("commitments", boundary(layer, r));
    if r.table() > 0 {
        by_op.insert(TABLE, r.table() + function_entries(module, layer, r));
    }
    let total = by_op.values().sum();
    (by_op, total)
}

/// The entries functions evaluated by table add to the layer's lookup table (`gelu`'s and
/// `softmax`'s exponentials), each function once however many instructions evaluate it
/// (`lookup::function`).
fn function_entries(module: &Module, layer: &Layer, r: Ranges) -> usize {
    let mut tables = std::collections::HashSet::new();
    layer
        .insts
        .iter()
        .map(|inst| {
            let out = &layer.value(inst.results[0]).ty;
            let table = match (&inst.op, inst.args.get(1)) {
                // A silu's table is keyed as a gelu's: with equal signatures and coefficients
                // the two compute the same integers, so sharing one table is sound.
                (Op::Gelu(attrs) | Op::Silu(attrs), Some(&Operand::Const(coef))) => {
                    let g = gelu_signature(*attrs, &args(module, layer, inst), out);
                    let entries = gelu::table_entries(out.shape.iter().product(), g, r);
                    match &module.constant(coef).data {
                        zkc_lang::ConstData::Inline(data) => Some((g.key(data), entries)),
                        // Coefficients not in the file (`extern`) are never known to be equal.
                        zkc_lang::ConstData::Extern => return entries,
                    }
                }
                (Op::Softmax { ln2, b, c, shift }, _) => {
                    let input = &args(module, layer, inst)[0].ty;
                    let params = softmax::SoftmaxParams::of([*ln2, *b, *c], *shift, input, out);
                    let rows = input.shape.iter().product::<usize>() / params.row_len.max(1);
                    softmax::table(rows, &params, r)
                }
                _ => None,
            };
            // A function one instruction tabulates and another does not is one table.
            match table {
                Some((key, entries)) if entries > 0 && !tables.contains(&key) => {
                    tables.insert(key);
                    entries
                }
                _ => 0,
            }
        })
        .sum()
}

/// How the layer's circuit checks ranges: whichever of bits and the table widths gives it the
/// fewest constraints (bits on a tie), so a circuit with few range checks pays no table.
pub fn ranges(module: &Module, layer: &Layer) -> Ranges {
    Ranges::choices()
        .min_by_key(|&r| layer_with(module, layer, r).1)
        .expect("bits is always a choice")
}

/// The one-hots `kv_append`s build besides the caches' (which [`super::cache::Caches::cost`]
/// counts): one per other (position value, slot count), `C + 2` constraints each
/// (`select::one_hot`).
fn extra_one_hots(module: &Module, layer: &Layer) -> usize {
    let caches = super::cache::Caches::of(layer).map(|c| (Operand::Value(c.pos), c.slots));
    let slots = |a: Operand| match a {
        Operand::Value(v) => layer.value(v).ty.shape[0],
        Operand::Const(c) => module.constant(c).ty.shape[0],
    };
    let keys: std::collections::HashSet<(Operand, usize)> = layer
        .insts
        .iter()
        .filter(|i| i.op == Op::KvAppend)
        .map(|i| (i.args[2], slots(i.args[0])))
        .filter(|&key| Some(key) != caches)
        .collect();
    keys.iter().map(|(_, c)| c + 2).sum()
}

/// Constraints of one token per context bucket: for each bucket's context `c` (ascending), the
/// sum over stages of the layer a step at position `c - 1` runs (`layer_costs` by module
/// layer). A module without caches has one entry, context `None`.
pub fn per_token(module: &Module, layer_costs: &[usize]) -> Vec<(Option<usize>, usize)> {
    let contexts = module.contexts();
    let total = |pos: usize| {
        module
            .stages()
            .iter()
            .filter_map(|s| s.layer_at(module, pos))
            .map(|l| layer_costs[l])
            .sum()
    };
    match contexts.is_empty() {
        true => vec![(None, total(0))],
        false => contexts.iter().map(|&c| (Some(c), total(c - 1))).collect(),
    }
}

/// A layer's name with its bucket's context, as reports print it (`block.0@16`), when its
/// stage has several buckets.
pub fn layer_label(module: &Module, index: usize) -> String {
    let layer = &module.layers[index];
    let buckets = module
        .layers
        .iter()
        .filter(|l| l.name == layer.name)
        .count();
    match layer.context() {
        Some(c) if buckets > 1 => format!("{}@{c}", layer.name),
        _ => layer.name.clone(),
    }
}
