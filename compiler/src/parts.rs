//! Bounded circuits (DESIGN §3): a layer with more constraints than the artifact's bound is cut
//! into parts at a value boundary, each part a layer of its own (its own circuit, key and
//! proof), linked as layers are: the part before the cut returns the boundary value and the part
//! after takes it as an input of the same name, so the boundary's commitment is a link the
//! verifier checks like any other.
//!
//! Cutting layer `L` at value `c` puts into the second part every instruction that computes
//! `L`'s outputs from `c` and `L`'s inputs. The cut is valid when that reaches no state and the
//! first part reads nothing the second computes: the KV caches stay in the first part, so the
//! second is the same in every context bucket and is one stateless layer. Of the valid cuts the
//! one whose larger part is smallest is taken (its boundary's commitment counted), and a part
//! still above the bound is cut again while it can be. A stage's buckets are cut at the same
//! values, chosen on its largest bucket. Parts are named `NAME.partK`. A part with caches still
//! above the bound (attention at long contexts) is then cut between groups of its caches
//! (`parts::caches`: `NAME.in`, `NAME.cachesK`, `NAME.out`).
//!
//! A head whose `argmax` over `linear` logits is above the bound is cut differently, by
//! [`slice_vocabulary`]: into slices of the vocabulary (`NAME.vocabK`), each computing its
//! columns' logits and carrying the best index and logit so far to the next (`argmax_carry`),
//! so that the argmax over the whole vocabulary stays exact, ties to the lowest index.
//!
//! The converse, [`join`]: adjacent stages whose joined layers all stay within the bound become
//! one stage (named `A_B`), so a small model is one circuit per token and a large one as few as
//! the bound allows. Each proof costs the verifier a pairing check and the proof 160 bytes, each
//! link a commitment on both sides, and each circuit its lookup table: joining saves all three,
//! and the prover pays the same per constraint.

mod caches;

use crate::backend::check;
use crate::backend::cost;
use std::collections::{HashMap, HashSet};
use zkc_lang::{
    Const, ConstData, ConstId, Inst, Layer, Module, Op, Operand, TensorType, ValueData, ValueDef,
    ValueId,
};

#[derive(Debug, thiserror::Error)]
pub enum PartError {
    #[error("layer `{layer}` in its bucket of context {context}: the cut at `%{value}` chosen on its largest bucket does not apply here; compile with a larger --max-constraints")]
    Bucket {
        layer: String,
        context: usize,
        value: String,
    },
    #[error("layer `{layer}`: its buckets' part {part} differ, so it cannot be one stateless layer; compile with a larger --max-constraints")]
    Differ { layer: String, part: usize },
    #[error("layer `{layer}` in its bucket of context {context}: the cache groups chosen on its largest bucket do not cut it; compile with a larger --max-constraints")]
    CacheGroups { layer: String, context: usize },
    #[error("layer `{layer}`: `{part}`, what its cache groups share, differs between its buckets, so it cannot be one stateless layer; compile with a larger --max-constraints")]
    Shared { layer: String, part: String },
}

/// `module` with every stage whose layers are above `max` constraints cut into parts where a
/// value boundary makes them smaller, then a part with caches still above `max` (attention at
/// long contexts: every head reads its cache, so no single value cuts it) cut between groups of
/// its caches (`parts::caches`). A part can stay above `max` (one head's attention at a long context);
/// the caller reports what is.
pub fn split(module: Module, max: usize) -> Result<Module, PartError> {
    caches::split(split_at_values(module, max)?, max)
}

/// The largest of `module`'s bucket contexts up to which every layer with caches is within `max`
/// once cut at value boundaries, so that no cut between cache groups is needed; `None` if even
/// the smallest bucket needs one. A cut between cache groups is made in every bucket of a stage
/// (a generation's caches are committed by the same chains at every step), so it multiplies the
/// proofs of short generations too: `zkc compile` proves up to this context unless told more.
pub fn longest_uncut_context(module: &Module, max: usize) -> Result<Option<usize>, PartError> {
    let mut longest = None;
    // Ascending, each with only the buckets up to it (cutting at values is planned on a stage's
    // largest bucket, and costing the candidate cuts of a long context's layers is slow).
    for context in module.contexts() {
        let upto = Module {
            consts: module.consts.clone(),
            layers: module
                .layers
                .iter()
                .filter(|l| l.context().is_none_or(|c| c <= context))
                .cloned()
                .collect(),
        };
        let split = split_at_values(upto, max)?;
        if split
            .layers
            .iter()
            .any(|l| !l.states.is_empty() && cost::layer(&split, l).1 > max)
        {
            break;
        }
        longest = Some(context);
    }
    Ok(longest)
}

/// `module` with every stage whose layers are above `max` constraints cut at the value
/// boundaries that make them smaller.
fn split_at_values(module: Module, max: usize) -> Result<Module, PartError> {
    let mut layers = Vec::with_capacity(module.layers.len());
    for stage in module.stages() {
        let constraints = |l: &Layer| cost::layer(&module, l).1;
        let largest = *stage.layers.last().expect("a stage has a layer");
        if stage
            .layers
            .iter()
            .all(|&l| constraints(&module.layers[l]) <= max)
        {
            layers.extend(stage.layers.iter().map(|&l| module.layers[l].clone()));
            continue;
        }
        let mut plan = Vec::new();
        let mut choose_best = |l: &Layer| -> Result<Option<ValueId>, PartError> {
            let choice = match constraints(l) <= max {
                true => None,
                false => best_cut(&module, l),
            };
            plan.push(choice.map(|c| l.value(c).name.clone()));
            Ok(choice)
        };
        let cut_largest = parts(module.layers[largest].clone(), &mut choose_best)?;
        if cut_largest.len() == 1 {
            // No value boundary makes it smaller: kept whole.
            layers.extend(stage.layers.iter().map(|&l| module.layers[l].clone()));
            continue;
        }
        let mut per_bucket = Vec::new();
        for &l in &stage.layers[..stage.layers.len() - 1] {
            let layer = &module.layers[l];
            let mut planned = plan.iter();
            let mut choose_planned = |part: &Layer| -> Result<Option<ValueId>, PartError> {
                let Some(name) = planned.next().cloned().flatten() else {
                    return Ok(None);
                };
                let missing = || PartError::Bucket {
                    layer: layer.name.clone(),
                    context: layer.context().unwrap_or(0),
                    value: name.clone(),
                };
                let c = (0..part.values.len() as u32)
                    .map(ValueId)
                    .find(|&v| part.value(v).name == name)
                    .ok_or_else(missing)?;
                cut(part, c).map(|_| Some(c)).ok_or_else(missing)
            };
            per_bucket.push(parts(layer.clone(), &mut choose_planned)?);
        }
        per_bucket.push(cut_largest);
        let named: Vec<Vec<Layer>> = per_bucket
            .into_iter()
            .map(|ps| {
                ps.into_iter()
                    .enumerate()
                    .map(|(k, mut p)| {
                        p.name = format!("{}.part{k}", stage.name);
                        p
                    })
                    .collect()
            })
            .collect();
        let count = named[0].len();
        if let Some(k) = (1..count).find(|&k| named.iter().any(|ps| ps[k] != named[0][k])) {
            return Err(PartError::Differ {
                layer: stage.name.clone(),
                part: k,
            });
        }
        // The first part in every bucket (it keeps the caches), the others once.
        layers.extend(named.iter().map(|ps| ps[0].clone()));
        layers.extend(named[0][1..].iter().cloned());
    }
    Ok(Module {
        consts: module.consts,
        layers,
    })
}

/// `module` (optimized) with every stateless layer above `max` constraints whose last steps are
/// `%logits = linear %h, @W[, @b]` then `%best = argmax %logits` cut into the fewest slices of
/// the vocabulary (W's columns) that are each within `max`. Slice `k` reads `%h` and the best
/// index and logit of the slices before it (`%best.vocab{k-1}`, `%logits.max.vocab{k-1}`;
/// slice 0 starts from index 0 and the dtype's minimum, constants) and returns its own; the
/// first slice also computes `%h` and the last returns the layer's outputs. The slices' logits
/// are `%logits.vocabK`. A layer no slicing brings within `max` stays whole.
pub fn slice_vocabulary(mut module: Module, max: usize) -> Module {
    let mut layers = Vec::with_capacity(module.layers.len());
    for layer in std::mem::take(&mut module.layers) {
        let above = layer.states.is_empty() && cost::layer(&module, &layer).1 > max;
        let sliced = above
            .then(|| vocabulary_slices(&mut module, &layer, max))
            .flatten();
        match sliced {
            Some(slices) => layers.extend(slices),
            None => layers.push(layer),
        }
    }
    module.layers = layers;
    let count = module.consts.len();
    crate::passes::pipeline::drop_unused_constants(&mut module, count);
    module
}

/// Where a head's logits and argmax are.
struct Head {
    linear: usize,
    argmax: usize,
    /// The linear's input, weights `[K, V]` and bias.
    h: ValueId,
    weights: ConstId,
    bias: Option<ConstId>,
    /// The instructions after the argmax that read its result (to the outputs).
    suffix: Vec<usize>,
}

impl Head {
    fn of(layer: &Layer, module: &Module) -> Option<Head> {
        let argmax = layer.insts.iter().position(|i| i.op == Op::Argmax)?;
        let Operand::Value(logits) = layer.insts[argmax].args[0] else {
            return None;
        };
        let ValueDef::Inst { inst: linear, .. } = layer.value(logits).def else {
            return None;
        };
        let lin = &layer.insts[linear];
        let (Op::Linear, Operand::Value(h), Operand::Const(weights)) =
            (&lin.op, lin.args[0], lin.args[1])
        else {
            return None;
        };
        let bias = match lin.args.get(2) {
            Some(Operand::Const(b)) => Some(*b),
            Some(Operand::Value(_)) => return None,
            None => None,
        };
        let inline = |c: ConstId| matches!(module.constant(c).data, ConstData::Inline(_));
        if !inline(weights) || !bias.is_none_or(inline) || layer.value(logits).ty.rank() != 2 {
            return None;
        }
        // What depends on the argmax's result; it may read nothing else the head computes.
        let mut after: HashSet<ValueId> = layer.insts[argmax].results.iter().copied().collect();
        let mut suffix = Vec::new();
        for (i, inst) in layer.insts.iter().enumerate().skip(argmax + 1) {
            if values_read(inst).any(|v| after.contains(&v)) {
                if values_read(inst).any(|v| !after.contains(&v)) {
                    return None;
                }
                after.extend(inst.results.iter().copied());
                suffix.push(i);
            }
        }
        let others_read_logits = layer
            .insts
            .iter()
            .enumerate()
            .any(|(i, inst)| i != argmax && values_read(inst).any(|v| v == logits));
        let outputs_ok = layer.outputs.iter().all(|o| after.contains(o));
        (!others_read_logits && outputs_ok).then_some(Head {
            linear,
            argmax,
            h,
            weights,
            bias,
            suffix,
        })
    }
}

/// `layer` as vocabulary slices each within `max`, if it is a head and some count of slices
/// does it (the new constants are added to `module`).
fn vocabulary_slices(module: &mut Module, layer: &Layer, max: usize) -> Option<Vec<Layer>> {
    let head = Head::of(layer, module)?;
    let vocabulary = module.constant(head.weights).ty.shape[1];
    let whole = cost::layer(module, layer).1;
    let consts = module.consts.len();
    let mut count = whole.div_ceil(max).max(2);
    while count <= vocabulary {
        let slices = slices(module, layer, &head, count);
        // Per slice: its constraints, and those its columns cost (the rest it pays whatever
        // its width: the first slice's prefix, the commitments).
        let costs: Vec<(usize, usize)> = slices
            .iter()
            .map(|l| {
                let (by_op, total) = cost::layer(module, l);
                let columns = ["argmax_carry", "linear"]
                    .iter()
                    .filter_map(|op| by_op.get(op))
                    .sum();
                (total, columns)
            })
            .collect();
        if costs.iter().all(|&(total, _)| total <= max) {
            return Some(slices);
        }
        module.consts.truncate(consts);
        let floor = costs.iter().map(|&(t, c)| t - c).max()?;
        if floor >= max {
            return None;
        }
        // Widths shrink in proportion to what the largest slice's columns must lose.
        let over = costs
            .iter()
            .map(|&(t, c)| t.saturating_sub(max) as f64 / c.max(1) as f64)
            .fold(0.0, f64::max);
        count = (slices.len() + 1).max((slices.len() as f64 * (1.0 + over)).ceil() as usize);
    }
    None
}

/// `layer` (a [`Head`]) cut into `count` slices of the vocabulary.
fn slices(module: &mut Module, layer: &Layer, head: &Head, count: usize) -> Vec<Layer> {
    let mut full = layer.clone();
    let logits = full.insts[head.linear].results[0];
    let best = full.insts[head.argmax].results[0];
    let (logits_ty, best_ty) = (full.value(logits).ty.clone(), full.value(best).ty.clone());
    let (logits_name, best_name) = (
        full.value(logits).name.clone(),
        full.value(best).name.clone(),
    );
    let top_ty = TensorType::new(
        logits_ty.dtype,
        logits_ty.shape[..1].to_vec(),
        logits_ty.scale,
    );
    let w = module.constant(head.weights).clone();
    let (k_in, vocabulary) = (w.ty.shape[0], w.ty.shape[1]);
    let width = vocabulary.div_ceil(count);
    let count = vocabulary.div_ceil(width);
    let inline = |c: &Const| match &c.data {
        ConstData::Inline(d) => d.clone(),
        ConstData::Extern => unreachable!("Head::of takes inline constants"),
    };
    let (w_data, bias) = (inline(&w), head.bias.map(|b| module.constant(b).clone()));
    let mut add_const = |name: String, ty: TensorType, data: Vec<i64>| {
        module.consts.push(Const {
            name,
            ty,
            data: ConstData::Inline(data),
        });
        ConstId(module.consts.len() as u32 - 1)
    };
    // Slice 0's carry: index 0 and the least logit (a tie keeps index 0, as argmax would).
    let mut carried = (
        Operand::Const(add_const(
            format!("{best_name}.none"),
            best_ty.clone(),
            vec![0],
        )),
        Operand::Const(add_const(
            format!("{logits_name}.none"),
            top_ty.clone(),
            vec![logits_ty.dtype.min()],
        )),
    );
    let define = |full: &mut Layer, name: String, ty: TensorType, inst: usize, result| {
        full.values.push(ValueData {
            name,
            ty,
            def: ValueDef::Inst { inst, result },
        });
        ValueId(full.values.len() as u32 - 1)
    };
    // The slices' instructions replace the linear and the argmax, in their place.
    let mut insts: Vec<Inst> = Vec::new();
    let mut carries = Vec::new();
    let start = head.linear;
    for k in 0..count {
        let (a, b) = (k * width, ((k + 1) * width).min(vocabulary));
        let columns: Vec<i64> = (0..k_in)
            .flat_map(|i| {
                w_data[i * vocabulary + a..i * vocabulary + b]
                    .iter()
                    .copied()
            })
            .collect();
        let wk = add_const(
            format!("{}.vocab{k}", w.name),
            TensorType::new(w.ty.dtype, vec![k_in, b - a], w.ty.scale),
            columns,
        );
        let mut args = vec![Operand::Value(head.h), Operand::Const(wk)];
        if let Some(bias) = &bias {
            let data = inline(bias)[a..b].to_vec();
            let ty = TensorType::new(bias.ty.dtype, vec![b - a], bias.ty.scale);
            args.push(Operand::Const(add_const(
                format!("{}.vocab{k}", bias.name),
                ty,
                data,
            )));
        }
        let at = start + insts.len();
        let mut slice_ty = logits_ty.clone();
        slice_ty.shape[1] = b - a;
        let lk = define(
            &mut full,
            format!("{logits_name}.vocab{k}"),
            slice_ty,
            at,
            0,
        );
        insts.push(Inst {
            op: Op::Linear,
            args,
            results: vec![lk],
        });
        let last = k + 1 == count;
        let bk = match last {
            true => best,
            false => define(
                &mut full,
                format!("{best_name}.vocab{k}"),
                best_ty.clone(),
                at + 1,
                0,
            ),
        };
        let tk = define(
            &mut full,
            format!("{logits_name}.max.vocab{k}"),
            top_ty.clone(),
            at + 1,
            1,
        );
        insts.push(Inst {
            op: Op::ArgmaxCarry { offset: a },
            args: vec![Operand::Value(lk), carried.0, carried.1],
            results: vec![bk, tk],
        });
        carried = (Operand::Value(bk), Operand::Value(tk));
        carries.push((bk, tk));
    }
    // Renumber: the prefix, the slices' 2 * count instructions, the suffix.
    let prefix: Vec<usize> = (0..layer.insts.len())
        .filter(|&i| i != head.linear && i != head.argmax && !head.suffix.contains(&i))
        .collect();
    let suffix: Vec<Inst> = head
        .suffix
        .iter()
        .map(|&i| layer.insts[i].clone())
        .collect();
    full.insts = prefix.iter().map(|&i| layer.insts[i].clone()).collect();
    let slices_at = full.insts.len();
    full.insts.extend(insts);
    full.insts.extend(suffix);
    for (n, inst) in full.insts.iter().enumerate() {
        for (result, &v) in inst.results.iter().enumerate() {
            full.values[v.index()].def = ValueDef::Inst { inst: n, result };
        }
    }
    let h_in_first = matches!(full.value(head.h).def, ValueDef::Inst { .. });
    let (h, first_insts) = (head.h, slices_at + 2);
    (0..count)
        .map(|k| {
            let insts: Vec<usize> = match k {
                0 => (0..first_insts).collect(),
                _ => vec![slices_at + 2 * k, slices_at + 2 * k + 1],
            };
            let last = k + 1 == count;
            let insts: Vec<usize> = match last {
                true => insts
                    .into_iter()
                    .chain(slices_at + 2 * count..full.insts.len())
                    .collect(),
                false => insts,
            };
            let inputs = match k {
                0 => layer.inputs.clone(),
                _ => vec![h, carries[k - 1].0, carries[k - 1].1],
            };
            let outputs = match (k, last) {
                (_, true) => layer.outputs.clone(),
                (0, false) if h_in_first => vec![h, carries[0].0, carries[0].1],
                _ => vec![carries[k].0, carries[k].1],
            };
            let mut slice = sub_layer(&full, &inputs, &[], &insts, &outputs);
            slice.name = format!("{}.vocab{k}", layer.name);
            slice
        })
        .collect()
}

/// `module` (optimized: the bound applies to the circuits as built) with adjacent stages joined
/// while every layer of the joined stage has at most `max` constraints, in module order: each
/// stage joins the one before it when it can. Two stages with caches join bucket by bucket (they
/// have the same buckets); a stage without caches joins each bucket of the other if it is small
/// ([`STATELESS_JOINS_BELOW`]).
pub fn join(module: Module, max: usize) -> Module {
    let stages = module.stages();
    let mut joined: Vec<Vec<Layer>> = Vec::new();
    for (k, stage) in stages.iter().enumerate() {
        let next: Vec<Layer> = stage
            .layers
            .iter()
            .map(|&l| module.layers[l].clone())
            .collect();
        // An output the stages after this one read stays an output of the joined layer.
        let read_later: HashSet<&str> = stages[k + 1..]
            .iter()
            .flat_map(|s| &s.layers)
            .flat_map(|&l| {
                let layer = &module.layers[l];
                layer.inputs.iter().map(|&v| layer.value(v).name.as_str())
            })
            .collect();
        let both = joined
            .last()
            .and_then(|last| join_stages(&module, last, &next, &read_later, max));
        match both {
            Some(both) => *joined.last_mut().expect("joined with the last") = both,
            None => joined.push(next),
        }
    }
    let layers = joined.into_iter().flatten().collect();
    Module {
        consts: module.consts,
        layers,
    }
}

/// A stateless layer joins a stage with caches when it has at most `1/16` of the bound.
const STATELESS_JOINS_BELOW: usize = 16;

/// Stages `a` then `b` (their layers, per bucket) as one stage, if every joined layer is within
/// `max` and is one the backend builds.
fn join_stages(
    module: &Module,
    a: &[Layer],
    b: &[Layer],
    read_later: &HashSet<&str>,
    max: usize,
) -> Option<Vec<Layer>> {
    // A stateless layer joins a stage with caches only if it is small: every bucket would
    // repeat it (setup, keys), and the large one, the head, is heavy in matrix nonzeros (its
    // argmax rows read every logit's combination), which the constraint bound does not see.
    let small = |l: &Layer| cost::layer(module, l).1 <= max / STATELESS_JOINS_BELOW;
    let has_caches = |s: &[Layer]| s.iter().any(|l| !l.states.is_empty());
    let pairs: Vec<(&Layer, &Layer)> = match (a, b) {
        ([x], _) if x.states.is_empty() && (!has_caches(b) || small(x)) => {
            b.iter().map(|y| (x, y)).collect()
        }
        (_, [y]) if y.states.is_empty() && (!has_caches(a) || small(y)) => {
            a.iter().map(|x| (x, y)).collect()
        }
        _ if a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.context() == y.context()) => {
            a.iter().zip(b).collect()
        }
        _ => return None,
    };
    pairs
        .into_iter()
        .map(|(x, y)| {
            let layer = join_layers(x, y, read_later)?;
            let fits = cost::layer(module, &layer).1 <= max;
            (fits && check::layer(module, &layer).is_ok()).then_some(layer)
        })
        .collect()
}

/// `a` then `b` as one layer: `b`'s inputs bind to `a`'s values of the same name (the link
/// becomes a wire), its other inputs, states and instructions follow `a`'s. `a`'s outputs stay
/// outputs when a later stage reads them or `b` does not. `None` when `b` defines a name `a`
/// has.
fn join_layers(a: &Layer, b: &Layer, read_later: &HashSet<&str>) -> Option<Layer> {
    let mut joined = Joined {
        names: a
            .values
            .iter()
            .enumerate()
            .map(|(k, v)| (v.name.clone(), ValueId(k as u32)))
            .collect(),
        layer: Layer {
            name: format!("{}_{}", a.name, b.name),
            ..a.clone()
        },
        id: vec![ValueId(0); b.values.len()],
        b,
    };
    let mut read_from_a = HashSet::new();
    for &v in &b.inputs {
        match joined.names.get(&b.value(v).name).copied() {
            Some(w) if a.value(w).ty != b.value(v).ty => return None,
            Some(w) => {
                read_from_a.insert(w);
                joined.id[v.index()] = w;
            }
            None => {
                let k = joined.layer.inputs.len();
                let new = joined.define(v, ValueDef::Input(k))?;
                joined.layer.inputs.push(new);
            }
        }
    }
    for &v in &b.states {
        let k = joined.layer.states.len();
        let new = joined.define(v, ValueDef::State(k))?;
        joined.layer.states.push(new);
    }
    for inst in &b.insts {
        let at = joined.layer.insts.len();
        let results = inst
            .results
            .iter()
            .enumerate()
            .map(|(result, &v)| joined.define(v, ValueDef::Inst { inst: at, result }))
            .collect::<Option<Vec<_>>>()?;
        let args = inst
            .args
            .iter()
            .map(|arg| match arg {
                Operand::Value(v) => Operand::Value(joined.id[v.index()]),
                c => *c,
            })
            .collect();
        joined.layer.insts.push(Inst {
            op: inst.op.clone(),
            args,
            results,
        });
    }
    let Joined { mut layer, id, .. } = joined;
    layer
        .outputs
        .retain(|&o| read_later.contains(a.value(o).name.as_str()) || !read_from_a.contains(&o));
    layer
        .outputs
        .extend(b.outputs.iter().map(|&o| id[o.index()]));
    layer.canonicalize();
    Some(layer)
}

/// A layer being joined from `a` (the start of `layer`) and `b`.
struct Joined<'b> {
    layer: Layer,
    /// Every value of `layer` by name.
    names: HashMap<String, ValueId>,
    /// `b`'s values in `layer`.
    id: Vec<ValueId>,
    b: &'b Layer,
}

impl Joined<'_> {
    /// `b`'s value `v` as a new value of `layer`, unless its name is taken.
    fn define(&mut self, v: ValueId, def: ValueDef) -> Option<ValueId> {
        let data = self.b.value(v);
        let new = ValueId(self.layer.values.len() as u32);
        if self.names.insert(data.name.clone(), new).is_some() {
            return None;
        }
        self.layer.values.push(ValueData {
            def,
            ..data.clone()
        });
        self.id[v.index()] = new;
        Some(new)
    }
}

/// `layer` cut wherever `choose` says, recursively, first part first.
fn parts(
    layer: Layer,
    choose: &mut dyn FnMut(&Layer) -> Result<Option<ValueId>, PartError>,
) -> Result<Vec<Layer>, PartError> {
    let Some(c) = choose(&layer)? else {
        return Ok(vec![layer]);
    };
    let (first, second) = cut(&layer, c).expect("chosen cuts are valid");
    let mut all = parts(first, choose)?;
    all.extend(parts(second, choose)?);
    Ok(all)
}

/// The valid cut of `layer` whose larger part has the fewest constraints, if one is smaller
/// than the layer.
fn best_cut(module: &Module, layer: &Layer) -> Option<ValueId> {
    let whole = cost::layer(module, layer).1;
    layer
        .insts
        .iter()
        .flat_map(|i| i.results.iter().copied())
        .filter_map(|c| {
            let (first, second) = cut(layer, c)?;
            let larger = cost::layer(module, &first)
                .1
                .max(cost::layer(module, &second).1);
            Some((larger, c))
        })
        .filter(|&(larger, _)| larger < whole)
        .min()
        .map(|(_, c)| c)
}

/// `layer` cut at `c` (see the module doc), or `None` if that cut is not valid.
fn cut(layer: &Layer, c: ValueId) -> Option<(Layer, Layer)> {
    if layer.outputs.contains(&c) || !matches!(layer.value(c).def, ValueDef::Inst { .. }) {
        return None;
    }
    // The second part: what the outputs need, back to `c` and the layer's inputs.
    let mut second = HashSet::new();
    let mut read_inputs = HashSet::new();
    let mut stack: Vec<ValueId> = layer.outputs.clone();
    while let Some(v) = stack.pop() {
        match layer.value(v).def {
            _ if v == c => {}
            ValueDef::Input(_) => {
                read_inputs.insert(v);
            }
            ValueDef::State(_) => return None,
            ValueDef::Inst { inst, .. } => {
                if second.insert(inst) {
                    stack.extend(values_read(&layer.insts[inst]));
                }
            }
        }
    }
    let first: Vec<usize> = (0..layer.insts.len())
        .filter(|i| !second.contains(i))
        .collect();
    let defined_in_second = |v: ValueId| matches!(layer.value(v).def, ValueDef::Inst { inst, .. } if second.contains(&inst));
    if second.is_empty()
        || first
            .iter()
            .any(|&i| values_read(&layer.insts[i]).any(defined_in_second))
    {
        return None;
    }
    let mut second: Vec<usize> = second.into_iter().collect();
    second.sort_unstable();
    let outputs_of = |part: &[usize]| -> Vec<ValueId> {
        layer
            .outputs
            .iter()
            .copied()
            .filter(|&o| match layer.value(o).def {
                ValueDef::Inst { inst, .. } => part.contains(&inst),
                _ => false,
            })
            .collect()
    };
    let mut first_outputs = outputs_of(&first);
    first_outputs.push(c);
    let second_inputs: Vec<ValueId> = std::iter::once(c)
        .chain(
            layer
                .inputs
                .iter()
                .copied()
                .filter(|v| read_inputs.contains(v)),
        )
        .collect();
    Some((
        sub_layer(layer, &layer.inputs, &layer.states, &first, &first_outputs),
        sub_layer(layer, &second_inputs, &[], &second, &outputs_of(&second)),
    ))
}

fn values_read(inst: &Inst) -> impl Iterator<Item = ValueId> + '_ {
    inst.args.iter().filter_map(|a| match a {
        Operand::Value(v) => Some(*v),
        Operand::Const(_) => None,
    })
}

/// The layer of `layer`'s `insts` (in order) with these inputs, states and outputs, its values
/// renumbered (names kept: they link the parts).
fn sub_layer(
    layer: &Layer,
    inputs: &[ValueId],
    states: &[ValueId],
    insts: &[usize],
    outputs: &[ValueId],
) -> Layer {
    let mut new_id = vec![None; layer.values.len()];
    let mut values = Vec::new();
    let mut define = |v: ValueId, def: ValueDef| {
        new_id[v.index()] = Some(ValueId(values.len() as u32));
        values.push(ValueData {
            def,
            ..layer.value(v).clone()
        });
    };
    for (k, &v) in inputs.iter().enumerate() {
        define(v, ValueDef::Input(k));
    }
    for (k, &v) in states.iter().enumerate() {
        define(v, ValueDef::State(k));
    }
    for (i, &inst) in insts.iter().enumerate() {
        for (result, &v) in layer.insts[inst].results.iter().enumerate() {
            define(v, ValueDef::Inst { inst: i, result });
        }
    }
    let id = |v: &ValueId| new_id[v.index()].expect("a part defines what it reads");
    Layer {
        name: layer.name.clone(),
        values,
        inputs: inputs.iter().map(id).collect(),
        states: states.iter().map(id).collect(),
        insts: insts
            .iter()
            .map(|&i| {
                let inst = &layer.insts[i];
                Inst {
                    op: inst.op.clone(),
                    args: inst
                        .args
                        .iter()
                        .map(|a| match a {
                            Operand::Value(v) => Operand::Value(id(v)),
                            c => *c,
                        })
                        .collect(),
                    results: inst.results.iter().map(id).collect(),
                }
            })
            .collect(),
        outputs: outputs.iter().map(id).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufFile;
    use crate::model::{generate_gpt2, FloatModel, ModelConfig};
    use crate::quantize::{quantize, QuantConfig};

    pub(super) fn tiny() -> Module {
        let gguf = GgufFile::from_bytes(generate_gpt2(&ModelConfig::tiny()).to_bytes()).unwrap();
        let quant = QuantConfig {
            context: Some(16),
            ..QuantConfig::default()
        };
        quantize(&FloatModel::load(&gguf).unwrap(), &quant).unwrap()
    }

    pub(super) fn named(layer: &Layer, name: &str) -> ValueId {
        (0..layer.values.len() as u32)
            .map(ValueId)
            .find(|&v| layer.value(v).name == name)
            .unwrap()
    }

    #[test]
    fn a_cut_keeps_the_caches_and_what_reads_them_in_the_first_part() {
        let module = tiny();
        let block = module.layers.iter().find(|l| l.name == "block.0").unwrap();
        let (first, second) = cut(block, named(block, "blk.0.attn_residual")).unwrap();
        assert_eq!(first.states.len(), block.states.len());
        assert!(second.states.is_empty());
        assert_eq!(first.insts.len() + second.insts.len(), block.insts.len());
        let input = |l: &Layer, k: usize| l.value(l.inputs[k]).name.clone();
        assert_eq!(input(&second, 0), "blk.0.attn_residual");
        // A value inside attention: the rest of the block still needs the caches.
        assert!(cut(block, named(block, "blk.0.attn.q.0")).is_none());
        // An output is no boundary.
        assert!(cut(block, block.outputs[0]).is_none());
    }

    #[test]
    fn layers_are_cut_while_a_boundary_makes_them_smaller_and_only_then() {
        let module = tiny();
        let cut = split(module.clone(), 1).unwrap();
        assert!(cut.layers.iter().any(|l| l.name == "embed"), "no boundary");
        assert!(cut.layers.iter().any(|l| l.name == "head.part1"));
        assert!(cut.layers.iter().any(|l| l.name == "block.1.part2"));
        zkc_lang::validate(&cut).unwrap();
        assert_eq!(super::split(module.clone(), usize::MAX).unwrap(), module);
    }
}
