//! Lowering: every float node to integer IR ops, layer by layer (one layer per graph stage).
//!
//! Scales first: values that must share a scale (the operands of an `Add`, the parts of a
//! `Slice`d tensor, the operands of a `Concat`) form one class; each class gets a power-of-two
//! scale from its calibrated range and the bit width of its role. Then each node becomes the ops
//! that compute it at its class's scale: wide accumulators (`linear`, `matmul`) are brought back
//! by one `requant` whose multipliers carry every factor between the scales; `gelu` rounds to its
//! class by itself.

use super::config::{dtype, QuantConfig, Role};
use super::fixed::{dtype_for, exponent_for, multiplier, multipliers, quantize};
use super::{gelu, QuantError, Ranges};
use crate::model::{FloatModel, FloatOp, Graph, Io, NodeId, RopePairs, Stage};
use std::collections::{BTreeMap, HashMap};
use zkc_lang::{
    Const, ConstData, ConstId, DType, Inst, Layer, Module, Multiplier, Op, Operand, Scale,
    TensorType, ValueData, ValueDef, ValueId,
};

/// RoPE's `cos` and `sin` tables are at `2^-ROPE_FRAC_BITS` (1 is `ROPE_ONE`), in `i16`.
const ROPE_FRAC_BITS: i32 = 14;
const ROPE_ONE: f64 = (1 << ROPE_FRAC_BITS) as f64;

/// I-BERT's exp(p) ≈ A (p + B)^2 + C on (-ln 2, 0].
const EXP_A: f64 = 0.3585;
const EXP_B: f64 = 1.353;
const EXP_C: f64 = 0.344;

pub fn lower(model: &FloatModel, ranges: &Ranges, cfg: &QuantConfig) -> Result<Module, QuantError> {
    cfg.check()?;
    let Some(hp) = &model.hparams else {
        // A single pass has no caches, so no buckets.
        return lower_at(model, ranges, cfg, 0);
    };
    let context = cfg.context(hp.n_ctx)?;
    let buckets = cfg.buckets(context);
    let mut module = lower_at(model, ranges, cfg, context)?;
    // The smaller buckets of each stage with caches: the same lowering at a smaller context
    // (scales come from calibration, not from the context), sharing the constants by name.
    let mut smaller: HashMap<String, Vec<Layer>> = HashMap::new();
    for &bucket in &buckets[..buckets.len() - 1] {
        let Module { consts, layers } = lower_at(model, ranges, cfg, bucket)?;
        for mut layer in layers.into_iter().filter(|l| !l.states.is_empty()) {
            for inst in &mut layer.insts {
                for arg in &mut inst.args {
                    if let Operand::Const(c) = arg {
                        *c = shared_constant(&mut module, &consts[c.index()]);
                    }
                }
                if let Op::Requant {
                    mult: Multiplier::PerChannel(c),
                    ..
                } = &mut inst.op
                {
                    *c = shared_constant(&mut module, &consts[c.index()]);
                }
            }
            smaller.entry(layer.name.clone()).or_default().push(layer);
        }
    }
    module.layers = std::mem::take(&mut module.layers)
        .into_iter()
        .flat_map(|full| {
            let mut stage = smaller.remove(&full.name).unwrap_or_default();
            stage.push(full);
            stage
        })
        .collect();
    Ok(module)
}

/// The module lowered for a KV cache of `context` slots.
fn lower_at(
    model: &FloatModel,
    ranges: &Ranges,
    cfg: &QuantConfig,
    context: usize,
) -> Result<Module, QuantError> {
    let mut lowering = Lowering::new(model, ranges, cfg, context)?;
    for &id in model.graph.topological_order() {
        lowering.node(id)?;
    }
    lowering.finish()
}

/// The id in `module` of the constant named as `c`, added if `module` has none of that name
/// (lowerings at different contexts make equal constants under equal names).
fn shared_constant(module: &mut Module, c: &Const) -> ConstId {
    match module.consts.iter().position(|k| k.name == c.name) {
        Some(k) => {
            debug_assert_eq!(&module.consts[k], c, "one name, one constant");
            ConstId(k as u32)
        }
        None => {
            module.consts.push(c.clone());
            ConstId(module.consts.len() as u32 - 1)
        }
    }
}

/// The quantized form of a class of values: dtype and scale `2^-exp`.
#[derive(Clone, Copy, Debug)]
struct Quant {
    dtype: DType,
    exp: i32,
}

impl Quant {
    fn scale(self) -> f64 {
        2f64.powi(-self.exp)
    }

    /// A one-row value of `width` (a language model's).
    fn ty(self, width: usize) -> TensorType {
        self.shaped(vec![1, width])
    }

    fn shaped(self, shape: Vec<usize>) -> TensorType {
        TensorType::new(
            self.dtype,
            shape,
            Scale::pow2(-self.exp).expect("|exp| <= 60"),
        )
    }
}

struct Lowering<'a, 'g> {
    model: &'a FloatModel<'g>,
    graph: &'a Graph,
    cfg: &'a QuantConfig,
    quant: HashMap<NodeId, Quant>,
    widths: HashMap<NodeId, usize>,
    layers: BTreeMap<Stage, LayerBuilder>,
    consts: Vec<Const>,
    exports: Vec<(Stage, NodeId)>,
    /// Slots of the KV caches.
    context: usize,
    /// Each key/value head's cache reads (`keys`, `values`) once appended, by layer: the query
    /// heads of a group read the same ones.
    kv: HashMap<(Stage, usize), (ValueId, ValueId)>,
    /// RoPE's `cos` and `sin` rows of the step's position, gathered once per layer.
    rope_rows: HashMap<Stage, (ValueId, ValueId)>,
}

impl<'a, 'g> Lowering<'a, 'g> {
    fn new(
        model: &'a FloatModel<'g>,
        ranges: &Ranges,
        cfg: &'a QuantConfig,
        context: usize,
    ) -> Result<Self, QuantError> {
        let graph = &model.graph;
        let mut classes = UnionFind::default();
        for &id in graph.topological_order() {
            match graph.node(id).op {
                // The slices of a projection are requantized one by one (`sliced_linear`): each
                // head's Q, K and V has its own scale.
                FloatOp::Slice { .. } if sliced_projection(graph, graph.operands(id)[0]) => {}
                FloatOp::Add
                | FloatOp::Sub
                | FloatOp::Slice { .. }
                | FloatOp::Concat
                | FloatOp::Relu
                | FloatOp::LeakyRelu { .. }
                | FloatOp::Transpose { .. }
                | FloatOp::Reshape { .. } => {
                    for o in graph.operands(id) {
                        classes.union(id, o);
                    }
                }
                _ => {}
            }
        }
        // A class's range is its members' largest; an embedding's is its whole table's, a
        // sigmoid's or tanh's at least 1 (their bound: every value they can take fits).
        let mut range: HashMap<NodeId, f64> = HashMap::new();
        let mut role: HashMap<NodeId, Role> = HashMap::new();
        for &id in graph.topological_order() {
            let Some(r) = node_role(graph, id) else {
                continue;
            };
            let mut m = ranges.get(&id).copied().unwrap_or(0.0) as f64;
            if let FloatOp::Embed { table } = &graph.node(id).op {
                m = m.max(
                    model
                        .weight(&table.name)
                        .iter()
                        .fold(0f32, |a, v| a.max(v.abs())) as f64,
                );
            }
            if matches!(graph.node(id).op, FloatOp::Sigmoid | FloatOp::Tanh) {
                m = m.max(1.0);
            }
            let root = classes.find(id);
            let entry = range.entry(root).or_insert(0.0);
            *entry = entry.max(m);
            role.entry(root).or_insert(r);
        }
        // A softmax's probabilities (and what only moves them) are i16 at `2^-softmax_shift`.
        let probabilities: Vec<NodeId> = graph
            .topological_order()
            .iter()
            .filter(|&&id| matches!(graph.node(id).op, FloatOp::Softmax { .. }))
            .map(|&id| classes.find(id))
            .collect();
        let mut quant = HashMap::new();
        for &id in graph.topological_order() {
            if node_role(graph, id).is_none() {
                continue;
            }
            let root = classes.find(id);
            if probabilities.contains(&root) {
                let exp = cfg.softmax_shift as i32;
                let dtype = DType::I16;
                quant.insert(id, Quant { dtype, exp });
                continue;
            }
            let bits = cfg.bits(role[&root]);
            let dtype = dtype(bits).ok_or_else(|| {
                QuantError::Config(format!("activation bits must be 8, 16 or 32, not {bits}"))
            })?;
            quant.insert(
                id,
                Quant {
                    dtype,
                    exp: exponent_for(range[&root], bits, cfg.margin),
                },
            );
        }
        Ok(Lowering {
            model,
            graph,
            cfg,
            quant,
            widths: HashMap::new(),
            layers: BTreeMap::new(),
            consts: Vec::new(),
            exports: Vec::new(),
            context,
            kv: HashMap::new(),
            rope_rows: HashMap::new(),
        })
    }

    fn unsupported(&self, id: NodeId, problem: impl Into<String>) -> QuantError {
        QuantError::Unsupported {
            node: self.graph.node(id).name.clone(),
            problem: problem.into(),
        }
    }

    fn constant(&mut self, name: String, ty: TensorType, data: Vec<i64>) -> ConstId {
        self.consts.push(Const {
            name,
            ty,
            data: ConstData::Inline(data),
        });
        ConstId(self.consts.len() as u32 - 1)
    }

    /// `id`'s value inside the layer of `stage`: computed there, a scalar input, or imported from
    /// an earlier layer (which then exports it).
    fn value(&mut self, stage: Stage, id: NodeId) -> ValueId {
        let node = self.graph.node(id);
        let scalar = TensorType::index(DType::I32);
        match node.op {
            FloatOp::Token => return self.layer(stage).input("token", scalar),
            FloatOp::Position => return self.layer(stage).input("pos", scalar),
            FloatOp::Input { .. } => {
                let ty = self.quant[&id].shaped(self.shape(id));
                return self.layer(stage).input("input", ty);
            }
            _ => {}
        }
        if node.stage != stage {
            let ty = self.quant[&id].shaped(self.shape(id));
            self.exports.push((node.stage, id));
            let name = node.name.clone();
            return self.layer(stage).input(&name, ty);
        }
        self.layers[&stage].node_values[&id]
    }

    /// The shape of `id`'s value: its graph shape, else one row of its width.
    fn shape(&self, id: NodeId) -> Vec<usize> {
        match self.graph.shape(id) {
            Some(s) => s.to_vec(),
            None => vec![1, self.widths[&id]],
        }
    }

    /// The type of value `v` of the layer of `stage`.
    fn ty_of(&self, stage: Stage, v: ValueId) -> TensorType {
        self.layers[&stage].layer.value(v).ty.clone()
    }

    fn layer(&mut self, stage: Stage) -> &mut LayerBuilder {
        self.layers
            .entry(stage)
            .or_insert_with(|| LayerBuilder::new(stage.to_string()))
    }

    fn node(&mut self, id: NodeId) -> Result<(), QuantError> {
        let node = self.graph.node(id).clone();
        let stage = node.stage;
        let operands = self.graph.operands(id);
        let (name, out) = (node.name.clone(), self.quant.get(&id).copied());
        let value = match &node.op {
            FloatOp::Token | FloatOp::Position => return Ok(()),
            FloatOp::Input { shape } => {
                let width = self.graph.row_len(id, shape.iter().product());
                self.widths.insert(id, width);
                return Ok(());
            }
            FloatOp::Slice { .. } if self.layer(stage).node_values.contains_key(&id) => {
                return Ok(())
            }
            FloatOp::Embed { table } => {
                let q = out.expect("embeddings have a class");
                let (rows, width) = (table.shape[0], table.shape[1]);
                let data = self.quantize_checked(id, self.model.weight(&table.name), q)?;
                let ty = TensorType::new(
                    q.dtype,
                    vec![rows, width],
                    Scale::pow2(-q.exp).expect("|exp| <= 60"),
                );
                let c = self.constant(format!("{name}.table"), ty, data);
                let idx = self.value(stage, operands[0]);
                self.widths.insert(id, width);
                self.layer(stage).one(
                    Op::Gather,
                    vec![Operand::Const(c), Operand::Value(idx)],
                    name,
                    q.ty(width),
                )
            }
            FloatOp::Add | FloatOp::Sub => {
                let (a, b) = (
                    self.value(stage, operands[0]),
                    self.value(stage, operands[1]),
                );
                let width = self.widths[&operands[0]];
                self.widths.insert(id, width);
                let q = out.expect("sums and differences have a class");
                let shape = self.ty_of(stage, a).shape;
                let op = match node.op {
                    FloatOp::Add => Op::Add,
                    _ => Op::Sub,
                };
                self.layer(stage).one(
                    op,
                    vec![Operand::Value(a), Operand::Value(b)],
                    name,
                    q.shaped(shape),
                )
            }
            FloatOp::LayerNorm { weight, bias, eps } => {
                self.norm(id, &operands, &weight.name, Some(&bias.name), *eps)?
            }
            FloatOp::RmsNorm { weight, eps } => {
                self.norm(id, &operands, &weight.name, None, *eps)?
            }
            FloatOp::Linear { .. } if Some(id) == self.graph.logits() => {
                self.logits(id, &operands)?
            }
            FloatOp::Linear { .. } if sliced_projection(self.graph, id) => {
                self.sliced_linear(id, &operands)?
            }
            FloatOp::Linear { .. } => self.linear(id, &operands)?,
            FloatOp::Slice { .. } => self.split(id, operands[0])?,
            FloatOp::Attention { .. } => self.attention(id, &operands)?,
            FloatOp::Concat => {
                let args: Vec<Operand> = operands
                    .iter()
                    .map(|&o| Operand::Value(self.value(stage, o)))
                    .collect();
                let width = operands.iter().map(|o| self.widths[o]).sum();
                self.widths.insert(id, width);
                let q = out.expect("concats have a class");
                self.layer(stage)
                    .one(Op::Concat { axis: 1 }, args, name, q.ty(width))
            }
            FloatOp::Gelu => self.activation(id, operands[0], gelu::Activation::Gelu)?,
            FloatOp::GeluErf => self.activation(id, operands[0], gelu::Activation::GeluErf)?,
            FloatOp::Relu => {
                let x = self.value(stage, operands[0]);
                let width = self.widths[&operands[0]];
                self.widths.insert(id, width);
                let q = out.expect("relus have their operand's class");
                let hi = q.dtype.max();
                let shape = self.ty_of(stage, x).shape;
                self.layer(stage).one(
                    Op::Clamp { lo: 0, hi },
                    vec![Operand::Value(x)],
                    name,
                    q.shaped(shape),
                )
            }
            FloatOp::MatMul => self.matmul(id, &operands)?,
            FloatOp::Softmax { scale, causal } => {
                self.softmax(id, operands[0], *scale as f64, *causal)?
            }
            FloatOp::Transpose { perm } => {
                let x = self.value(stage, operands[0]);
                let mut ty = self.ty_of(stage, x);
                if perm.len() != ty.shape.len() {
                    return Err(self.unsupported(id, format!("perm {perm:?} of {:?}", ty.shape)));
                }
                ty.shape = perm.iter().map(|&p| ty.shape[p]).collect();
                self.widths.insert(id, *ty.shape.last().unwrap_or(&1));
                let op = Op::Transpose { perm: perm.clone() };
                self.layer(stage).one(op, vec![Operand::Value(x)], name, ty)
            }
            FloatOp::Reshape { shape } => {
                let x = self.value(stage, operands[0]);
                let mut ty = self.ty_of(stage, x);
                ty.shape = shape.clone();
                self.widths.insert(id, *shape.last().unwrap_or(&1));
                let op = Op::Reshape {
                    shape: shape.clone(),
                };
                self.layer(stage).one(op, vec![Operand::Value(x)], name, ty)
            }
            FloatOp::Silu => self.activation(id, operands[0], gelu::Activation::Silu)?,
            FloatOp::Sigmoid => self.activation(id, operands[0], gelu::Activation::Sigmoid)?,
            FloatOp::Tanh => self.activation(id, operands[0], gelu::Activation::Tanh)?,
            FloatOp::LeakyRelu { alpha } => self.leaky_relu(id, operands[0], *alpha as f64)?,
            FloatOp::Rope {
                dims,
                freq_base,
                pairs,
            } => self.rope(id, operands[0], *dims, *freq_base, *pairs)?,
            FloatOp::Mul => self.product(id, &operands)?,
        };
        self.layer(stage).node_values.insert(id, value);
        Ok(())
    }

    fn quantize_checked(
        &self,
        id: NodeId,
        values: &[f32],
        q: Quant,
    ) -> Result<Vec<i64>, QuantError> {
        let data: Vec<i64> = values
            .iter()
            .map(|&v| quantize(v as f64, q.scale()))
            .collect();
        if let Some(v) = data.iter().find(|&&v| !q.dtype.contains(v as i128)) {
            return Err(
                self.unsupported(id, format!("constant value {v} does not fit {}", q.dtype))
            );
        }
        Ok(data)
    }

    /// `requant` of `acc` (scale `acc_scale`, per channel when `channel_scales` is given) to the
    /// node's class.
    fn requant(
        &mut self,
        id: NodeId,
        acc: ValueId,
        acc_scale: f64,
        channel_scales: Option<&[f64]>,
    ) -> ValueId {
        let node = self.graph.node(id).clone();
        let q = self.quant[&id];
        let width = self.widths[&id];
        let shape = self.ty_of(node.stage, acc).shape;
        let op = match channel_scales {
            None => {
                let (m, shift) = multiplier(acc_scale / q.scale(), self.cfg.mult_bits);
                Op::Requant {
                    mult: Multiplier::Uniform(m),
                    shift,
                }
            }
            Some(scales) => {
                let ratios: Vec<f64> = scales.iter().map(|s| s / q.scale()).collect();
                let (ms, shift) = multipliers(&ratios, self.cfg.mult_bits);
                let dt = dtype_for(*ms.iter().max().unwrap_or(&1) as f64);
                let c = self.constant(
                    format!("{}.mult", node.name),
                    TensorType::new(dt, vec![width], Scale::ONE),
                    ms,
                );
                Op::Requant {
                    mult: Multiplier::PerChannel(c),
                    shift,
                }
            }
        };
        self.layer(node.stage)
            .one(op, vec![Operand::Value(acc)], node.name, q.shaped(shape))
    }

    /// `layernorm` (with the bias `beta`) or `rmsnorm` (without): gamma at its own power of two
    /// (16 bits), the division's shift carrying it to the node's class, `eps` at the input's
    /// squared scale.
    fn norm(
        &mut self,
        id: NodeId,
        operands: &[NodeId],
        weight: &str,
        bias: Option<&str>,
        eps: f32,
    ) -> Result<ValueId, QuantError> {
        let stage = self.graph.node(id).stage;
        let name = self.graph.node(id).name.clone();
        let x = self.value(stage, operands[0]);
        let (qx, q) = (self.quant[&operands[0]], self.quant[&id]);
        let gamma = self.model.weight(weight);
        let width = gamma.len();
        self.widths.insert(id, width);
        let gf = exponent_for(
            gamma.iter().fold(0f32, |m, v| m.max(v.abs())) as f64,
            16,
            1.0,
        );
        let shift = q.exp - gf;
        if shift.abs() > 62 {
            return Err(
                self.unsupported(id, format!("gamma and output scales are 2^{shift} apart"))
            );
        }
        let gamma_q = gamma
            .iter()
            .map(|&g| quantize(g as f64, 2f64.powi(-gf)))
            .collect();
        let g = self.constant(
            format!("{name}.gamma"),
            TensorType::new(
                DType::I16,
                vec![width],
                Scale::pow2(-gf).expect("|gf| <= 60"),
            ),
            gamma_q,
        );
        let eps_q = (eps as f64 / (qx.scale() * qx.scale()))
            .round()
            .clamp(1.0, 1e18) as i64;
        let mut args = vec![Operand::Value(x), Operand::Const(g)];
        let op = match bias {
            None => Op::RmsNorm { eps: eps_q, shift },
            Some(bias) => {
                let beta_q: Vec<i64> = self
                    .model
                    .weight(bias)
                    .iter()
                    .map(|&b| quantize(b as f64, q.scale()))
                    .collect();
                let largest = beta_q.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
                let b = self.constant(
                    format!("{name}.beta"),
                    TensorType::new(
                        dtype_for(largest as f64),
                        vec![width],
                        Scale::pow2(-q.exp).expect("|exp| <= 60"),
                    ),
                    beta_q,
                );
                args.push(Operand::Const(b));
                Op::LayerNorm { eps: eps_q, shift }
            }
        };
        let shape = self.ty_of(stage, x).shape;
        if shape.last() != Some(&width) {
            return Err(self.unsupported(id, format!("rows of {shape:?} normalized by {width}")));
        }
        Ok(self.layer(stage).one(op, args, name, q.shaped(shape)))
    }

    /// The `linear` of a `Linear` node into an accumulator named `acc_name`, with weights
    /// quantized at `scales[n]` per output channel and declared at `declared`; returns the
    /// accumulator and the input's quantization.
    fn project(
        &mut self,
        id: NodeId,
        operands: &[NodeId],
        scales: &[f64],
        declared: Scale,
        acc_name: String,
    ) -> Result<(ValueId, Quant), QuantError> {
        let node = self.graph.node(id).clone();
        let FloatOp::Linear { weight, bias } = &node.op else {
            unreachable!("called on linears")
        };
        let x = self.value(node.stage, operands[0]);
        let qx = self.quant[&operands[0]];
        let (n_out, n_in) = (weight.shape[0], weight.shape[1]);
        self.widths.insert(id, n_out);
        let mut w_q = vec![0i64; n_in * n_out];
        for (o, row) in self.model.weight(&weight.name).chunks(n_in).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                w_q[i * n_out + o] = quantize(v as f64, scales[o]);
            }
        }
        let w_dt = match self.cfg.weight_bits {
            0..=8 => DType::I8,
            9..=16 => DType::I16,
            _ => DType::I32,
        };
        let acc_scale = Scale::pow2(-qx.exp)
            .and_then(|s| s.checked_mul(declared))
            .ok_or_else(|| self.unsupported(id, "accumulator scale out of range"))?;
        let wc = self.constant(
            format!("{}.w", node.name),
            TensorType::new(w_dt, vec![n_in, n_out], declared),
            w_q,
        );
        let mut args = vec![Operand::Value(x), Operand::Const(wc)];
        let mut bias_bound = 0.0;
        if let Some(b) = bias {
            let b_q: Vec<i64> = self
                .model
                .weight(&b.name)
                .iter()
                .zip(scales)
                .map(|(&v, &s)| quantize(v as f64, qx.scale() * s))
                .collect();
            bias_bound = b_q.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0) as f64;
            let ty = TensorType::new(dtype_for(bias_bound), vec![n_out], acc_scale);
            args.push(Operand::Const(self.constant(
                format!("{}.b", node.name),
                ty,
                b_q,
            )));
        }
        let qmax_x = ((1i64 << (qx.dtype.bits() - 1)) - 1) as f64;
        let qmax_w = ((1i64 << (self.cfg.weight_bits - 1)) - 1) as f64;
        let mut shape = self.ty_of(node.stage, x).shape;
        if shape.last() != Some(&n_in) {
            return Err(self.unsupported(id, format!("rows of {shape:?} into {n_in} inputs")));
        }
        *shape.last_mut().expect("rank >= 1") = n_out;
        let acc_ty = TensorType::new(
            dtype_for(n_in as f64 * qmax_x * qmax_w + bias_bound),
            shape,
            acc_scale,
        );
        Ok((
            self.layer(node.stage)
                .one(Op::Linear, args, acc_name, acc_ty),
            qx,
        ))
    }

    /// Largest `|weight|` of each output channel of a `Linear` node, over the weight bits' range.
    fn channel_scales(&self, id: NodeId) -> Vec<f64> {
        let FloatOp::Linear { weight, .. } = &self.graph.node(id).op else {
            unreachable!("called on linears")
        };
        let qmax = ((1i64 << (self.cfg.weight_bits - 1)) - 1) as f64;
        self.model
            .weight(&weight.name)
            .chunks(weight.shape[1])
            .map(|row| row.iter().fold(0f32, |m, v| m.max(v.abs())) as f64 / qmax)
            .collect()
    }

    /// The `linear` of a projection with per-output-channel weight scales into `NAME.acc`,
    /// declared at a reference scale (a power of two at least every channel's scale); returns
    /// the accumulator, the input's quantization and the channel scales.
    fn channel_projection(
        &mut self,
        id: NodeId,
        operands: &[NodeId],
    ) -> Result<(ValueId, Quant, Vec<f64>), QuantError> {
        let mut scales = self.channel_scales(id);
        let largest = scales.iter().copied().fold(f64::MIN_POSITIVE, f64::max);
        for s in scales.iter_mut().filter(|s| **s == 0.0) {
            *s = largest;
        }
        let reference = Scale::pow2(largest.log2().ceil() as i32)
            .ok_or_else(|| self.unsupported(id, "weight scale out of range"))?;
        let name = format!("{}.acc", self.graph.node(id).name);
        let (acc, qx) = self.project(id, operands, &scales, reference, name)?;
        Ok((acc, qx, scales))
    }

    /// A projection with per-output-channel weight scales, requantized to the node's class. The
    /// weight constant is declared at a reference scale (a power of two at least every channel's
    /// scale); the per-channel factors live in the requant multipliers.
    fn linear(&mut self, id: NodeId, operands: &[NodeId]) -> Result<ValueId, QuantError> {
        let (acc, qx, scales) = self.channel_projection(id, operands)?;
        let channel_scales: Vec<f64> = scales.iter().map(|s| qx.scale() * s).collect();
        Ok(self.requant(id, acc, 0.0, Some(&channel_scales)))
    }

    /// A projection whose users are all slices (GPT-2's fused Q/K/V): the accumulator is split
    /// and each slice requantized to its own class, so that V, whose values are several times
    /// smaller than Q's and K's, does not share their scale. Returns the accumulator (only the
    /// slices use the projection).
    fn sliced_linear(&mut self, id: NodeId, operands: &[NodeId]) -> Result<ValueId, QuantError> {
        let (acc, qx, scales) = self.channel_projection(id, operands)?;
        let stage = self.graph.node(id).stage;
        let slices = self.tiling(id)?;
        let acc_ty = self.layers[&stage].layer.value(acc).ty.clone();
        let axis = acc_ty.shape.len() - 1;
        let results: Vec<(String, TensorType)> = slices
            .iter()
            .map(|&(slice, _, len)| {
                let mut ty = acc_ty.clone();
                ty.shape[axis] = len;
                (format!("{}.acc", self.graph.node(slice).name), ty)
            })
            .collect();
        let parts = self
            .layer(stage)
            .inst(Op::Split { axis }, vec![Operand::Value(acc)], results);
        for (&(slice, start, len), part) in slices.iter().zip(parts) {
            self.widths.insert(slice, len);
            let channel_scales: Vec<f64> = scales[start..start + len]
                .iter()
                .map(|s| qx.scale() * s)
                .collect();
            let value = self.requant(slice, part, 0.0, Some(&channel_scales));
            self.layer(stage).node_values.insert(slice, value);
        }
        Ok(acc)
    }

    /// The slices of `source` in order of their start, `(slice, start, len)`; they must tile it
    /// in equal parts.
    fn tiling(&self, source: NodeId) -> Result<Vec<(NodeId, usize, usize)>, QuantError> {
        let total = self.widths[&source];
        let mut slices: Vec<(NodeId, usize, usize)> = self
            .graph
            .users(source)
            .into_iter()
            .filter_map(|u| match self.graph.node(u).op {
                FloatOp::Slice { start, len } => Some((u, start, len)),
                _ => None,
            })
            .collect();
        slices.sort_by_key(|s| s.1);
        let len = slices.first().map_or(0, |s| s.2);
        let tiles = len > 0
            && total % len == 0
            && slices.len() == total / len
            && slices
                .iter()
                .enumerate()
                .all(|(k, s)| s.1 == k * len && s.2 == len);
        if !tiles {
            return Err(self.unsupported(source, "slices of a tensor must tile it in equal parts"));
        }
        Ok(slices)
    }

    /// The output head: per-tensor weights (argmax compares logits with each other, so they
    /// must share one scale) and no requantize; then the greedy token.
    fn logits(&mut self, id: NodeId, operands: &[NodeId]) -> Result<ValueId, QuantError> {
        let scales = self.channel_scales(id);
        let sw = scales.iter().copied().fold(0.0, f64::max);
        let declared = Scale::from_f64(sw)
            .ok_or_else(|| self.unsupported(id, "all output weights are zero"))?;
        let (logits, _) = self.project(
            id,
            operands,
            &vec![sw; scales.len()],
            declared,
            "logits".into(),
        )?;
        let layer = self.layer(self.graph.node(id).stage);
        let best = layer.one(
            Op::Argmax,
            vec![Operand::Value(logits)],
            "best".into(),
            TensorType::new(DType::I32, vec![1], Scale::ONE),
        );
        let token = layer.one(
            Op::Reshape { shape: vec![] },
            vec![Operand::Value(best)],
            "token".into(),
            TensorType::index(DType::I32),
        );
        layer.output(token);
        Ok(logits)
    }

    /// All slices of one tensor become one `split` (they tile it in equal parts).
    fn split(&mut self, id: NodeId, source: NodeId) -> Result<ValueId, QuantError> {
        let stage = self.graph.node(id).stage;
        let x = self.value(stage, source);
        let slices = self.tiling(source)?;
        let q = self.quant[&id];
        let shape = self.ty_of(stage, x).shape;
        let axis = shape.len() - 1;
        let results: Vec<(String, TensorType)> = slices
            .iter()
            .map(|&(slice, _, len)| {
                let mut part = shape.clone();
                part[axis] = len;
                (self.graph.node(slice).name.clone(), q.shaped(part))
            })
            .collect();
        let values = self
            .layer(stage)
            .inst(Op::Split { axis }, vec![Operand::Value(x)], results);
        for (&(slice, _, len), &value) in slices.iter().zip(&values) {
            self.widths.insert(slice, len);
            self.layer(stage).node_values.insert(slice, value);
        }
        Ok(self.layer(stage).node_values[&id])
    }

    /// One head: append K and V to this head's caches, scores against every cached key, causal
    /// integer softmax, weighted sum of the cached values, requantized to the head outputs' class.
    fn attention(&mut self, id: NodeId, operands: &[NodeId]) -> Result<ValueId, QuantError> {
        let node = self.graph.node(id).clone();
        let stage = node.stage;
        let (q, k, v) = (
            self.value(stage, operands[0]),
            self.value(stage, operands[1]),
            self.value(stage, operands[2]),
        );
        let (qs, ks, vs) = (
            self.quant[&operands[0]],
            self.quant[&operands[1]],
            self.quant[&operands[2]],
        );
        let dh = self.widths[&operands[0]];
        self.widths.insert(id, dh);
        let ctx = self.context;
        let ps = self.cfg.softmax_shift;
        // Scores finer than 2^-29 (after the 1/sqrt(dh) that the exp constants absorb) would
        // push those constants past their bounds: such scores are first shifted right by `coarsen`
        // (further if the configuration asks for coarser scores).
        let s_raw = qs.scale() * ks.scale() / (dh as f64).sqrt();
        let finest = -(self.cfg.score_frac_bits.unwrap_or(29) as f64);
        let coarsen = (finest - s_raw.log2()).ceil().max(0.0) as u32;
        let s_eff = s_raw * 2f64.powi(coarsen as i32);
        let ln2 = (std::f64::consts::LN_2 / s_eff).floor();
        let b = (EXP_B / s_eff).floor();
        let c = (EXP_C / (EXP_A * s_eff * s_eff)).floor();
        if !(1.0..=(1u64 << 30) as f64).contains(&ln2)
            || b > (1u64 << 30) as f64
            || !(1.0..=(1u64 << 60) as f64).contains(&c)
        {
            return Err(self.unsupported(
                id,
                format!("scores at scale {s_eff:e} are out of the integer softmax's range"),
            ));
        }
        let qmax = |q: Quant| ((1i64 << (q.dtype.bits() - 1)) - 1) as f64;
        let score_dtype = dtype_for(dh as f64 * qmax(qs) * qmax(ks));
        let pos = self
            .graph
            .position()
            .ok_or_else(|| self.unsupported(id, "it needs the token's position"))?;
        let pos = self.value(stage, pos);
        let cache_ty = |q: Quant| {
            TensorType::new(
                q.dtype,
                vec![ctx, dh],
                Scale::pow2(-q.exp).expect("|exp| <= 60"),
            )
        };
        let (k_ty, v_ty) = (cache_ty(ks), cache_ty(vs));
        let n = &node.name;
        let FloatOp::Attention { block, kv_head } = node.op else {
            unreachable!("called on attention heads")
        };
        // A head that shares its key/value head (grouped-query attention) reads the caches the
        // group's first head appended to, named after the key/value head.
        let (keys, values) = match self.kv.get(&(stage, kv_head)) {
            Some(&kv) => kv,
            None => {
                let cache = match self.model.text()?.group() {
                    1 => n.clone(),
                    _ => format!("blk.{block}.attn.kv.{kv_head}"),
                };
                let layer = self.layer(stage);
                // The state `{cache}.{what}_cache` with `x` appended at `pos`, named `read`.
                let mut append = |what: &str, x: ValueId, read: &str, ty: &TensorType| {
                    let state = layer.state(&format!("{cache}.{what}_cache"), ty.clone());
                    let args = [state, x, pos].map(Operand::Value).to_vec();
                    layer.one(Op::KvAppend, args, format!("{cache}.{read}"), ty.clone())
                };
                let keys = append("k", k, "keys", &k_ty);
                let values = append("v", v, "values", &v_ty);
                self.kv.insert((stage, kv_head), (keys, values));
                (keys, values)
            }
        };
        let layer = self.layer(stage);
        // scores = keys [C, dh] x q^T [dh, 1]: no transpose of the cache, only of the 1-row q.
        let q_col = layer.one(
            Op::Reshape { shape: vec![dh, 1] },
            vec![Operand::Value(q)],
            format!("{n}.q_col"),
            TensorType::new(
                qs.dtype,
                vec![dh, 1],
                Scale::pow2(-qs.exp).expect("|exp| <= 60"),
            ),
        );
        let score_scale = Scale::pow2(-qs.exp - ks.exp).expect("|exp| <= 60");
        let col_ty = TensorType::new(score_dtype, vec![ctx, 1], score_scale);
        let score_col = layer.one(
            Op::MatMul,
            vec![Operand::Value(keys), Operand::Value(q_col)],
            format!("{n}.score_col"),
            col_ty,
        );
        let scores_ty = TensorType::new(score_dtype, vec![1, ctx], score_scale);
        let mut scores = layer.one(
            Op::Reshape {
                shape: vec![1, ctx],
            },
            vec![Operand::Value(score_col)],
            format!("{n}.scores"),
            scores_ty,
        );
        if coarsen > 0 {
            let scale = Scale::pow2(-qs.exp - ks.exp + coarsen as i32).expect("small exponents");
            // q and k reach -(qmax + 1): the largest product is (qmax + 1)^2.
            let bound = dh as f64 * (qmax(qs) + 1.0) * (qmax(ks) + 1.0) / 2f64.powi(coarsen as i32);
            let op = Op::Requant {
                mult: Multiplier::Uniform(1),
                shift: coarsen,
            };
            // The narrowest dtype: the softmax's range checks are as wide as its input's.
            let dtype = DType::ALL
                .into_iter()
                .find(|&d| bound + 1.0 <= d.max() as f64)
                .unwrap_or(DType::I64);
            let ty = TensorType::new(dtype, vec![1, ctx], scale);
            scores = layer.one(
                op,
                vec![Operand::Value(scores)],
                format!("{n}.scores_coarse"),
                ty,
            );
        }
        let softmax = Op::Softmax {
            ln2: ln2 as i64,
            b: b as i64,
            c: c as i64,
            shift: ps,
        };
        let probs_ty = TensorType::new(
            DType::I16,
            vec![1, ctx],
            Scale::pow2(-(ps as i32)).expect("ps <= 14"),
        );
        let probs = layer.one(
            softmax,
            vec![Operand::Value(scores), Operand::Value(pos)],
            format!("{n}.probs"),
            probs_ty,
        );
        let ctx_scale = Scale::pow2(-(ps as i32) - vs.exp).expect("small exponents");
        let ctx_ty = TensorType::new(DType::I32, vec![1, dh], ctx_scale);
        let context = layer.one(
            Op::MatMul,
            vec![Operand::Value(probs), Operand::Value(values)],
            format!("{n}.context"),
            ctx_ty,
        );
        Ok(self.requant(id, context, ctx_scale.to_f64(), None))
    }

    /// RoPE of one head's vector `x` (`dims` its whole width): with `c` and `s` the `cos` and
    /// `sin` rows of the step's position ([`Lowering::rope_rows`]), each pair `(a, b)` becomes
    /// `(a c - b s, a s + b c)`: four elementwise products and a requant to the node's class.
    /// The pairs' elements are separated into two rows and joined again by free ops (`reshape`,
    /// `transpose`, `split`, `concat`).
    fn rope(
        &mut self,
        id: NodeId,
        input: NodeId,
        dims: usize,
        freq_base: f32,
        pairs: RopePairs,
    ) -> Result<ValueId, QuantError> {
        let node = self.graph.node(id).clone();
        let (stage, name) = (node.stage, node.name);
        let width = self.widths[&input];
        if dims != width || width % 2 != 0 {
            return Err(self.unsupported(
                id,
                format!("RoPE over {dims} of a head's {width} elements (only the whole head)"),
            ));
        }
        self.widths.insert(id, width);
        let half = width / 2;
        let x = self.value(stage, input);
        let qx = self.quant[&input];
        let (cos, sin) = self.rope_rows(stage, half, freq_base);
        let row = |dtype: DType, exp: i32, shape: Vec<usize>| {
            TensorType::new(dtype, shape, Scale::pow2(-exp).expect("small exponents"))
        };
        let part = row(qx.dtype, qx.exp, vec![1, half]);
        let layer = self.layer(stage);
        // The first and second elements of every pair, as two rows of `half`.
        let halves = match pairs {
            RopePairs::Halves => x,
            RopePairs::Adjacent => {
                let pairs = layer.one(
                    Op::Reshape {
                        shape: vec![half, 2],
                    },
                    vec![Operand::Value(x)],
                    format!("{name}.pairs"),
                    row(qx.dtype, qx.exp, vec![half, 2]),
                );
                layer.one(
                    Op::Transpose { perm: vec![1, 0] },
                    vec![Operand::Value(pairs)],
                    format!("{name}.columns"),
                    row(qx.dtype, qx.exp, vec![2, half]),
                )
            }
        };
        let axis = match pairs {
            RopePairs::Halves => 1,
            RopePairs::Adjacent => 0,
        };
        let parts = layer.inst(
            Op::Split { axis },
            vec![Operand::Value(halves)],
            vec![
                (format!("{name}.first"), part.clone()),
                (format!("{name}.second"), part),
            ],
        );
        let (a, b) = (parts[0], parts[1]);
        let exp = qx.exp + ROPE_FRAC_BITS;
        let qmax = (1i64 << (qx.dtype.bits() - 1)) as f64;
        let product_ty = row(dtype_for(qmax * ROPE_ONE), exp, vec![1, half]);
        let sum_ty = row(dtype_for(2.0 * qmax * ROPE_ONE), exp, vec![1, half]);
        let mut mul = |x: ValueId, y: ValueId, what: &str| {
            layer.one(
                Op::Mul,
                vec![Operand::Value(x), Operand::Value(y)],
                format!("{name}.{what}"),
                product_ty.clone(),
            )
        };
        let (ac, bs, as_, bc) = (
            mul(a, cos, "a_cos"),
            mul(b, sin, "b_sin"),
            mul(a, sin, "a_sin"),
            mul(b, cos, "b_cos"),
        );
        let first = layer.one(
            Op::Sub,
            vec![Operand::Value(ac), Operand::Value(bs)],
            format!("{name}.first_turned"),
            sum_ty.clone(),
        );
        let second = layer.one(
            Op::Add,
            vec![Operand::Value(as_), Operand::Value(bc)],
            format!("{name}.second_turned"),
            sum_ty.clone(),
        );
        let joined = match pairs {
            RopePairs::Halves => layer.one(
                Op::Concat { axis: 1 },
                vec![Operand::Value(first), Operand::Value(second)],
                format!("{name}.turned"),
                row(sum_ty.dtype, exp, vec![1, width]),
            ),
            RopePairs::Adjacent => {
                let columns = layer.one(
                    Op::Concat { axis: 0 },
                    vec![Operand::Value(first), Operand::Value(second)],
                    format!("{name}.turned_columns"),
                    row(sum_ty.dtype, exp, vec![2, half]),
                );
                let pairs = layer.one(
                    Op::Transpose { perm: vec![1, 0] },
                    vec![Operand::Value(columns)],
                    format!("{name}.turned_pairs"),
                    row(sum_ty.dtype, exp, vec![half, 2]),
                );
                layer.one(
                    Op::Reshape {
                        shape: vec![1, width],
                    },
                    vec![Operand::Value(pairs)],
                    format!("{name}.turned"),
                    row(sum_ty.dtype, exp, vec![1, width]),
                )
            }
        };
        Ok(self.requant(id, joined, 2f64.powi(-exp), None))
    }

    /// The `cos` and `sin` of RoPE's angles at the step's position for `half` pairs: rows of
    /// constant tables (`[context, half]`, at `2^-ROPE_FRAC_BITS`) selected by `pos`, once per
    /// layer. Pair `i` at position `p` turns by `p * freq_base^(-2i / (2 half))`, as the float
    /// reference computes it.
    fn rope_rows(&mut self, stage: Stage, half: usize, freq_base: f32) -> (ValueId, ValueId) {
        if let Some(&rows) = self.rope_rows.get(&stage) {
            return rows;
        }
        let ctx = self.context;
        let angle = |p: usize, i: usize| {
            p as f64 * (freq_base as f64).powf(-2.0 * i as f64 / (2 * half) as f64)
        };
        let table = |f: fn(f64) -> f64| -> Vec<i64> {
            (0..ctx * half)
                .map(|k| (f(angle(k / half, k % half)) * ROPE_ONE).round() as i64)
                .collect()
        };
        let ty = TensorType::new(
            DType::I16,
            vec![ctx, half],
            Scale::pow2(-ROPE_FRAC_BITS).expect("small exponent"),
        );
        let (cos, sin) = (table(f64::cos), table(f64::sin));
        let tables = [("cos", cos), ("sin", sin)].map(|(what, data)| {
            let name = format!("rope.{what}.{ctx}x{half}");
            match self.consts.iter().position(|c| c.name == name) {
                Some(k) => ConstId(k as u32),
                None => self.constant(name, ty.clone(), data),
            }
        });
        let pos = self
            .graph
            .position()
            .expect("RoPE nodes are in token graphs, which have a position");
        let pos = self.value(stage, pos);
        let row_ty = TensorType::new(
            DType::I16,
            vec![1, half],
            Scale::pow2(-ROPE_FRAC_BITS).expect("small exponent"),
        );
        let layer = self.layer(stage);
        let [cos, sin] = [("cos", tables[0]), ("sin", tables[1])].map(|(what, table)| {
            layer.one(
                Op::Gather,
                vec![Operand::Const(table), Operand::Value(pos)],
                // Named by layer, so that joined layers keep one name per value.
                format!("{stage}.rope.{what}"),
                row_ty.clone(),
            )
        });
        self.rope_rows.insert(stage, (cos, sin));
        (cos, sin)
    }

    /// The elementwise product of two activations (the SiLU-gated MLP's gate), requantized to
    /// the node's class.
    fn product(&mut self, id: NodeId, operands: &[NodeId]) -> Result<ValueId, QuantError> {
        let stage = self.graph.node(id).stage;
        let name = self.graph.node(id).name.clone();
        let (a, b) = (
            self.value(stage, operands[0]),
            self.value(stage, operands[1]),
        );
        let (qa, qb) = (self.quant[&operands[0]], self.quant[&operands[1]]);
        let width = self.widths[&operands[0]];
        self.widths.insert(id, width);
        let bound = |q: Quant| (1i64 << (q.dtype.bits() - 1)) as f64;
        let exp = qa.exp + qb.exp;
        let ty = TensorType::new(
            dtype_for(bound(qa) * bound(qb)),
            vec![1, width],
            Scale::pow2(-exp).ok_or_else(|| self.unsupported(id, "product scale out of range"))?,
        );
        let product = self.layer(stage).one(
            Op::Mul,
            vec![Operand::Value(a), Operand::Value(b)],
            format!("{name}.product"),
            ty,
        );
        Ok(self.requant(id, product, 2f64.powi(-exp), None))
    }

    /// The product of two computed tensors, `matmul` batched over the leading axes, requantized
    /// to the node's class. When softmaxes are its only readers the accumulator itself is the
    /// node's value: the softmax takes any input scale (its exp constants absorb it), and a
    /// requant would only cost constraints and bits, as attention's scores (`attention`).
    fn matmul(&mut self, id: NodeId, operands: &[NodeId]) -> Result<ValueId, QuantError> {
        let node = self.graph.node(id).clone();
        let stage = node.stage;
        let (a, b) = (
            self.value(stage, operands[0]),
            self.value(stage, operands[1]),
        );
        let (ta, tb) = (self.ty_of(stage, a), self.ty_of(stage, b));
        let (sa, sb) = (&ta.shape, &tb.shape);
        let rank = sa.len();
        if rank < 2
            || sb.len() != rank
            || sa[..rank - 2] != sb[..rank - 2]
            || sa[rank - 1] != sb[rank - 2]
        {
            return Err(self.unsupported(
                id,
                format!("a product of {sa:?} and {sb:?}: matmul takes [B.., M, K] x [B.., K, N] with equal batch axes"),
            ));
        }
        let (k, n) = (sa[rank - 1], sb[rank - 1]);
        let mut shape = sa.clone();
        shape[rank - 1] = n;
        self.widths.insert(id, n);
        // Operands reach -(qmax + 1); a softmax's probabilities (each row's sum at most
        // 2^shift, none negative) bound the sum by 2^shift times the other factor.
        let magnitude = |t: &TensorType| (1i64 << (t.dtype.bits() - 1)) as f64;
        let bound = match self.graph.node(operands[0]).op {
            FloatOp::Softmax { .. } => ta.scale.to_f64().recip() * magnitude(&tb),
            _ => k as f64 * magnitude(&ta) * magnitude(&tb),
        };
        if bound >= i64::MAX as f64 {
            return Err(self.unsupported(id, "the product's sums could pass i64"));
        }
        let scale = ta
            .scale
            .checked_mul(tb.scale)
            .ok_or_else(|| self.unsupported(id, "product scale out of range"))?;
        let users = self.graph.users(id);
        let raw = !users.is_empty()
            && self.graph.result() != id
            && users
                .iter()
                .all(|&u| matches!(self.graph.node(u).op, FloatOp::Softmax { .. }));
        let acc_name = match raw {
            true => node.name.clone(),
            false => format!("{}.acc", node.name),
        };
        let ty = TensorType::new(dtype_for(bound), shape, scale);
        let args = vec![Operand::Value(a), Operand::Value(b)];
        let acc = self.layer(stage).one(Op::MatMul, args, acc_name, ty);
        if raw {
            return Ok(acc);
        }
        Ok(self.requant(id, acc, scale.to_f64(), None))
    }

    /// Softmax over the last axis of `scale * x` (`softmax`; probabilities `i16` at
    /// `2^-softmax_shift`), its exp constants absorbing `scale` and the input's scale as
    /// attention's absorb `1/sqrt(d_head)` (inputs finer than `2^-29` first shifted right). A
    /// causal softmax takes a position of 0 ([`Lowering::zero_position`]): row `i` of the
    /// second-to-last axis keeps slots `j <= 0 + i`, the mask of a sequence's self-attention.
    fn softmax(
        &mut self,
        id: NodeId,
        input: NodeId,
        scale: f64,
        causal: bool,
    ) -> Result<ValueId, QuantError> {
        let node = self.graph.node(id).clone();
        let (stage, name) = (node.stage, node.name);
        let mut x = self.value(stage, input);
        let tx = self.ty_of(stage, x);
        self.widths.insert(id, *tx.shape.last().unwrap_or(&1));
        let ps = self.cfg.softmax_shift;
        let s_raw = tx.scale.to_f64() * scale;
        let finest = -(self.cfg.score_frac_bits.unwrap_or(29) as f64);
        let coarsen = (finest - s_raw.log2()).ceil().max(0.0) as u32;
        let s_eff = s_raw * 2f64.powi(coarsen as i32);
        let ln2 = (std::f64::consts::LN_2 / s_eff).floor();
        let b = (EXP_B / s_eff).floor();
        let c = (EXP_C / (EXP_A * s_eff * s_eff)).floor();
        if scale.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
            || !(1.0..=(1u64 << 30) as f64).contains(&ln2)
            || b > (1u64 << 30) as f64
            || !(1.0..=(1u64 << 60) as f64).contains(&c)
        {
            return Err(self.unsupported(
                id,
                format!("inputs at scale {s_eff:e} are out of the integer softmax's range"),
            ));
        }
        if coarsen > 0 {
            let scale = tx
                .scale
                .checked_mul(Scale::pow2(coarsen as i32).expect("small exponent"))
                .ok_or_else(|| self.unsupported(id, "input scale out of range"))?;
            let bound = (1i64 << (tx.dtype.bits() - 1)) as f64 / 2f64.powi(coarsen as i32);
            // The narrowest dtype: the softmax's range checks are as wide as its input's.
            let dtype = DType::ALL
                .into_iter()
                .find(|&d| bound + 1.0 <= d.max() as f64)
                .unwrap_or(DType::I64);
            let op = Op::Requant {
                mult: Multiplier::Uniform(1),
                shift: coarsen,
            };
            let ty = TensorType::new(dtype, tx.shape.clone(), scale);
            x = self
                .layer(stage)
                .one(op, vec![Operand::Value(x)], format!("{name}.in"), ty);
        }
        let mut args = vec![Operand::Value(x)];
        if causal {
            args.push(Operand::Value(self.zero_position(id, x)?));
        }
        let op = Op::Softmax {
            ln2: ln2 as i64,
            b: b as i64,
            c: c as i64,
            shift: ps,
        };
        let ty = TensorType::new(
            DType::I16,
            tx.shape,
            Scale::pow2(-(ps as i32)).expect("ps <= 14"),
        );
        Ok(self.layer(stage).one(op, args, name, ty))
    }

    /// A scalar 0 at scale 1 for the causal softmax `id` over `x`, the position its mask is
    /// relative to (the IR's position is a value): `x` flattened into one row, times a zero
    /// column (`linear` into one output: no constraint, the sum has no terms), reshaped to `[]`.
    fn zero_position(&mut self, id: NodeId, x: ValueId) -> Result<ValueId, QuantError> {
        let node = self.graph.node(id).clone();
        let tx = self.ty_of(node.stage, x);
        let n: usize = tx.shape.iter().product();
        // The zeros' scale cancels x's: the sum is at scale 1, as an index must be.
        let inverse = Scale::pow2(-tx.scale.exp())
            .filter(|_| tx.scale.mantissa() == 1)
            .ok_or_else(|| self.unsupported(id, "the input's scale is not a power of two"))?;
        let w = self.constant(
            format!("{}.pos.w", node.name),
            TensorType::new(DType::I8, vec![n, 1], inverse),
            vec![0; n],
        );
        let layer = self.layer(node.stage);
        let flat = layer.one(
            Op::Reshape { shape: vec![1, n] },
            vec![Operand::Value(x)],
            format!("{}.flat", node.name),
            TensorType::new(tx.dtype, vec![1, n], tx.scale),
        );
        let zero = layer.one(
            Op::Linear,
            vec![Operand::Value(flat), Operand::Const(w)],
            format!("{}.zero", node.name),
            TensorType::new(DType::I32, vec![1, 1], Scale::ONE),
        );
        Ok(layer.one(
            Op::Reshape { shape: vec![] },
            vec![Operand::Value(zero)],
            format!("{}.pos", node.name),
            TensorType::index(DType::I32),
        ))
    }

    /// `LeakyRelu` in its operand's class, `relu(x) + alpha * (x - relu(x))`: `r = clamp x lo=0`
    /// (`NAME.pos`, as `Relu`), `x - r = min(x, 0)` (`NAME.neg`, a free `sub`), a `requant` of it
    /// by `|alpha|` in the same class (`NAME.scaled`, the multiplier of `fixed::multiplier`),
    /// and `r` plus (minus, for a negative `alpha`) that. One comparison and one requantize per
    /// element; `alpha = 0` is `Relu`'s one `clamp`.
    fn leaky_relu(&mut self, id: NodeId, input: NodeId, alpha: f64) -> Result<ValueId, QuantError> {
        let stage = self.graph.node(id).stage;
        let name = self.graph.node(id).name.clone();
        if !alpha.is_finite() {
            return Err(self.unsupported(id, format!("alpha = {alpha}")));
        }
        let x = self.value(stage, input);
        let width = self.widths[&input];
        self.widths.insert(id, width);
        let q = self.quant[&id];
        let ty = q.shaped(self.ty_of(stage, x).shape);
        let clamp = Op::Clamp {
            lo: 0,
            hi: q.dtype.max(),
        };
        if alpha == 0.0 {
            return Ok(self
                .layer(stage)
                .one(clamp, vec![Operand::Value(x)], name, ty));
        }
        let (m, shift) = multiplier(alpha.abs(), self.cfg.mult_bits);
        let layer = self.layer(stage);
        let r = layer.one(
            clamp,
            vec![Operand::Value(x)],
            format!("{name}.pos"),
            ty.clone(),
        );
        let neg = layer.one(
            Op::Sub,
            vec![Operand::Value(x), Operand::Value(r)],
            format!("{name}.neg"),
            ty.clone(),
        );
        let op = Op::Requant {
            mult: Multiplier::Uniform(m),
            shift,
        };
        let scaled = layer.one(
            op,
            vec![Operand::Value(neg)],
            format!("{name}.scaled"),
            ty.clone(),
        );
        let combine = if alpha > 0.0 { Op::Add } else { Op::Sub };
        Ok(layer.one(
            combine,
            vec![Operand::Value(r), Operand::Value(scaled)],
            name,
            ty,
        ))
    }

    /// The piecewise cubic of GELU, SiLU, the sigmoid or tanh (`quantize::gelu`) from the
    /// input's class straight to the node's: the op's own `shift` is the output rounding, so no
    /// `requant` follows. Inputs finer than the fit's finest input are first shifted to that
    /// scale; a saturating function's (sigmoid, tanh) input is then clamped into the
    /// polynomial's range (`NAME.clamp`), unless that range is the whole dtype, so that the op's
    /// tails (`x` above, 0 below) never fire.
    fn activation(
        &mut self,
        id: NodeId,
        input: NodeId,
        act: gelu::Activation,
    ) -> Result<ValueId, QuantError> {
        let stage = self.graph.node(id).stage;
        let name = self.graph.node(id).name.clone();
        let mut x = self.value(stage, input);
        let (qx, q) = (self.quant[&input], self.quant[&id]);
        let width = self.widths[&input];
        self.widths.insert(id, width);
        let shape = self.ty_of(stage, x).shape;
        let mut fx = qx.exp;
        let finest = act.finest_input();
        if fx > finest {
            let op = Op::Requant {
                mult: Multiplier::Uniform(1),
                shift: (fx - finest) as u32,
            };
            let ty = TensorType::new(
                qx.dtype,
                shape.clone(),
                Scale::pow2(-finest).expect("small exponent"),
            );
            x = self
                .layer(stage)
                .one(op, vec![Operand::Value(x)], format!("{name}.in"), ty);
            fx = finest;
        }
        let fit = gelu::fit_activation(act, fx, qx.dtype.bits(), q.exp)
            .map_err(|p| self.unsupported(id, p))?;
        if act.saturates() && fit.attrs.bound + 1 < qx.dtype.bits() {
            let (lo, hi) = fit.domain();
            let ty = self.ty_of(stage, x);
            x = self.layer(stage).one(
                Op::Clamp { lo, hi },
                vec![Operand::Value(x)],
                format!("{name}.clamp"),
                ty,
            );
        }
        let largest = fit.coef.iter().map(|c| c.unsigned_abs()).max().unwrap_or(0);
        let table = self.constant(
            format!("{name}.coef"),
            TensorType::new(
                dtype_for(largest as f64),
                vec![fit.segments, gelu::DEGREE + 1],
                Scale::ONE,
            ),
            fit.coef,
        );
        let op = match act {
            gelu::Activation::Gelu
            | gelu::Activation::GeluErf
            | gelu::Activation::Sigmoid
            | gelu::Activation::Tanh => Op::Gelu(fit.attrs),
            gelu::Activation::Silu => Op::Silu(fit.attrs),
        };
        Ok(self.layer(stage).one(
            op,
            vec![Operand::Value(x), Operand::Const(table)],
            name,
            q.shaped(shape),
        ))
    }

    fn finish(mut self) -> Result<Module, QuantError> {
        for (stage, id) in std::mem::take(&mut self.exports) {
            let v = self.layers[&stage].node_values[&id];
            self.layer(stage).output(v);
        }
        if let Io::Pass { output, .. } = self.graph.io {
            let stage = self.graph.node(output).stage;
            let v = self.layers[&stage].node_values[&output];
            self.layer(stage).output(v);
        }
        let layers = self
            .layers
            .into_values()
            .map(|b| {
                let mut layer = b.layer;
                layer.canonicalize();
                layer
            })
            .collect();
        Ok(Module {
            consts: self.consts,
            layers,
        })
    }
}

/// Whether `id` is a projection (not the output head) read only through slices.
fn sliced_projection(graph: &Graph, id: NodeId) -> bool {
    let users = graph.users(id);
    matches!(graph.node(id).op, FloatOp::Linear { .. })
        && graph.logits() != Some(id)
        && !users.is_empty()
        && users
            .iter()
            .all(|&u| matches!(graph.node(u).op, FloatOp::Slice { .. }))
}

/// The activation role of a node's value, or `None` for values that are not requantized
/// activations (inputs, logits).
fn node_role(graph: &Graph, id: NodeId) -> Option<Role> {
    let users = || graph.users(id).into_iter().map(|u| &graph.node(u).op);
    let feeds_logits = graph
        .logits()
        .is_some_and(|logits| graph.users(id).contains(&logits));
    Some(match graph.node(id).op {
        FloatOp::Token | FloatOp::Position => return None,
        // A single pass's input: quantized at the residual stream's width.
        FloatOp::Input { .. } => Role::Residual,
        FloatOp::Embed { .. } | FloatOp::Add | FloatOp::Sub => Role::Residual,
        FloatOp::LayerNorm { .. } if feeds_logits => Role::HeadNorm,
        FloatOp::LayerNorm { .. } => Role::Norm,
        FloatOp::Slice { .. } => Role::Qkv,
        FloatOp::Attention { .. } | FloatOp::Concat => Role::Attn,
        FloatOp::RmsNorm { .. } if feeds_logits => Role::HeadNorm,
        FloatOp::RmsNorm { .. } => Role::Norm,
        FloatOp::Rope { .. } => Role::Qkv,
        FloatOp::Gelu
        | FloatOp::GeluErf
        | FloatOp::Silu
        | FloatOp::Mul
        | FloatOp::Relu
        | FloatOp::LeakyRelu { .. }
        | FloatOp::Sigmoid
        | FloatOp::Tanh => Role::Mlp,
        // Attention over a sequence: the scores and the weighted values (a softmax's
        // probabilities have a fixed type, `Lowering::new`).
        FloatOp::MatMul | FloatOp::Softmax { .. } => Role::Attn,
        // Data movement keeps its operand's class.
        FloatOp::Transpose { .. } | FloatOp::Reshape { .. } => {
            return node_role(graph, graph.operands(id)[0])
        }
        FloatOp::Linear { .. } if graph.logits() == Some(id) => return None,
        FloatOp::Linear { .. }
            if users().any(|op| {
                matches!(
                    op,
                    FloatOp::Gelu
                        | FloatOp::GeluErf
                        | FloatOp::Silu
                        | FloatOp::Sigmoid
                        | FloatOp::Tanh
                )
            }) =>
        {
            Role::GeluIn
        }
        // The SiLU-gated MLP's `up`, multiplied by the gate: an MLP value, not the residual.
        FloatOp::Linear { .. } if users().any(|op| *op == FloatOp::Mul) => Role::Mlp,
        // Q, K and V: sliced, or (over a sequence) multiplied together, maybe after moves.
        FloatOp::Linear { .. }
            if users().any(|op| matches!(op, FloatOp::Slice { .. })) || multiplied(graph, id) =>
        {
            Role::Qkv
        }
        FloatOp::Linear { .. } => Role::Residual,
    })
}

/// Whether `id`'s value reaches a `MatMul` of two computed tensors through data movement only.
fn multiplied(graph: &Graph, id: NodeId) -> bool {
    graph.users(id).into_iter().any(|u| match graph.node(u).op {
        FloatOp::MatMul => true,
        FloatOp::Transpose { .. } | FloatOp::Reshape { .. } => multiplied(graph, u),
        _ => false,
    })
}

#[derive(Default)]
struct UnionFind {
    parent: HashMap<NodeId, NodeId>,
}

impl UnionFind {
    fn find(&mut self, x: NodeId) -> NodeId {
        let p = *self.parent.get(&x).unwrap_or(&x);
        if p == x {
            return x;
        }
        let root = self.find(p);
        self.parent.insert(x, root);
        root
    }

    fn union(&mut self, a: NodeId, b: NodeId) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent.insert(ra, rb);
        }
    }
}

/// Builds one IR layer: values by name, instructions in order.
struct LayerBuilder {
    layer: Layer,
    by_name: HashMap<String, ValueId>,
    node_values: HashMap<NodeId, ValueId>,
}

impl LayerBuilder {
    fn new(name: String) -> LayerBuilder {
        let layer = Layer {
            name,
            values: Vec::new(),
            inputs: Vec::new(),
            states: Vec::new(),
            insts: Vec::new(),
            outputs: Vec::new(),
        };
        LayerBuilder {
            layer,
            by_name: HashMap::new(),
            node_values: HashMap::new(),
        }
    }

    fn value(&mut self, name: String, ty: TensorType, def: ValueDef) -> ValueId {
        let id = ValueId(self.layer.values.len() as u32);
        self.by_name.insert(name.clone(), id);
        self.layer.values.push(ValueData { name, ty, def });
        id
    }

    /// The input `name`, declared on first use.
    fn input(&mut self, name: &str, ty: TensorType) -> ValueId {
        if let Some(&id) = self.by_name.get(name) {
            return id;
        }
        let id = self.value(
            name.to_string(),
            ty,
            ValueDef::Input(self.layer.inputs.len()),
        );
        self.layer.inputs.push(id);
        id
    }

    fn state(&mut self, name: &str, ty: TensorType) -> ValueId {
        let id = self.value(
            name.to_string(),
            ty,
            ValueDef::State(self.layer.states.len()),
        );
        self.layer.states.push(id);
        id
    }

    fn inst(
        &mut self,
        op: Op,
        args: Vec<Operand>,
        results: Vec<(String, TensorType)>,
    ) -> Vec<ValueId> {
        let inst = self.layer.insts.len();
        let ids: Vec<ValueId> = results
            .into_iter()
            .enumerate()
            .map(|(result, (name, ty))| self.value(name, ty, ValueDef::Inst { inst, result }))
            .collect();
        self.layer.insts.push(Inst {
            op,
            args,
            results: ids.clone(),
        });
        ids
    }

    fn one(&mut self, op: Op, args: Vec<Operand>, name: String, ty: TensorType) -> ValueId {
        self.inst(op, args, vec![(name, ty)])[0]
    }

    fn output(&mut self, v: ValueId) {
        if !self.layer.outputs.contains(&v) {
            self.layer.outputs.push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantize::{quantize, QuantConfig};

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/onnx")
            .join(name)
    }

    /// `Linear` then `Sigmoid`, `Tanh` or `LeakyRelu` (a hand-built graph over `[1, 4]`) lowers
    /// to existing ops only, and validates: the sigmoid and tanh one `gelu` (on a clamped input
    /// when the polynomial's range is narrower than the input's dtype: a wide calibrated range),
    /// output i16 at 2^-14; LeakyRelu `clamp`, `sub`, `requant`, `add` in the operand's class.
    #[test]
    fn sigmoid_tanh_and_leaky_relu_lower_to_existing_ops() {
        use crate::model::{GraphBuilder, TensorRef};
        use zkc_lang::validate;
        let build = |op: FloatOp, gain: f32| {
            let mut b = GraphBuilder::default();
            b.stage(Stage::Net);
            let x = b.add("input", FloatOp::Input { shape: vec![1, 4] }, &[]);
            b.set_shape(x, vec![1, 4]);
            let weight = TensorRef {
                name: "w".into(),
                shape: vec![4, 4],
            };
            let h = b.add("h", FloatOp::Linear { weight, bias: None }, &[x]);
            b.set_shape(h, vec![1, 4]);
            let y = b.add("output", op, &[h]);
            b.set_shape(y, vec![1, 4]);
            let graph = b.finish(Io::Pass {
                input: x,
                output: y,
            });
            let w = (0..16).map(|k| gain * ((k * 5 % 7) as f32 - 3.0) / 4.0);
            FloatModel::single_pass(graph, [("w".to_string(), w.collect())].into())
        };
        let ops = |m: &Module| -> Vec<&'static str> {
            m.layers[0].insts.iter().map(|i| i.op.name()).collect()
        };
        for op in [FloatOp::Sigmoid, FloatOp::Tanh] {
            for (gain, want) in [
                (1.0, vec!["linear", "requant", "gelu"]),
                (16.0, vec!["linear", "requant", "clamp", "gelu"]),
            ] {
                let module = quantize(&build(op.clone(), gain), &QuantConfig::default())
                    .expect("lowers and validates");
                validate(&module).expect("valid");
                assert_eq!(ops(&module), want, "{op:?} at gain {gain}");
                let layer = &module.layers[0];
                let out = layer.value(layer.outputs[0]);
                assert_eq!(out.ty.to_string(), "i16[1, 4] * 2^-14");
            }
        }
        for alpha in [0.01, -0.5] {
            let model = build(FloatOp::LeakyRelu { alpha }, 1.0);
            let module = quantize(&model, &QuantConfig::default()).expect("lowers");
            validate(&module).expect("valid");
            let combine = if alpha > 0.0 { "add" } else { "sub" };
            let want = ["linear", "requant", "clamp", "sub", "requant", combine];
            assert_eq!(ops(&module), want);
            let layer = &module.layers[0];
            let scales: Vec<_> = (layer.insts[1..].iter())
                .map(|i| layer.value(i.results[0]).ty.clone())
                .collect();
            assert!(
                scales.iter().all(|t| *t == scales[0]),
                "one class: {scales:?}"
            );
        }
    }

    /// The GPT-2 block fixture (a sequence of 8 rows) lowers to a valid module with existing
    /// ops only: q/k/v by one `split` of the projection's accumulator along the last axis,
    /// heads by `reshape`/`transpose`, the scores' `matmul` read raw by a causal `softmax`
    /// (whose position is a zero of scale 1), `probs v` requantized, LayerNorm, linear maps and
    /// GELU over every row.
    #[test]
    fn a_sequence_block_lowers_to_existing_ops() {
        let model = crate::onnx::read(&fixture("gpt2_block.onnx")).expect("reads");
        let imported = crate::onnx::import(&model).expect("maps");
        let float = FloatModel::single_pass(imported.graph, imported.weights);
        let config = QuantConfig {
            calibration_inputs: Some(crate::quantize::calibration_inputs(256, 4, 7)),
            ..QuantConfig::default()
        };
        let module = quantize(&float, &config).expect("lowers and validates");
        let [layer] = &module.layers[..] else {
            panic!("one layer");
        };
        let ty = |v: ValueId| &layer.value(v).ty;
        assert_eq!(ty(layer.inputs[0]).shape, vec![1, 8, 32]);
        assert_eq!(ty(layer.outputs[0]).shape, vec![1, 8, 32]);
        let find =
            |f: &dyn Fn(&Op) -> bool| layer.insts.iter().filter(|i| f(&i.op)).collect::<Vec<_>>();
        let split = find(&|op| matches!(op, Op::Split { .. }));
        assert_eq!(split.len(), 1);
        assert_eq!(split[0].op, Op::Split { axis: 2 });
        assert_eq!(split[0].results.len(), 3);
        let softmax = find(&|op| matches!(op, Op::Softmax { .. }));
        let [softmax] = &softmax[..] else {
            panic!("one softmax");
        };
        assert_eq!(softmax.args.len(), 2, "causal: with a position");
        let Operand::Value(scores) = softmax.args[0] else {
            panic!("a value");
        };
        let ValueDef::Inst { inst, .. } = layer.value(scores).def else {
            panic!("computed");
        };
        assert_eq!(layer.insts[inst].op, Op::MatMul, "the raw scores");
        assert_eq!(ty(softmax.results[0]).shape, vec![1, 2, 8, 8]);
        assert_eq!(find(&|op| *op == Op::MatMul).len(), 2);
        assert_eq!(find(&|op| matches!(op, Op::Transpose { .. })).len(), 4);
        assert_eq!(find(&|op| matches!(op, Op::LayerNorm { .. })).len(), 2);
        assert_eq!(find(&|op| matches!(op, Op::Gelu(_))).len(), 1);
    }
}
