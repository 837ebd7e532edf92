//! The validator: every invariant later stages rely on, checked once so that they can index
//! without checks. It runs on any [`Module`], parsed or built by the compiler.
//!
//! Invariants checked:
//!
//! 1. The module has at least one layer; constant, layer (but see 12) and value names are
//!    unique in their scope and made of letters, digits, `_` and `.`.
//! 2. Every tensor type has no empty axis and at most [`crate::types::MAX_ELEMENTS`] elements.
//! 3. Inline constant data has one element per element of the shape, each fitting the dtype.
//! 4. Handles are in range, and each value is defined exactly once, where its `def` says: as an
//!    input, a state, or a result of one instruction.
//! 5. Defined before use: an instruction uses only inputs, states and results of earlier
//!    instructions. Since instructions are a sequence, this also makes every layer acyclic.
//! 6. Each instruction has the operand count and kinds (value or constant) its op takes, and one
//!    result (any number >= 1 for `split`).
//! 7. Types: the result shape, and where the op determines them the dtype and scale, are inferred
//!    from the operands and must equal the declared result types; operands agree with each other
//!    (shapes that broadcast, equal scales where values are added, matching bias and gamma/beta
//!    shapes and scales).
//! 8. Attributes are in range: shifts 0..=62, multipliers >= 1, `lo <= hi` fitting the result,
//!    permutations, axes, equal splits, `eps >= 1`, layernorm and rmsnorm shifts -62..=62;
//!    softmax `ln2` in 1..=2^30, `|b| <= 2^30`, `c` in 1..=2^60 (so that the polynomial stays
//!    below 2^63); gelu and silu `bound`, `width`, `tail`, `shift` in 0..=62 with
//!    `width <= bound <= w - 1` (`w` the input's bits), a coefficient table
//!    `[2^(bound+1-width), D+1]` with `D+1` in 1..=5, and every value before the shift below
//!    2^120 (`2^tail * 2^(w-1)`, and per segment `sum |c_i| (2^width - 1)^i`); an argmax result
//!    type holds every index.
//! 9. Index operands (gather's index, softmax's and kv_append's position) are scalar values with
//!    scale 1.
//! 10. State: every state is the first operand of exactly one `kv_append` (its update, whose
//!     result has the state's type); other instructions may read it (the cache before the step);
//!     a state is not an output. A `kv_append` whose first operand is not a state writes one
//!     slot of any value or constant.
//! 11. Every layer returns at least one value, none twice.
//! 12. A layer name repeats only as context buckets (`buckets.rs`): right after a layer of that
//!     name, both with states, in ascending context, alike but for their states' slot count.
//!
//! All errors of a module are reported, at most one per instruction (the first), so that one
//! mistake does not drown the rest.

use crate::buckets::bucket_problem;
use crate::ir::*;
use crate::types::{element_count, DType, Scale, ShapeDisplay, TensorType, MAX_ELEMENTS};
use std::collections::{HashMap, HashSet};
use thiserror::Error;

/// The IR entity an error is about; [`crate::SpanMap::span`] turns it into source text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Module,
    Const(ConstId),
    ConstData(ConstId),
    Layer(usize),
    Value {
        layer: usize,
        value: ValueId,
    },
    Inst {
        layer: usize,
        inst: usize,
    },
    Arg {
        layer: usize,
        inst: usize,
        arg: usize,
    },
    Attr {
        layer: usize,
        inst: usize,
        key: &'static str,
    },
    ResultType {
        layer: usize,
        inst: usize,
        result: usize,
    },
    Output {
        layer: usize,
        index: usize,
    },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Module => write!(f, "the module"),
            Location::Const(c) | Location::ConstData(c) => write!(f, "constant #{}", c.0),
            Location::Layer(l) => write!(f, "layer #{l}"),
            Location::Value { layer, value } => write!(f, "layer #{layer}, value #{}", value.0),
            Location::Inst { layer, inst } => write!(f, "layer #{layer}, instruction #{inst}"),
            Location::Arg { layer, inst, arg } => {
                write!(f, "layer #{layer}, instruction #{inst}, operand #{arg}")
            }
            Location::Attr { layer, inst, key } => {
                write!(f, "layer #{layer}, instruction #{inst}, attribute `{key}`")
            }
            Location::ResultType {
                layer,
                inst,
                result,
            } => {
                write!(f, "layer #{layer}, instruction #{inst}, result #{result}")
            }
            Location::Output { layer, index } => write!(f, "layer #{layer}, output #{index}"),
        }
    }
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ValidationErrorKind {
    #[error("a module needs at least one layer")]
    NoLayers,
    #[error("`{0}` is not a valid name (use letters, digits, `_` and `.`)")]
    BadName(String),
    #[error("{what} `{name}` is defined twice")]
    Duplicate { what: &'static str, name: String },
    #[error("tensor type `{0}` has an empty axis or more than 2^36 elements")]
    Unsupported(TensorType),
    #[error("constant data: {0}")]
    ConstData(String),
    #[error("malformed layer: {0}")]
    Structure(String),
    #[error("`%{0}` is used before it is defined")]
    UseBeforeDef(String),
    #[error("`{op}` takes {expected}, found {found}")]
    Arity {
        op: &'static str,
        expected: &'static str,
        found: usize,
    },
    #[error("operand {index} of `{op}` must be {expected}")]
    OperandKind {
        op: &'static str,
        index: usize,
        expected: &'static str,
    },
    #[error("{0}")]
    Type(String),
    #[error("attribute `{key}`: {problem}")]
    Attr { key: &'static str, problem: String },
    #[error("{0}")]
    State(String),
    #[error("{0}")]
    Outputs(String),
    #[error("{0}")]
    Magnitude(String),
    #[error("{0}")]
    Bucket(String),
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{kind}")]
pub struct ValidationError {
    pub location: Location,
    pub kind: ValidationErrorKind,
}

impl ValidationError {
    /// What the label under the entity says.
    pub fn label(&self) -> &'static str {
        match &self.kind {
            ValidationErrorKind::NoLayers => "add a `layer`",
            ValidationErrorKind::BadName(_) => "invalid name",
            ValidationErrorKind::Duplicate { .. } => "defined again here",
            ValidationErrorKind::Unsupported(_) => "every axis needs 1 to 2^36 elements in all",
            ValidationErrorKind::ConstData(_) => "data does not match the type",
            ValidationErrorKind::Structure(_) => "here",
            ValidationErrorKind::UseBeforeDef(_) => "used here",
            ValidationErrorKind::Arity { .. } => "wrong number of operands or results",
            ValidationErrorKind::OperandKind { .. } => "wrong kind of operand",
            ValidationErrorKind::Type(_) => "type mismatch",
            ValidationErrorKind::Attr { .. } => "attribute out of range",
            ValidationErrorKind::State(_) => "state misuse",
            ValidationErrorKind::Outputs(_) => "bad outputs",
            ValidationErrorKind::Magnitude(_) => "values too large",
            ValidationErrorKind::Bucket(_) => "not a context bucket of the layer before",
        }
    }
}

pub fn validate(module: &Module) -> Result<(), Vec<ValidationError>> {
    let mut errors = Vec::new();
    let err = |errors: &mut Vec<ValidationError>, location: Location, kind| {
        errors.push(ValidationError { location, kind })
    };
    if module.layers.is_empty() {
        err(&mut errors, Location::Module, ValidationErrorKind::NoLayers);
    }
    let mut names = HashSet::new();
    for (i, c) in module.consts.iter().enumerate() {
        let loc = Location::Const(ConstId(i as u32));
        if !valid_name(&c.name) {
            err(
                &mut errors,
                loc.clone(),
                ValidationErrorKind::BadName(c.name.clone()),
            );
        } else if !names.insert(c.name.as_str()) {
            err(
                &mut errors,
                loc.clone(),
                ValidationErrorKind::Duplicate {
                    what: "constant",
                    name: c.name.clone(),
                },
            );
        }
        let Some(n) = c.ty.elements().filter(|_| c.ty.is_supported()) else {
            err(
                &mut errors,
                loc,
                ValidationErrorKind::Unsupported(c.ty.clone()),
            );
            continue;
        };
        if let ConstData::Inline(data) = &c.data {
            let loc = Location::ConstData(ConstId(i as u32));
            if data.len() as u64 != n {
                err(
                    &mut errors,
                    loc,
                    ValidationErrorKind::ConstData(format!(
                        "{} elements for {n} in `{}`",
                        data.len(),
                        c.ty
                    )),
                );
            } else if let Some((k, v)) = data
                .iter()
                .enumerate()
                .find(|(_, &v)| !c.ty.dtype.contains(v as i128))
            {
                err(
                    &mut errors,
                    loc,
                    ValidationErrorKind::ConstData(format!(
                        "element {k} is {v}, outside {}",
                        c.ty.dtype
                    )),
                );
            }
        }
    }
    let mut layer_names = HashSet::new();
    for (l, layer) in module.layers.iter().enumerate() {
        if !valid_name(&layer.name) {
            err(
                &mut errors,
                Location::Layer(l),
                ValidationErrorKind::BadName(layer.name.clone()),
            );
        } else if !layer_names.insert(layer.name.as_str()) {
            // A repeated name is the next context bucket of the layer just before (buckets.rs).
            let previous = &module.layers[l - 1];
            if previous.name != layer.name {
                err(
                    &mut errors,
                    Location::Layer(l),
                    ValidationErrorKind::Duplicate {
                        what: "layer",
                        name: layer.name.clone(),
                    },
                );
            } else if let Some(problem) = bucket_problem(previous, layer) {
                err(
                    &mut errors,
                    Location::Layer(l),
                    ValidationErrorKind::Bucket(problem),
                );
            }
        }
        LayerValidator {
            module,
            layer,
            l,
            errors: &mut errors,
        }
        .run();
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

struct LayerValidator<'a> {
    module: &'a Module,
    layer: &'a Layer,
    l: usize,
    errors: &'a mut Vec<ValidationError>,
}

type Check<T = ()> = Result<T, ValidationError>;

fn type_err(location: Location, message: String) -> ValidationError {
    ValidationError {
        location,
        kind: ValidationErrorKind::Type(message),
    }
}

impl LayerValidator<'_> {
    fn run(mut self) {
        if !self.structure() {
            return;
        }
        for n in 0..self.layer.insts.len() {
            if let Err(e) = self.inst(n) {
                self.errors.push(e);
            }
        }
        self.states();
        self.outputs();
    }

    fn push(&mut self, location: Location, kind: ValidationErrorKind) {
        self.errors.push(ValidationError { location, kind });
    }

    /// Invariants 1, 2 and 4 for values; false if handles are broken and nothing else can be
    /// checked safely.
    fn structure(&mut self) -> bool {
        let layer = self.layer;
        let nvalues = layer.values.len();
        let mut defined: Vec<Option<ValueDef>> = vec![None; nvalues];
        let mut places: Vec<(ValueId, ValueDef)> = Vec::new();
        places.extend(
            layer
                .inputs
                .iter()
                .enumerate()
                .map(|(k, &v)| (v, ValueDef::Input(k))),
        );
        places.extend(
            layer
                .states
                .iter()
                .enumerate()
                .map(|(k, &v)| (v, ValueDef::State(k))),
        );
        for (n, inst) in layer.insts.iter().enumerate() {
            places.extend(
                inst.results
                    .iter()
                    .enumerate()
                    .map(|(r, &v)| (v, ValueDef::Inst { inst: n, result: r })),
            );
        }
        let broken = |msg: String| ValidationErrorKind::Structure(msg);
        let loc = Location::Layer(self.l);
        for (v, def) in places {
            match defined.get_mut(v.index()) {
                None => {
                    self.push(loc, broken(format!("value handle {} out of range", v.0)));
                    return false;
                }
                Some(Some(_)) => {
                    self.push(
                        loc,
                        broken(format!(
                            "value `%{}` is defined in two places",
                            layer.value(v).name
                        )),
                    );
                    return false;
                }
                Some(slot) => *slot = Some(def),
            }
        }
        for (i, (data, def)) in layer.values.iter().zip(&defined).enumerate() {
            if *def != Some(data.def) {
                self.push(
                    loc,
                    broken(format!(
                        "value `%{}` is not defined where its `def` says",
                        data.name
                    )),
                );
                return false;
            }
            let vloc = Location::Value {
                layer: self.l,
                value: ValueId(i as u32),
            };
            if !data.ty.is_supported() {
                self.push(
                    vloc.clone(),
                    ValidationErrorKind::Unsupported(data.ty.clone()),
                );
            }
            if !valid_name(&data.name) {
                self.push(vloc, ValidationErrorKind::BadName(data.name.clone()));
            }
        }
        let mut seen = HashMap::new();
        for (i, data) in layer.values.iter().enumerate() {
            if seen.insert(data.name.as_str(), i).is_some() {
                let location = Location::Value {
                    layer: self.l,
                    value: ValueId(i as u32),
                };
                self.push(
                    location,
                    ValidationErrorKind::Duplicate {
                        what: "value",
                        name: format!("%{}", data.name),
                    },
                );
            }
        }
        for (n, inst) in layer.insts.iter().enumerate() {
            for (k, arg) in inst.args.iter().enumerate() {
                let ok = match *arg {
                    Operand::Value(v) => v.index() < nvalues,
                    Operand::Const(c) => c.index() < self.module.consts.len(),
                };
                if !ok {
                    self.push(
                        Location::Arg {
                            layer: self.l,
                            inst: n,
                            arg: k,
                        },
                        broken("operand handle out of range".into()),
                    );
                    return false;
                }
            }
            if let Op::Requant {
                mult: Multiplier::PerChannel(c),
                ..
            } = inst.op
            {
                if c.index() >= self.module.consts.len() {
                    self.push(
                        Location::Inst {
                            layer: self.l,
                            inst: n,
                        },
                        broken("multiplier handle out of range".into()),
                    );
                    return false;
                }
            }
        }
        if layer.outputs.iter().any(|o| o.index() >= nvalues) {
            self.push(loc, broken("output handle out of range".into()));
            return false;
        }
        true
    }

    fn ty(&self, arg: Operand) -> &TensorType {
        match arg {
            Operand::Value(v) => &self.layer.value(v).ty,
            Operand::Const(c) => &self.module.constant(c).ty,
        }
    }

    fn inst(&self, n: usize) -> Check {
        let inst = &self.layer.insts[n];
        let (l, op) = (self.l, &inst.op);
        let at = Location::Inst { layer: l, inst: n };
        let arg_at = |arg| Location::Arg {
            layer: l,
            inst: n,
            arg,
        };
        let attr_at = |key| Location::Attr {
            layer: l,
            inst: n,
            key,
        };
        for (k, arg) in inst.args.iter().enumerate() {
            if let Operand::Value(v) = *arg {
                if let ValueDef::Inst { inst: m, .. } = self.layer.value(v).def {
                    if m >= n {
                        return Err(ValidationError {
                            location: arg_at(k),
                            kind: ValidationErrorKind::UseBeforeDef(
                                self.layer.value(v).name.clone(),
                            ),
                        });
                    }
                }
            }
        }
        self.signature(n)?;
        let arg = |k: usize| self.ty(inst.args[k]);
        let res = |r: usize| &self.layer.value(inst.results[r]).ty;
        let attr = |key: &'static str, problem: String| ValidationError {
            location: attr_at(key),
            kind: ValidationErrorKind::Attr { key, problem },
        };
        // Result `r` is declared other than the `want` the op computes.
        let mismatch = |r: usize, want: &TensorType| {
            type_err(
                Location::ResultType {
                    layer: l,
                    inst: n,
                    result: r,
                },
                format!(
                    "`{}` computes `{want}`, but the result is declared `{}`",
                    op.name(),
                    res(r)
                ),
            )
        };
        // The inferred result: shape always; dtype and scale where the op fixes them.
        let (shape, dtype, scale) = match op {
            Op::Linear => {
                let (x, w) = (arg(0), arg(1));
                let k = *x.shape.last().ok_or_else(|| {
                    type_err(arg_at(0), "linear needs an input of rank >= 1".into())
                })?;
                let &[wk, wn] = w.shape.as_slice() else {
                    return Err(type_err(
                        arg_at(1),
                        format!("weights must be [K, N], found {}", ShapeDisplay(&w.shape)),
                    ));
                };
                if wk != k {
                    return Err(type_err(
                        arg_at(1),
                        format!("weights have {wk} rows but the input has {k} columns"),
                    ));
                }
                let scale = self.product(arg_at(1), x.scale, w.scale)?;
                if inst.args.len() == 3 {
                    let b = arg(2);
                    if b.shape != [wn] {
                        return Err(type_err(
                            arg_at(2),
                            format!("bias must be [{wn}], found {}", ShapeDisplay(&b.shape)),
                        ));
                    }
                    same_scale(arg_at(2), "bias", scale, b.scale)?;
                }
                let mut shape = x.shape.clone();
                *shape.last_mut().expect("rank >= 1") = wn;
                (shape, None, Some(scale))
            }
            Op::MatMul => {
                let (a, b) = (arg(0), arg(1));
                let (ra, rb) = (a.rank(), b.rank());
                if ra < 2
                    || ra != rb
                    || a.shape[..ra - 2] != b.shape[..rb - 2]
                    || a.shape[ra - 1] != b.shape[rb - 2]
                {
                    return Err(type_err(at, format!(
                        "cannot multiply {} by {} (need [.., M, K] and [.., K, N] with equal batch axes)",
                        ShapeDisplay(&a.shape), ShapeDisplay(&b.shape)
                    )));
                }
                let mut shape = a.shape.clone();
                shape[ra - 1] = b.shape[rb - 1];
                (shape, None, Some(self.product(at, a.scale, b.scale)?))
            }
            Op::Add | Op::Sub | Op::Mul => {
                let (a, b) = (arg(0), arg(1));
                if !a.shape.ends_with(&b.shape) {
                    return Err(type_err(
                        arg_at(1),
                        format!(
                            "{} does not broadcast over {} (it must equal a suffix of it)",
                            ShapeDisplay(&b.shape),
                            ShapeDisplay(&a.shape)
                        ),
                    ));
                }
                let scale = if *op == Op::Mul {
                    self.product(at, a.scale, b.scale)?
                } else {
                    same_scale(arg_at(1), "the second operand", a.scale, b.scale)?;
                    a.scale
                };
                (a.shape.clone(), None, Some(scale))
            }
            Op::Requant { mult, shift } => {
                let x = arg(0);
                check_shift(*shift).map_err(|p| attr("shift", p))?;
                match *mult {
                    Multiplier::Uniform(m) if m < 1 => {
                        return Err(attr("mult", format!("{m} is not >= 1")))
                    }
                    Multiplier::Uniform(_) => {}
                    Multiplier::PerChannel(c) => {
                        let cst = self.module.constant(c);
                        if !x.shape.ends_with(&cst.ty.shape) || cst.ty.rank() != 1 {
                            return Err(attr(
                                "mult",
                                format!(
                                    "`@{}` is {} but needs one multiplier per channel: [{}]",
                                    cst.name,
                                    ShapeDisplay(&cst.ty.shape),
                                    x.shape.last().copied().unwrap_or(1)
                                ),
                            ));
                        }
                        if let ConstData::Inline(data) = &cst.data {
                            if let Some(m) = data.iter().find(|&&m| m < 1) {
                                return Err(attr(
                                    "mult",
                                    format!(
                                        "`@{}` holds {m}, and multipliers must be >= 1",
                                        cst.name
                                    ),
                                ));
                            }
                        }
                    }
                }
                (x.shape.clone(), None, None)
            }
            Op::Clamp { lo, hi } => {
                let dtype = res(0).dtype;
                if lo > hi {
                    return Err(attr("lo", format!("lo = {lo} is above hi = {hi}")));
                }
                for (key, v) in [("lo", lo), ("hi", hi)] {
                    if !dtype.contains(*v as i128) {
                        return Err(attr(
                            key,
                            format!("{v} does not fit the result type {dtype}"),
                        ));
                    }
                }
                (arg(0).shape.clone(), None, Some(arg(0).scale))
            }
            Op::Reshape { shape } => {
                let x = arg(0);
                if element_count(shape) != x.elements() {
                    return Err(attr(
                        "shape",
                        format!(
                            "{} does not hold the {} elements of {}",
                            ShapeDisplay(shape),
                            x.elements().unwrap_or(MAX_ELEMENTS),
                            ShapeDisplay(&x.shape)
                        ),
                    ));
                }
                (shape.clone(), Some(x.dtype), Some(x.scale))
            }
            Op::Transpose { perm } => {
                let x = arg(0);
                let mut sorted = perm.clone();
                sorted.sort_unstable();
                if sorted != (0..x.rank()).collect::<Vec<_>>() {
                    return Err(attr(
                        "perm",
                        format!("{perm:?} is not a permutation of the {} axes", x.rank()),
                    ));
                }
                (
                    perm.iter().map(|&p| x.shape[p]).collect(),
                    Some(x.dtype),
                    Some(x.scale),
                )
            }
            Op::Split { axis } => {
                let x = arg(0);
                let parts = inst.results.len();
                let len = *x.shape.get(*axis).ok_or_else(|| {
                    attr(
                        "axis",
                        format!("{} has no axis {axis}", ShapeDisplay(&x.shape)),
                    )
                })?;
                if len % parts != 0 {
                    return Err(attr(
                        "axis",
                        format!(
                            "axis {axis} of length {len} does not split into {parts} equal parts"
                        ),
                    ));
                }
                let mut shape = x.shape.clone();
                shape[*axis] = len / parts;
                (shape, Some(x.dtype), Some(x.scale))
            }
            Op::Concat { axis } => {
                let first = arg(0);
                let axis = *axis;
                if axis >= first.rank() {
                    return Err(attr(
                        "axis",
                        format!("{} has no axis {axis}", ShapeDisplay(&first.shape)),
                    ));
                }
                let mut shape = first.shape.clone();
                shape[axis] = 0;
                for k in 0..inst.args.len() {
                    let t = arg(k);
                    let frame = t.rank() == first.rank()
                        && (0..t.rank()).all(|i| i == axis || t.shape[i] == first.shape[i]);
                    if !frame || t.dtype != first.dtype || t.scale != first.scale {
                        return Err(type_err(
                            arg_at(k),
                            format!("`{t}` does not concatenate with `{first}` along axis {axis}"),
                        ));
                    }
                    shape[axis] += t.shape[axis];
                }
                (shape, Some(first.dtype), Some(first.scale))
            }
            Op::Softmax { ln2, b, c, shift } => {
                check_shift(*shift).map_err(|p| attr("shift", p))?;
                // These bounds keep exp_int's polynomial below 2^63, where its cut-off after 62
                // halvings equals the exact shift.
                if !(1..=EXP_CONST_LIMIT).contains(ln2) {
                    return Err(attr("ln2", format!("{ln2} is not in 1..=2^30")));
                }
                if b.unsigned_abs() > EXP_CONST_LIMIT as u64 {
                    return Err(attr("b", format!("{b} is not in -2^30..=2^30")));
                }
                if !(1..=1 << 60).contains(c) {
                    return Err(attr("c", format!("{c} is not in 1..=2^60 (the exponential must stay positive and below 2^63)")));
                }
                if inst.args.len() == 2 {
                    self.index(inst.args[1], arg_at(1))?;
                }
                let x = arg(0);
                if x.rank() == 0 {
                    return Err(type_err(
                        arg_at(0),
                        "softmax needs an input of rank >= 1".into(),
                    ));
                }
                (
                    x.shape.clone(),
                    None,
                    Some(Scale::pow2(-(*shift as i32)).expect("shift <= 62")),
                )
            }
            Op::LayerNorm { eps, shift } | Op::RmsNorm { eps, shift } => {
                let name = inst.op.name();
                check_shift(shift.unsigned_abs()).map_err(|p| attr("shift", p))?;
                if *eps < 1 {
                    return Err(attr(
                        "eps",
                        format!("{eps} is not >= 1 (a constant row would divide by zero)"),
                    ));
                }
                let (x, gamma) = (arg(0), arg(1));
                let row = *x.shape.last().ok_or_else(|| {
                    type_err(arg_at(0), format!("{name} needs an input of rank >= 1"))
                })?;
                // rmsnorm has no beta.
                let beta = (inst.args.len() == 3).then(|| arg(2));
                let params =
                    std::iter::once((1, gamma, "gamma")).chain(beta.map(|b| (2, b, "beta")));
                for (k, t, what) in params {
                    if t.shape != [row] {
                        return Err(type_err(
                            arg_at(k),
                            format!("{what} must be [{row}], found {}", ShapeDisplay(&t.shape)),
                        ));
                    }
                }
                let scale = gamma
                    .scale
                    .checked_mul(Scale::pow2(-shift).expect("|shift| <= 62"));
                let scale =
                    scale.ok_or_else(|| type_err(at, "result scale out of range".into()))?;
                if let Some(beta) = beta {
                    same_scale(arg_at(2), "beta", scale, beta.scale)?;
                }
                (x.shape.clone(), None, Some(scale))
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
            }) => {
                for (key, v) in [
                    ("bound", *bound),
                    ("width", *width),
                    ("tail", *tail),
                    ("shift", *shift),
                ] {
                    if v > MAX_SHIFT {
                        return Err(attr(key, format!("{v} is not in 0..=62")));
                    }
                }
                let (x, coef) = (arg(0), arg(1));
                let top = x.dtype.bits() - 1;
                if *bound > top {
                    return Err(attr(
                        "bound",
                        format!(
                            "{bound} is above {top}: [-2^bound, 2^bound) must lie within the range of the {} input, [-2^{top}, 2^{top})",
                            x.dtype
                        ),
                    ));
                }
                if width > bound {
                    return Err(attr(
                        "width",
                        format!(
                            "{width} is above bound = {bound}: a segment of 2^width inputs must fit in [-2^bound, 2^bound)"
                        ),
                    ));
                }
                let segments = 1u64 << (bound + 1 - width);
                let degree = match coef.shape.as_slice() {
                    &[s, d1] if s as u64 == segments && (1..=5).contains(&d1) => d1 - 1,
                    _ => {
                        return Err(type_err(
                            arg_at(1),
                            format!(
                                "the coefficient table must be [{segments}, D+1] with D+1 from 1 to 5 (a polynomial of degree D for each segment of 2^{width} inputs), found {}",
                                ShapeDisplay(&coef.shape)
                            ),
                        ))
                    }
                };
                if tail + top >= GELU_LIMIT_BITS {
                    return Err(attr(
                        "tail",
                        format!(
                            "{tail} lets the linear part x * 2^tail reach 2^{} on {} inputs; it must stay below 2^{GELU_LIMIT_BITS} (tail <= {})",
                            tail + top,
                            x.dtype,
                            GELU_LIMIT_BITS - 1 - top
                        ),
                    ));
                }
                let Operand::Const(table) = inst.args[1] else {
                    unreachable!("signature: the table is a constant")
                };
                let cst = self.module.constant(table);
                if let Some(worst) = gelu_poly_bound(cst, degree, *width) {
                    return Err(ValidationError {
                        location: arg_at(1),
                        kind: ValidationErrorKind::Magnitude(format!(
                            "`@{}`: {worst} can make the polynomial reach 2^{GELU_LIMIT_BITS} (sum |c_i| * (2^width - 1)^i must stay below it)",
                            cst.name
                        )),
                    });
                }
                let scale = Scale::pow2(*shift as i32 - *tail as i32)
                    .and_then(|s| x.scale.checked_mul(s))
                    .ok_or_else(|| type_err(at, "result scale out of range".into()))?;
                (x.shape.clone(), None, Some(scale))
            }
            Op::Argmax => {
                let x = arg(0);
                if x.rank() == 0 {
                    return Err(type_err(
                        arg_at(0),
                        "argmax needs an input of rank >= 1".into(),
                    ));
                }
                let last = x.shape[x.rank() - 1].saturating_sub(1);
                if !res(0).dtype.contains(last as i128) {
                    return Err(type_err(
                        Location::ResultType {
                            layer: l,
                            inst: n,
                            result: 0,
                        },
                        format!("index {last} does not fit the result type {}", res(0).dtype),
                    ));
                }
                (x.shape[..x.rank() - 1].to_vec(), None, Some(Scale::ONE))
            }
            Op::ArgmaxCarry { offset } => {
                let x = arg(0);
                if x.rank() == 0 {
                    return Err(type_err(
                        arg_at(0),
                        "argmax_carry needs an input of rank >= 1".into(),
                    ));
                }
                let rows = x.shape[..x.rank() - 1].to_vec();
                let last = x.shape[x.rank() - 1].saturating_sub(1) + offset;
                let best = TensorType::new(DType::I32, rows.clone(), Scale::ONE);
                let top = TensorType::new(x.dtype, rows, x.scale);
                // The carried pair and the results: the best index as `i32`, the top value as `x`.
                for (k, want) in [(1, &best), (2, &top)] {
                    if arg(k) != want {
                        return Err(type_err(
                            arg_at(k),
                            format!("the carried operand must be `{want}`, found `{}`", arg(k)),
                        ));
                    }
                }
                for (r, want) in [(0, &best), (1, &top)] {
                    if res(r) != want {
                        return Err(mismatch(r, want));
                    }
                }
                if !DType::I32.contains(last as i128) {
                    return Err(attr(
                        "offset",
                        format!("index {last} does not fit the result type i32"),
                    ));
                }
                return Ok(());
            }
            Op::Gather => {
                let table = arg(0);
                self.index(inst.args[1], arg_at(1))?;
                if table.rank() < 2 {
                    return Err(type_err(
                        arg_at(0),
                        format!(
                            "the table must be [V, ..], found {}",
                            ShapeDisplay(&table.shape)
                        ),
                    ));
                }
                let mut shape = table.shape.clone();
                shape[0] = 1;
                (shape, Some(table.dtype), Some(table.scale))
            }
            Op::KvAppend => {
                let (state, x) = (arg(0), arg(1));
                let updates_state = matches!(inst.args[0], Operand::Value(s) if matches!(self.layer.value(s).def, ValueDef::State(_)));
                if updates_state && matches!(inst.args[1], Operand::Const(_)) {
                    return Err(ValidationError {
                        location: arg_at(1),
                        kind: ValidationErrorKind::State(
                            "a state's new slot must be a value (the step's keys or values)".into(),
                        ),
                    });
                }
                self.index(inst.args[2], arg_at(2))?;
                if state.rank() < 2
                    || x.shape.first() != Some(&1)
                    || x.shape[1..] != state.shape[1..]
                {
                    return Err(type_err(
                        arg_at(1),
                        format!(
                            "{} is not one slot [1, ..] of the cache {}",
                            ShapeDisplay(&x.shape),
                            ShapeDisplay(&state.shape)
                        ),
                    ));
                }
                if x.dtype != state.dtype || x.scale != state.scale {
                    return Err(type_err(
                        arg_at(1),
                        format!("`{x}` does not match the cache's element type `{state}`"),
                    ));
                }
                (state.shape.clone(), Some(state.dtype), Some(state.scale))
            }
        };
        for r in 0..inst.results.len() {
            let got = res(r);
            let want = TensorType::new(
                dtype.unwrap_or(got.dtype),
                shape.clone(),
                scale.unwrap_or(got.scale),
            );
            if *got != want {
                return Err(mismatch(r, &want));
            }
        }
        Ok(())
    }

    /// Invariant 6: operand count and kinds, result count.
    fn signature(&self, n: usize) -> Check {
        use OperandKind::{Constant as C, Value as V};
        let inst = &self.layer.insts[n];
        let (required, optional, variadic): (&[OperandKind], &[OperandKind], bool) = match inst.op {
            Op::Linear => (&[V, C], &[C], false),
            Op::MatMul => (&[V, V], &[], false),
            Op::Add | Op::Sub | Op::Mul => (&[V, OperandKind::Either], &[], false),
            Op::Softmax { .. } => (&[V], &[V], false),
            Op::LayerNorm { .. } => (&[V, C, C], &[], false),
            Op::RmsNorm { .. } => (&[V, C], &[], false),
            Op::Gelu { .. } | Op::Silu { .. } => (&[V, C], &[], false),
            Op::Gather => (&[C, V], &[], false),
            Op::ArgmaxCarry { .. } => (&[V, OperandKind::Either, OperandKind::Either], &[], false),
            Op::KvAppend => (&[OperandKind::Either, OperandKind::Either, V], &[], false),
            Op::Concat { .. } => (&[V], &[], true),
            Op::Requant { .. }
            | Op::Clamp { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Split { .. }
            | Op::Argmax => (&[V], &[], false),
        };
        let name = inst.op.name();
        let found = inst.args.len();
        let max = if variadic {
            usize::MAX
        } else {
            required.len() + optional.len()
        };
        let arity = |expected, found| ValidationError {
            location: Location::Inst {
                layer: self.l,
                inst: n,
            },
            kind: ValidationErrorKind::Arity {
                op: name,
                expected,
                found,
            },
        };
        if found < required.len() || found > max {
            return Err(arity(
                arity_text(name, required.len(), optional.len(), variadic),
                found,
            ));
        }
        for (k, arg) in inst.args.iter().enumerate() {
            let want = required.iter().chain(optional).nth(k).copied().unwrap_or(V);
            let ok = matches!(
                (want, arg),
                (OperandKind::Either, _) | (V, Operand::Value(_)) | (C, Operand::Const(_))
            );
            if !ok {
                let expected = if want == V {
                    "a value `%name`"
                } else {
                    "a constant `@name`"
                };
                return Err(ValidationError {
                    location: Location::Arg {
                        layer: self.l,
                        inst: n,
                        arg: k,
                    },
                    kind: ValidationErrorKind::OperandKind {
                        op: name,
                        index: k,
                        expected,
                    },
                });
            }
        }
        let results_ok = match inst.op {
            Op::Split { .. } => !inst.results.is_empty(),
            Op::ArgmaxCarry { .. } => inst.results.len() == 2,
            _ => inst.results.len() == 1,
        };
        if !results_ok {
            let expected = match inst.op {
                Op::Split { .. } => "one or more results",
                Op::ArgmaxCarry { .. } => "two results",
                _ => "one result",
            };
            return Err(arity(expected, inst.results.len()));
        }
        Ok(())
    }

    fn product(&self, at: Location, a: Scale, b: Scale) -> Check<Scale> {
        a.checked_mul(b)
            .ok_or_else(|| type_err(at, format!("the scale {a} * {b} is out of range")))
    }

    /// Invariant 9.
    fn index(&self, arg: Operand, at: Location) -> Check {
        let t = self.ty(arg);
        if matches!(arg, Operand::Const(_)) || !t.is_scalar() || t.scale != Scale::ONE {
            return Err(type_err(
                at,
                format!(
                    "an index must be a scalar value with scale 1, like `%pos: i32[]`; found `{t}`"
                ),
            ));
        }
        Ok(())
    }

    /// Invariant 10.
    fn states(&mut self) {
        let layer = self.layer;
        for (k, &s) in layer.states.iter().enumerate() {
            let uses: Vec<(usize, usize)> = layer
                .insts
                .iter()
                .enumerate()
                .flat_map(|(n, inst)| {
                    inst.args
                        .iter()
                        .enumerate()
                        .filter(|(_, a)| **a == Operand::Value(s))
                        .map(move |(i, _)| (n, i))
                })
                .collect();
            let name = &layer.value(s).name;
            let appends: Vec<(usize, usize)> = uses
                .iter()
                .copied()
                .filter(|&(n, i)| i == 0 && layer.insts[n].op == Op::KvAppend)
                .collect();
            let misuse = uses
                .iter()
                .find(|&&(n, i)| layer.insts[n].op == Op::KvAppend && i != 0);
            let problem = match (appends.as_slice(), misuse) {
                (_, Some(&(n, i))) => {
                    self.push(
                        Location::Arg {
                            layer: self.l,
                            inst: n,
                            arg: i,
                        },
                        ValidationErrorKind::State(format!(
                            "state `%{name}` can only be the first operand of `kv_append`"
                        )),
                    );
                    continue;
                }
                ([], None) => Some(format!(
                    "state `%{name}` is never appended: each state needs one `kv_append`"
                )),
                ([_], None) => None,
                ([_, (n, i), ..], None) => {
                    self.push(
                        Location::Arg {
                            layer: self.l,
                            inst: *n,
                            arg: *i,
                        },
                        ValidationErrorKind::State(format!(
                            "state `%{name}` is appended more than once: a step writes one slot"
                        )),
                    );
                    continue;
                }
            };
            if let Some(p) = problem {
                self.push(
                    Location::Value {
                        layer: self.l,
                        value: layer.states[k],
                    },
                    ValidationErrorKind::State(p),
                );
            }
        }
    }

    /// Invariants 10 (states are not outputs) and 11.
    fn outputs(&mut self) {
        let layer = self.layer;
        if layer.outputs.is_empty() {
            self.push(
                Location::Layer(self.l),
                ValidationErrorKind::Outputs(format!("layer `{}` returns nothing", layer.name)),
            );
        }
        let mut seen = HashSet::new();
        for (index, &o) in layer.outputs.iter().enumerate() {
            let at = Location::Output {
                layer: self.l,
                index,
            };
            let name = &layer.value(o).name;
            if !seen.insert(o) {
                self.push(
                    at,
                    ValidationErrorKind::Outputs(format!("`%{name}` is returned twice")),
                );
            } else if matches!(layer.value(o).def, ValueDef::State(_)) {
                self.push(at, ValidationErrorKind::Outputs(format!("state `%{name}` cannot be returned: its `kv_append` result is the state after the step")));
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OperandKind {
    Value,
    Constant,
    Either,
}

fn arity_text(op: &str, required: usize, optional: usize, variadic: bool) -> &'static str {
    match (op, required, optional, variadic) {
        (_, _, _, true) => "one or more operands",
        ("linear", ..) => "an input, weights and an optional bias",
        ("softmax", ..) => "an input and an optional position",
        ("gelu" | "silu", ..) => "an input and a coefficient table",
        ("rmsnorm", ..) => "an input and gamma",
        (_, 1, 0, _) => "one operand",
        (_, 2, 0, _) => "two operands",
        (_, 3, 0, _) => "three operands",
        _ => "a different number of operands",
    }
}

/// The largest magnitude of softmax's `ln2` and `b`.
const EXP_CONST_LIMIT: i64 = 1 << 30;

/// gelu's value before the shift stays below `2^GELU_LIMIT_BITS`: far inside `i128` and the
/// field, so neither the semantics nor the gadget's identities can overflow or wrap.
pub const GELU_LIMIT_BITS: u32 = 120;

/// `None` if every row `j` of the gelu table keeps `sum_i |c_{j,i}| * (2^width - 1)^i` below
/// `2^GELU_LIMIT_BITS`; else a description of the worst row. Extern data counts as the dtype's
/// largest magnitude.
fn gelu_poly_bound(table: &Const, degree: usize, width: u32) -> Option<String> {
    let tmax = (1u128 << width) - 1;
    let limit = 1u128 << GELU_LIMIT_BITS;
    let bound = |row: &mut dyn Iterator<Item = u128>| -> Option<u128> {
        let row: Vec<u128> = row.collect();
        row.iter()
            .rev()
            .try_fold(0u128, |acc, &c| acc.checked_mul(tmax)?.checked_add(c))
            .filter(|&b| b < limit)
    };
    match &table.data {
        ConstData::Inline(data) => data
            .chunks(degree + 1)
            .position(|row| bound(&mut row.iter().map(|c| c.unsigned_abs() as u128)).is_none())
            .map(|j| format!("row {j}")),
        ConstData::Extern => {
            let m = 1u128 << (table.ty.dtype.bits() - 1);
            bound(&mut std::iter::repeat_n(m, degree + 1))
                .is_none()
                .then(|| format!("extern {} data", table.ty.dtype))
        }
    }
}

fn check_shift(shift: u32) -> Result<(), String> {
    if shift > MAX_SHIFT {
        Err(format!("{shift} is above the largest shift, {MAX_SHIFT}"))
    } else {
        Ok(())
    }
}

fn same_scale(at: Location, what: &str, want: Scale, got: Scale) -> Check {
    if want != got {
        return Err(type_err(
            at,
            format!("{what} has scale {got}, but must have scale {want}"),
        ));
    }
    Ok(())
}
