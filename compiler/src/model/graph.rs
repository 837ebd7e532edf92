//! The model graph: a petgraph DAG of float ops on one token's activation vectors. Residual
//! connections and attention heads are real edges and nodes, so later passes see the model's
//! true structure.
//!
//! A value is one flat row-major vector. A language model's (GGUF) values are each one row;
//! a frontend may give a node a shape ([`Graph::shape`]), `[rows, d]` or more axes, and then
//! the per-row ops (`Linear`, `LayerNorm`, `RmsNorm`, `Slice`) apply to every row of the last
//! axis, the elementwise ones to every element, and the structured ones (`MatMul`, `Softmax`,
//! `Transpose`) read their operands' shapes.

use petgraph::algo::toposort;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::collections::HashMap;

use super::ModelError;
use crate::gguf::GgufFile;

pub type NodeId = NodeIndex;

/// A weight the graph reads: a GGUF tensor name and the row-major shape its role needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorRef {
    pub name: String,
    pub shape: Vec<usize>,
}

impl TensorRef {
    /// Refers to `name` after checking that the file has it with `shape` (a vector may be
    /// stored as `[n]` or `[1, n]`); `role` says what the mapping wanted it for.
    pub fn checked(
        gguf: &GgufFile,
        name: &str,
        shape: &[usize],
        role: &str,
    ) -> Result<TensorRef, ModelError> {
        let info = gguf.tensor(name).ok_or_else(|| ModelError::MissingTensor {
            name: name.to_string(),
            role: role.to_string(),
        })?;
        let expected: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let found = info.shape();
        let same = found == expected || (shape.len() == 1 && found == [1, expected[0]]);
        if !same {
            return Err(ModelError::WrongShape {
                name: name.to_string(),
                role: role.to_string(),
                found,
                expected,
            });
        }
        Ok(TensorRef {
            name: name.to_string(),
            shape: shape.to_vec(),
        })
    }
}

/// The float ops of the reference model. Every value is one token's vector, or, in a graph whose
/// nodes have shapes, a tensor flattened row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum FloatOp {
    /// The current token id (a graph input).
    Token,
    /// The current position (a graph input).
    Position,
    /// Row `index` of `table[rows, d]`; operand: the index.
    Embed { table: TensorRef },
    /// Elementwise sum; the residual connections.
    Add,
    /// Elementwise difference of two computed values of one shape (ONNX's `Sub`).
    Sub,
    /// `(x - mean) / sqrt(var + eps) * weight + bias`.
    LayerNorm {
        weight: TensorRef,
        bias: TensorRef,
        eps: f32,
    },
    /// `x / sqrt(mean(x^2) + eps) * weight` (Llama's RMSNorm).
    RmsNorm { weight: TensorRef, eps: f32 },
    /// `weight[out, in] * x + bias`, for every row `x` (of `in` values) of the operand.
    Linear {
        weight: TensorRef,
        bias: Option<TensorRef>,
    },
    /// `x[.., start .. start + len]`: elements `start .. start + len` of every row of the
    /// operand's last axis (of the whole vector when the operand has no shape).
    Slice { start: usize, len: usize },
    /// One query head over the KV cache of `(block, kv_head)`: operands q, k, v. Appends k and v
    /// at the current position, then attends causally to positions `0..=pos`. Query heads that
    /// share a `kv_head` (grouped-query attention) share its cache and its k and v operands.
    Attention { block: usize, kv_head: usize },
    /// Rotary position embedding of one head's vector: operands x and the position. The first
    /// `dims` elements turn in pairs, pair `i` by the angle `pos * freq_base^(-2i / dims)`; the
    /// rest pass through.
    Rope {
        dims: usize,
        freq_base: f32,
        pairs: RopePairs,
    },
    /// The operands joined end to end, in operand order.
    Concat,
    /// GELU, tanh approximation (as ggml and GPT-2).
    Gelu,
    /// SiLU, `x * sigmoid(x)`.
    Silu,
    /// The elementwise product of two values (the gate of a SiLU-gated MLP).
    Mul,
    /// The input tensor of a single-pass model (a graph input), flattened in row-major order;
    /// `shape` is the file's.
    Input { shape: Vec<usize> },
    /// `max(x, 0)`.
    Relu,
    /// GELU in its exact form, `x * (1 + erf(x / sqrt 2)) / 2` (ONNX's `Gelu` and PyTorch's
    /// default `nn.GELU`, exported through `Erf`).
    GeluErf,
    /// The product of two computed tensors, batched over the leading axes:
    /// `a[B.., M, K] x b[B.., K, N] = y[B.., M, N]` (equal batch axes, no broadcasting). An
    /// attention's `q k^T` and `probs v`.
    MatMul,
    /// Softmax over the last axis of `scale * x` (the operand's shape `[.., M, L]`). With
    /// `causal`, slot `j` of the row at index `i` of the second-to-last axis takes part only if
    /// `j <= i` (the others are 0 and count in neither the maximum nor the sum): the causal mask
    /// of a sequence's self-attention. `scale` is a constant factor folded in (attention's
    /// `1/sqrt(d_head)`); the integer softmax absorbs it into its exponential's constants.
    Softmax { scale: f32, causal: bool },
    /// The operand's axes permuted: result axis `a` is operand axis `perm[a]` (data movement).
    Transpose { perm: Vec<usize> },
    /// The same row-major elements under the shape `shape` (data movement).
    Reshape { shape: Vec<usize> },
    /// The logistic sigmoid, `1 / (1 + exp(-x))`, elementwise (ONNX's `Sigmoid`).
    Sigmoid,
    /// The hyperbolic tangent, elementwise (ONNX's `Tanh` outside GELU's tanh form).
    Tanh,
    /// `x` for `x >= 0`, `alpha * x` below (ONNX's `LeakyRelu`, whose `alpha` defaults to
    /// 0.01).
    LeakyRelu { alpha: f32 },
}

/// Which elements RoPE turns together, as llama.cpp's rope types name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopePairs {
    /// `(2i, 2i + 1)`: llama.cpp's `LLAMA_ROPE_TYPE_NORM`, used for `llama` (whose converter
    /// permutes Hugging Face's q and k rows into this order).
    Adjacent,
    /// `(i, i + dims/2)`: `LLAMA_ROPE_TYPE_NEOX`, used for `qwen2` and GPT-NeoX.
    Halves,
}

/// Which proof a node belongs to: the graph is cut into these layers, each its own circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    Embed,
    Block(usize),
    Head,
    /// The whole of a single-pass model (an ONNX graph): one layer, cut by the compiler's
    /// bound like any other.
    Net,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stage::Embed => f.write_str("embed"),
            Stage::Block(b) => write!(f, "block.{b}"),
            Stage::Head => f.write_str("head"),
            Stage::Net => f.write_str("net"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub name: String,
    pub op: FloatOp,
    pub stage: Stage,
}

/// What a graph takes and gives: the kind of model it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Io {
    /// A language model, run one token per step: the token and position in, the logits out.
    Tokens {
        token: NodeId,
        position: NodeId,
        logits: NodeId,
    },
    /// A single-pass model, `output = f(input)` (ONNX).
    Pass { input: NodeId, output: NodeId },
}

/// Edge weight: the operand position at the consumer.
pub struct Graph {
    graph: StableDiGraph<Node, usize>,
    order: Vec<NodeId>,
    /// The shapes a frontend gave its nodes (none for a language model's, each one row).
    shapes: HashMap<NodeId, Vec<usize>>,
    pub io: Io,
}

impl Graph {
    /// The logits node of a language model.
    pub fn logits(&self) -> Option<NodeId> {
        match self.io {
            Io::Tokens { logits, .. } => Some(logits),
            Io::Pass { .. } => None,
        }
    }

    /// The position input of a language model.
    pub fn position(&self) -> Option<NodeId> {
        match self.io {
            Io::Tokens { position, .. } => Some(position),
            Io::Pass { .. } => None,
        }
    }

    /// The node whose value the model gives: the logits, or a single pass's output.
    pub fn result(&self) -> NodeId {
        match self.io {
            Io::Tokens { logits, .. } => logits,
            Io::Pass { output, .. } => output,
        }
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.graph[id]
    }

    /// The shape of `id`'s value (row-major), if its frontend gave one; a node without is one
    /// row.
    pub fn shape(&self, id: NodeId) -> Option<&[usize]> {
        self.shapes.get(&id).map(Vec::as_slice)
    }

    /// The length of the last axis of `id`'s value: a row's length (`len` for a node without
    /// a shape, whose value is one row of `len`).
    pub fn row_len(&self, id: NodeId, len: usize) -> usize {
        self.shape(id)
            .and_then(|s| s.last().copied())
            .unwrap_or(len)
    }

    /// Nodes in an order where operands come first.
    pub fn topological_order(&self) -> &[NodeId] {
        &self.order
    }

    pub fn operands(&self, id: NodeId) -> Vec<NodeId> {
        let mut edges: Vec<_> = self
            .graph
            .edges_directed(id, Direction::Incoming)
            .map(|e| (*e.weight(), e.source()))
            .collect();
        edges.sort();
        edges.into_iter().map(|(_, n)| n).collect()
    }

    pub fn petgraph(&self) -> &StableDiGraph<Node, usize> {
        &self.graph
    }

    /// The nodes that use `id`'s value.
    pub fn users(&self, id: NodeId) -> Vec<NodeId> {
        let mut users: Vec<NodeId> = self
            .graph
            .neighbors_directed(id, Direction::Outgoing)
            .collect();
        users.sort();
        users.dedup();
        users
    }

    /// Every weight the graph reads, each once.
    pub fn tensors(&self) -> Vec<&TensorRef> {
        let mut refs: Vec<&TensorRef> = Vec::new();
        for &id in &self.order {
            let found: Vec<&TensorRef> = match &self.graph[id].op {
                FloatOp::Embed { table } => vec![table],
                FloatOp::LayerNorm { weight, bias, .. } => vec![weight, bias],
                FloatOp::RmsNorm { weight, .. } => vec![weight],
                FloatOp::Linear { weight, bias } => std::iter::once(weight).chain(bias).collect(),
                _ => vec![],
            };
            for r in found {
                if !refs.iter().any(|x| x.name == r.name) {
                    refs.push(r);
                }
            }
        }
        refs
    }
}

pub struct GraphBuilder {
    graph: StableDiGraph<Node, usize>,
    shapes: HashMap<NodeId, Vec<usize>>,
    stage: Stage,
}

impl Default for GraphBuilder {
    fn default() -> GraphBuilder {
        GraphBuilder {
            graph: StableDiGraph::default(),
            shapes: HashMap::new(),
            stage: Stage::Embed,
        }
    }
}

impl GraphBuilder {
    /// The stage of the nodes added from now on.
    pub fn stage(&mut self, stage: Stage) {
        self.stage = stage;
    }

    pub fn add(&mut self, name: impl Into<String>, op: FloatOp, operands: &[NodeId]) -> NodeId {
        let id = self.graph.add_node(Node {
            name: name.into(),
            op,
            stage: self.stage,
        });
        for (i, &o) in operands.iter().enumerate() {
            self.graph.add_edge(o, id, i);
        }
        id
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.graph[id]
    }

    /// Gives node `id` a shape (see [`Graph::shape`]).
    pub fn set_shape(&mut self, id: NodeId, shape: Vec<usize>) {
        self.shapes.insert(id, shape);
    }

    /// The shape given to `id`, if any.
    pub fn shape(&self, id: NodeId) -> Option<&[usize]> {
        self.shapes.get(&id).map(Vec::as_slice)
    }

    /// The nodes that use `id`'s value so far.
    pub fn users(&self, id: NodeId) -> Vec<NodeId> {
        self.graph
            .neighbors_directed(id, Direction::Outgoing)
            .collect()
    }

    pub fn rename(&mut self, id: NodeId, name: &str) {
        self.graph[id].name = name.to_string();
    }

    /// Removes every node `result` does not depend on (a frontend's dead branches).
    pub fn keep_only_what_reaches(&mut self, result: NodeId) {
        let mut live = vec![result];
        let mut seen: std::collections::HashSet<NodeId> = live.iter().copied().collect();
        while let Some(n) = live.pop() {
            for o in self.graph.neighbors_directed(n, Direction::Incoming) {
                if seen.insert(o) {
                    live.push(o);
                }
            }
        }
        self.graph.retain_nodes(|_, n| seen.contains(&n));
        self.shapes.retain(|n, _| seen.contains(n));
    }

    pub fn finish(self, io: Io) -> Graph {
        let order = toposort(&self.graph, None).expect("builders add operands before their users");
        Graph {
            graph: self.graph,
            order,
            shapes: self.shapes,
            io,
        }
    }
}
