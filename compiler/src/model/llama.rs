//! The `llama` mapping (Llama, Mistral, SmolLM, TinyLlama): llama.cpp's tensor names and the
//! Llama block. Pre-norm RMSNorm; separate q, k and v projections without biases; RoPE on q and
//! k with llama.cpp's pairing for this architecture (adjacent elements: its converter permutes
//! Hugging Face's q and k rows so); grouped-query attention (query head `h` reads key/value head
//! `h / group`); the SiLU-gated MLP `down(silu(gate(x)) * up(x))`; no position embedding. The
//! output projection is tied to the token embedding when `output.weight` is absent.
//!
//! `qwen2` is the same block with biases on q, k and v and llama.cpp's other RoPE pairing,
//! `(i, i + dims/2)` (`LLAMA_ROPE_TYPE_NEOX`).

use super::graph::{FloatOp, Graph, GraphBuilder, Io, NodeId, RopePairs, Stage, TensorRef};
use super::{Hyperparams, ModelError};
use crate::gguf::GgufFile;

/// What sets a Llama-family architecture apart from `llama`.
struct Variant {
    /// Biases on the q, k and v projections.
    qkv_bias: bool,
    pairs: RopePairs,
}

pub fn build(hp: &Hyperparams, gguf: &GgufFile) -> Result<Graph, ModelError> {
    let variant = Variant {
        qkv_bias: false,
        pairs: RopePairs::Adjacent,
    };
    build_variant(hp, gguf, &variant)
}

pub fn build_qwen2(hp: &Hyperparams, gguf: &GgufFile) -> Result<Graph, ModelError> {
    let variant = Variant {
        qkv_bias: true,
        pairs: RopePairs::Halves,
    };
    build_variant(hp, gguf, &variant)
}

fn build_variant(
    hp: &Hyperparams,
    gguf: &GgufFile,
    variant: &Variant,
) -> Result<Graph, ModelError> {
    let (d, dh, ff, v) = (hp.n_embd, hp.head_dim(), hp.n_ff, hp.n_vocab);
    let kv_width = hp.n_head_kv * dh;
    let rope = hp.rope.expect("the llama mapping reads rope.*");
    let tensor =
        |name: &str, shape: &[usize], role: &str| TensorRef::checked(gguf, name, shape, role);
    let mut g = GraphBuilder::default();
    let norm = |g: &mut GraphBuilder, name: &str, role: &str, x: NodeId| {
        let weight = tensor(&format!("{name}.weight"), &[d], role)?;
        let op = FloatOp::RmsNorm {
            weight,
            eps: hp.norm_eps,
        };
        Ok::<_, ModelError>(g.add(name, op, &[x]))
    };
    let with_bias =
        |g: &mut GraphBuilder, name: &str, shape: [usize; 2], role: &str, bias: bool, x: NodeId| {
            let weight = tensor(&format!("{name}.weight"), &shape, role)?;
            let bias = match bias {
                true => Some(tensor(&format!("{name}.bias"), &[shape[0]], role)?),
                false => None,
            };
            let op = FloatOp::Linear { weight, bias };
            Ok::<_, ModelError>(g.add(name, op, &[x]))
        };
    let linear = |g: &mut GraphBuilder, name: &str, shape: [usize; 2], role: &str, x: NodeId| {
        with_bias(g, name, shape, role, false, x)
    };
    let projection = |g: &mut GraphBuilder, name: &str, shape: [usize; 2], role: &str, x| {
        with_bias(g, name, shape, role, variant.qkv_bias, x)
    };

    let token = g.add("token", FloatOp::Token, &[]);
    let position = g.add("position", FloatOp::Position, &[]);
    let mut x = g.add(
        "token_embd",
        FloatOp::Embed {
            table: tensor("token_embd.weight", &[v, d], "token embedding")?,
        },
        &[token],
    );
    let rotate = |g: &mut GraphBuilder, name: String, x: NodeId| {
        let op = FloatOp::Rope {
            dims: rope.dims,
            freq_base: rope.freq_base,
            pairs: variant.pairs,
        };
        g.add(name, op, &[x, position])
    };
    let slice = |g: &mut GraphBuilder, name: String, of: NodeId, index: usize| {
        let op = FloatOp::Slice {
            start: index * dh,
            len: dh,
        };
        g.add(name, op, &[of])
    };
    for b in 0..hp.n_layer {
        g.stage(Stage::Block(b));
        let p = format!("blk.{b}");
        let h = norm(&mut g, &format!("{p}.attn_norm"), "attention norm", x)?;
        let q = projection(&mut g, &format!("{p}.attn_q"), [d, d], "attention Q", h)?;
        let k = projection(
            &mut g,
            &format!("{p}.attn_k"),
            [kv_width, d],
            "attention K",
            h,
        )?;
        let v = projection(
            &mut g,
            &format!("{p}.attn_v"),
            [kv_width, d],
            "attention V",
            h,
        )?;
        let kv: Vec<(NodeId, NodeId)> = (0..hp.n_head_kv)
            .map(|kv_head| {
                let k_head = slice(&mut g, format!("{p}.attn.k.{kv_head}"), k, kv_head);
                let k_rot = rotate(&mut g, format!("{p}.attn.k_rope.{kv_head}"), k_head);
                let v_head = slice(&mut g, format!("{p}.attn.v.{kv_head}"), v, kv_head);
                (k_rot, v_head)
            })
            .collect();
        let heads: Vec<NodeId> = (0..hp.n_head)
            .map(|head| {
                let kv_head = head / hp.group();
                let q_head = slice(&mut g, format!("{p}.attn.q.{head}"), q, head);
                let q_rot = rotate(&mut g, format!("{p}.attn.q_rope.{head}"), q_head);
                let (k, v) = kv[kv_head];
                let op = FloatOp::Attention { block: b, kv_head };
                g.add(format!("{p}.attn.head.{head}"), op, &[q_rot, k, v])
            })
            .collect();
        let merged = g.add(format!("{p}.attn.heads"), FloatOp::Concat, &heads);
        let attn = linear(
            &mut g,
            &format!("{p}.attn_output"),
            [d, d],
            "attention output",
            merged,
        )?;
        x = g.add(format!("{p}.attn_residual"), FloatOp::Add, &[x, attn]);
        let h = norm(&mut g, &format!("{p}.ffn_norm"), "MLP norm", x)?;
        let gate = linear(&mut g, &format!("{p}.ffn_gate"), [ff, d], "MLP gate", h)?;
        let up = linear(&mut g, &format!("{p}.ffn_up"), [ff, d], "MLP up", h)?;
        let act = g.add(format!("{p}.ffn_silu"), FloatOp::Silu, &[gate]);
        let gated = g.add(format!("{p}.ffn_gated"), FloatOp::Mul, &[act, up]);
        let down = linear(&mut g, &format!("{p}.ffn_down"), [d, ff], "MLP down", gated)?;
        x = g.add(format!("{p}.ffn_residual"), FloatOp::Add, &[x, down]);
    }
    g.stage(Stage::Head);
    let h = norm(&mut g, "output_norm", "final norm", x)?;
    let head_name = match gguf.tensor("output.weight") {
        Some(_) => "output.weight",
        None => "token_embd.weight",
    };
    let head = FloatOp::Linear {
        weight: tensor(head_name, &[v, d], "output projection")?,
        bias: None,
    };
    let logits = g.add("output", head, &[h]);
    Ok(g.finish(Io::Tokens {
        token,
        position,
        logits,
    }))
}
