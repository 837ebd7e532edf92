//! What the rules know about an e-class: its type, a sound interval for every element, and
//! whether it is a constant. Intervals come from dtypes, constant data and interval arithmetic
//! through the ops; merging two classes intersects them (both are sound, so both hold).

use super::node::Node;
use egg::{DidMerge, Id};
use zkc_lang::semantics::round_shift;
use zkc_lang::{Const, ConstData, ConstId, DType, Module, Multiplier, Op, TensorType};

pub type Graph = egg::EGraph<Node, Facts>;

/// An inclusive interval of integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    pub lo: i128,
    pub hi: i128,
}

impl Interval {
    pub fn of(dtype: DType) -> Interval {
        Interval {
            lo: dtype.min() as i128,
            hi: dtype.max() as i128,
        }
    }

    fn hull(self, other: Interval) -> Interval {
        Interval {
            lo: self.lo.min(other.lo),
            hi: self.hi.max(other.hi),
        }
    }

    fn meet(self, other: Interval) -> Interval {
        Interval {
            lo: self.lo.max(other.lo),
            hi: self.hi.min(other.hi),
        }
    }

    pub fn within(self, lo: i128, hi: i128) -> bool {
        lo <= self.lo && self.hi <= hi
    }

    /// The interval of `f(a, b)` for `a` in `self` and `b` in `other`, for an `f` monotone in
    /// each argument (sums, products): the extremes are at the corners. `None` on overflow.
    fn corners(self, other: Interval, f: fn(i128, i128) -> Option<i128>) -> Option<Interval> {
        let values = [
            f(self.lo, other.lo)?,
            f(self.lo, other.hi)?,
            f(self.hi, other.lo)?,
            f(self.hi, other.hi)?,
        ];
        Some(Interval {
            lo: *values.iter().min().expect("four"),
            hi: *values.iter().max().expect("four"),
        })
    }
}

/// What is known of one class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fact {
    /// A tensor: its type, the interval of its elements, and the constant it is, if one.
    Value {
        ty: TensorType,
        range: Interval,
        constant: Option<ConstId>,
    },
    /// The parts of a `split`, all within `range`.
    Tuple {
        types: Vec<TensorType>,
        range: Interval,
    },
}

impl Fact {
    pub fn ty(&self) -> &TensorType {
        match self {
            Fact::Value { ty, .. } => ty,
            Fact::Tuple { types, .. } => &types[0],
        }
    }

    pub fn range(&self) -> Interval {
        match self {
            Fact::Value { range, .. } | Fact::Tuple { range, .. } => *range,
        }
    }

    pub fn constant(&self) -> Option<ConstId> {
        match self {
            Fact::Value { constant, .. } => *constant,
            Fact::Tuple { .. } => None,
        }
    }
}

/// A constant as the rules see it: its type, the interval of its data, its one value if all
/// elements are equal, and for a matrix `[K, N]` the sums of its positive and of its negative
/// entries per column (the interval of a `linear` without reading the weights again).
#[derive(Clone, Debug)]
pub struct ConstFacts {
    pub name: String,
    pub ty: TensorType,
    pub range: Interval,
    pub uniform: Option<i64>,
    pub data: Option<Vec<i64>>,
    columns: Option<Vec<(i128, i128)>>,
}

impl ConstFacts {
    fn of(c: &Const) -> ConstFacts {
        let ConstData::Inline(data) = &c.data else {
            return ConstFacts {
                name: c.name.clone(),
                ty: c.ty.clone(),
                range: Interval::of(c.ty.dtype),
                uniform: None,
                data: None,
                columns: None,
            };
        };
        let range = data.iter().fold(
            Interval {
                lo: i128::MAX,
                hi: i128::MIN,
            },
            |r, &v| {
                r.hull(Interval {
                    lo: v as i128,
                    hi: v as i128,
                })
            },
        );
        let uniform = data
            .first()
            .copied()
            .filter(|&v| data.iter().all(|&x| x == v));
        let columns = (c.ty.shape.len() == 2).then(|| {
            let n = c.ty.shape[1];
            let mut sums = vec![(0i128, 0i128); n];
            for (i, &w) in data.iter().enumerate() {
                let (pos, neg) = &mut sums[i % n];
                match w >= 0 {
                    true => *pos += w as i128,
                    false => *neg += w as i128,
                }
            }
            sums
        });
        ConstFacts {
            name: c.name.clone(),
            ty: c.ty.clone(),
            range,
            uniform,
            data: (c.ty.shape.len() == 1).then(|| data.clone()),
            columns,
        }
    }
}

/// The analysis: the module's constants, the layer's signature, and the constants rules made.
#[derive(Debug)]
pub struct Facts {
    consts: Vec<ConstFacts>,
    inputs: Vec<TensorType>,
    states: Vec<TensorType>,
    /// Constants made by rules, numbered after the module's.
    pub new_consts: Vec<Const>,
}

impl Facts {
    /// The facts of a layer with the given signature, over the facts of the module's constants
    /// ([`Facts::of_constants`], computed once per pass: it reads every weight).
    pub fn new(consts: Vec<ConstFacts>, inputs: Vec<TensorType>, states: Vec<TensorType>) -> Facts {
        Facts {
            consts,
            inputs,
            states,
            new_consts: Vec::new(),
        }
    }

    /// Facts of nothing: a placeholder while a runner holds the e-graph.
    pub fn empty() -> Facts {
        Facts::new(Vec::new(), Vec::new(), Vec::new())
    }

    pub fn of_constants(module: &Module) -> Vec<ConstFacts> {
        module.consts.iter().map(ConstFacts::of).collect()
    }

    /// The constants' facts back (with the new constants'), and the new constants.
    pub fn into_constants(self) -> (Vec<ConstFacts>, Vec<Const>) {
        (self.consts, self.new_consts)
    }

    pub fn constant(&self, id: ConstId) -> &ConstFacts {
        &self.consts[id.index()]
    }

    /// Adds a constant (a rule's new multipliers, zeros, ones) and returns its id: the id of an
    /// equal one the rules already made, if any, so that rules applied again add nothing.
    pub fn add_constant(&mut self, c: Const) -> ConstId {
        let first = self.consts.len() - self.new_consts.len();
        if let Some(k) = self
            .new_consts
            .iter()
            .position(|n| n.ty == c.ty && n.data == c.data)
        {
            return ConstId((first + k) as u32);
        }
        let id = ConstId(self.consts.len() as u32);
        self.consts.push(ConstFacts::of(&c));
        self.new_consts.push(c);
        id
    }

    /// The range of each result of `op` given its operands' facts.
    fn range_of(&self, op: &Op, args: &[&Fact], out: &TensorType) -> Option<Interval> {
        let x = || args[0].range();
        match op {
            Op::Reshape { .. } | Op::Transpose { .. } | Op::Split { .. } => Some(x()),
            Op::Concat { .. } => Some(args.iter().map(|a| a.range()).reduce(Interval::hull)?),
            Op::KvAppend => Some(x().hull(args[1].range())),
            Op::Clamp { lo, hi } => {
                let clamp = |v: i128| v.clamp(*lo as i128, *hi as i128);
                Some(Interval {
                    lo: clamp(x().lo),
                    hi: clamp(x().hi),
                })
            }
            Op::Requant { mult, shift } => {
                let m = match mult {
                    Multiplier::Uniform(m) => Interval {
                        lo: *m as i128,
                        hi: *m as i128,
                    },
                    Multiplier::PerChannel(c) => self.constant(*c).range,
                };
                let product = x().corners(m, i128::checked_mul)?;
                Some(Interval {
                    lo: round_shift(product.lo, *shift),
                    hi: round_shift(product.hi, *shift),
                })
            }
            Op::Add => x().corners(args[1].range(), i128::checked_add),
            Op::Sub => x().corners(args[1].range(), i128::checked_sub),
            Op::Mul => x().corners(args[1].range(), i128::checked_mul),
            Op::MatMul => {
                let k = *args[0].ty().shape.last()? as i128;
                let product = x().corners(args[1].range(), i128::checked_mul)?;
                product.corners(Interval { lo: k, hi: k }, i128::checked_mul)
            }
            Op::Linear => {
                let columns = self.constant(args[1].constant()?).columns.as_ref()?;
                // Each column's own bias where the bias data is known.
                let bias = |j: usize| match args.get(2) {
                    None => Interval { lo: 0, hi: 0 },
                    Some(b) => match b.constant().and_then(|c| self.constant(c).data.as_ref()) {
                        Some(data) => Interval {
                            lo: data[j] as i128,
                            hi: data[j] as i128,
                        },
                        None => b.range(),
                    },
                };
                let (lo, hi) = (x().lo, x().hi);
                let mut range: Option<Interval> = None;
                for (j, &(pos, neg)) in columns.iter().enumerate() {
                    let column = Interval {
                        lo: lo.checked_mul(pos)?.checked_add(hi.checked_mul(neg)?)?,
                        hi: hi.checked_mul(pos)?.checked_add(lo.checked_mul(neg)?)?,
                    }
                    .corners(bias(j), i128::checked_add)?;
                    range = Some(range.map_or(column, |r| r.hull(column)));
                }
                range
            }
            Op::Gather => Some(args[0].range()),
            Op::Argmax => Some(Interval {
                lo: 0,
                hi: *args[0].ty().shape.last()? as i128 - 1,
            }),
            Op::Softmax { .. }
            | Op::LayerNorm { .. }
            | Op::RmsNorm { .. }
            | Op::Gelu { .. }
            | Op::Silu { .. }
            | Op::ArgmaxCarry { .. } => None,
        }
        .map(|r| r.meet(Interval::of(out.dtype)))
    }
}

impl egg::Analysis<Node> for Facts {
    type Data = Fact;

    fn make(egraph: &mut Graph, enode: &Node, _id: Id) -> Fact {
        let value = |ty: &TensorType, constant| Fact::Value {
            ty: ty.clone(),
            range: Interval::of(ty.dtype),
            constant,
        };
        let facts = &egraph.analysis;
        match enode {
            Node::Input(k) => value(&facts.inputs[*k], None),
            Node::State(k) => value(&facts.states[*k], None),
            Node::Const(c) => Fact::Value {
                ty: facts.constant(*c).ty.clone(),
                range: facts.constant(*c).range,
                constant: Some(*c),
            },
            Node::Part(k, [of]) => match &egraph[*of].data {
                Fact::Tuple { types, range } => Fact::Value {
                    ty: types[*k].clone(),
                    range: range.meet(Interval::of(types[*k].dtype)),
                    constant: None,
                },
                other => other.clone(),
            },
            Node::Inst(head, args) => {
                let operands: Vec<&Fact> = args.iter().map(|&a| &egraph[a].data).collect();
                let out = &head.results[0];
                let range = facts
                    .range_of(&head.op, &operands, out)
                    .unwrap_or(Interval::of(out.dtype));
                match head.op {
                    Op::Split { .. } => Fact::Tuple {
                        types: head.results.clone(),
                        range,
                    },
                    _ => Fact::Value {
                        ty: out.clone(),
                        range,
                        constant: None,
                    },
                }
            }
        }
    }

    fn merge(&mut self, a: &mut Fact, b: Fact) -> DidMerge {
        let before = a.clone();
        let met = a.range().meet(b.range());
        match (&mut *a, &b) {
            (
                Fact::Value {
                    range, constant, ..
                },
                Fact::Value {
                    constant: other, ..
                },
            ) => {
                *range = met;
                *constant = constant.or(*other);
            }
            (Fact::Tuple { range, .. }, _) | (Fact::Value { range, .. }, _) => *range = met,
        }
        DidMerge(*a != before, *a != b)
    }
}

#[cfg(test)]
mod tests {
    use super::super::graph::LayerGraph;
    use super::*;

    /// The facts of each value of a one-layer module, by name.
    fn ranges(source: &str) -> Vec<(String, Interval)> {
        let module = zkc_lang::check(source).map_err(|_| "valid").unwrap().module;
        let layer = &module.layers[0];
        let graph = LayerGraph::new(
            Facts::of_constants(&module),
            layer,
            crate::backend::range::Ranges::Bits,
        );
        layer
            .values
            .iter()
            .enumerate()
            .map(|(k, v)| {
                let class = graph.class(zkc_lang::ValueId(k as u32));
                (v.name.clone(), graph.egraph[class].data.range())
            })
            .collect()
    }

    #[test]
    fn intervals_follow_the_ops() {
        let got = ranges(
            "zkir 1\n\nconst @w: i8[2, 2] = [3, -2, -1, 4]\nconst @b: i32[2] = [10, -10]\n\n\
             layer l(%x: i8[1, 2]) {\n  %c = clamp %x, lo=-4, hi=6 : i8[1, 2]\n  \
             %y = linear %c, @w, @b : i32[1, 2]\n  %q = requant %y, mult=3, shift=2 : i16[1, 2]\n  \
             %m = mul %q, %c : i32[1, 2]\n  return %m\n}\n",
        );
        let want = |lo, hi| Interval { lo, hi };
        // Column 0: 3c0 - c1 + 10 over c in [-4, 6]: [-12 - 6 + 10, 18 + 4 + 10] = [-8, 32];
        // column 1: -2c0 + 4c1 - 10: [-12 - 16 - 10, 8 + 24 - 10] = [-38, 22].
        let expected = [
            ("x", want(-128, 127)),
            ("c", want(-4, 6)),
            ("y", want(-38, 32)),
            ("q", want(-28, 24)),
            ("m", want(-168, 144)),
        ];
        for (name, range) in expected {
            let (_, got) = got.iter().find(|(n, _)| n == name).unwrap();
            assert_eq!(*got, range, "%{name}");
        }
    }

    #[test]
    fn merging_keeps_the_tighter_interval() {
        let mut facts = Facts::empty();
        let ty = TensorType::new(DType::I16, vec![2], zkc_lang::Scale::ONE);
        let mut a = Fact::Value {
            ty: ty.clone(),
            range: Interval { lo: -100, hi: 50 },
            constant: None,
        };
        let b = Fact::Value {
            ty,
            range: Interval { lo: -20, hi: 300 },
            constant: None,
        };
        egg::Analysis::<Node>::merge(&mut facts, &mut a, b);
        assert_eq!(a.range(), Interval { lo: -20, hi: 50 });
    }
}
