//! An ONNX graph into the model graph (docs/onnx.md). Nodes are taken in the file's order
//! (topological, by the ONNX specification). Every value is a constant (initializers,
//! `Constant`, and whatever is computed from constants only, shapes included: folded here) or a
//! tensor the model computes, which the model graph holds as one flat row-major vector with its
//! ONNX shape alongside. Linear maps with constant weights (MatMul, Gemm, Conv, average pooling)
//! become `Linear` nodes with dense weights (applied to every row of the last axis), elementwise
//! constants after them fold into their weights, and the exported forms of LayerNorm, the exact
//! GELU, GELU's tanh form and a scaled, causally masked softmax are recognised whole: a value
//! that is only part of such a pattern is [`Val::Partial`] until the pattern completes.
//!
//! Every model graph node gets the shape its op computes ([`GraphBuilder::set_shape`]): a
//! `Reshape` (or `Flatten`, `Squeeze`) only changes the ONNX shape beside the node, and a
//! `Reshape` node is added where an op needs the value in its ONNX shape (a transpose, a
//! product of two tensors, a softmax) or its rows of another length (a linear map, a norm).

use super::array::{elements, Array};
use super::proto::{AttributeProto, NodeProto};
use super::{OnnxError, OnnxModel, MAX_ELEMENTS};
use crate::model::{FloatOp, Graph, GraphBuilder, Io, NodeId, Stage, TensorRef};
use std::collections::{HashMap, HashSet};

/// A model graph made from an ONNX file, with the weights its nodes name.
pub struct Imported {
    pub graph: Graph,
    pub weights: HashMap<String, Vec<f32>>,
    /// The ONNX input's name and shape.
    pub input: (String, Vec<usize>),
    /// The ONNX output's name and shape.
    pub output: (String, Vec<usize>),
}

/// A value of the ONNX graph during import.
#[derive(Clone, Debug)]
enum Val {
    Const(Array),
    /// Computed by the model: its node (a flat vector) and its ONNX shape.
    Node {
        id: NodeId,
        shape: Vec<usize>,
    },
    /// Part of a pattern that becomes an op only whole.
    Partial {
        part: Part,
        shape: Vec<usize>,
    },
}

/// The steps of the exported LayerNorm (`ReduceMean`, `Sub`, `Pow`, `ReduceMean`, `Add`,
/// `Sqrt`, `Div`), exact GELU (`Div` by sqrt 2, `Erf`, `Add` 1, `Mul` by x, `Mul` by 0.5),
/// GELU's tanh form (`Mul` x by x and by x again, or `Pow` 3; `Mul` by 0.044715; `Add` x;
/// `Mul` by sqrt(2/pi); `Tanh`; `Add` 1; `Mul` by x; `Mul` by 0.5) and attention's scores
/// (`Mul` of a product of two tensors by a constant; `Add` of a causal mask; then `Softmax`),
/// each of the node `x` they started from.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Part {
    Mean(NodeId),
    Centered(NodeId),
    Squares(NodeId),
    Variance(NodeId),
    VarianceEps(NodeId, f64),
    Deviation(NodeId, f64),
    ErfArgument(NodeId),
    Square(NodeId),
    Cube(NodeId),
    CubeScaled(NodeId),
    TanhInner(NodeId),
    TanhArgument(NodeId),
    /// `erf(x / sqrt 2)` or `tanh(sqrt(2/pi) (x + 0.044715 x^3))`: GELU's inner function.
    GeluInner(NodeId, GeluForm),
    /// `1 +` that.
    GeluOnePlus(NodeId, GeluForm),
    /// `x (1 + ..)`: twice the GELU.
    GeluTwice(NodeId, GeluForm),
    /// A product of two computed tensors times a positive constant.
    Scaled(NodeId, f64),
    /// The same (scaled) with a causal mask added: 0 on and below the diagonal of the last two
    /// axes, at most -1e4 above.
    Masked(NodeId, f64),
}

/// Which GELU an exported pattern computes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum GeluForm {
    Erf,
    Tanh,
}

impl GeluForm {
    fn op(self) -> FloatOp {
        match self {
            GeluForm::Erf => FloatOp::GeluErf,
            GeluForm::Tanh => FloatOp::Gelu,
        }
    }
}

/// Maps `model`'s graph; errors name the node, its op and the opset.
pub fn import(model: &OnnxModel) -> Result<Imported, OnnxError> {
    let graph = model.graph();
    let mut values: HashMap<String, Val> = HashMap::new();
    for t in &graph.initializer {
        values.insert(t.name.clone(), Val::Const(Array::from_proto(t)?));
    }
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !values.contains_key(&i.name))
        .collect();
    let interface = |what: &str, problem: String| OnnxError::Interface {
        what: what.into(),
        problem,
    };
    let [input] = inputs[..] else {
        return Err(interface(
            "inputs",
            format!(
                "zkc proves models of one input tensor; this graph has {} ({})",
                inputs.len(),
                inputs
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    let [output] = &graph.output[..] else {
        return Err(interface(
            "outputs",
            format!(
                "zkc proves models of one output tensor; this graph has {}",
                graph.output.len()
            ),
        ));
    };
    let shape =
        static_shape(input).map_err(|p| interface(&format!("input `{}`", input.name), p))?;
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for node in &graph.node {
        for i in node.input.iter().filter(|i| !i.is_empty()) {
            *uses.entry(i.as_str()).or_default() += 1;
        }
    }
    *uses.entry(output.name.as_str()).or_default() += 1;
    let mut importer = Importer {
        builder: GraphBuilder::default(),
        weights: HashMap::new(),
        names: HashSet::new(),
        uses,
        pending: HashMap::new(),
        opset: model.opset,
    };
    importer.builder.stage(Stage::Net);
    importer.names.insert("input".into());
    importer.names.insert("output".into());
    let input_id = importer.builder.add(
        "input",
        FloatOp::Input {
            shape: shape.clone(),
        },
        &[],
    );
    importer.builder.set_shape(input_id, shape.clone());
    importer.read_later(&input.name, input_id);
    values.insert(
        input.name.clone(),
        Val::Node {
            id: input_id,
            shape: shape.clone(),
        },
    );
    for node in &graph.node {
        let results = importer.node(node, &values)?;
        for name in &node.input {
            if let Some(Val::Node { id, .. }) = values.get(name) {
                *importer.pending.get_mut(id).expect("counted when stored") -= 1;
            }
        }
        if results.len() != node.output.len() {
            return Err(importer.error(
                node,
                format!(
                    "gives {} outputs, zkc maps {}",
                    node.output.len(),
                    results.len()
                ),
            ));
        }
        for (name, val) in node.output.iter().zip(results) {
            if let Val::Node { id, .. } = val {
                importer.read_later(name, id);
            }
            values.insert(name.clone(), val);
        }
    }
    let result = values.get(&output.name).ok_or_else(|| {
        interface(
            &format!("output `{}`", output.name),
            "no node computes it".into(),
        )
    })?;
    let Val::Node { id, shape } = result.clone() else {
        return Err(interface(
            &format!("output `{}`", output.name),
            "it is a constant or an unfinished LayerNorm/GELU/attention pattern, not a computed tensor"
                .into(),
        ));
    };
    if id == input_id {
        return Err(interface(
            &format!("output `{}`", output.name),
            "it is the input itself: there is nothing to prove".into(),
        ));
    }
    // The output in its ONNX shape.
    importer.names.remove("output");
    let id = importer.as_shape("output", id, &shape);
    // The output is the last node, renamed `output` (the interface's name for it).
    importer.builder.rename(id, "output");
    importer.builder.keep_only_what_reaches(id);
    let graph = importer.builder.finish(Io::Pass {
        input: input_id,
        output: id,
    });
    Ok(Imported {
        graph,
        weights: importer.weights,
        input: (input.name.clone(), shape.clone()),
        output: (output.name.clone(), shape),
    })
}

/// The fixed shape of a graph input, or why it has none.
fn static_shape(info: &super::proto::ValueInfoProto) -> Result<Vec<usize>, String> {
    let tensor = info
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or("it is not a tensor")?;
    if tensor.elem_type != 1 {
        return Err(format!(
            "its element type is {} (zkc takes float inputs, type 1)",
            tensor.elem_type
        ));
    }
    let shape = tensor.shape.as_ref().ok_or("it has no shape")?;
    let dims: Vec<usize> = shape
        .dim
        .iter()
        .map(|d| match (&d.dim_value, &d.dim_param) {
            (Some(v), _) if *v > 0 => Ok(*v as usize),
            (_, Some(p)) => Err(format!(
                "dimension `{p}` is symbolic: export the model with fixed input shapes \
                 (no dynamic_axes)"
            )),
            _ => Err("a dimension is missing or not positive".to_string()),
        })
        .collect::<Result<_, _>>()?;
    elements(&dims).ok_or_else(|| format!("shape {dims:?} is too large"))?;
    Ok(dims)
}

struct Importer<'a> {
    builder: GraphBuilder,
    weights: HashMap<String, Vec<f32>>,
    /// Node names taken (IR names: letters, digits, `_` and `.`).
    names: HashSet<String>,
    /// How many nodes (and graph outputs) read each value.
    uses: HashMap<&'a str, usize>,
    /// Per computed node, the reads of it (under any of its ONNX names) still to come: a
    /// constant folds into a node only when its reader is the last.
    pending: HashMap<NodeId, usize>,
    opset: i64,
}

impl Importer<'_> {
    /// Counts the reads of value `name`, which is node `id`'s.
    fn read_later(&mut self, name: &str, id: NodeId) {
        *self.pending.entry(id).or_default() += self.uses.get(name).copied().unwrap_or(0);
    }

    fn error(&self, node: &NodeProto, problem: impl Into<String>) -> OnnxError {
        OnnxError::Node {
            node: display_name(node),
            op: node.op_type.clone(),
            opset: self.opset,
            problem: problem.into(),
        }
    }

    /// Adds a model graph node of shape `shape`.
    fn add(&mut self, name: String, op: FloatOp, operands: &[NodeId], shape: Vec<usize>) -> NodeId {
        let id = self.builder.add(name, op, operands);
        self.builder.set_shape(id, shape);
        id
    }

    /// The shape node `id` computes.
    fn shape_of(&self, id: NodeId) -> Vec<usize> {
        self.builder
            .shape(id)
            .expect("the importer gives every node a shape")
            .to_vec()
    }

    /// Node `id`'s value in `shape` (the same elements): `id` itself, or a `Reshape` of it
    /// named after `what`.
    fn as_shape(&mut self, what: &str, id: NodeId, shape: &[usize]) -> NodeId {
        if self.shape_of(id) == shape {
            return id;
        }
        let name = self.fresh(what);
        let op = FloatOp::Reshape {
            shape: shape.to_vec(),
        };
        self.add(name, op, &[id], shape.to_vec())
    }

    /// Node `id`'s value in rows of the last axis of `shape` (its ONNX shape): `id` itself when
    /// its rows have that length already, else reshaped to `shape`.
    fn as_rows(&mut self, node: &NodeProto, id: NodeId, shape: &[usize]) -> NodeId {
        match self.shape_of(id).last() == shape.last() {
            true => id,
            false => self.as_shape(&format!("{}.rows", display_name(node)), id, shape),
        }
    }

    /// A fresh IR-safe name for what `node` computes.
    fn name(&mut self, node: &NodeProto) -> String {
        self.fresh(
            node.output
                .first()
                .map_or(node.name.as_str(), |s| s.as_str()),
        )
    }

    /// `what` made IR-safe, with a `.K` suffix if that name is taken.
    fn fresh(&mut self, what: &str) -> String {
        let base = sanitize(what);
        let mut name = base.clone();
        let mut k = 1;
        while !self.names.insert(name.clone()) {
            name = format!("{base}.{k}");
            k += 1;
        }
        name
    }

    /// A `Linear` node over `x` with weight `[out, in]` and bias (zeros when absent: kept so
    /// that constants after it fold into it).
    fn linear(
        &mut self,
        node: &NodeProto,
        x: NodeId,
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
        n_in: usize,
        n_out: usize,
    ) -> NodeId {
        let name = self.name(node);
        let (w, b) = (format!("{name}.weight"), format!("{name}.bias"));
        self.weights.insert(w.clone(), weight);
        self.weights
            .insert(b.clone(), bias.unwrap_or_else(|| vec![0.0; n_out]));
        let mut shape = self.shape_of(x);
        debug_assert_eq!(shape.last(), Some(&n_in), "rows of the linear map's input");
        *shape.last_mut().expect("rank >= 1") = n_out;
        self.add(
            name,
            FloatOp::Linear {
                weight: TensorRef {
                    name: w,
                    shape: vec![n_out, n_in],
                },
                bias: Some(TensorRef {
                    name: b,
                    shape: vec![n_out],
                }),
            },
            &[x],
            shape,
        )
    }

    /// A node whose weights scale or shift elementwise by a constant can absorb it: a
    /// `Linear` (its rows and bias) or a `LayerNorm` (gamma and beta) that nothing else reads
    /// (`shape` is its value's, which `c` broadcasts onto).
    fn absorb(&mut self, id: NodeId, c: &Array, shape: &[usize], scale: bool) -> Option<()> {
        if self.pending.get(&id) != Some(&1) || !self.builder.users(id).is_empty() {
            return None;
        }
        let total = elements(shape)?;
        let zeros = Array {
            shape: shape.to_vec(),
            data: vec![0.0; total],
        };
        let per = zeros
            .broadcast(c, |_, y| y)
            .filter(|a| a.shape == shape)?
            .data;
        let (weight, bias) = match &self.builder.node(id).op {
            FloatOp::Linear {
                weight,
                bias: Some(bias),
            } => (weight.name.clone(), bias.name.clone()),
            FloatOp::LayerNorm { weight, bias, .. } => (weight.name.clone(), bias.name.clone()),
            _ => return None,
        };
        // One value per output channel, the same for every row of the node.
        let rows = self.weights[&bias].len();
        if rows == 0 || per.len() % rows != 0 || per.chunks(rows).any(|r| r != &per[..rows]) {
            return None;
        }
        if scale {
            let w = self.weights.get_mut(&weight).expect("named weight");
            let cols = w.len() / rows;
            for (o, row) in w.chunks_mut(cols).enumerate() {
                row.iter_mut()
                    .for_each(|v| *v = (*v as f64 * per[o]) as f32);
            }
        }
        let b = self.weights.get_mut(&bias).expect("named weight");
        for (o, v) in b.iter_mut().enumerate() {
            *v = match scale {
                true => (*v as f64 * per[o]) as f32,
                false => (*v as f64 + per[o]) as f32,
            };
        }
        Some(())
    }

    fn node(
        &mut self,
        node: &NodeProto,
        values: &HashMap<String, Val>,
    ) -> Result<Vec<Val>, OnnxError> {
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(self.error(
                node,
                format!("domain `{}` is not ONNX's default", node.domain),
            ));
        }
        let args: Vec<Option<&Val>> = node
            .input
            .iter()
            .map(|name| match name.is_empty() {
                true => Ok(None),
                false => values.get(name).map(Some).ok_or_else(|| {
                    self.error(
                        node,
                        format!("input `{name}` is computed by no earlier node"),
                    )
                }),
            })
            .collect::<Result<_, _>>()?;
        let consts: Option<Vec<&Array>> = args
            .iter()
            .flatten()
            .map(|v| match v {
                Val::Const(a) => Some(a),
                _ => None,
            })
            .collect();
        let op = node.op_type.as_str();
        if op == "Constant" {
            return Ok(vec![Val::Const(self.constant_attr(node)?)]);
        }
        if let Some(consts) = consts.filter(|c| !c.is_empty()) {
            return self.fold(node, &args, &consts);
        }
        let arg = |k: usize| args.get(k).copied().flatten();
        let first = arg(0).ok_or_else(|| self.error(node, "has no first input"))?;
        let shape = match first {
            Val::Node { shape, .. } | Val::Partial { shape, .. } => shape.clone(),
            Val::Const(a) => a.shape.clone(),
        };
        let same = |val: Val| Ok(vec![val]);
        let reshaped = |id: NodeId, shape: Vec<usize>| Ok(vec![Val::Node { id, shape }]);
        match (op, first) {
            ("Shape", _) => same(Val::Const(Array::vector(shape.iter().map(|&d| d as f64).collect()))),
            ("Identity" | "Dropout", v) => {
                let mut out = vec![v.clone()];
                if node.output.len() == 2 {
                    out.push(Val::Const(Array::scalar(1.0)));
                }
                Ok(out)
            }
            ("Cast", v) if attr_int(node, "to") == Some(1) => same(v.clone()),
            ("Flatten", &Val::Node { id, .. }) => {
                let axis = self.axis(node, attr_int(node, "axis").unwrap_or(1), shape.len() + 1)?;
                let outer: usize = shape[..axis].iter().product();
                reshaped(id, vec![outer, shape[axis..].iter().product()])
            }
            ("Reshape", &Val::Node { id, .. }) => {
                let target = self.const_ints(node, &args, 1)?;
                let allow_zero = attr_int(node, "allowzero") == Some(1);
                let new = reshape_target(&shape, &target, allow_zero).ok_or_else(|| {
                    self.error(node, format!("cannot reshape {shape:?} to {target:?}"))
                })?;
                reshaped(id, new)
            }
            ("Squeeze" | "Unsqueeze", &Val::Node { id, .. }) => {
                let axes = match self.opset >= 13 {
                    true if args.len() > 1 => self.const_ints(node, &args, 1)?,
                    _ => attr_ints(node, "axes").unwrap_or_default(),
                };
                let new = squeeze(&shape, &axes, op == "Unsqueeze")
                    .ok_or_else(|| self.error(node, format!("axes {axes:?} do not fit {shape:?}")))?;
                reshaped(id, new)
            }
            ("Transpose", &Val::Node { id, .. }) => {
                let perm = attr_ints(node, "perm")
                    .unwrap_or_else(|| (0..shape.len() as i64).rev().collect());
                let perm: Vec<usize> = perm.iter().map(|&p| p as usize).collect();
                let mut sorted = perm.clone();
                sorted.sort_unstable();
                if sorted != (0..shape.len()).collect::<Vec<_>>() {
                    return Err(self.error(node, format!("perm {perm:?} is not a permutation of the axes of {shape:?}")));
                }
                let permuted: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
                let moved: Vec<usize> = perm.iter().copied().filter(|&p| shape[p] != 1).collect();
                if moved.windows(2).all(|w| w[0] < w[1]) {
                    // Only axes of size 1 move: the same elements in the same order.
                    return reshaped(id, permuted);
                }
                let x = self.as_shape(&format!("{}.in", display_name(node)), id, &shape);
                let name = self.name(node);
                let out = self.add(name, FloatOp::Transpose { perm }, &[x], permuted.clone());
                reshaped(out, permuted)
            }
            ("Concat", &Val::Node { .. }) => self.concat(node, &args),
            ("Relu", &Val::Node { id, .. }) => {
                let name = self.name(node);
                let rows = self.shape_of(id);
                reshaped(self.add(name, FloatOp::Relu, &[id], rows), shape)
            }
            ("Gelu", &Val::Node { id, .. }) => {
                let op = match attr_str(node, "approximate").as_deref() {
                    None | Some("none") => FloatOp::GeluErf,
                    Some("tanh") => FloatOp::Gelu,
                    Some(other) => return Err(self.error(node, format!("approximate=`{other}`"))),
                };
                let name = self.name(node);
                let rows = self.shape_of(id);
                reshaped(self.add(name, op, &[id], rows), shape)
            }
            ("MatMul", &Val::Node { id, .. }) => match arg(1) {
                Some(Val::Const(w)) => {
                    let [k, n] = w.shape[..] else {
                        return Err(self.error(node, format!("the weight has shape {:?}, not [K, N]", w.shape)));
                    };
                    if shape.last() != Some(&k) {
                        return Err(self.error(node, format!("{shape:?} times a weight of {k} rows")));
                    }
                    let x = self.as_rows(node, id, &shape);
                    let weight = w.transposed(&[1, 0]).expect("2-d").data.iter().map(|&v| v as f32).collect();
                    let out = self.linear(node, x, weight, None, k, n);
                    reshaped(out, [&shape[..shape.len() - 1], &[n]].concat())
                }
                Some(&Val::Node { id: other, shape: ref sb }) => self.product(node, (id, &shape), (other, sb)),
                _ => Err(self.error(node, "the second factor is part of a pattern zkc does not map here")),
            },
            ("Split", &Val::Node { id, .. }) => self.split(node, id, &shape, &args),
            ("Softmax", _) => self.softmax(node, first, &shape),
            ("Tanh", &Val::Partial { part: Part::TanhArgument(x), .. }) => {
                same(Val::Partial { part: Part::GeluInner(x, GeluForm::Tanh), shape })
            }
            // Outside GELU's tanh form: tanh itself.
            ("Tanh", &Val::Node { id, .. }) => self.elementwise(node, FloatOp::Tanh, id, &shape),
            ("Sigmoid", &Val::Node { id, .. }) => self.elementwise(node, FloatOp::Sigmoid, id, &shape),
            ("LeakyRelu", &Val::Node { id, .. }) => {
                let alpha = attr_float(node, "alpha").unwrap_or(0.01);
                if !alpha.is_finite() {
                    return Err(self.error(node, format!("alpha = {alpha}")));
                }
                self.elementwise(node, FloatOp::LeakyRelu { alpha }, id, &shape)
            }
            ("Gemm", &Val::Node { id, .. }) => self.gemm(node, id, &shape, &args),
            ("Conv", &Val::Node { id, .. }) => self.conv(node, id, &shape, &args),
            ("AveragePool" | "GlobalAveragePool", &Val::Node { id, .. }) => self.average_pool(node, id, &shape),
            ("LayerNormalization", &Val::Node { id, .. }) => {
                let n = *shape.last().ok_or_else(|| self.error(node, "a scalar input"))?;
                let axis = attr_int(node, "axis").unwrap_or(-1);
                if self.axis(node, axis, shape.len())? != shape.len() - 1 {
                    return Err(self.error(node, "only normalization over the last axis is supported"));
                }
                let id = self.as_rows(node, id, &shape);
                let gamma = match arg(1) {
                    Some(Val::Const(g)) if g.len() == n => g.data.clone(),
                    _ => return Err(self.error(node, format!("scale must be a constant of {n} values"))),
                };
                let beta = match arg(2) {
                    None => vec![0.0; n],
                    Some(Val::Const(b)) if b.len() == n => b.data.clone(),
                    _ => return Err(self.error(node, format!("bias must be a constant of {n} values"))),
                };
                let eps = attr_float(node, "epsilon").unwrap_or(1e-5);
                let ln = self.layer_norm(node, id, n, eps, gamma, beta);
                if node.output.len() > 1 {
                    return Err(self.error(node, "its mean and inverse deviation outputs are not supported"));
                }
                reshaped(ln, shape)
            }
            ("Add" | "Sub" | "Mul" | "Div" | "Pow", _) => self.binary(node, &args, &shape),
            ("ReduceMean", &Val::Node { id, .. }) | ("ReduceMean", &Val::Partial { part: Part::Squares(id), .. }) => {
                let axes = match (self.opset >= 18, args.len() > 1) {
                    (true, true) => self.const_ints(node, &args, 1)?,
                    _ => attr_ints(node, "axes").unwrap_or_default(),
                };
                let last = shape.len() as i64 - 1;
                if axes.len() != 1 || (axes[0] != -1 && axes[0] != last) || attr_int(node, "keepdims") == Some(0) {
                    return Err(self.error(node, "only a mean over the last axis, kept, is supported (part of a LayerNorm)"));
                }
                let part = match first {
                    Val::Node { .. } => Part::Mean(id),
                    _ => Part::Variance(id),
                };
                let mut kept = shape.clone();
                *kept.last_mut().expect("rank >= 1") = 1;
                same(Val::Partial { part, shape: kept })
            }
            ("Sqrt", &Val::Partial { part: Part::VarianceEps(x, eps), .. }) => {
                same(Val::Partial { part: Part::Deviation(x, eps), shape })
            }
            ("Erf", &Val::Partial { part: Part::ErfArgument(x), .. }) => {
                same(Val::Partial { part: Part::GeluInner(x, GeluForm::Erf), shape })
            }
            ("Erf", _) => Err(self.error(node, "`Erf` is supported as part of the exact GELU, x * (1 + erf(x / sqrt 2)) / 2")),
            (_, Val::Partial { .. }) => Err(self.error(node, "it reads part of a LayerNorm, GELU or attention pattern that zkc does not recognise")),
            _ => Err(self.error(node, unsupported_reason(op))),
        }
    }

    /// An elementwise `Add`, `Sub`, `Mul`, `Div` or `Pow` with at least one computed operand.
    fn binary(
        &mut self,
        node: &NodeProto,
        args: &[Option<&Val>],
        shape: &[usize],
    ) -> Result<Vec<Val>, OnnxError> {
        let op = node.op_type.as_str();
        let (Some(a), Some(b)) = (
            args.first().copied().flatten(),
            args.get(1).copied().flatten(),
        ) else {
            return Err(self.error(node, "needs two inputs"));
        };
        // The result's shape is its computed operand's (a constant broadcasts onto it).
        let shape = match (a, b) {
            (Val::Const(_), Val::Node { shape, .. } | Val::Partial { shape, .. }) => {
                shape.as_slice()
            }
            _ => shape,
        };
        // Sums and products with the pattern's part first, then computed, then constant
        // operands: one arm per pattern step, whichever order the exporter wrote.
        let rank = |v: &Val| match v {
            Val::Partial { .. } => 0,
            Val::Node { .. } => 1,
            Val::Const(_) => 2,
        };
        let (a, b) = match op {
            "Add" | "Mul" if rank(b) < rank(a) => (b, a),
            _ => (a, b),
        };
        let partial = |part: Part, shape: &[usize]| {
            Ok(vec![Val::Partial {
                part,
                shape: shape.to_vec(),
            }])
        };
        let single = |v: &Array| v.single();
        let near = |v: &Array, want: f64| v.single().is_some_and(|v| (v - want).abs() < 1e-6);
        match (op, a, b) {
            // The LayerNorm pattern.
            (
                "Sub",
                &Val::Node { id: x, .. },
                &Val::Partial {
                    part: Part::Mean(m),
                    ..
                },
            ) if m == x => partial(Part::Centered(x), shape),
            (
                "Pow",
                &Val::Partial {
                    part: Part::Centered(x),
                    ..
                },
                Val::Const(c),
            ) if single(c) == Some(2.0) => partial(Part::Squares(x), shape),
            (
                "Mul",
                &Val::Partial {
                    part: Part::Centered(x),
                    ..
                },
                &Val::Partial {
                    part: Part::Centered(y),
                    ..
                },
            ) if x == y => partial(Part::Squares(x), shape),
            (
                "Add",
                &Val::Partial {
                    part: Part::Variance(x),
                    shape: ref s,
                },
                Val::Const(c),
            ) if single(c).is_some_and(|e| e >= 0.0) => partial(Part::VarianceEps(x, c.data[0]), s),
            (
                "Div",
                &Val::Partial {
                    part: Part::Centered(x),
                    ..
                },
                &Val::Partial {
                    part: Part::Deviation(y, eps),
                    ..
                },
            ) if x == y => {
                let n = *shape.last().expect("rank >= 1");
                let x = self.as_rows(node, x, shape);
                let ln = self.layer_norm(node, x, n, eps as f32, vec![1.0; n], vec![0.0; n]);
                Ok(vec![Val::Node {
                    id: ln,
                    shape: shape.to_vec(),
                }])
            }
            // The exact GELU pattern's argument.
            ("Div", &Val::Node { id: x, .. }, Val::Const(c))
                if near(c, std::f64::consts::SQRT_2) =>
            {
                partial(Part::ErfArgument(x), shape)
            }
            ("Mul", &Val::Node { id: x, .. }, Val::Const(c))
                if near(c, std::f64::consts::FRAC_1_SQRT_2) =>
            {
                partial(Part::ErfArgument(x), shape)
            }
            // The tanh form's argument: sqrt(2/pi) (x + 0.044715 x^3).
            ("Mul", &Val::Node { id: x, .. }, &Val::Node { id: y, .. }) if x == y => {
                partial(Part::Square(x), shape)
            }
            (
                "Mul",
                &Val::Partial {
                    part: Part::Square(y),
                    ..
                },
                &Val::Node { id: x, .. },
            ) if x == y => partial(Part::Cube(x), shape),
            ("Pow", &Val::Node { id: x, .. }, Val::Const(c)) if single(c) == Some(3.0) => {
                partial(Part::Cube(x), shape)
            }
            (
                "Mul",
                &Val::Partial {
                    part: Part::Cube(x),
                    ..
                },
                Val::Const(c),
            ) if near(c, 0.044715) => partial(Part::CubeScaled(x), shape),
            (
                "Add",
                &Val::Partial {
                    part: Part::CubeScaled(y),
                    ..
                },
                &Val::Node { id: x, .. },
            ) if x == y => partial(Part::TanhInner(x), shape),
            (
                "Mul",
                &Val::Partial {
                    part: Part::TanhInner(x),
                    ..
                },
                Val::Const(c),
            ) if near(c, (2.0 / std::f64::consts::PI).sqrt()) => {
                partial(Part::TanhArgument(x), shape)
            }
            // Either form's outer steps: 1 + inner, times x, halved.
            (
                "Add",
                &Val::Partial {
                    part: Part::GeluInner(x, form),
                    ..
                },
                Val::Const(c),
            ) if single(c) == Some(1.0) => partial(Part::GeluOnePlus(x, form), shape),
            (
                "Mul",
                &Val::Partial {
                    part: Part::GeluOnePlus(y, form),
                    ..
                },
                &Val::Node { id: x, .. },
            ) if x == y => partial(Part::GeluTwice(x, form), shape),
            (
                "Mul",
                &Val::Partial {
                    part: Part::GeluTwice(x, form),
                    ..
                },
                Val::Const(c),
            ) if single(c) == Some(0.5) => self.elementwise(node, form.op(), x, shape),
            (
                "Div",
                &Val::Partial {
                    part: Part::GeluTwice(x, form),
                    ..
                },
                Val::Const(c),
            ) if single(c) == Some(2.0) => self.elementwise(node, form.op(), x, shape),
            // Attention's scores: a product of two tensors, scaled, then a causal mask.
            ("Mul", &Val::Node { id: x, .. }, Val::Const(c))
                if self.builder.node(x).op == FloatOp::MatMul
                    && single(c).is_some_and(|v| v > 0.0) =>
            {
                partial(Part::Scaled(x, c.data[0]), shape)
            }
            ("Div", &Val::Node { id: x, .. }, Val::Const(c))
                if self.builder.node(x).op == FloatOp::MatMul
                    && single(c).is_some_and(|v| v > 0.0) =>
            {
                partial(Part::Scaled(x, 1.0 / c.data[0]), shape)
            }
            (
                "Mul",
                &Val::Partial {
                    part: Part::Scaled(x, s),
                    ..
                },
                Val::Const(c),
            ) if single(c).is_some_and(|v| v > 0.0) => {
                partial(Part::Scaled(x, s * c.data[0]), shape)
            }
            ("Add", &Val::Node { id: x, .. }, Val::Const(m))
                if self.builder.node(x).op == FloatOp::MatMul && causal_mask(m, shape) =>
            {
                partial(Part::Masked(x, 1.0), shape)
            }
            (
                "Add",
                &Val::Partial {
                    part: Part::Scaled(x, s),
                    ..
                },
                Val::Const(m),
            ) => {
                if !causal_mask(m, shape) {
                    return Err(self.error(node, format!(
                        "the only constant added to attention scores zkc maps is a causal mask over their last two axes {:?} (0 on and below the diagonal, -1e4 or less above); this one is not",
                        &shape[shape.len().saturating_sub(2)..]
                    )));
                }
                partial(Part::Masked(x, s), shape)
            }
            // Two computed tensors of one shape: the residual sum, or a difference.
            (
                "Add" | "Sub",
                &Val::Node {
                    id: x,
                    shape: ref sx,
                },
                &Val::Node {
                    id: y,
                    shape: ref sy,
                },
            ) => {
                if sx != sy {
                    return Err(self.error(
                        node,
                        format!("broadcasting {sx:?} against {sy:?} is not supported"),
                    ));
                }
                let (x, y) = match self.shape_of(x) == self.shape_of(y) {
                    true => (x, y),
                    false => {
                        let what = display_name(node);
                        (
                            self.as_shape(&format!("{what}.a"), x, sx),
                            self.as_shape(&format!("{what}.b"), y, sy),
                        )
                    }
                };
                let name = self.name(node);
                let rows = self.shape_of(x);
                Ok(vec![Val::Node {
                    id: self.add(
                        name,
                        if op == "Add" {
                            FloatOp::Add
                        } else {
                            FloatOp::Sub
                        },
                        &[x, y],
                        rows,
                    ),
                    shape: sx.clone(),
                }])
            }
            // A constant after a linear map or a norm: into its weights.
            (_, &Val::Node { id, shape: ref s }, Val::Const(c))
                if matches!(op, "Add" | "Sub" | "Mul" | "Div") =>
            {
                let (c, scale) = match op {
                    "Add" => (c.clone(), false),
                    "Sub" => (c.map(|v| -v), false),
                    "Mul" => (c.clone(), true),
                    _ => (c.map(|v| 1.0 / v), true),
                };
                match self.absorb(id, &c, s, scale).is_some() {
                    true => Ok(vec![Val::Node { id, shape: s.clone() }]),
                    false => Err(self.error(
                        node,
                        "an elementwise constant is supported after a MatMul, Gemm, Conv or LayerNorm whose result nothing else reads, one value per channel of the last axis",
                    )),
                }
            }
            _ => Err(self.error(
                node,
                "this combination of computed and constant operands is not supported",
            )),
        }
    }

    /// A LayerNorm over every row of `x` (rows of `n`).
    fn layer_norm(
        &mut self,
        node: &NodeProto,
        x: NodeId,
        n: usize,
        eps: f32,
        gamma: Vec<f64>,
        beta: Vec<f64>,
    ) -> NodeId {
        let name = self.name(node);
        let (w, b) = (format!("{name}.weight"), format!("{name}.bias"));
        self.weights
            .insert(w.clone(), gamma.iter().map(|&v| v as f32).collect());
        self.weights
            .insert(b.clone(), beta.iter().map(|&v| v as f32).collect());
        let rows = self.shape_of(x);
        self.add(
            name,
            FloatOp::LayerNorm {
                weight: TensorRef {
                    name: w,
                    shape: vec![n],
                },
                bias: TensorRef {
                    name: b,
                    shape: vec![n],
                },
                eps,
            },
            &[x],
            rows,
        )
    }

    /// An elementwise op of `x` (of ONNX shape `shape`).
    /// `Concat` of computed tensors along an axis with only axes of size 1 before it: their
    /// elements one after another (`FloatOp::Concat` of the flattened operands).
    fn concat(&mut self, node: &NodeProto, args: &[Option<&Val>]) -> Result<Vec<Val>, OnnxError> {
        let mut parts = Vec::with_capacity(args.len());
        for arg in args {
            match arg {
                Some(Val::Node { id, shape }) => parts.push((*id, shape.clone())),
                _ => {
                    return Err(self.error(
                        node,
                        "concatenating a constant or a pattern's part with a computed tensor is not supported",
                    ))
                }
            }
        }
        let first = parts[0].1.clone();
        let axis = self.axis(node, attr_int(node, "axis").unwrap_or(0), first.len())?;
        let fits = parts.iter().all(|(_, s)| {
            s.len() == first.len()
                && s.iter()
                    .zip(&first)
                    .enumerate()
                    .all(|(i, (a, b))| i == axis || a == b)
        });
        if !fits || first[..axis].iter().any(|&d| d != 1) {
            return Err(self.error(
                node,
                format!(
                    "only tensors of equal shape but along axis {axis}, with every axis before it of size 1, concatenate (here {:?})",
                    parts.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>()
                ),
            ));
        }
        let what = display_name(node);
        let ids: Vec<NodeId> = parts
            .iter()
            .enumerate()
            .map(|(k, (id, s))| {
                self.as_shape(&format!("{what}.in{k}"), *id, &[1, s.iter().product()])
            })
            .collect();
        let mut shape = first;
        shape[axis] = parts.iter().map(|(_, s)| s[axis]).sum();
        let total = shape.iter().product();
        let name = self.name(node);
        Ok(vec![Val::Node {
            id: self.add(name, FloatOp::Concat, &ids, vec![1, total]),
            shape,
        }])
    }

    fn elementwise(
        &mut self,
        node: &NodeProto,
        op: FloatOp,
        x: NodeId,
        shape: &[usize],
    ) -> Result<Vec<Val>, OnnxError> {
        let name = self.name(node);
        let rows = self.shape_of(x);
        Ok(vec![Val::Node {
            id: self.add(name, op, &[x], rows),
            shape: shape.to_vec(),
        }])
    }

    /// `MatMul` of two computed tensors, `a[B.., M, K] x b[B.., K, N]` with equal batch axes.
    fn product(
        &mut self,
        node: &NodeProto,
        (a, sa): (NodeId, &[usize]),
        (b, sb): (NodeId, &[usize]),
    ) -> Result<Vec<Val>, OnnxError> {
        let rank = sa.len();
        if rank < 2
            || sb.len() != rank
            || sa[..rank - 2] != sb[..rank - 2]
            || sa[rank - 1] != sb[rank - 2]
        {
            return Err(self.error(
                node,
                format!("a product of computed tensors {sa:?} x {sb:?}: zkc maps [B.., M, K] x [B.., K, N] with equal batch axes (no broadcasting, rank 2 or more)"),
            ));
        }
        let what = display_name(node);
        let a = self.as_shape(&format!("{what}.a"), a, sa);
        let b = self.as_shape(&format!("{what}.b"), b, sb);
        let mut shape = sa.to_vec();
        shape[rank - 1] = sb[rank - 1];
        let name = self.name(node);
        let id = self.add(name, FloatOp::MatMul, &[a, b], shape.clone());
        Ok(vec![Val::Node { id, shape }])
    }

    /// `Split` of a computed tensor along its last axis into equal parts (the IR's `split`):
    /// one `Slice` node per part.
    fn split(
        &mut self,
        node: &NodeProto,
        x: NodeId,
        shape: &[usize],
        args: &[Option<&Val>],
    ) -> Result<Vec<Val>, OnnxError> {
        let rank = shape.len();
        let axis = self.axis(node, attr_int(node, "axis").unwrap_or(0), rank)?;
        if rank == 0 || axis != rank - 1 {
            return Err(self.error(
                node,
                format!("only a split along the last axis is supported (axis {axis} of {shape:?})"),
            ));
        }
        let total = shape[axis];
        let parts = node.output.len();
        let sizes: Vec<i64> = match (args.get(1).copied().flatten(), attr_ints(node, "split")) {
            (Some(_), _) => self.const_ints(node, args, 1)?,
            (None, Some(sizes)) => sizes,
            (None, None) if parts > 0 && total % parts == 0 => vec![(total / parts) as i64; parts],
            (None, None) => {
                return Err(self.error(
                    node,
                    format!("{total} does not split into {parts} equal parts"),
                ))
            }
        };
        let len = sizes.first().copied().unwrap_or(0);
        if sizes.len() != parts
            || len <= 0
            || sizes.iter().any(|&s| s != len)
            || len as usize * parts != total
        {
            return Err(self.error(node, format!("sizes {sizes:?} of {total}: only a split into equal parts is supported (the IR's split)")));
        }
        let len = len as usize;
        let x = self.as_rows(node, x, shape);
        let mut rows = self.shape_of(x);
        *rows.last_mut().expect("rank >= 1") = len;
        let mut part_shape = shape.to_vec();
        part_shape[axis] = len;
        let mut out = Vec::with_capacity(parts);
        for (k, output) in node.output.iter().enumerate() {
            let mut name = sanitize(output);
            let mut i = 1;
            while !self.names.insert(name.clone()) {
                name = format!("{}.{i}", sanitize(output));
                i += 1;
            }
            let op = FloatOp::Slice {
                start: k * len,
                len,
            };
            let id = self.add(name, op, &[x], rows.clone());
            out.push(Val::Node {
                id,
                shape: part_shape.clone(),
            });
        }
        Ok(out)
    }

    /// `Softmax` over the last axis of a computed tensor, or of attention's scores: a product of
    /// two tensors, maybe scaled by a constant and given a causal mask ([`Part::Scaled`],
    /// [`Part::Masked`]).
    fn softmax(
        &mut self,
        node: &NodeProto,
        x: &Val,
        shape: &[usize],
    ) -> Result<Vec<Val>, OnnxError> {
        let rank = shape.len();
        let default = if self.opset >= 13 { -1 } else { 1 };
        let axis = self.axis(node, attr_int(node, "axis").unwrap_or(default), rank)?;
        if rank == 0 || axis != rank - 1 {
            return Err(self.error(
                node,
                format!(
                    "only a softmax over the last axis is supported (axis {axis} of {shape:?})"
                ),
            ));
        }
        let (x, scale, causal) = match *x {
            Val::Node { id, .. } => (id, 1.0, false),
            Val::Partial {
                part: Part::Scaled(id, s),
                ..
            } => (id, s, false),
            Val::Partial {
                part: Part::Masked(id, s),
                ..
            } => (id, s, true),
            _ => {
                return Err(self.error(
                    node,
                    "its input is a constant or part of a pattern zkc does not map",
                ))
            }
        };
        let x = self.as_shape(&format!("{}.in", display_name(node)), x, shape);
        let name = self.name(node);
        let op = FloatOp::Softmax {
            scale: scale as f32,
            causal,
        };
        let id = self.add(name, op, &[x], shape.to_vec());
        Ok(vec![Val::Node {
            id,
            shape: shape.to_vec(),
        }])
    }

    fn gemm(
        &mut self,
        node: &NodeProto,
        x: NodeId,
        shape: &[usize],
        args: &[Option<&Val>],
    ) -> Result<Vec<Val>, OnnxError> {
        if attr_int(node, "transA").unwrap_or(0) != 0 {
            return Err(self.error(node, "transA=1 is not supported"));
        }
        let Some(Val::Const(b)) = args.get(1).copied().flatten() else {
            return Err(self.error(node, "B must be a constant"));
        };
        let [r, c] = b.shape[..] else {
            return Err(self.error(node, "B must be 2-d"));
        };
        let alpha = attr_float(node, "alpha").unwrap_or(1.0) as f64;
        let beta = attr_float(node, "beta").unwrap_or(1.0) as f64;
        // The weight as [out, in].
        let (w, n_in, n_out) = match attr_int(node, "transB").unwrap_or(0) {
            0 => (b.transposed(&[1, 0]).expect("2-d"), r, c),
            _ => (b.clone(), c, r),
        };
        if shape.len() != 2 || shape[1] != n_in {
            return Err(self.error(
                node,
                format!("A of shape {shape:?}: Gemm takes [M, {n_in}]"),
            ));
        }
        let x = self.as_rows(node, x, shape);
        let bias = match args.get(2).copied().flatten() {
            None => None,
            Some(Val::Const(cb)) if cb.len() == n_out || cb.len() == 1 => Some(
                (0..n_out)
                    .map(|o| (beta * cb.data[o % cb.len()]) as f32)
                    .collect(),
            ),
            Some(_) => {
                return Err(self.error(node, format!("C must be a constant of {n_out} values")))
            }
        };
        let weight = w.data.iter().map(|&v| (alpha * v) as f32).collect();
        let id = self.linear(node, x, weight, bias, n_in, n_out);
        Ok(vec![Val::Node {
            id,
            shape: vec![shape[0], n_out],
        }])
    }

    /// A 2-d convolution with constant weights as the dense linear map it is on the flattened
    /// `[1, C, H, W]` input (free in R1CS: weights are coefficients).
    fn conv(
        &mut self,
        node: &NodeProto,
        x: NodeId,
        shape: &[usize],
        args: &[Option<&Val>],
    ) -> Result<Vec<Val>, OnnxError> {
        let Some(Val::Const(w)) = args.get(1).copied().flatten() else {
            return Err(self.error(node, "the weight must be a constant"));
        };
        let ([1, c, h, wd], [m, cg, kh, kw]) = (shape, &w.shape[..]) else {
            return Err(self.error(node, format!("only 2-d convolutions of one image are supported (input {shape:?}, weight {:?})", w.shape)));
        };
        let (c, h, wd, m, cg, kh, kw) = (*c, *h, *wd, *m, *cg, *kh, *kw);
        let group = attr_int(node, "group").unwrap_or(1).max(1) as usize;
        if cg * group != c || m % group != 0 {
            return Err(self.error(
                node,
                format!("{c} channels in {group} groups do not match the weight's {cg}"),
            ));
        }
        let window = self.window(node, [h, wd], [kh, kw])?;
        let [oh, ow] = window.out;
        let (n_in, n_out) = (c * h * wd, m * oh * ow);
        let mut dense = self.dense_zeros(node, n_in, n_out)?;
        let per_group = m / group;
        for o in 0..m {
            let g = o / per_group;
            for (y, xo) in (0..oh).flat_map(|y| (0..ow).map(move |xo| (y, xo))) {
                let row = (o * oh + y) * ow + xo;
                for ci in 0..cg {
                    let channel = g * cg + ci;
                    for (ky, kx) in (0..kh).flat_map(|ky| (0..kw).map(move |kx| (ky, kx))) {
                        if let Some((iy, ix)) = window.at([y, xo], [ky, kx], [h, wd]) {
                            let col = (channel * h + iy) * wd + ix;
                            dense[row * n_in + col] +=
                                w.data[((o * cg + ci) * kh + ky) * kw + kx] as f32;
                        }
                    }
                }
            }
        }
        let bias = match args.get(2).copied().flatten() {
            None => None,
            Some(Val::Const(b)) if b.len() == m => {
                Some((0..n_out).map(|r| b.data[r / (oh * ow)] as f32).collect())
            }
            Some(_) => {
                return Err(self.error(node, format!("the bias must be a constant of {m} values")))
            }
        };
        self.dense_map(node, x, dense, bias, [n_in, n_out], vec![1, m, oh, ow])
    }

    /// Average pooling as the dense linear map it is (each output the mean of its window).
    fn average_pool(
        &mut self,
        node: &NodeProto,
        x: NodeId,
        shape: &[usize],
    ) -> Result<Vec<Val>, OnnxError> {
        let [1, c, h, wd] = shape[..] else {
            return Err(self.error(
                node,
                format!("only 2-d pooling of one image is supported (input {shape:?})"),
            ));
        };
        let global = node.op_type == "GlobalAveragePool";
        let kernel = match global {
            true => [h, wd],
            false => match attr_ints(node, "kernel_shape").as_deref() {
                Some(&[a, b]) if a > 0 && b > 0 => [a as usize, b as usize],
                _ => return Err(self.error(node, "kernel_shape must be two positive sizes")),
            },
        };
        if attr_int(node, "ceil_mode").unwrap_or(0) != 0 {
            return Err(self.error(node, "ceil_mode=1 is not supported"));
        }
        let window = match global {
            true => Window {
                out: [1, 1],
                strides: [1, 1],
                pads: [0; 4],
                dilations: [1, 1],
            },
            false => self.window(node, [h, wd], kernel)?,
        };
        let include_pad = attr_int(node, "count_include_pad").unwrap_or(0) != 0;
        let [oh, ow] = window.out;
        let (n_in, n_out) = (c * h * wd, c * oh * ow);
        let mut dense = self.dense_zeros(node, n_in, n_out)?;
        for ch in 0..c {
            for (y, xo) in (0..oh).flat_map(|y| (0..ow).map(move |xo| (y, xo))) {
                let row = (ch * oh + y) * ow + xo;
                let cells: Vec<usize> = (0..kernel[0])
                    .flat_map(|ky| (0..kernel[1]).map(move |kx| (ky, kx)))
                    .filter_map(|(ky, kx)| window.at([y, xo], [ky, kx], [h, wd]))
                    .map(|(iy, ix)| (ch * h + iy) * wd + ix)
                    .collect();
                let count = match include_pad {
                    true => kernel[0] * kernel[1],
                    false => cells.len().max(1),
                };
                for col in cells {
                    dense[row * n_in + col] = 1.0 / count as f32;
                }
            }
        }
        self.dense_map(node, x, dense, None, [n_in, n_out], vec![1, c, oh, ow])
    }

    /// The zero matrix `[n_out, n_in]` of a dense map, if it is of a size zkc holds.
    fn dense_zeros(
        &self,
        node: &NodeProto,
        n_in: usize,
        n_out: usize,
    ) -> Result<Vec<f32>, OnnxError> {
        match n_in.checked_mul(n_out).filter(|&n| n <= MAX_ELEMENTS / 4) {
            Some(n) => Ok(vec![0f32; n]),
            None => Err(self.error(
                node,
                format!("the dense map would be {n_out} x {n_in}: too large"),
            )),
        }
    }

    /// A convolution's or a pooling's dense map `[n_out, n_in]` over `x` flattened: a `Linear`
    /// whose value has the ONNX `shape`.
    fn dense_map(
        &mut self,
        node: &NodeProto,
        x: NodeId,
        dense: Vec<f32>,
        bias: Option<Vec<f32>>,
        [n_in, n_out]: [usize; 2],
        shape: Vec<usize>,
    ) -> Result<Vec<Val>, OnnxError> {
        let x = self.as_shape(&format!("{}.in", display_name(node)), x, &[1, n_in]);
        let id = self.linear(node, x, dense, bias, n_in, n_out);
        Ok(vec![Val::Node { id, shape }])
    }

    /// The sliding window of a `Conv` or `AveragePool` over an `[h, w]` image.
    fn window(
        &self,
        node: &NodeProto,
        image: [usize; 2],
        kernel: [usize; 2],
    ) -> Result<Window, OnnxError> {
        if attr_str(node, "auto_pad").is_some_and(|p| p != "NOTSET") {
            return Err(self.error(node, "auto_pad is not supported: export with explicit pads"));
        }
        let pair = |name: &str, default: usize| -> Result<[usize; 2], OnnxError> {
            match attr_ints(node, name).as_deref() {
                None => Ok([default; 2]),
                Some(&[a, b]) if a >= 0 && b >= 0 => Ok([a as usize, b as usize]),
                Some(v) => Err(self.error(
                    node,
                    format!("{name}={v:?}: two non-negative values expected"),
                )),
            }
        };
        let (strides, dilations) = (pair("strides", 1)?, pair("dilations", 1)?);
        let pads = match attr_ints(node, "pads").as_deref() {
            None => [0; 4],
            Some(&[a, b, c, d]) if [a, b, c, d].iter().all(|&p| p >= 0) => {
                [a as usize, b as usize, c as usize, d as usize]
            }
            Some(v) => Err(self.error(
                node,
                format!("pads={v:?}: four non-negative values expected"),
            ))?,
        };
        if strides.contains(&0) || dilations.contains(&0) {
            return Err(self.error(node, "strides and dilations must be positive"));
        }
        let mut out = [0; 2];
        for a in 0..2 {
            let span = dilations[a] * (kernel[a] - 1) + 1;
            let padded = image[a] + pads[a] + pads[a + 2];
            if padded < span {
                return Err(self.error(node, "the kernel is larger than the padded image"));
            }
            out[a] = (padded - span) / strides[a] + 1;
        }
        Ok(Window {
            out,
            strides,
            pads,
            dilations,
        })
    }

    fn axis(&self, node: &NodeProto, axis: i64, rank: usize) -> Result<usize, OnnxError> {
        let a = if axis < 0 { axis + rank as i64 } else { axis };
        usize::try_from(a)
            .ok()
            .filter(|&a| a < rank.max(1))
            .ok_or_else(|| self.error(node, format!("axis {axis} is outside rank {rank}")))
    }

    /// Input `k` as constant integers (a shape, axes).
    fn const_ints(
        &self,
        node: &NodeProto,
        args: &[Option<&Val>],
        k: usize,
    ) -> Result<Vec<i64>, OnnxError> {
        match args.get(k).copied().flatten() {
            Some(Val::Const(a)) => a.ints().ok_or_else(|| self.error(node, format!("input {k} is not integers"))),
            _ => Err(self.error(node, format!("input {k} must be a constant (shapes are folded at import; this one depends on the input's values)"))),
        }
    }

    fn constant_attr(&self, node: &NodeProto) -> Result<Array, OnnxError> {
        let a = node
            .attribute
            .first()
            .ok_or_else(|| self.error(node, "has no value"))?;
        match a.name.as_str() {
            "value" => {
                a.t.as_ref()
                    .map(Array::from_proto)
                    .ok_or_else(|| self.error(node, "has no tensor"))?
            }
            "value_float" => Ok(Array::scalar(a.f as f64)),
            "value_int" => Ok(Array::scalar(a.i as f64)),
            "value_floats" => Ok(Array::vector(a.floats.iter().map(|&v| v as f64).collect())),
            "value_ints" => Ok(Array::vector(a.ints.iter().map(|&v| v as f64).collect())),
            other => Err(self.error(node, format!("value kind `{other}` is not supported"))),
        }
    }

    /// A node whose inputs are all constants, computed now.
    fn fold(
        &self,
        node: &NodeProto,
        args: &[Option<&Val>],
        c: &[&Array],
    ) -> Result<Vec<Val>, OnnxError> {
        let op = node.op_type.as_str();
        let bad = |p: String| self.error(node, p);
        let a = c[0];
        let binary = |f: fn(f64, f64) -> f64| -> Result<Array, OnnxError> {
            let b = c.get(1).ok_or_else(|| bad("needs two inputs".into()))?;
            a.broadcast(b, f).ok_or_else(|| {
                bad(format!(
                    "shapes {:?} and {:?} do not broadcast",
                    a.shape, b.shape
                ))
            })
        };
        let out = match op {
            "Identity" | "Cast" | "Dropout" => a.clone(),
            "Shape" => Array::vector(a.shape.iter().map(|&d| d as f64).collect()),
            "Add" => binary(|x, y| x + y)?,
            "Sub" => binary(|x, y| x - y)?,
            "Mul" => binary(|x, y| x * y)?,
            "Div" => binary(|x, y| x / y)?,
            "Pow" => binary(f64::powf)?,
            "Sqrt" => a.map(f64::sqrt),
            "Neg" => a.map(|x| -x),
            "Relu" => a.map(|x| x.max(0.0)),
            "Sigmoid" => a.map(crate::model::sigmoid),
            "Tanh" => a.map(f64::tanh),
            "LeakyRelu" => {
                let alpha = attr_float(node, "alpha").unwrap_or(0.01) as f64;
                a.map(move |x| if x >= 0.0 { x } else { alpha * x })
            }
            "Erf" => a.map(crate::model::erf),
            "Reshape" => {
                let target = self.const_ints(node, args, 1)?;
                let shape =
                    reshape_target(&a.shape, &target, attr_int(node, "allowzero") == Some(1))
                        .ok_or_else(|| {
                            bad(format!("cannot reshape {:?} to {target:?}", a.shape))
                        })?;
                a.reshaped(shape).expect("same count")
            }
            "Squeeze" | "Unsqueeze" => {
                let axes = match self.opset >= 13 && args.len() > 1 {
                    true => self.const_ints(node, args, 1)?,
                    false => attr_ints(node, "axes").unwrap_or_default(),
                };
                let shape = squeeze(&a.shape, &axes, op == "Unsqueeze")
                    .ok_or_else(|| bad(format!("axes {axes:?} do not fit {:?}", a.shape)))?;
                a.reshaped(shape).expect("same count")
            }
            "Transpose" => {
                let perm: Vec<usize> = attr_ints(node, "perm")
                    .map(|p| p.iter().map(|&v| v as usize).collect())
                    .unwrap_or_else(|| (0..a.shape.len()).rev().collect());
                a.transposed(&perm)
                    .ok_or_else(|| bad(format!("perm {perm:?} does not fit {:?}", a.shape)))?
            }
            "Concat" => {
                let axis = self.axis(node, attr_int(node, "axis").unwrap_or(0), a.shape.len())?;
                concat(c, axis).ok_or_else(|| bad("shapes do not concatenate".into()))?
            }
            "Gather" => {
                let axis = self.axis(node, attr_int(node, "axis").unwrap_or(0), a.shape.len())?;
                gather(
                    a,
                    c.get(1).ok_or_else(|| bad("needs indices".into()))?,
                    axis,
                )
                .ok_or_else(|| bad("an index is out of range".into()))?
            }
            "ConstantOfShape" => {
                let shape: Vec<usize> = a
                    .ints()
                    .ok_or_else(|| bad("the shape is not integers".into()))?
                    .iter()
                    .map(|&d| d.max(0) as usize)
                    .collect();
                let n =
                    elements(&shape).ok_or_else(|| bad(format!("shape {shape:?} is too large")))?;
                let v = node
                    .attribute
                    .iter()
                    .find(|x| x.name == "value")
                    .and_then(|x| x.t.as_ref())
                    .map(Array::from_proto)
                    .transpose()?
                    .and_then(|t| t.single())
                    .unwrap_or(0.0);
                Array {
                    shape,
                    data: vec![v; n],
                }
            }
            _ => return Err(bad(format!("constant folding of `{op}` is not supported"))),
        };
        Ok(vec![Val::Const(out)])
    }
}

/// The sliding window of a convolution or pooling.
struct Window {
    out: [usize; 2],
    strides: [usize; 2],
    /// Top, left, bottom, right.
    pads: [usize; 4],
    dilations: [usize; 2],
}

impl Window {
    /// The input pixel under kernel cell `k` of output pixel `o`, or `None` in the padding.
    fn at(&self, o: [usize; 2], k: [usize; 2], image: [usize; 2]) -> Option<(usize, usize)> {
        let mut at = [0; 2];
        for a in 0..2 {
            let p =
                (o[a] * self.strides[a] + k[a] * self.dilations[a]).checked_sub(self.pads[a])?;
            (p < image[a]).then_some(())?;
            at[a] = p;
        }
        Some((at[0], at[1]))
    }
}

/// ONNX `Reshape`'s target: `0` copies the input's dimension (unless `allow_zero`), one `-1` is
/// inferred.
fn reshape_target(shape: &[usize], target: &[i64], allow_zero: bool) -> Option<Vec<usize>> {
    let total: usize = shape.iter().product();
    let mut out: Vec<usize> = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allow_zero => out.push(*shape.get(i)?),
            t if t >= 0 => out.push(t as usize),
            _ => return None,
        }
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        if known == 0 || total % known != 0 {
            return None;
        }
        out[i] = total / known;
    }
    (out.iter().product::<usize>() == total).then_some(out)
}

/// The shape after `Squeeze` (or `Unsqueeze`) of `axes`.
fn squeeze(shape: &[usize], axes: &[i64], unsqueeze: bool) -> Option<Vec<usize>> {
    if unsqueeze {
        let rank = shape.len() + axes.len();
        let mut at: Vec<usize> = axes
            .iter()
            .map(|&a| {
                usize::try_from(if a < 0 { a + rank as i64 } else { a })
                    .ok()
                    .filter(|&a| a < rank)
            })
            .collect::<Option<_>>()?;
        at.sort_unstable();
        let mut out = shape.to_vec();
        for a in at {
            (a <= out.len()).then_some(())?;
            out.insert(a, 1);
        }
        return Some(out);
    }
    let rank = shape.len() as i64;
    let axes: Vec<usize> = match axes.is_empty() {
        true => (0..shape.len()).filter(|&i| shape[i] == 1).collect(),
        false => axes
            .iter()
            .map(|&a| {
                usize::try_from(if a < 0 { a + rank } else { a })
                    .ok()
                    .filter(|&a| shape.get(a) == Some(&1))
            })
            .collect::<Option<_>>()?,
    };
    Some(
        shape
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect(),
    )
}

fn concat(parts: &[&Array], axis: usize) -> Option<Array> {
    let first = parts.first()?;
    let mut shape = first.shape.clone();
    shape[axis] = 0;
    for p in parts {
        let same = p.shape.len() == first.shape.len()
            && p.shape
                .iter()
                .zip(&first.shape)
                .enumerate()
                .all(|(i, (x, y))| i == axis || x == y);
        same.then_some(())?;
        shape[axis] += p.shape[axis];
    }
    let outer: usize = shape[..axis].iter().product();
    let mut data = Vec::with_capacity(elements(&shape)?);
    for o in 0..outer {
        for p in parts {
            let inner: usize = p.shape[axis..].iter().product();
            data.extend_from_slice(&p.data[o * inner..(o + 1) * inner]);
        }
    }
    Some(Array { shape, data })
}

fn gather(a: &Array, indices: &Array, axis: usize) -> Option<Array> {
    let n = a.shape[axis] as i64;
    let idx: Vec<usize> = indices
        .ints()?
        .iter()
        .map(|&i| {
            usize::try_from(if i < 0 { i + n } else { i })
                .ok()
                .filter(|&i| (i as i64) < n)
        })
        .collect::<Option<_>>()?;
    let outer: usize = a.shape[..axis].iter().product();
    let inner: usize = a.shape[axis + 1..].iter().product();
    let mut data = Vec::new();
    for o in 0..outer {
        for &i in &idx {
            let at = (o * a.shape[axis] + i) * inner;
            data.extend_from_slice(&a.data[at..at + inner]);
        }
    }
    let shape = [&a.shape[..axis], &indices.shape[..], &a.shape[axis + 1..]].concat();
    Some(Array { shape, data })
}

fn sanitize(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                true => c,
                false => '_',
            },
        )
        .collect();
    s = s.trim_matches(|c| c == '_' || c == '.').to_string();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, 'v');
    }
    s
}

fn display_name(node: &NodeProto) -> String {
    match node.name.is_empty() {
        true => node.output.first().cloned().unwrap_or_default(),
        false => node.name.clone(),
    }
}

fn attribute<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_int(node: &NodeProto, name: &str) -> Option<i64> {
    attribute(node, name).map(|a| a.i)
}

fn attr_float(node: &NodeProto, name: &str) -> Option<f32> {
    attribute(node, name).map(|a| a.f)
}

fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attribute(node, name).map(|a| a.ints.clone())
}

fn attr_str(node: &NodeProto, name: &str) -> Option<String> {
    attribute(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// Whether `m` is a causal mask for scores of `shape` (`[.., M, L]`): broadcast onto them, 0 at
/// `(i, j)` for `j <= i` and at most -1e4 for `j > i` (so that `exp` of those is 0 in f32, as
/// the masked integer softmax leaves them out).
fn causal_mask(m: &Array, shape: &[usize]) -> bool {
    let rank = shape.len();
    if rank < 2 {
        return false;
    }
    let Some(total) = elements(shape) else {
        return false;
    };
    let zeros = Array {
        shape: shape.to_vec(),
        data: vec![0.0; total],
    };
    let Some(full) = zeros.broadcast(m, |_, y| y).filter(|a| a.shape == shape) else {
        return false;
    };
    let (rows, cols) = (shape[rank - 2], shape[rank - 1]);
    full.data.iter().enumerate().all(|(k, &v)| {
        let (i, j) = ((k / cols) % rows, k % cols);
        match j <= i {
            true => v == 0.0,
            false => v <= -1e4,
        }
    })
}

/// Why an op is refused, for the ops zkc knows it does not map yet.
pub fn unsupported_reason(op: &str) -> String {
    match op {
        "MaxPool" | "Exp" | "Log" => {
            format!("`{op}` is not supported yet (docs/onnx.md lists the ops zkc maps)")
        }
        _ => format!("`{op}` is not an op zkc maps (docs/onnx.md lists the ops it does)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FloatModel;
    use crate::onnx::proto::{AttributeProto, ModelProto, TensorProto, ValueInfoProto};
    use prost::Message;

    fn info(name: &str, shape: &[i64]) -> ValueInfoProto {
        ValueInfoProto::float_tensor(name, shape)
    }

    fn tensor(name: &str, dims: &[i64], data: Vec<f32>) -> TensorProto {
        TensorProto::floats(name, dims, data)
    }

    fn op(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
        NodeProto::new(op, inputs, output, attribute)
    }

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: 7,
            ints: v.to_vec(),
            ..Default::default()
        }
    }

    /// A model of `nodes` over `input` (the graph input `x`) giving `y`.
    fn model(input: &[i64], inits: Vec<TensorProto>, nodes: Vec<NodeProto>) -> OnnxModel {
        let proto = ModelProto::of_graph(17, nodes, inits, info("x", input), info("y", &[]));
        crate::onnx::decode(&proto.encode_to_vec(), "test.onnx").expect("decodes")
    }

    fn ops(imported: &Imported) -> Vec<FloatOp> {
        let g = &imported.graph;
        g.topological_order()
            .iter()
            .map(|&id| g.node(id).op.clone())
            .collect()
    }

    /// The tanh form of GELU as PyTorch exports it (x*x*x, or Pow 3) is one `Gelu` node, over
    /// every row of a [1, 2, 4] tensor.
    #[test]
    fn gelu_tanh_pattern_is_one_node() {
        for cube in ["muls", "pow"] {
            let mut nodes = match cube {
                "muls" => vec![
                    op("Mul", &["x", "x"], "sq", vec![]),
                    op("Mul", &["x", "sq"], "cu", vec![]),
                ],
                _ => vec![op("Pow", &["x", "three"], "cu", vec![])],
            };
            nodes.extend([
                op("Mul", &["k1", "cu"], "m2", vec![]),
                op("Add", &["x", "m2"], "inner", vec![]),
                op("Mul", &["k2", "inner"], "arg", vec![]),
                op("Tanh", &["arg"], "t", vec![]),
                op("Add", &["one", "t"], "t1", vec![]),
                op("Mul", &["x", "t1"], "twice", vec![]),
                op("Mul", &["half", "twice"], "y", vec![]),
            ]);
            let inits = vec![
                tensor("three", &[], vec![3.0]),
                tensor("k1", &[], vec![0.044715]),
                tensor("k2", &[], vec![0.797_884_6]),
                tensor("one", &[], vec![1.0]),
                tensor("half", &[], vec![0.5]),
            ];
            let imported = import(&model(&[1, 2, 4], inits, nodes)).expect("maps");
            let found = ops(&imported);
            assert_eq!(found.len(), 2, "{found:?}");
            assert_eq!(found[1], FloatOp::Gelu);
            let g = &imported.graph;
            assert_eq!(g.shape(g.result()), Some(&[1, 2, 4][..]));
            let float = FloatModel::single_pass(imported.graph, imported.weights);
            let x: Vec<f32> = (0..8).map(|i| i as f32 - 3.5).collect();
            let y = float.run(&x).unwrap();
            for (x, y) in x.iter().zip(&y) {
                let want = crate::model::gelu_tanh(*x as f64);
                assert!((*y as f64 - want).abs() < 1e-6, "{x}: {y} vs {want}");
            }
        }
    }

    /// `Sigmoid`, `Tanh` (alone, not GELU's) and `LeakyRelu` (alpha given, and its default
    /// 0.01), each a one-node graph over a [1, 2, 4] tensor: one node of its op, and the float
    /// run is the f64 function (rounded to f32) on every element.
    #[test]
    fn sigmoid_tanh_and_leaky_relu_map_to_their_ops() {
        let alpha = |a: f32| AttributeProto {
            name: "alpha".into(),
            r#type: 1,
            f: a,
            ..Default::default()
        };
        let leaky = |a: f64| move |x: f64| if x >= 0.0 { x } else { a * x };
        type Case = (
            &'static str,
            Vec<AttributeProto>,
            FloatOp,
            Box<dyn Fn(f64) -> f64>,
        );
        let cases: Vec<Case> = vec![
            (
                "Sigmoid",
                vec![],
                FloatOp::Sigmoid,
                Box::new(|x: f64| 1.0 / (1.0 + (-x).exp())),
            ),
            ("Tanh", vec![], FloatOp::Tanh, Box::new(f64::tanh)),
            (
                "LeakyRelu",
                vec![],
                FloatOp::LeakyRelu { alpha: 0.01 },
                Box::new(leaky(0.01f32 as f64)),
            ),
            (
                "LeakyRelu",
                vec![alpha(0.2)],
                FloatOp::LeakyRelu { alpha: 0.2 },
                Box::new(leaky(0.2f32 as f64)),
            ),
        ];
        for (name, attrs, want_op, f) in cases {
            let nodes = vec![op(name, &["x"], "y", attrs)];
            let imported = import(&model(&[1, 2, 4], vec![], nodes)).expect("maps");
            let found = ops(&imported);
            assert_eq!(found.len(), 2, "{found:?}");
            assert_eq!(found[1], want_op);
            let g = &imported.graph;
            assert_eq!(g.shape(g.result()), Some(&[1, 2, 4][..]));
            let float = FloatModel::single_pass(imported.graph, imported.weights);
            for scale in [0.5f32, 3.0, 20.0] {
                let x: Vec<f32> = (0..8).map(|i| (i as f32 - 3.5) * scale).collect();
                let y = float.run(&x).unwrap();
                for (x, y) in x.iter().zip(&y) {
                    let want = f(*x as f64);
                    let err = (*y as f64 - want).abs();
                    assert!(
                        err <= 1e-7 * want.abs().max(1.0),
                        "{name} {x}: {y} vs {want}"
                    );
                }
            }
        }
        // Of constants, folded.
        let nodes = vec![
            op("Sigmoid", &["c"], "s", vec![]),
            op("Tanh", &["c"], "t", vec![]),
            op("LeakyRelu", &["c"], "l", vec![alpha(0.5)]),
            op("Add", &["s", "t"], "st", vec![]),
            op("Add", &["st", "l"], "k", vec![]),
            op("Transpose", &["x"], "xt", vec![ints("perm", &[1, 0])]),
            op("MatMul", &["xt", "k"], "y", vec![]),
        ];
        let c = tensor("c", &[1, 1], vec![-2.0]);
        let imported = import(&model(&[1, 3], vec![c], nodes)).expect("maps");
        let float = FloatModel::single_pass(imported.graph, imported.weights);
        let y = float.run(&[1.0, 2.0, -1.0]).unwrap();
        let k = 1.0 / (1.0 + 2f64.exp()) + (-2f64).tanh() - 1.0;
        for (y, x) in y.iter().zip([1.0, 2.0, -1.0]) {
            assert!((*y as f64 - k * x).abs() < 1e-6, "{y} vs {}", k * x);
        }
    }

    /// Scaled scores of a product of two tensors with a causal mask, then a softmax: one causal
    /// `Softmax` node with the scale folded in; another mask is refused, naming the node.
    #[test]
    fn masked_scores_become_a_causal_softmax() {
        let mask = |above: f32| {
            let data = (0..9)
                .map(|k| if k % 3 > k / 3 { above } else { 0.0 })
                .collect();
            tensor("mask", &[3, 3], data)
        };
        let nodes = || {
            vec![
                op("Transpose", &["x"], "xt", vec![ints("perm", &[0, 2, 1])]),
                op("MatMul", &["x", "xt"], "s", vec![]),
                op("Mul", &["s", "k"], "ss", vec![]),
                op("Add", &["ss", "mask"], "sm", vec![]),
                op("Softmax", &["sm"], "p", vec![]),
                op("MatMul", &["p", "x"], "y", vec![]),
            ]
        };
        let inits = |above| vec![tensor("k", &[], vec![0.5]), mask(above)];
        let imported = import(&model(&[1, 3, 2], inits(-10_000.0), nodes())).expect("maps");
        let found = ops(&imported);
        assert!(
            found.contains(&FloatOp::Softmax {
                scale: 0.5,
                causal: true
            }),
            "{found:?}"
        );
        assert!(found.contains(&FloatOp::Transpose {
            perm: vec![0, 2, 1]
        }));
        assert_eq!(found.iter().filter(|o| **o == FloatOp::MatMul).count(), 2);
        // Row 0 attends to itself only: its output is x's row 0.
        let float = FloatModel::single_pass(imported.graph, imported.weights);
        let x = [1.0, 2.0, -1.0, 0.5, 3.0, 0.0];
        let y = float.run(&x).unwrap();
        assert_eq!(&y[..2], &x[..2]);
        let e = |v: f64| v.exp();
        // Row 1: scores 0.5 * (x1 . x0, x1 . x1) = (0, 0.625).
        let (a, b) = (e(0.0), e(0.625));
        let want = (a - b) / (a + b);
        assert!((y[2] as f64 - want).abs() < 1e-6);
        // A mask of -1 above the diagonal is not a causal mask.
        let Err(OnnxError::Node { node, problem, .. }) =
            import(&model(&[1, 3, 2], inits(-1.0), nodes()))
        else {
            panic!("a soft mask must be refused");
        };
        assert_eq!(node, "sm");
        assert!(problem.contains("causal mask"), "{problem}");
    }

    /// `Split` along the last axis into equal parts maps to slices; unequal parts are refused.
    #[test]
    fn splits_into_equal_parts_only() {
        let split = |sizes: Vec<f32>| {
            let mut n = op("Split", &["x", "sizes"], "a", vec![ints("axis", &[])]);
            n.attribute[0].i = -1;
            n.attribute[0].r#type = 2;
            n.output = vec!["a".into(), "b".into()];
            let add = op("Add", &["a", "b"], "y", vec![]);
            let inits = vec![TensorProto {
                dims: vec![2],
                data_type: 7,
                int64_data: sizes.iter().map(|&v| v as i64).collect(),
                name: "sizes".into(),
                ..Default::default()
            }];
            import(&model(&[2, 4], inits, vec![n, add]))
        };
        let imported = split(vec![2.0, 2.0]).expect("maps");
        let float = FloatModel::single_pass(imported.graph, imported.weights);
        let y = float
            .run(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
            .unwrap();
        assert_eq!(y, vec![4.0, 6.0, 12.0, 14.0]);
        let Err(OnnxError::Node { node, problem, .. }) = split(vec![1.0, 3.0]) else {
            panic!("unequal parts must be refused");
        };
        assert_eq!(node, "a");
        assert!(problem.contains("equal parts"), "{problem}");
    }

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/onnx")
            .join(name)
    }

    fn numbers(name: &str, key: &str) -> Vec<f32> {
        let text = std::fs::read_to_string(fixture(name)).expect("fixture");
        let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        json[key][0]
            .as_array()
            .expect("a list")
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    }

    /// The GPT-2 block fixture: LayerNorm over the rows of a sequence, q/k/v split into heads,
    /// the causal softmax, tanh GELU; the float reference matches onnxruntime's output.
    #[test]
    fn gpt2_block_matches_onnxruntime() {
        let model = crate::onnx::read(&fixture("gpt2_block.onnx")).expect("reads");
        let imported = import(&model).expect("maps");
        let found = ops(&imported);
        let count = |f: &dyn Fn(&FloatOp) -> bool| found.iter().filter(|o| f(o)).count();
        assert_eq!(count(&|o| matches!(o, FloatOp::LayerNorm { .. })), 2);
        assert_eq!(count(&|o| *o == FloatOp::Gelu), 1);
        assert_eq!(count(&|o| *o == FloatOp::MatMul), 2);
        assert_eq!(count(&|o| matches!(o, FloatOp::Slice { .. })), 3);
        assert!(found.contains(&FloatOp::Softmax {
            scale: 0.25,
            causal: true
        }));
        let float = FloatModel::single_pass(imported.graph, imported.weights);
        let y = float
            .run(&numbers("gpt2_block.input.json", "input_data"))
            .unwrap();
        let want = numbers("gpt2_block.output.json", "output_data");
        assert_eq!(y.len(), want.len());
        let err = y
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("gpt2_block: float max abs error against onnxruntime {err:e}");
        assert!(err < 1e-5, "max abs error {err}");
    }
}
