//! The `gpt2` mapping: llama.cpp's tensor names and GPT-2's block (pre-norm attention with a
//! fused QKV projection, then a GELU MLP, each with a residual connection).

use super::graph::{FloatOp, Graph, GraphBuilder, Io, NodeId, Stage, TensorRef};
use super::{Hyperparams, ModelError};
use crate::gguf::GgufFile;

pub fn build(hp: &Hyperparams, gguf: &GgufFile) -> Result<Graph, ModelError> {
    let (d, dh, ff, v) = (hp.n_embd, hp.head_dim(), hp.n_ff, hp.n_vocab);
    let mut g = GraphBuilder::default();
    let norm =
        |g: &mut GraphBuilder, prefix: &str, role: &str, x: NodeId| -> Result<NodeId, ModelError> {
            let op = FloatOp::LayerNorm {
                weight: TensorRef::checked(gguf, &format!("{prefix}.weight"), &[d], role)?,
                bias: TensorRef::checked(gguf, &format!("{prefix}.bias"), &[d], role)?,
                eps: hp.norm_eps,
            };
            Ok(g.add(prefix, op, &[x]))
        };
    let linear = |g: &mut GraphBuilder,
                  prefix: &str,
                  out: usize,
                  inp: usize,
                  role: &str,
                  x: NodeId|
     -> Result<NodeId, ModelError> {
        let op = FloatOp::Linear {
            weight: TensorRef::checked(gguf, &format!("{prefix}.weight"), &[out, inp], role)?,
            bias: Some(TensorRef::checked(
                gguf,
                &format!("{prefix}.bias"),
                &[out],
                role,
            )?),
        };
        Ok(g.add(prefix, op, &[x]))
    };

    let token = g.add("token", FloatOp::Token, &[]);
    let position = g.add("position", FloatOp::Position, &[]);
    let tok_row = g.add(
        "token_embd",
        FloatOp::Embed {
            table: TensorRef::checked(gguf, "token_embd.weight", &[v, d], "token embedding")?,
        },
        &[token],
    );
    let pos_row = g.add(
        "position_embd",
        FloatOp::Embed {
            table: TensorRef::checked(
                gguf,
                "position_embd.weight",
                &[hp.n_ctx, d],
                "position embedding",
            )?,
        },
        &[position],
    );
    let mut x = g.add("embd", FloatOp::Add, &[tok_row, pos_row]);
    for b in 0..hp.n_layer {
        g.stage(Stage::Block(b));
        let p = format!("blk.{b}");
        let h = norm(&mut g, &format!("{p}.attn_norm"), "attention norm", x)?;
        let qkv = linear(
            &mut g,
            &format!("{p}.attn_qkv"),
            3 * d,
            d,
            "attention QKV",
            h,
        )?;
        let heads: Vec<NodeId> = (0..hp.n_head)
            .map(|head| {
                let slice = |g: &mut GraphBuilder, part: usize, what: &str| {
                    g.add(
                        format!("{p}.attn.{what}.{head}"),
                        FloatOp::Slice {
                            start: part * d + head * dh,
                            len: dh,
                        },
                        &[qkv],
                    )
                };
                let (q, k, v) = (
                    slice(&mut g, 0, "q"),
                    slice(&mut g, 1, "k"),
                    slice(&mut g, 2, "v"),
                );
                g.add(
                    format!("{p}.attn.head.{head}"),
                    FloatOp::Attention {
                        block: b,
                        kv_head: head,
                    },
                    &[q, k, v],
                )
            })
            .collect();
        let merged = g.add(format!("{p}.attn.heads"), FloatOp::Concat, &heads);
        let attn = linear(
            &mut g,
            &format!("{p}.attn_output"),
            d,
            d,
            "attention output",
            merged,
        )?;
        x = g.add(format!("{p}.attn_residual"), FloatOp::Add, &[x, attn]);
        let h = norm(&mut g, &format!("{p}.ffn_norm"), "MLP norm", x)?;
        let up = linear(&mut g, &format!("{p}.ffn_up"), ff, d, "MLP up", h)?;
        let act = g.add(format!("{p}.ffn_gelu"), FloatOp::Gelu, &[up]);
        let down = linear(&mut g, &format!("{p}.ffn_down"), d, ff, "MLP down", act)?;
        x = g.add(format!("{p}.ffn_residual"), FloatOp::Add, &[x, down]);
    }
    g.stage(Stage::Head);
    let h = norm(&mut g, "output_norm", "final norm", x)?;
    // GPT-2 ties the output projection to the token embedding when `output` is absent.
    let head_name = if gguf.tensor("output.weight").is_some() {
        "output.weight"
    } else {
        "token_embd.weight"
    };
    let head = FloatOp::Linear {
        weight: TensorRef::checked(gguf, head_name, &[v, d], "output projection")?,
        bias: None,
    };
    let logits = g.add("output", head, &[h]);
    Ok(g.finish(Io::Tokens {
        token,
        position,
        logits,
    }))
}
