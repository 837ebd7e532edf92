//! One IR layer as one constraint system: each instruction becomes its gadget, fed with the
//! interpreter's record of the layer (the witness). Data movement (`reshape`, `transpose`,
//! `split`, `concat`) only relabels wires, using the semantics functions on index tensors so it
//! cannot disagree with the interpreter.
//!
//! Public inputs, in this order (docs/ir.md §5): for each layer input, its value if it is a
//! scalar (`token`, `pos`) or else its Poseidon commitment; if the layer has KV caches, their
//! hash-chain commitment before the step and after it (`backend::cache`, one each for all the
//! layer's states); then for each output, its value if scalar, else its commitment.
//! [`public_inputs`] computes the same vector natively, which is what a verifier checks the
//! links with.

use super::cache::{self, Caches};
use super::commit::{commit, commit_gadget, publish};
use super::lookup::{self, Challenger};
use super::merkle::{self, MerkleTree};
use super::range::{equal, Ranges};
use super::{
    argmax, arith, clamp, field, gelu, layernorm, requant, select, softmax, Alloc, Wire, F,
};
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use zkc_lang::semantics::{self as sem, Tensor};
use zkc_lang::{
    ConstData, ConstId, Layer, Module, Multiplier, Op, Operand, TensorType, ValueDef, ValueId,
};

/// The values a layer makes public, in circuit order: scalars as themselves, tensors by
/// commitment, the caches by their chain. `values` is the layer's record (every SSA value by
/// `ValueId`).
pub fn public_inputs(layer: &Layer, values: &[Tensor]) -> Vec<F> {
    let value = |v: ValueId| public_value(&layer.value(v).ty, values[v.index()].data());
    let caches = Caches::of(layer).map(|c| c.commitments(values));
    layer
        .inputs
        .iter()
        .map(|&v| value(v))
        .chain(
            caches
                .into_iter()
                .flat_map(|(before, after)| [before, after]),
        )
        .chain(layer.outputs.iter().map(|&v| value(v)))
        .collect()
}

/// The public input that stands for an input or output of type `ty` holding `data`: a scalar
/// as itself, a tensor by its commitment ([`commit`], over the packed integers). What
/// [`public_inputs`] computes for each, and what a verifier recomputes from values it is given
/// (a single-pass model's input and output).
pub fn public_value(ty: &TensorType, data: &[i64]) -> F {
    match ty.is_scalar() {
        true => field(data[0] as i128),
        false => commit(data, ty.dtype),
    }
}

/// The tensor and scalar values a layer exposes: its inputs and outputs.
pub fn boundary(layer: &Layer) -> impl Iterator<Item = ValueId> + '_ {
    layer.inputs.iter().chain(&layer.outputs).copied()
}

/// The name the verifier links a layer's cache commitments by, before and after.
pub const CACHE: &str = "kv_cache";

/// What one public input of a layer stands for: the verifier links layers and steps by these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Input,
    StateBefore,
    StateAfter,
    Output,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Input => "input",
            Role::StateBefore => "state_before",
            Role::StateAfter => "state_after",
            Role::Output => "output",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        [
            Role::Input,
            Role::StateBefore,
            Role::StateAfter,
            Role::Output,
        ]
        .into_iter()
        .find(|r| r.name() == name)
    }
}

/// One public input: its role and the name it links by (an input's or output's IR name;
/// [`CACHE`] for the cache commitments, before and after).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Public {
    pub role: Role,
    pub name: String,
}

/// The layer's public inputs in circuit order, described (what [`public_inputs`] computes).
pub fn layout(layer: &Layer) -> Vec<Public> {
    let public = |role, v: ValueId| Public {
        role,
        name: layer.value(v).name.clone(),
    };
    let cache = |role| Public {
        role,
        name: CACHE.to_string(),
    };
    let caches = match Caches::of(layer) {
        Some(_) => vec![cache(Role::StateBefore), cache(Role::StateAfter)],
        None => vec![],
    };
    layer
        .inputs
        .iter()
        .map(|&v| public(Role::Input, v))
        .chain(caches)
        .chain(layer.outputs.iter().map(|&v| public(Role::Output, v)))
        .collect()
}

/// The commitment of the layer's caches before the first step (empty), if it has any.
pub fn initial_states(layer: &Layer) -> Vec<F> {
    Caches::of(layer)
        .map(|_| cache::empty())
        .into_iter()
        .collect()
}

/// Makes a boundary value public: a scalar equal to a new instance variable, a tensor through
/// its commitment.
fn expose(
    cs: &ConstraintSystemRef<F>,
    layer: &Layer,
    v: ValueId,
    wires: &[Wire],
    values: &[Tensor],
) -> Result<(), SynthesisError> {
    let ty = &layer.value(v).ty;
    if ty.is_scalar() {
        let public = cs.new_input_variable(|| Ok(field(values[v.index()].data()[0] as i128)))?;
        return equal(cs, &wires[0].lc, &public.into());
    }
    let c = commit_gadget(cs, wires, ty.dtype)?;
    publish(cs, &c, commit(values[v.index()].data(), ty.dtype))
}

/// What a module's circuits read besides its instructions: its constants' data and the Merkle
/// trees of its large tables (those whose rows are cheaper to prove by a path than by
/// selection), built once per model.
pub struct Tables<'a> {
    consts: Vec<&'a [i64]>,
    /// Built when a circuit first gathers from the table (gpt2-small's token embedding takes
    /// about 90 s to hash), so that a prover of other layers never builds it.
    trees: HashMap<ConstId, OnceLock<MerkleTree>>,
    /// Where built trees are kept between processes (`table-N.merkle`), if anywhere.
    tree_cache: Option<PathBuf>,
}

impl<'a> Tables<'a> {
    /// From the module's inline constants.
    pub fn new(module: &'a Module) -> Tables<'a> {
        let consts = module
            .consts
            .iter()
            .map(|c| match &c.data {
                ConstData::Inline(d) => d.as_slice(),
                ConstData::Extern => &[],
            })
            .collect();
        Tables::with_constants(module, consts)
    }

    /// With each constant's data (by `ConstId`) held elsewhere, e.g. by the interpreter, so
    /// that a large model's weights are held once.
    pub fn with_constants(module: &Module, consts: Vec<&'a [i64]>) -> Tables<'a> {
        let mut trees = HashMap::new();
        for inst in module.layers.iter().flat_map(|l| &l.insts) {
            if let (Op::Gather, Operand::Const(c)) = (&inst.op, inst.args[0]) {
                let table = module.constant(c);
                let (rows, width) = (table.ty.shape[0], table.ty.shape[1..].iter().product());
                let data = consts[c.index()];
                if merkle::cheaper(rows, width, table.ty.dtype) && !data.is_empty() {
                    trees.entry(c).or_insert_with(OnceLock::new);
                }
            }
        }
        Tables {
            consts,
            trees,
            tree_cache: None,
        }
    }

    /// Keeps the Merkle trees it builds in `dir` and reads them from there.
    pub fn with_tree_cache(mut self, dir: &Path) -> Tables<'a> {
        self.tree_cache = Some(dir.to_path_buf());
        self
    }

    /// The Merkle tree of gathered table `c`, if its rows are proven by paths.
    fn tree(&self, module: &Module, c: ConstId) -> Option<&MerkleTree> {
        let table = module.constant(c);
        let width = table.ty.shape[1..].iter().product();
        let data = self.consts[c.index()];
        Some(self.trees.get(&c)?.get_or_init(|| match &self.tree_cache {
            Some(dir) => MerkleTree::cached(
                &dir.join(format!("table-{}.merkle", c.index())),
                data,
                width,
                table.ty.dtype,
            ),
            None => MerkleTree::new(data, width, table.ty.dtype),
        }))
    }

    /// Constant `c`'s data (empty if the module does not carry it).
    pub fn constant(&self, c: ConstId) -> &[i64] {
        self.consts[c.index()]
    }
}

/// One layer's proof statement, for Groth16: the layer of `module` with the record of one run,
/// and where its lookups' challenge comes from (if it has lookups).
pub struct LayerCircuit<'a> {
    pub module: &'a Module,
    pub tables: &'a Tables<'a>,
    pub index: usize,
    pub values: &'a [Tensor],
    pub challenger: &'a dyn Challenger,
}

impl ConstraintSynthesizer<F> for LayerCircuit<'_> {
    fn generate_constraints(self, cs: ConstraintSystemRef<F>) -> Result<(), SynthesisError> {
        synthesize(
            &cs,
            self.module,
            self.tables,
            self.index,
            self.values,
            self.challenger,
        )
        .map(|_| ())
    }
}

/// Builds layer `index` of `module` (constants inline) from `values`, every SSA value of one run
/// of the layer (by `ValueId`); returns the output wires.
/// The results of the `kv_append`s of states that no instruction reads and no output returns:
/// the cache chain commits such an update from its operands, so it needs no constraints of its
/// own (what lets the optimizer read the old cache directly, `passes::rules`).
pub fn unused_state_updates(layer: &Layer) -> HashSet<ValueId> {
    let read: HashSet<ValueId> = layer
        .insts
        .iter()
        .flat_map(|i| &i.args)
        .filter_map(|a| match a {
            Operand::Value(v) => Some(*v),
            Operand::Const(_) => None,
        })
        .chain(layer.outputs.iter().copied())
        .collect();
    layer
        .insts
        .iter()
        .filter(|i| {
            i.op == Op::KvAppend
                && matches!(i.args[0], Operand::Value(s) if matches!(layer.value(s).def, ValueDef::State(_)))
        })
        .map(|i| i.results[0])
        .filter(|r| !read.contains(r))
        .collect()
}

pub fn synthesize(
    cs: &ConstraintSystemRef<F>,
    module: &Module,
    tables: &Tables,
    index: usize,
    values: &[Tensor],
    challenger: &dyn Challenger,
) -> Result<Vec<Wire>, SynthesisError> {
    synthesize_observed(cs, module, tables, index, values, challenger, &mut |_| {})
}

/// What a run of a layer's constraints is for ([`Sections`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// The public boundary: commitments of inputs and outputs, the caches' chain.
    Boundary,
    /// Instruction `index` of the layer, with its op's name.
    Inst { index: usize, op: &'static str },
    /// The lookup argument (`backend::lookup::finish`): a constraint per lookup the sections
    /// before recorded (in their order), then the table's.
    Lookups,
}

/// Where each [`Section`] of a layer's constraint system begins, recorded while it is built
/// ([`Sections::build`]), and what each section owns: its own constraints and witnesses, and
/// the constraint and inverse of every lookup it recorded, which the lookup argument emits at
/// the end.
#[derive(Default)]
pub struct Sections {
    /// (section, first constraint, witnesses before it, lookups before it)
    starts: Vec<(Section, usize, usize, usize)>,
}

/// What one section of a built layer owns.
pub struct Part {
    pub section: Section,
    /// Its constraints (row indices), in two runs (the second empty but for its lookups).
    pub rows: [std::ops::Range<usize>; 2],
    pub witnesses: usize,
}

impl Sections {
    /// Builds layer `index` of `module` into `cs` from `values` (as [`synthesize`]), recording
    /// its sections: for measuring and diagnosing, so the lookups' challenge is the
    /// assignment's digest (no commitment is made).
    pub fn build(
        cs: &ConstraintSystemRef<F>,
        module: &Module,
        tables: &Tables,
        index: usize,
        values: &[Tensor],
    ) -> (Sections, Result<Vec<Wire>, SynthesisError>) {
        let mut sections = Sections::default();
        let built = synthesize_observed(
            cs,
            module,
            tables,
            index,
            values,
            &lookup::AssignmentDigest,
            &mut |section| sections.record(cs, section),
        );
        (sections, built)
    }

    fn record(&mut self, cs: &ConstraintSystemRef<F>, section: Section) {
        self.starts.push((
            section,
            cs.num_constraints(),
            cs.num_witness_variables(),
            lookup::count(cs),
        ));
    }

    /// The parts of the finished system `cs`, one per recorded section.
    pub fn parts(&self, cs: &ConstraintSystemRef<F>) -> Vec<Part> {
        let end = (cs.num_constraints(), cs.num_witness_variables());
        let table = self
            .starts
            .iter()
            .find(|s| s.0 == Section::Lookups)
            .map(|&(_, c, _, l)| (c, l));
        (0..self.starts.len())
            .map(|k| {
                let (section, c, w, l) = self.starts[k];
                let (c1, w1, l1) = self
                    .starts
                    .get(k + 1)
                    .map_or((end.0, end.1, l), |&(_, c, w, l)| (c, w, l));
                match (section, table) {
                    (Section::Lookups, _) => Part {
                        section,
                        rows: [c + l..end.0, 0..0],
                        witnesses: end.1 - w - l,
                    },
                    (_, Some((start, _))) => Part {
                        section,
                        rows: [c..c1, start + l..start + l1],
                        witnesses: w1 - w + (l1 - l),
                    },
                    (_, None) => Part {
                        section,
                        rows: [c..c1, 0..0],
                        witnesses: w1 - w,
                    },
                }
            })
            .collect()
    }

    /// The section that owns constraint `row` of the finished system `cs`.
    pub fn owner(&self, cs: &ConstraintSystemRef<F>, row: usize) -> Section {
        self.parts(cs)
            .into_iter()
            .find(|p| p.rows.iter().any(|r| r.contains(&row)))
            .map_or(Section::Boundary, |p| p.section)
    }

    /// The section being built when the build stopped.
    pub fn last(&self) -> Section {
        self.starts.last().map_or(Section::Boundary, |s| s.0)
    }
}

/// [`synthesize`], calling `observe` where each [`Section`] begins.
fn synthesize_observed(
    cs: &ConstraintSystemRef<F>,
    module: &Module,
    tables: &Tables,
    index: usize,
    values: &[Tensor],
    challenger: &dyn Challenger,
    observe: &mut dyn FnMut(Section),
) -> Result<Vec<Wire>, SynthesisError> {
    let layer = &module.layers[index];
    if let Ranges::Table { width } = super::cost::ranges(module, layer) {
        lookup::begin(cs, width);
    }
    observe(Section::Boundary);
    let konst = |c: zkc_lang::ConstId| tables.constant(c);
    let mut wires: Vec<Option<Vec<Wire>>> = vec![None; layer.values.len()];
    for &v in &layer.inputs {
        let ws: Vec<Wire> = values[v.index()]
            .data()
            .iter()
            .map(|&x| Wire::new(cs, x as i128, Alloc::Witness))
            .collect::<Result<_, _>>()?;
        expose(cs, layer, v, &ws, values)?;
        wires[v.index()] = Some(ws);
    }
    let caches = Caches::of(layer);
    if let Some(caches) = &caches {
        for &s in &layer.states {
            wires[s.index()] = Some(caches.allocate(cs, &values[s.index()])?);
        }
    }
    // One-hots by (position value, slots), shared by every `kv_append` at that position and by
    // the chain; the caches' is part of the boundary when the position is an input (else made
    // at the first `kv_append`).
    let mut phis: HashMap<(ValueId, usize), Vec<Wire>> = HashMap::new();
    if let Some(c) = &caches {
        if let Some(pos) = &wires[c.pos.index()] {
            phis.insert((c.pos, c.slots), select::one_hot(cs, &pos[0], c.slots)?);
        }
    }
    let unused = unused_state_updates(layer);
    for (index, inst) in layer.insts.iter().enumerate() {
        observe(Section::Inst {
            index,
            op: inst.op.name(),
        });
        let arg = |k: usize| -> Vec<Wire> {
            match inst.args[k] {
                Operand::Value(v) => wires[v.index()].clone().expect("defined before use"),
                Operand::Const(c) => konst(c)
                    .iter()
                    .map(|&x| Wire::constant(x as i128))
                    .collect(),
            }
        };
        let ty = |k: usize| match inst.args[k] {
            Operand::Value(v) => &layer.value(v).ty,
            Operand::Const(c) => &module.constant(c).ty,
        };
        let result = |r: usize| &values[inst.results[r].index()];
        let out_ty = &layer.value(inst.results[0]).ty;
        let relabel = |x: &[Wire], f: &dyn Fn(&Tensor) -> Vec<Tensor>| -> Vec<Vec<Wire>> {
            let ids = Tensor::new(ty(0).shape.clone(), (0..x.len() as i64).collect())
                .expect("shape and count agree");
            f(&ids)
                .into_iter()
                .map(|t| t.data().iter().map(|&i| x[i as usize].clone()).collect())
                .collect()
        };
        let outs: Vec<Vec<Wire>> = match &inst.op {
            Op::Linear => {
                let (k, n) = (ty(1).shape[0], ty(1).shape[1]);
                let bias = (inst.args.len() == 3).then(|| match inst.args[2] {
                    Operand::Const(c) => konst(c),
                    Operand::Value(_) => unreachable!("validated: bias is a constant"),
                });
                let Operand::Const(w) = inst.args[1] else {
                    unreachable!("validated: weights are constant")
                };
                vec![arith::linear(cs, &arg(0), konst(w), bias, k, n)?]
            }
            Op::MatMul => {
                let (a, b) = (&ty(0).shape, &ty(1).shape);
                let r = a.len();
                let batches = a[..r - 2].iter().product();
                vec![arith::matmul(
                    cs,
                    &arg(0),
                    &arg(1),
                    [batches, a[r - 2], a[r - 1], b[r - 1]],
                )?]
            }
            Op::Add => vec![arith::add(&arg(0), &arg(1), 1)?],
            Op::Sub => vec![arith::add(&arg(0), &arg(1), -1)?],
            Op::Mul => match inst.args[1] {
                Operand::Const(c) => vec![arith::scale(&arg(0), konst(c))?],
                Operand::Value(_) => vec![arith::mul(cs, &arg(0), &arg(1), result(0).data())?],
            },
            Op::Requant { mult, shift } => {
                let mults: Vec<i64> = match mult {
                    Multiplier::Uniform(m) => vec![*m],
                    Multiplier::PerChannel(c) => konst(*c).to_vec(),
                };
                vec![requant::requant(
                    cs,
                    &arg(0),
                    &mults,
                    *shift,
                    out_ty.dtype,
                    result(0).data(),
                )?]
            }
            Op::Clamp { lo, hi } => vec![clamp::clamp(cs, &arg(0), *lo, *hi, ty(0).dtype)?],
            Op::Reshape { .. } => vec![arg(0)],
            Op::Transpose { perm } => relabel(&arg(0), &|t| {
                vec![sem::transpose(t, perm).expect("validated")]
            }),
            Op::Split { axis } => relabel(&arg(0), &|t| {
                sem::split(t, *axis, inst.results.len()).expect("validated")
            }),
            Op::Concat { axis } => {
                let parts: Vec<Vec<Wire>> = (0..inst.args.len()).map(arg).collect();
                let mut offset = 0;
                let ids: Vec<Tensor> = (0..inst.args.len())
                    .map(|k| {
                        let n = parts[k].len() as i64;
                        offset += n;
                        Tensor::new(ty(k).shape.clone(), (offset - n..offset).collect())
                            .expect("shape and count agree")
                    })
                    .collect();
                let flat: Vec<Wire> = parts.concat();
                let joined =
                    sem::concat(&ids.iter().collect::<Vec<_>>(), *axis).expect("validated");
                vec![joined
                    .data()
                    .iter()
                    .map(|&i| flat[i as usize].clone())
                    .collect()]
            }
            Op::Softmax { ln2, b, c, shift } => {
                let params = softmax::SoftmaxParams::of([*ln2, *b, *c], *shift, ty(0), out_ty);
                let pos = (inst.args.len() == 2).then(|| arg(1)[0].clone());
                vec![softmax::softmax(
                    cs,
                    &arg(0),
                    pos.as_ref(),
                    &params,
                    result(0).data(),
                )?]
            }
            Op::LayerNorm { eps, shift } => {
                let (Operand::Const(g), Operand::Const(b)) = (inst.args[1], inst.args[2]) else {
                    unreachable!("validated")
                };
                let dtypes = (ty(0).dtype, out_ty.dtype);
                vec![layernorm::layernorm(
                    cs,
                    &arg(0),
                    konst(g),
                    konst(b),
                    *eps,
                    *shift,
                    dtypes,
                    result(0).data(),
                )?]
            }
            Op::RmsNorm { eps, shift } => {
                let Operand::Const(g) = inst.args[1] else {
                    unreachable!("validated")
                };
                let dtypes = (ty(0).dtype, out_ty.dtype);
                vec![layernorm::rmsnorm(
                    cs,
                    &arg(0),
                    konst(g),
                    *eps,
                    *shift,
                    dtypes,
                    result(0).data(),
                )?]
            }
            // silu is gelu's gadget with SiLU's fitted coefficients.
            Op::Gelu(attrs) | Op::Silu(attrs) => {
                let Operand::Const(table) = inst.args[1] else {
                    unreachable!("validated: the coefficients are a constant")
                };
                let op = gelu::Gelu {
                    coef: konst(table),
                    degree: ty(1).shape[1] - 1,
                    attrs: *attrs,
                    input: ty(0).dtype,
                    output: out_ty.dtype,
                };
                vec![gelu::gelu(cs, &arg(0), &op, result(0).data())?]
            }
            Op::Argmax => {
                let row = *ty(0).shape.last().expect("rank >= 1");
                vec![argmax::argmax(
                    cs,
                    &arg(0),
                    row,
                    ty(0).dtype.bits(),
                    result(0).data(),
                )?]
            }
            Op::ArgmaxCarry { offset } => {
                let row = *ty(0).shape.last().expect("rank >= 1");
                let (best, top) = (arg(1), arg(2));
                argmax::argmax_carry(
                    cs,
                    &arg(0),
                    (&best, &top),
                    matches!(inst.args[1], Operand::Const(_)),
                    row,
                    *offset,
                    ty(0).dtype.bits(),
                    (result(0).data(), result(1).data()),
                )?
                .into()
            }
            Op::Gather => {
                let Operand::Const(t) = inst.args[0] else {
                    unreachable!("validated")
                };
                let width = module.constant(t).ty.shape[1..].iter().product();
                let table = module.constant(t);
                vec![match tables.tree(module, t) {
                    Some(tree) => {
                        merkle::gather(cs, tree, konst(t), width, table.ty.dtype, &arg(1)[0])?
                    }
                    None => select::gather(cs, konst(t), width, &arg(1)[0])?,
                }]
            }
            Op::KvAppend => {
                let Operand::Value(pos) = inst.args[2] else {
                    unreachable!("validated: the position is a value")
                };
                let key = (pos, ty(0).shape[0]);
                if let std::collections::hash_map::Entry::Vacant(slot) = phis.entry(key) {
                    slot.insert(select::one_hot(cs, &arg(2)[0], key.1)?);
                }
                // A state's update that nothing reads is committed by the chain alone.
                if unused.contains(&inst.results[0]) {
                    continue;
                }
                vec![select::kv_append(cs, &arg(0), &arg(1), &phis[&key])?]
            }
        };
        for (&r, ws) in inst.results.iter().zip(outs) {
            wires[r.index()] = Some(ws);
        }
    }
    observe(Section::Boundary);
    if let Some(caches) = &caches {
        let phi = &phis[&(caches.pos, caches.slots)];
        let (before, after) = caches.gadget(cs, &wires, phi)?;
        publish(cs, &before, before.value)?;
        publish(cs, &after, after.value)?;
    }
    for &v in &layer.outputs {
        expose(
            cs,
            layer,
            v,
            wires[v.index()].as_ref().expect("defined"),
            values,
        )?;
    }
    observe(Section::Lookups);
    lookup::finish(cs, challenger)?;
    Ok(layer
        .outputs
        .iter()
        .flat_map(|o| wires[o.index()].clone().expect("outputs are defined"))
        .collect())
}
