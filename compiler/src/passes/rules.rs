//! The rewrite rules: one table, each rule with why it is sound.
//!
//! A rule looks at one e-node (and the classes under it) and returns a class equal to it, or
//! nothing. *Exact* rules keep the integer semantics bit for bit, including which executions are
//! errors (a value that does not fit its dtype): the e-graph only ever holds programs that agree
//! on every input (extraction then drops what no output needs, and its failures). *Approximate* rules change rounding; they live in their own pass, which only
//! runs when asked for (`zkc compile --approx`), and `zkc accuracy` measures what they cost.
//!
//! There is no general commutativity or associativity here: the quantizer's programs do not need
//! it and it is what makes e-graphs explode.

use super::facts::{Fact, Graph};
use super::node::{Head, Node};
use egg::{Id, Searcher};
use zkc_lang::{Const, ConstData, DType, Multiplier, Op, Scale, TensorType};

/// Whether a rule keeps the integer semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exactness {
    Exact,
    Approximate,
}

pub struct Rule {
    pub name: &'static str,
    /// The op of the e-nodes it looks at.
    pub op: &'static str,
    pub exactness: Exactness,
    /// A class equal to the node's, adding nodes as needed.
    pub rewrite: fn(&mut Graph, &Node) -> Option<Id>,
}

use Exactness::{Approximate, Exact};

/// Every rule, by name. The passes (`super::pipeline`) pick theirs from here.
pub const RULES: &[Rule] = &[
    // `requant x, mult=1, shift=0` is `x * 1`; with x's own type the dtype check cannot fail.
    Rule {
        name: "requant-identity",
        op: "requant",
        exactness: Exact,
        rewrite: requant_identity,
    },
    // round_shift(x * m * 2^k, s) = round_shift(x * m, s - k) for k <= s: numerator and the
    // half-up bias 2^(s-1) both divide by 2^k, and floor((a * 2^k) / 2^s) = floor(a / 2^(s-k)).
    // Saves k remainder bits per element.
    Rule {
        name: "requant-pow2",
        op: "requant",
        exactness: Exact,
        rewrite: requant_pow2,
    },
    // Reshaping to the shape a value already has relabels nothing.
    Rule {
        name: "reshape-identity",
        op: "reshape",
        exactness: Exact,
        rewrite: reshape_identity,
    },
    // Both reshapes keep the row-major order, so only the last shape matters.
    Rule {
        name: "reshape-reshape",
        op: "reshape",
        exactness: Exact,
        rewrite: reshape_reshape,
    },
    // perm = [0, 1, ..] moves no axis.
    Rule {
        name: "transpose-identity",
        op: "transpose",
        exactness: Exact,
        rewrite: transpose_identity,
    },
    // Result axis a of the outer transpose is axis q[a] of the inner one, which is input axis
    // p[q[a]]: one transpose by the composed permutation.
    Rule {
        name: "transpose-transpose",
        op: "transpose",
        exactness: Exact,
        rewrite: transpose_transpose,
    },
    // Splitting a concatenation along the same axis into parts of the same types gives back
    // the pieces.
    Rule {
        name: "split-concat",
        op: "part",
        exactness: Exact,
        rewrite: split_concat,
    },
    // Concatenating all parts of a split, in order and along its axis, gives back the value.
    Rule {
        name: "concat-split",
        op: "concat",
        exactness: Exact,
        rewrite: concat_split,
    },
    // A clamp whose operand is already within [lo, hi] returns its operand: the identity if the
    // type is unchanged, otherwise a narrowing `requant mult=1 shift=0`, whose dtype check then
    // always passes (lo and hi fit the result dtype) and which needs no comparisons.
    Rule {
        name: "clamp-implied",
        op: "clamp",
        exactness: Exact,
        rewrite: clamp_implied,
    },
    // clamp(clamp(x, l1, h1), l2, h2) = clamp(x, max(l1, l2), min(h1, h2)) when the intervals
    // overlap (min/max compose); the inner result always fits its dtype, so no error is lost.
    Rule {
        name: "clamp-clamp",
        op: "clamp",
        exactness: Exact,
        rewrite: clamp_clamp,
    },
    // x + 0 = x - 0 = x, with x's own type.
    Rule {
        name: "add-zero",
        op: "add",
        exactness: Exact,
        rewrite: add_zero,
    },
    Rule {
        name: "sub-zero",
        op: "sub",
        exactness: Exact,
        rewrite: add_zero,
    },
    // x * 1 = x, with x's own type (so the constant's scale is 1).
    Rule {
        name: "mul-one",
        op: "mul",
        exactness: Exact,
        rewrite: mul_one,
    },
    // Attention scores over the cache after the step: row j of kv_append(S, x, pos) * b is
    // S[j] * b, except row pos, which is x * b. So the product is kv_append(S * b, x * b, pos),
    // which reads the old cache S directly and writes one slot of the (narrow) product instead
    // of a whole cache row: C*N + N*d products and C for the slot instead of C*d for the
    // update. Applied only when S * b provably fits the result dtype (then no new failure).
    Rule {
        name: "attend-keys",
        op: "matmul",
        exactness: Exact,
        rewrite: attend_keys,
    },
    // The weighted sum over the cache after the step: p * kv_append(S, x, pos) is
    // p0 * S + p[:, pos] * x, where p0 is p with column pos zeroed (a kv_append of a zero slot
    // into p's transpose) and p[:, pos] = sum(p) - sum(p0) (free linear sums). The partial
    // products are i64 and provably fit; the final add declares the original type, so it fails
    // exactly when the original does.
    Rule {
        name: "attend-values",
        op: "matmul",
        exactness: Exact,
        rewrite: attend_values,
    },
    // Rounds a requantize multiplier to APPROX_MULT_BITS significant bits and drops as many
    // bits of shift: m / 2^s becomes round(m / 2^k) / 2^(s-k), a relative change of at most
    // 2^-APPROX_MULT_BITS in the multiplier, for k fewer remainder bits per element.
    Rule {
        name: "requant-narrow",
        op: "requant",
        exactness: Approximate,
        rewrite: requant_narrow,
    },
];

/// The significant bits `requant-narrow` keeps of a multiplier.
pub const APPROX_MULT_BITS: u32 = 10;

/// The rule named `name`.
pub fn rule(name: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.name == name)
}

/// The e-node's head and operands if it is an instruction of op `op`.
fn inst<'a>(node: &'a Node, op: &str) -> Option<(&'a Head, &'a [Id])> {
    match node {
        Node::Inst(head, args) if head.op.name() == op => Some((head, args)),
        _ => None,
    }
}

/// The first node of class `id` that `f` accepts.
fn find<T>(g: &Graph, id: Id, f: impl Fn(&Node) -> Option<T>) -> Option<T> {
    g[id].nodes.iter().find_map(f)
}

fn fact(g: &Graph, id: Id) -> &Fact {
    &g[id].data
}

/// `args[0]` if it has the result's type (the precondition of every identity rule).
fn same_type(g: &Graph, head: &Head, args: &[Id]) -> Option<Id> {
    (fact(g, args[0]).ty() == &head.results[0]).then_some(args[0])
}

fn add(g: &mut Graph, op: Op, results: Vec<TensorType>, args: Vec<Id>) -> Id {
    g.add(Node::inst(op, results, args))
}

fn requant_identity(g: &mut Graph, node: &Node) -> Option<Id> {
    let (head, args) = inst(node, "requant")?;
    match head.op {
        Op::Requant {
            mult: Multiplier::Uniform(1),
            shift: 0,
        } => same_type(g, head, args),
        _ => None,
    }
}

/// The multipliers of a requant, as a list.
fn multipliers(g: &Graph, mult: Multiplier) -> Option<Vec<i64>> {
    match mult {
        Multiplier::Uniform(m) => Some(vec![m]),
        Multiplier::PerChannel(c) => g.analysis.constant(c).data.clone(),
    }
}

/// The multiplier `old` with every element replaced by `new`: uniform stays uniform, a
/// per-channel table becomes a new constant beside the old one.
fn with_multipliers(g: &mut Graph, old: Multiplier, new: Vec<i64>, tag: &str) -> Multiplier {
    match old {
        Multiplier::Uniform(_) => Multiplier::Uniform(new[0]),
        Multiplier::PerChannel(c) => {
            let table = g.analysis.constant(c);
            let name = format!("{}.{tag}", table.name);
            let ty = table.ty.clone();
            Multiplier::PerChannel(g.analysis.add_constant(Const {
                name,
                ty,
                data: ConstData::Inline(new),
            }))
        }
    }
}

fn requant_pow2(g: &mut Graph, node: &Node) -> Option<Id> {
    rewrite_requant(g, node, "pow2", |ms, shift| {
        let k = ms.iter().map(|m| m.trailing_zeros()).min()?.min(shift);
        Some((ms.iter().map(|m| m >> k).collect(), k))
    })
}

fn requant_narrow(g: &mut Graph, node: &Node) -> Option<Id> {
    rewrite_requant(g, node, "narrow", |ms, shift| {
        let bits = 64 - ms.iter().max()?.leading_zeros();
        let k = bits.saturating_sub(APPROX_MULT_BITS).min(shift);
        let rounded = ms.iter().map(|&m| (m + (1 << k >> 1)) >> k);
        Some((rounded.map(|m| m.max(1)).collect(), k))
    })
}

/// New multipliers for a requant and the bits of shift they drop, from the old ones and the
/// shift.
type Rescale = fn(&[i64], u32) -> Option<(Vec<i64>, u32)>;

/// The requant `node` with new multipliers and `k` bits less shift, as `change` gives them
/// (nothing when `k` is 0).
fn rewrite_requant(g: &mut Graph, node: &Node, tag: &str, change: Rescale) -> Option<Id> {
    let (head, args) = inst(node, "requant")?;
    let Op::Requant { mult, shift } = head.op else {
        return None;
    };
    let (ms, k) = change(&multipliers(g, mult)?, shift).filter(|&(_, k)| k > 0)?;
    let op = Op::Requant {
        mult: with_multipliers(g, mult, ms, tag),
        shift: shift - k,
    };
    Some(add(g, op, head.results.clone(), args.to_vec()))
}

fn reshape_identity(g: &mut Graph, node: &Node) -> Option<Id> {
    let (head, args) = inst(node, "reshape")?;
    same_type(g, head, args)
}

fn reshape_reshape(g: &mut Graph, node: &Node) -> Option<Id> {
    let (head, args) = inst(node, "reshape")?;
    let inner = find(g, args[0], |n| inst(n, "reshape").map(|(_, a)| a[0]))?;
    Some(add(g, head.op.clone(), head.results.clone(), vec![inner]))
}

fn transpose_identity(_: &mut Graph, node: &Node) -> Option<Id> {
    let (head, args) = inst(node, "transpose")?;
    let Op::Transpose { perm } = &head.op else {
        return None;
    };
    perm.iter()
        .enumerate()
        .all(|(a, &p)| a == p)
        .then_some(args[0])
}

fn transpose_transpose(g: &mut Graph, node: &Node) -> Option<Id> {
    let (head, args) = inst(node, "transpose")?;
    let Op::Transpose { perm: q } = &head.op else {
        return None;
    };
    let (p, y) = find(g, args[0], |n| match inst(n, "transpose")? {
        (
            Head {
                op: Op::Transpose { perm },
                ..
            },
            a,
        ) => Some((perm.clone(), a[0])),
        _ => None,
    })?;
    let perm = q.iter().map(|&a| p[a]).collect();
    Some(add(
        g,
        Op::Transpose { perm },
        head.results.clone(),
        vec![y],
    ))
}

/// The axis, part types and operand of a `split` in class `id`.
fn split_in(g: &Graph, id: Id) -> Option<(usize, Vec<TensorType>, Id)> {
    find(g, id, |n| {
        let (head, args) = inst(n, "split")?;
        let Op::Split { axis } = head.op else {
            return None;
        };
        Some((axis, head.results.clone(), args[0]))
    })
}

fn split_concat(g: &mut Graph, node: &Node) -> Option<Id> {
    let Node::Part(k, [split]) = node else {
        return None;
    };
    let (axis, parts, source) = split_in(g, *split)?;
    find(g, source, |n| {
        let (head, pieces) = inst(n, "concat")?;
        let same_types = pieces.len() == parts.len()
            && pieces
                .iter()
                .zip(&parts)
                .all(|(&p, t)| fact(g, p).ty() == t);
        (head.op == Op::Concat { axis } && same_types).then_some(pieces[*k])
    })
}

fn concat_split(g: &mut Graph, node: &Node) -> Option<Id> {
    let (head, args) = inst(node, "concat")?;
    let part_of = |k: usize, id: Id| {
        find(g, id, |n| match n {
            Node::Part(j, [s]) if *j == k => Some(g.find(*s)),
            _ => None,
        })
    };
    let split = part_of(0, args[0])?;
    if (1..args.len()).any(|k| part_of(k, args[k]) != Some(split)) {
        return None;
    }
    let (axis, parts, x) = split_in(g, split)?;
    let whole = parts.len() == args.len() && fact(g, x).ty() == &head.results[0];
    (head.op == Op::Concat { axis } && whole).then_some(x)
}

fn clamp_implied(g: &mut Graph, node: &Node) -> Option<Id> {
    let (head, args) = inst(node, "clamp")?;
    let Op::Clamp { lo, hi } = head.op else {
        return None;
    };
    if !fact(g, args[0]).range().within(lo as i128, hi as i128) {
        return None;
    }
    same_type(g, head, args).or_else(|| {
        let (from, to) = (fact(g, args[0]).ty(), &head.results[0]);
        (from.scale == to.scale && from.shape == to.shape).then(|| {
            let cast = Op::Requant {
                mult: Multiplier::Uniform(1),
                shift: 0,
            };
            add(g, cast, head.results.clone(), args.to_vec())
        })
    })
}

fn clamp_clamp(g: &mut Graph, node: &Node) -> Option<Id> {
    let (head, args) = inst(node, "clamp")?;
    let Op::Clamp { lo: l2, hi: h2 } = head.op else {
        return None;
    };
    let (l1, h1, y) = find(g, args[0], |n| match inst(n, "clamp")? {
        (
            Head {
                op: Op::Clamp { lo, hi },
                ..
            },
            a,
        ) => Some((*lo, *hi, a[0])),
        _ => None,
    })?;
    let (lo, hi) = (l1.max(l2), h1.min(h2));
    (lo <= hi).then(|| add(g, Op::Clamp { lo, hi }, head.results.clone(), vec![y]))
}

/// Whether operand `id` is a constant with every element equal to `v`.
fn uniform(g: &Graph, id: Id, v: i64) -> bool {
    fact(g, id)
        .constant()
        .is_some_and(|c| g.analysis.constant(c).uniform == Some(v))
}

fn add_zero(g: &mut Graph, node: &Node) -> Option<Id> {
    let Node::Inst(head, args) = node else {
        return None;
    };
    (matches!(head.op, Op::Add | Op::Sub) && uniform(g, args[1], 0))
        .then(|| same_type(g, head, args))
        .flatten()
}

fn mul_one(g: &mut Graph, node: &Node) -> Option<Id> {
    let (head, args) = inst(node, "mul")?;
    uniform(g, args[1], 1)
        .then(|| same_type(g, head, args))
        .flatten()
}

/// Finds the classes with a node of the rule's op.
pub struct OpSearcher(pub &'static str);

impl Searcher<Node, super::facts::Facts> for OpSearcher {
    fn search_eclass_with_limit(
        &self,
        egraph: &Graph,
        eclass: Id,
        limit: usize,
    ) -> Option<egg::SearchMatches<'_, Node>> {
        let hit = egraph[eclass].nodes.iter().any(|n| match n {
            Node::Part(..) => self.0 == "part",
            Node::Inst(head, _) => head.op.name() == self.0,
            _ => false,
        });
        (hit && limit > 0).then(|| egg::SearchMatches {
            eclass,
            substs: vec![egg::Subst::default()],
            ast: None,
        })
    }

    fn vars(&self) -> Vec<egg::Var> {
        Vec::new()
    }
}

/// Applies a rule to every matching node of a class and merges what it returns into the class.
pub struct RuleApplier(pub &'static Rule);

impl egg::Applier<Node, super::facts::Facts> for RuleApplier {
    fn apply_one(
        &self,
        egraph: &mut Graph,
        eclass: Id,
        _subst: &egg::Subst,
        _ast: Option<&egg::PatternAst<Node>>,
        _rule: egg::Symbol,
    ) -> Vec<Id> {
        let nodes = egraph[eclass].nodes.clone();
        let mut changed = Vec::new();
        for node in &nodes {
            if let Some(id) = (self.0.rewrite)(egraph, node) {
                if egraph.union(eclass, id) {
                    changed.push(eclass);
                }
            }
        }
        changed
    }
}

/// The rule as an egg rewrite.
pub fn rewrite(rule: &'static Rule) -> egg::Rewrite<Node, super::facts::Facts> {
    egg::Rewrite::new(rule.name, OpSearcher(rule.op), RuleApplier(rule))
        .expect("rule names are unique")
}

/// The state, new slot and position of the update `kv_append(S, x, pos)` of a state in class
/// `id`.
fn state_update(g: &Graph, id: Id) -> Option<(Id, Id, Id)> {
    find(g, id, |n| {
        let (_, a) = inst(n, "kv_append")?;
        let is_state = g[a[0]].nodes.iter().any(|n| matches!(n, Node::State(_)));
        is_state.then_some((a[0], a[1], a[2]))
    })
}

/// The largest magnitude in a class's interval.
fn magnitude(g: &Graph, id: Id) -> i128 {
    let r = fact(g, id).range();
    r.lo.abs().max(r.hi.abs())
}

/// Whether `k` products of the two classes' elements, summed, fit `dtype`.
fn sum_fits(g: &Graph, k: usize, a: Id, b: Id, dtype: DType) -> bool {
    magnitude(g, a)
        .checked_mul(magnitude(g, b))
        .and_then(|m| m.checked_mul(k as i128))
        .is_some_and(|m| m <= dtype.max() as i128)
}

fn typed(like: &TensorType, dtype: DType, shape: Vec<usize>) -> TensorType {
    TensorType::new(dtype, shape, like.scale)
}

fn attend_keys(g: &mut Graph, node: &Node) -> Option<Id> {
    let (head, args) = inst(node, "matmul")?;
    let (s, x, pos) = state_update(g, args[0])?;
    let (cache, b, out) = (
        fact(g, args[0]).ty(),
        fact(g, args[1]).ty(),
        &head.results[0],
    );
    if cache.rank() != 2 || b.rank() != 2 || !sum_fits(g, cache.shape[1], s, args[1], out.dtype) {
        return None;
    }
    let (slots, n) = (cache.shape[0], b.shape[1]);
    let (base_ty, slot_ty) = (
        typed(out, out.dtype, vec![slots, n]),
        typed(out, out.dtype, vec![1, n]),
    );
    let base = add(g, Op::MatMul, vec![base_ty], vec![s, args[1]]);
    let slot = add(g, Op::MatMul, vec![slot_ty], vec![x, args[1]]);
    Some(add(
        g,
        Op::KvAppend,
        vec![out.clone()],
        vec![base, slot, pos],
    ))
}

fn attend_values(g: &mut Graph, node: &Node) -> Option<Id> {
    let (head, args) = inst(node, "matmul")?;
    let (s, x, pos) = state_update(g, args[1])?;
    let (p, cache, out) = (
        fact(g, args[0]).ty().clone(),
        fact(g, args[1]).ty(),
        head.results[0].clone(),
    );
    if p.rank() != 2 || cache.rank() != 2 || !sum_fits(g, cache.shape[0], args[0], s, DType::I64) {
        return None;
    }
    let (rows, slots, width) = (p.shape[0], p.shape[1], cache.shape[1]);
    let swap = || Op::Transpose { perm: vec![1, 0] };
    let p_t = add(
        g,
        swap(),
        vec![typed(&p, p.dtype, vec![slots, rows])],
        vec![args[0]],
    );
    let zero = constant(g, "attend.zero", typed(&p, p.dtype, vec![1, rows]), 0);
    let p0_t = add(
        g,
        Op::KvAppend,
        vec![typed(&p, p.dtype, vec![slots, rows])],
        vec![p_t, zero, pos],
    );
    let p0 = add(g, swap(), vec![p.clone()], vec![p0_t]);
    let ones = constant(
        g,
        "attend.ones",
        TensorType::new(DType::I8, vec![slots, 1], Scale::ONE),
        1,
    );
    let sum_ty = typed(&p, DType::I64, vec![rows, 1]);
    let total = add(g, Op::Linear, vec![sum_ty.clone()], vec![args[0], ones]);
    let rest = add(g, Op::Linear, vec![sum_ty.clone()], vec![p0, ones]);
    let at_pos = add(g, Op::Sub, vec![sum_ty], vec![total, rest]);
    let wide = typed(&out, DType::I64, vec![rows, width]);
    let old = add(g, Op::MatMul, vec![wide.clone()], vec![p0, s]);
    let new = add(g, Op::MatMul, vec![wide], vec![at_pos, x]);
    Some(add(g, Op::Add, vec![out], vec![old, new]))
}

/// A class for a new constant of type `ty` with every element `v`.
fn constant(g: &mut Graph, name: &str, ty: TensorType, v: i64) -> Id {
    let n = ty.shape.iter().product();
    let id = g.analysis.add_constant(Const {
        name: name.to_string(),
        ty,
        data: ConstData::Inline(vec![v; n]),
    });
    g.add(Node::Const(id))
}
