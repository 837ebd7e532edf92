//! What `zkc inspect net.onnx` shows: the graph's ops, its input and output shapes, the
//! parameter count, and whether zkc maps it (the first node it cannot map, and every op type
//! outside the ops it maps at all).

use super::{import, OnnxModel, SUPPORTED_OPS};
use serde_json::{json, Value};

/// One op type and how many nodes use it.
#[derive(Clone, Debug, PartialEq)]
pub struct OpCount {
    pub op: String,
    pub count: usize,
    pub supported: bool,
}

#[derive(Clone, Debug)]
pub struct Summary {
    pub opset: i64,
    pub producer: String,
    pub nodes: usize,
    pub ops: Vec<OpCount>,
    /// Each graph input and output: name and shape as the file declares it (symbolic
    /// dimensions by name).
    pub inputs: Vec<(String, Vec<String>)>,
    pub outputs: Vec<(String, Vec<String>)>,
    /// Each initializer (weight): name and shape.
    pub initializers: Vec<(String, Vec<i64>)>,
    /// Elements of every initializer.
    pub parameters: u64,
    /// `None` when zkc maps the whole graph, else why not (the node at fault).
    pub problem: Option<String>,
    /// The model graph's node count when it maps.
    pub graph_nodes: Option<usize>,
}

pub fn summarize(model: &OnnxModel) -> Summary {
    let graph = model.graph();
    let mut ops: Vec<OpCount> = Vec::new();
    for node in &graph.node {
        match ops.iter_mut().find(|o| o.op == node.op_type) {
            Some(o) => o.count += 1,
            None => ops.push(OpCount {
                op: node.op_type.clone(),
                count: 1,
                supported: SUPPORTED_OPS.contains(&node.op_type.as_str()),
            }),
        }
    }
    let shapes = |infos: &[super::proto::ValueInfoProto], skip: bool| {
        infos
            .iter()
            .filter(|i| !(skip && graph.initializer.iter().any(|t| t.name == i.name)))
            .map(|i| {
                let dims = i
                    .r#type
                    .as_ref()
                    .and_then(|t| t.tensor_type.as_ref())
                    .and_then(|t| t.shape.as_ref())
                    .map(|s| {
                        s.dim
                            .iter()
                            .map(|d| match (&d.dim_value, &d.dim_param) {
                                (Some(v), _) => v.to_string(),
                                (_, Some(p)) => p.clone(),
                                _ => "?".into(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (i.name.clone(), dims)
            })
            .collect::<Vec<_>>()
    };
    let parameters = graph
        .initializer
        .iter()
        .map(|t| t.dims.iter().map(|&d| d.max(0) as u64).product::<u64>())
        .sum();
    let (problem, graph_nodes) = match import(model) {
        Ok(imported) => (None, Some(imported.graph.topological_order().len())),
        Err(e) => (Some(e.to_string()), None),
    };
    Summary {
        opset: model.opset,
        producer: format!(
            "{} {}",
            model.proto.producer_name, model.proto.producer_version
        )
        .trim()
        .to_string(),
        nodes: graph.node.len(),
        ops,
        inputs: shapes(&graph.input, true),
        outputs: shapes(&graph.output, false),
        initializers: graph
            .initializer
            .iter()
            .map(|t| (t.name.clone(), t.dims.clone()))
            .collect(),
        parameters,
        problem,
        graph_nodes,
    }
}

impl Summary {
    /// The op types zkc does not map at all.
    pub fn unsupported(&self) -> Vec<&str> {
        self.ops
            .iter()
            .filter(|o| !o.supported)
            .map(|o| o.op.as_str())
            .collect()
    }

    pub fn to_json(&self) -> Value {
        let io = |v: &[(String, Vec<String>)]| {
            v.iter()
                .map(|(n, s)| json!({"name": n, "shape": s}))
                .collect::<Vec<_>>()
        };
        json!({
            "format": "onnx",
            "opset": self.opset,
            "producer": self.producer,
            "nodes": self.nodes,
            "ops": self.ops.iter().map(|o| json!({"op": o.op, "count": o.count, "supported": o.supported})).collect::<Vec<_>>(),
            "inputs": io(&self.inputs),
            "outputs": io(&self.outputs),
            "initializers": self.initializers.iter().map(|(n, s)| json!({"name": n, "shape": s})).collect::<Vec<_>>(),
            "parameters": self.parameters,
            "maps": self.problem.is_none(),
            "unsupported_ops": self.unsupported(),
            "problem": self.problem,
            "graph_nodes": self.graph_nodes,
        })
    }
}
