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
use crate::model::{FloatModel, FloatOp, Graph, NodeId, Stage};
use std::collections::{BTreeMap, HashMap};
use zkc_lang::{
    Const, ConstData, ConstId, DType, Inst, Layer, Module, Multiplier, Op, Operand, Scale,
    TensorType, ValueData, ValueDef, ValueId,
};

/// I-BERT's exp(p) ≈ A (p + B)^2 + C on (-ln 2, 0].
const EXP_A: f64 = 0.3585;
const EXP_B: f64 = 1.353;
const EXP_C: f64 = 0.344;

pub fn lower(model: &FloatModel, ranges: &Ranges, cfg: &QuantConfig) -> Result<Module, QuantError> {
    cfg.check()?;
    let context = cfg.context(model.hparams.n_ctx)?;
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

    fn ty(self, width: usize) -> TensorType {
        TensorType::new(
            self.dtype,
            vec![1, width],
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
                FloatOp::Add | FloatOp::Slice { .. } | FloatOp::Concat => {
                    for o in graph.operands(id) {
                        classes.union(id, o);
                    }
                }
                _ => {}
            }
        }
        // A class's range is its members' largest; an embedding's is its whole table's.
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
            let root = classes.find(id);
            let entry = range.entry(root).or_insert(0.0);
            *entry = entry.max(m);
            role.entry(root).or_insert(r);
        }
        let mut quant = HashMap::new();
        for &id in graph.topological_order() {
            if node_role(graph, id).is_none() {
                continue;
            }
            let root = classes.find(id);
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
            _ => {}
        }
        if node.stage != stage {
            let ty = self.quant[&id].ty(self.widths[&id]);
            self.exports.push((node.stage, id));
            let name = node.name.clone();
            return self.layer(stage).input(&name, ty);
        }
        self.layers[&stage].node_values[&id]
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
            FloatOp::Add => {
                let (a, b) = (
                    self.value(stage, operands[0]),
                    self.value(stage, operands[1]),
                );
                let width = self.widths[&operands[0]];
                self.widths.insert(id, width);
                let q = out.expect("adds have a class");
                self.layer(stage).one(
                    Op::Add,
                    vec![Operand::Value(a), Operand::Value(b)],
                    name,
                    q.ty(width),
                )
            }
            FloatOp::LayerNorm { weight, bias, eps } => {
                self.layer_norm(id, &operands, weight.name.clone(), bias.name.clone(), *eps)?
            }
            FloatOp::Linear { .. } if id == self.graph.logits => self.logits(id, &operands)?,
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
            FloatOp::Gelu => self.gelu(id, operands[0])?,
            FloatOp::RmsNorm { .. } | FloatOp::Rope { .. } | FloatOp::Silu | FloatOp::Mul => {
                let op = match node.op {
                    FloatOp::RmsNorm { .. } => "RMSNorm",
                    FloatOp::Rope { .. } => "RoPE",
                    FloatOp::Silu => "SiLU",
                    _ => "an elementwise product",
                };
                return Err(self.unsupported(
                    id,
                    format!(
                        "{op} has no integer lowering yet (Llama-family models run with \
                         `zkc run --float` only)"
                    ),
                ));
            }
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
            .one(op, vec![Operand::Value(acc)], node.name, q.ty(width))
    }

    fn layer_norm(
        &mut self,
        id: NodeId,
        operands: &[NodeId],
        weight: String,
        bias: String,
        eps: f32,
    ) -> Result<ValueId, QuantError> {
        let stage = self.graph.node(id).stage;
        let name = self.graph.node(id).name.clone();
        let x = self.value(stage, operands[0]);
        let (qx, q) = (self.quant[&operands[0]], self.quant[&id]);
        let gamma = self.model.weight(&weight);
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
        let beta_q: Vec<i64> = self
            .model
            .weight(&bias)
            .iter()
            .map(|&b| quantize(b as f64, q.scale()))
            .collect();
        let beta_dt = dtype_for(beta_q.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0) as f64);
        let g = self.constant(
            format!("{name}.gamma"),
            TensorType::new(
                DType::I16,
                vec![width],
                Scale::pow2(-gf).expect("|gf| <= 60"),
            ),
            gamma_q,
        );
        let b = self.constant(
            format!("{name}.beta"),
            TensorType::new(
                beta_dt,
                vec![width],
                Scale::pow2(-q.exp).expect("|exp| <= 60"),
            ),
            beta_q,
        );
        let eps_q = (eps as f64 / (qx.scale() * qx.scale()))
            .round()
            .clamp(1.0, 1e18) as i64;
        let op = Op::LayerNorm { eps: eps_q, shift };
        Ok(self.layer(stage).one(
            op,
            vec![Operand::Value(x), Operand::Const(g), Operand::Const(b)],
            name,
            q.ty(width),
        ))
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
        let acc_ty = TensorType::new(
            dtype_for(n_in as f64 * qmax_x * qmax_w + bias_bound),
            vec![1, n_out],
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
        let results: Vec<(String, TensorType)> = slices
            .iter()
            .map(|&(slice, _, len)| {
                let mut ty = acc_ty.clone();
                ty.shape = vec![1, len];
                (format!("{}.acc", self.graph.node(slice).name), ty)
            })
            .collect();
        let parts =
            self.layer(stage)
                .inst(Op::Split { axis: 1 }, vec![Operand::Value(acc)], results);
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
        let results: Vec<(String, TensorType)> = slices
            .iter()
            .map(|&(slice, _, len)| (self.graph.node(slice).name.clone(), q.ty(len)))
            .collect();
        let values =
            self.layer(stage)
                .inst(Op::Split { axis: 1 }, vec![Operand::Value(x)], results);
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
        let pos = self.value(stage, self.graph.position);
        let cache_ty = |q: Quant| {
            TensorType::new(
                q.dtype,
                vec![ctx, dh],
                Scale::pow2(-q.exp).expect("|exp| <= 60"),
            )
        };
        let (k_ty, v_ty) = (cache_ty(ks), cache_ty(vs));
        let n = &node.name;
        let layer = self.layer(stage);
        let k_cache = layer.state(&format!("{n}.k_cache"), k_ty.clone());
        let v_cache = layer.state(&format!("{n}.v_cache"), v_ty.clone());
        let keys = layer.one(
            Op::KvAppend,
            vec![
                Operand::Value(k_cache),
                Operand::Value(k),
                Operand::Value(pos),
            ],
            format!("{n}.keys"),
            k_ty,
        );
        let values = layer.one(
            Op::KvAppend,
            vec![
                Operand::Value(v_cache),
                Operand::Value(v),
                Operand::Value(pos),
            ],
            format!("{n}.values"),
            v_ty,
        );
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

    /// The piecewise-cubic GELU (`quantize::gelu`) from the input's class straight to the
    /// node's: the op's own `shift` is the output rounding, so no `requant` follows. Inputs finer
    /// than `2^-FINEST_INPUT` are first shifted to that scale.
    fn gelu(&mut self, id: NodeId, input: NodeId) -> Result<ValueId, QuantError> {
        let stage = self.graph.node(id).stage;
        let name = self.graph.node(id).name.clone();
        let mut x = self.value(stage, input);
        let (qx, q) = (self.quant[&input], self.quant[&id]);
        let width = self.widths[&input];
        self.widths.insert(id, width);
        let mut fx = qx.exp;
        if fx > gelu::FINEST_INPUT {
            let op = Op::Requant {
                mult: Multiplier::Uniform(1),
                shift: (fx - gelu::FINEST_INPUT) as u32,
            };
            let ty = TensorType::new(
                qx.dtype,
                vec![1, width],
                Scale::pow2(-gelu::FINEST_INPUT).expect("small exponent"),
            );
            x = self
                .layer(stage)
                .one(op, vec![Operand::Value(x)], format!("{name}.in"), ty);
            fx = gelu::FINEST_INPUT;
        }
        let fit = gelu::fit(fx, qx.dtype.bits(), q.exp).map_err(|p| self.unsupported(id, p))?;
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
        Ok(self.layer(stage).one(
            Op::Gelu(fit.attrs),
            vec![Operand::Value(x), Operand::Const(table)],
            name,
            q.ty(width),
        ))
    }

    fn finish(mut self) -> Result<Module, QuantError> {
        for (stage, id) in std::mem::take(&mut self.exports) {
            let v = self.layers[&stage].node_values[&id];
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
        && id != graph.logits
        && !users.is_empty()
        && users
            .iter()
            .all(|&u| matches!(graph.node(u).op, FloatOp::Slice { .. }))
}

/// The activation role of a node's value, or `None` for values that are not requantized
/// activations (inputs, logits).
fn node_role(graph: &Graph, id: NodeId) -> Option<Role> {
    let users = || graph.users(id).into_iter().map(|u| &graph.node(u).op);
    Some(match graph.node(id).op {
        FloatOp::Token | FloatOp::Position => return None,
        FloatOp::Embed { .. } | FloatOp::Add => Role::Residual,
        FloatOp::LayerNorm { .. } if graph.users(id).contains(&graph.logits) => Role::HeadNorm,
        FloatOp::LayerNorm { .. } => Role::Norm,
        FloatOp::Slice { .. } => Role::Qkv,
        FloatOp::Attention { .. } | FloatOp::Concat => Role::Attn,
        FloatOp::RmsNorm { .. } if graph.users(id).contains(&graph.logits) => Role::HeadNorm,
        FloatOp::RmsNorm { .. } => Role::Norm,
        FloatOp::Rope { .. } => Role::Qkv,
        FloatOp::Gelu | FloatOp::Silu | FloatOp::Mul => Role::Mlp,
        FloatOp::Linear { .. } if id == graph.logits => return None,
        FloatOp::Linear { .. } if users().any(|op| *op == FloatOp::Gelu) => Role::GeluIn,
        FloatOp::Linear { .. } if users().any(|op| matches!(op, FloatOp::Slice { .. })) => {
            Role::Qkv
        }
        FloatOp::Linear { .. } => Role::Residual,
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
