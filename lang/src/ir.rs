//! The in-memory IR: a module of constants and layers; a layer is an SSA DAG of ops.
//!
//! Values and constants are typed handles into arenas (naga's style). Spans are not part of the
//! IR: the parser returns them beside the module in a [`crate::SpanMap`], so a module built by the
//! compiler and the same module parsed from text compare equal.

use crate::types::TensorType;

/// The version written in the `zkir N` header. Bump it when the text form changes meaning.
pub const IR_VERSION: u32 = 1;

/// The largest right shift of a requantize, softmax or layernorm: past it values vanish.
pub const MAX_SHIFT: u32 = 62;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConstId(pub u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

impl ConstId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl ValueId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Module {
    pub consts: Vec<Const>,
    pub layers: Vec<Layer>,
}

impl Module {
    pub fn constant(&self, id: ConstId) -> &Const {
        &self.consts[id.index()]
    }
}

/// A circuit constant (a weight, a bias, a gamma): baked into the constraints, never a witness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Const {
    pub name: String,
    pub ty: TensorType,
    pub data: ConstData,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConstData {
    /// Row-major elements, written in the text.
    Inline(Vec<i64>),
    /// Supplied by the artifact that carries this IR (large weight tables); the text only types it.
    Extern,
}

/// A unit that gets its own constraint system and proof.
///
/// Inputs and outputs are explicit because they become public: a scalar (`[]`) input or output
/// (a token id, a position) is public in the clear, a tensor is committed by hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    pub name: String,
    pub values: Vec<ValueData>,
    pub inputs: Vec<ValueId>,
    /// KV-cache state carried between steps; each is read and appended by one `kv_append`.
    pub states: Vec<ValueId>,
    pub insts: Vec<Inst>,
    pub outputs: Vec<ValueId>,
}

impl Layer {
    pub fn value(&self, id: ValueId) -> &ValueData {
        &self.values[id.index()]
    }

    /// Renumbers values into the order the parser gives them (inputs, states, then results in
    /// instruction order), so that a built layer equals its printed-and-parsed self.
    pub fn canonicalize(&mut self) {
        let order: Vec<ValueId> = self
            .inputs
            .iter()
            .chain(&self.states)
            .copied()
            .chain(self.insts.iter().flat_map(|i| i.results.iter().copied()))
            .collect();
        let mut new_id = vec![ValueId(0); self.values.len()];
        for (new, old) in order.iter().enumerate() {
            new_id[old.index()] = ValueId(new as u32);
        }
        let remap = |v: &mut ValueId| *v = new_id[v.index()];
        let mut values: Vec<Option<ValueData>> = std::mem::take(&mut self.values)
            .into_iter()
            .map(Some)
            .collect();
        self.values = order
            .iter()
            .map(|v| values[v.index()].take().expect("each value once"))
            .collect();
        self.inputs
            .iter_mut()
            .chain(&mut self.states)
            .chain(&mut self.outputs)
            .for_each(remap);
        for inst in &mut self.insts {
            inst.results.iter_mut().for_each(remap);
            for arg in &mut inst.args {
                if let Operand::Value(v) = arg {
                    remap(v);
                }
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueData {
    pub name: String,
    pub ty: TensorType,
    pub def: ValueDef,
}

/// Where a value is defined: by the layer's signature, as state, or as result `result` of
/// instruction `inst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueDef {
    Input(usize),
    State(usize),
    Inst { inst: usize, result: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    Value(ValueId),
    Const(ConstId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inst {
    pub op: Op,
    pub args: Vec<Operand>,
    pub results: Vec<ValueId>,
}

/// The attributes of `gelu` (docs/ir.md): inputs in `[-2^bound, 2^bound)` are evaluated by
/// the polynomial of their segment of `2^width` inputs; `x * 2^tail` above, 0 below; the result is
/// rounded by `2^-shift`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GeluAttrs {
    pub bound: u32,
    pub width: u32,
    pub tail: u32,
    pub shift: u32,
}

impl GeluAttrs {
    /// The number of segments, `2^(bound + 1 - width)` (`None` unless `width <= bound <= 62`).
    pub fn segments(&self) -> Option<u64> {
        (self.bound <= 62 && self.width <= self.bound)
            .then(|| 1u64 << (self.bound + 1 - self.width))
    }
}

/// The multiplier of a requantize: one for the tensor, or one per channel of the last axis (the
/// per-output-channel weight scales of the matmul before it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Multiplier {
    Uniform(i64),
    PerChannel(ConstId),
}

/// Every op of the IR with its attributes. Operands are positional in [`Inst::args`]; the
/// semantics of each op is one function in [`crate::semantics`], and `docs/ir.md` gives its
/// constraint cost.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `linear x, W [, b]`: `x[.., K] * W[K, N] + b[N]` with constant `W` and `b`.
    Linear,
    /// `matmul a, b`: batched `a[.., M, K] * b[.., K, N]`, both variables (QK^T, AV).
    MatMul,
    /// `add a, b`, `sub a, b`: elementwise; `b` may broadcast over `a`'s leading axes.
    Add,
    Sub,
    /// `mul a, b`: elementwise product, broadcast as for `add`.
    Mul,
    /// `requant x, mult=M, shift=s`: `floor((x * M + 2^(s-1)) / 2^s)`, round half up (`x * M`
    /// when `s = 0`).
    Requant {
        mult: Multiplier,
        shift: u32,
    },
    /// `clamp x, lo=L, hi=H`.
    Clamp {
        lo: i64,
        hi: i64,
    },
    Reshape {
        shape: Vec<usize>,
    },
    Transpose {
        perm: Vec<usize>,
    },
    /// `split x, axis=a`: as many equal parts as the instruction has results.
    Split {
        axis: usize,
    },
    Concat {
        axis: usize,
    },
    /// `softmax x [, pos]`: integer softmax over the last axis; with `pos`, slot `j` of row `i`
    /// takes part only if `j <= pos + i` (causal mask over the KV cache).
    Softmax {
        ln2: i64,
        b: i64,
        c: i64,
        shift: u32,
    },
    /// `layernorm x, gamma, beta, eps=E, shift=s` over the last axis; `shift` may be negative
    /// (then the division is by `s * 2^-shift`), so gamma can be finer than the result.
    LayerNorm {
        eps: i64,
        shift: i32,
    },
    /// `gelu x, coef, bound=K, width=G, tail=E, shift=M`: a piecewise polynomial on
    /// `[-2^K, 2^K)` in segments of `2^G` inputs (one row of the constant `coef` each), `x * 2^E`
    /// above and 0 below, rounded by `2^-M`.
    Gelu(GeluAttrs),
    /// `argmax x`: index of the largest element of the last axis, lowest index on ties.
    Argmax,
    /// `argmax_carry x, best, top, offset=K`: `argmax` continued from a carried result, for a
    /// row cut into slices (the head's vocabulary, `compiler::parts`). `x` holds the row's
    /// columns from `K` on; `best` (`i32`) and `top` (`x`'s type) are the index and value of the
    /// maximum of the columns before them, with the last axis removed. Results `best', top'`:
    /// `best, top` when `max(x) <= top`, else `K + argmax x, max(x)`: the lowest index on ties
    /// over the whole row, as `argmax`.
    ArgmaxCarry {
        offset: usize,
    },
    /// `gather table, idx`: row `idx` of a constant table (embedding lookups).
    Gather,
    /// `kv_append state, x, pos`: the cache with slot `pos` set to `x`; the result is the state
    /// after this step.
    KvAppend,
    // The ops added after the first version come last, so that the existing ops keep their
    // discriminants (and hashes, and the optimizer's iteration orders).
    /// `rmsnorm x, gamma, eps=E, shift=s` over the last axis: `layernorm` without the mean and
    /// without beta (Llama's RMSNorm); `shift` as layernorm's.
    RmsNorm {
        eps: i64,
        shift: i32,
    },
    /// `silu x, coef, bound=K, width=G, tail=E, shift=M`: `gelu`'s piecewise polynomial and
    /// tails exactly (SiLU has GELU's asymptotics: `x` above, 0 below); only the fitted
    /// coefficients differ. Every layer evaluates it as `gelu`.
    Silu(GeluAttrs),
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Linear => "linear",
            Op::MatMul => "matmul",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Requant { .. } => "requant",
            Op::Clamp { .. } => "clamp",
            Op::Reshape { .. } => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Split { .. } => "split",
            Op::Concat { .. } => "concat",
            Op::Softmax { .. } => "softmax",
            Op::LayerNorm { .. } => "layernorm",
            Op::RmsNorm { .. } => "rmsnorm",
            Op::Gelu { .. } => "gelu",
            Op::Silu { .. } => "silu",
            Op::Argmax => "argmax",
            Op::ArgmaxCarry { .. } => "argmax_carry",
            Op::Gather => "gather",
            Op::KvAppend => "kv_append",
        }
    }
}
