//! Each op's attributes by name: the one table the resolver reads them through and the printer
//! writes them from, so the two cannot disagree.

use crate::ir::{ConstId, GeluAttrs, Multiplier, Op};

pub const OP_NAMES: [&str; 20] = [
    "linear",
    "matmul",
    "add",
    "sub",
    "mul",
    "requant",
    "clamp",
    "reshape",
    "transpose",
    "split",
    "concat",
    "softmax",
    "layernorm",
    "rmsnorm",
    "gelu",
    "silu",
    "argmax",
    "argmax_carry",
    "gather",
    "kv_append",
];

/// The attribute keys of each op, in canonical order; `None` for an unknown op.
pub fn attr_keys(op: &str) -> Option<&'static [&'static str]> {
    Some(match op {
        "linear" | "matmul" | "add" | "sub" | "mul" | "argmax" | "gather" | "kv_append" => &[],
        "requant" => &["mult", "shift"],
        "clamp" => &["lo", "hi"],
        "reshape" => &["shape"],
        "transpose" => &["perm"],
        "split" | "concat" => &["axis"],
        "softmax" => &["ln2", "b", "c", "shift"],
        "layernorm" | "rmsnorm" => &["eps", "shift"],
        "gelu" | "silu" => &["bound", "width", "tail", "shift"],
        "argmax_carry" => &["offset"],
        _ => return None,
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttrValue {
    Int(i64),
    List(Vec<i64>),
    Const(ConstId),
}

/// Why an attribute could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttrProblem {
    Missing(&'static str),
    /// The attribute is there but of the wrong kind or out of range: say what is accepted.
    Invalid {
        key: &'static str,
        expected: &'static str,
    },
}

/// Supplies attribute values by key to [`build_op`]; the resolver's implementation also notes
/// which keys were taken, so that the rest can be reported as unexpected.
pub trait AttrSource {
    fn take(&mut self, key: &'static str) -> Option<AttrValue>;
}

fn int(src: &mut dyn AttrSource, key: &'static str) -> Result<i64, AttrProblem> {
    match src.take(key) {
        Some(AttrValue::Int(v)) => Ok(v),
        Some(_) => Err(AttrProblem::Invalid {
            key,
            expected: "an integer",
        }),
        None => Err(AttrProblem::Missing(key)),
    }
}

fn count(src: &mut dyn AttrSource, key: &'static str) -> Result<usize, AttrProblem> {
    usize::try_from(int(src, key)?).map_err(|_| AttrProblem::Invalid {
        key,
        expected: "an integer >= 0",
    })
}

fn shift(src: &mut dyn AttrSource) -> Result<u32, AttrProblem> {
    let v = int(src, "shift")?;
    u32::try_from(v)
        .ok()
        .filter(|&s| s <= crate::ir::MAX_SHIFT)
        .ok_or(AttrProblem::Invalid {
            key: "shift",
            expected: "a shift from 0 to 62",
        })
}

/// A bit count or exponent from 0 to 62 (gelu's `bound`, `width` and `tail`).
fn exponent(src: &mut dyn AttrSource, key: &'static str) -> Result<u32, AttrProblem> {
    let v = int(src, key)?;
    u32::try_from(v)
        .ok()
        .filter(|&s| s <= crate::ir::MAX_SHIFT)
        .ok_or(AttrProblem::Invalid {
            key,
            expected: "an integer from 0 to 62",
        })
}

fn signed_shift(src: &mut dyn AttrSource) -> Result<i32, AttrProblem> {
    let v = int(src, "shift")?;
    i32::try_from(v)
        .ok()
        .filter(|s| s.unsigned_abs() <= crate::ir::MAX_SHIFT)
        .ok_or(AttrProblem::Invalid {
            key: "shift",
            expected: "a shift from -62 to 62",
        })
}

fn list(src: &mut dyn AttrSource, key: &'static str) -> Result<Vec<usize>, AttrProblem> {
    let bad = AttrProblem::Invalid {
        key,
        expected: "a list of integers >= 0, like `[1, 0, 2]`",
    };
    match src.take(key) {
        Some(AttrValue::List(v)) => v
            .iter()
            .map(|&x| usize::try_from(x).map_err(|_| bad.clone()))
            .collect(),
        Some(_) => Err(bad),
        None => Err(AttrProblem::Missing(key)),
    }
}

/// Builds the op called `name`; `None` if there is no such op.
pub fn build_op(name: &str, src: &mut dyn AttrSource) -> Option<Result<Op, AttrProblem>> {
    let mut op = || -> Result<Op, AttrProblem> {
        Ok(match name {
            "linear" => Op::Linear,
            "matmul" => Op::MatMul,
            "add" => Op::Add,
            "sub" => Op::Sub,
            "mul" => Op::Mul,
            "requant" => {
                let mult = match src.take("mult") {
                    Some(AttrValue::Int(m)) => Multiplier::Uniform(m),
                    Some(AttrValue::Const(c)) => Multiplier::PerChannel(c),
                    Some(AttrValue::List(_)) => {
                        return Err(AttrProblem::Invalid {
                            key: "mult",
                            expected: "an integer, or a constant `@name` holding one per channel",
                        })
                    }
                    None => return Err(AttrProblem::Missing("mult")),
                };
                Op::Requant {
                    mult,
                    shift: shift(src)?,
                }
            }
            "clamp" => Op::Clamp {
                lo: int(src, "lo")?,
                hi: int(src, "hi")?,
            },
            "reshape" => Op::Reshape {
                shape: list(src, "shape")?,
            },
            "transpose" => Op::Transpose {
                perm: list(src, "perm")?,
            },
            "split" => Op::Split {
                axis: count(src, "axis")?,
            },
            "concat" => Op::Concat {
                axis: count(src, "axis")?,
            },
            "softmax" => Op::Softmax {
                ln2: int(src, "ln2")?,
                b: int(src, "b")?,
                c: int(src, "c")?,
                shift: shift(src)?,
            },
            "layernorm" => Op::LayerNorm {
                eps: int(src, "eps")?,
                shift: signed_shift(src)?,
            },
            "rmsnorm" => Op::RmsNorm {
                eps: int(src, "eps")?,
                shift: signed_shift(src)?,
            },
            "gelu" | "silu" => {
                let attrs = GeluAttrs {
                    bound: exponent(src, "bound")?,
                    width: exponent(src, "width")?,
                    tail: exponent(src, "tail")?,
                    shift: shift(src)?,
                };
                match name {
                    "gelu" => Op::Gelu(attrs),
                    _ => Op::Silu(attrs),
                }
            }
            "argmax" => Op::Argmax,
            "argmax_carry" => Op::ArgmaxCarry {
                offset: count(src, "offset")?,
            },
            "gather" => Op::Gather,
            "kv_append" => Op::KvAppend,
            _ => unreachable!("name checked against OP_NAMES"),
        })
    };
    attr_keys(name).map(|_| op())
}

/// The op's attributes in canonical order, as [`build_op`] reads them.
pub fn attributes(op: &Op) -> Vec<(&'static str, AttrValue)> {
    let list = |v: &[usize]| AttrValue::List(v.iter().map(|&x| x as i64).collect());
    match op {
        Op::Linear
        | Op::MatMul
        | Op::Add
        | Op::Sub
        | Op::Mul
        | Op::Argmax
        | Op::Gather
        | Op::KvAppend => Vec::new(),
        Op::Requant { mult, shift } => vec![
            (
                "mult",
                match mult {
                    Multiplier::Uniform(m) => AttrValue::Int(*m),
                    Multiplier::PerChannel(c) => AttrValue::Const(*c),
                },
            ),
            ("shift", AttrValue::Int(*shift as i64)),
        ],
        Op::Clamp { lo, hi } => vec![("lo", AttrValue::Int(*lo)), ("hi", AttrValue::Int(*hi))],
        Op::Reshape { shape } => vec![("shape", list(shape))],
        Op::Transpose { perm } => vec![("perm", list(perm))],
        Op::Split { axis } | Op::Concat { axis } => vec![("axis", AttrValue::Int(*axis as i64))],
        Op::Softmax { ln2, b, c, shift } => vec![
            ("ln2", AttrValue::Int(*ln2)),
            ("b", AttrValue::Int(*b)),
            ("c", AttrValue::Int(*c)),
            ("shift", AttrValue::Int(*shift as i64)),
        ],
        Op::LayerNorm { eps, shift } | Op::RmsNorm { eps, shift } => {
            vec![
                ("eps", AttrValue::Int(*eps)),
                ("shift", AttrValue::Int(*shift as i64)),
            ]
        }
        Op::Gelu(GeluAttrs {
            bound,
            width,
            tail,
            shift,
        })
        | Op::Silu(GeluAttrs {
            bound,
            width,
            tail,
            shift,
        }) => vec![
            ("bound", AttrValue::Int(*bound as i64)),
            ("width", AttrValue::Int(*width as i64)),
            ("tail", AttrValue::Int(*tail as i64)),
            ("shift", AttrValue::Int(*shift as i64)),
        ],
        Op::ArgmaxCarry { offset } => vec![("offset", AttrValue::Int(*offset as i64))],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Defaults;

    impl AttrSource for Defaults {
        fn take(&mut self, key: &'static str) -> Option<AttrValue> {
            Some(match key {
                "shape" | "perm" => AttrValue::List(vec![0]),
                _ => AttrValue::Int(1),
            })
        }
    }

    #[test]
    fn reader_printer_and_key_table_agree() {
        for name in OP_NAMES {
            let op = build_op(name, &mut Defaults).unwrap().unwrap();
            assert_eq!(op.name(), name);
            let keys: Vec<_> = attributes(&op).into_iter().map(|(k, _)| k).collect();
            assert_eq!(keys, attr_keys(name).unwrap(), "{name}");
        }
        assert!(attr_keys("frob").is_none() && build_op("frob", &mut Defaults).is_none());
    }
}
