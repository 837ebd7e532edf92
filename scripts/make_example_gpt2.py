#!/usr/bin/env python3
"""Writes examples/gpt2_block.zkir: a hand-written GPT-2 (d=8, 2 heads, d_ff=32, vocab 16,
context 4) whose layer bodies are below as text; only the constant tables are random (seeded).

Usage: python3 scripts/make_example_gpt2.py > examples/gpt2_block.zkir
"""
import random

rng = random.Random(2026)


def ints(n, lo, hi):
    return "[" + ", ".join(str(rng.randint(lo, hi)) for _ in range(n)) + "]"


D, H, DH, F, V, C = 8, 2, 4, 32, 16, 4
GELU_COEF = "[-148721, -12793, -166, -18, -1318300, -84977, -1700, -62, -7807137, -391911, -7819, -123, -32403255, -1266388, -20938, -96, -97538061, -2861514, -32275, 196, -215715466, -4249531, -13434, 743, -341036239, -2783143, 62999, 1046, -331251287, 4394891, 169389, 528, 81386, 16715051, 218705, -499, 742426256, 29093938, 163302, -1044, 1806401469, 36371182, 58674, -760, 3005516532, 37870751, -12792, -210, 4197453576, 36453818, -29976, 92, 5336319151, 34825625, -19696, 124, 6434644951, 33939142, -7719, 64, 7514871950, 33633810, -1939, 19]"
consts = [
    ("wte", f"i16[{V}, {D}] * 2^-8", ints(V * D, -200, 200)),
    ("wpe", f"i16[{C}, {D}] * 2^-8", ints(C * D, -50, 50)),
    ("blk.0.ln1.g", f"i8[{D}] * 2^-5", ints(D, 28, 36)),
    ("blk.0.ln1.b", f"i8[{D}] * 2^-5", ints(D, -4, 4)),
    ("blk.0.attn.w", f"i8[{D}, {3 * D}] * 2^-7", ints(D * 3 * D, -40, 40)),
    ("blk.0.attn.b", f"i32[{3 * D}] * 2^-12", ints(3 * D, -64, 64)),
    ("blk.0.proj.w", f"i8[{D}, {D}] * 2^-7", ints(D * D, -40, 40)),
    ("blk.0.proj.b", f"i32[{D}] * 2^-11", ints(D, -16, 16)),
    ("blk.0.ln2.g", f"i8[{D}] * 2^-5", ints(D, 28, 36)),
    ("blk.0.ln2.b", f"i8[{D}] * 2^-5", ints(D, -4, 4)),
    ("blk.0.fc.w", f"i8[{D}, {F}] * 2^-7", ints(D * F, -40, 40)),
    ("blk.0.fc.b", f"i32[{F}] * 2^-12", ints(F, -64, 64)),
    ("blk.0.fc.mult", f"i32[{F}]", ints(F, 3800, 4400)),
    # Not random: zkc's GELU fit for inputs at 2^-6 and results at 2^-4
    # (compiler/src/quantize/gelu.rs, fit(6, 16, 4)).
    ("blk.0.gelu.coef", "i64[16, 4]", GELU_COEF),
    ("blk.0.proj2.w", f"i8[{F}, {D}] * 2^-7", ints(F * D, -30, 30)),
    ("blk.0.proj2.b", f"i32[{D}] * 2^-11", ints(D, -16, 16)),
    ("lnf.g", f"i8[{D}] * 2^-5", ints(D, 28, 36)),
    ("lnf.b", f"i8[{D}] * 2^-5", ints(D, -4, 4)),
    ("lm_head.w", f"i8[{D}, {V}] * 2^-7", ints(D * V, -60, 60)),
]

print("""; A GPT-2 with one block, small enough to read: d=8, 2 heads of 4, d_ff=32, vocab 16,
; context 4. Written by hand (scripts/make_example_gpt2.py fills in the random constants).
; It follows the model interface of docs/quantization.md, so `zkc run` runs it:
;   zkc run examples/gpt2_block.zkir --tokens 1,2 --max-new 2
; Residual stream i16 * 2^-8; attention and MLP internals i8.
zkir 1
""")
for name, ty, data in consts:
    print(f"const @{name}: {ty} = {data}")

print("""
; The embedding stage: token and position rows from the Merkle-committed tables.
layer embed(%token: i32[], %pos: i32[]) {
  %te = gather @wte, %token : i16[1, 8] * 2^-8
  %pe = gather @wpe, %pos : i16[1, 8] * 2^-8
  %embd = add %te, %pe : i16[1, 8] * 2^-8
  return %embd
}

; One transformer block, one token per step; K and V of earlier steps live in the cache.
layer block.0(%embd: i16[1, 8] * 2^-8, %pos: i32[]) {
  state %k_cache: i8[4, 8] * 2^-4
  state %v_cache: i8[4, 8] * 2^-4
  ; attention
  %h = layernorm %embd, @blk.0.ln1.g, @blk.0.ln1.b, eps=1, shift=0 : i8[1, 8] * 2^-5
  %qkv.acc = linear %h, @blk.0.attn.w, @blk.0.attn.b : i32[1, 24] * 2^-12
  %qkv = requant %qkv.acc, mult=1, shift=8 : i8[1, 24] * 2^-4
  %q, %k, %v = split %qkv, axis=1 : i8[1, 8] * 2^-4, i8[1, 8] * 2^-4, i8[1, 8] * 2^-4
  %keys = kv_append %k_cache, %k, %pos : i8[4, 8] * 2^-4
  %values = kv_append %v_cache, %v, %pos : i8[4, 8] * 2^-4
  %q.r = reshape %q, shape=[1, 2, 4] : i8[1, 2, 4] * 2^-4
  %q.h = transpose %q.r, perm=[1, 0, 2] : i8[2, 1, 4] * 2^-4
  %k.r = reshape %keys, shape=[4, 2, 4] : i8[4, 2, 4] * 2^-4
  %k.t = transpose %k.r, perm=[1, 2, 0] : i8[2, 4, 4] * 2^-4
  %scores = matmul %q.h, %k.t : i32[2, 1, 4] * 2^-8
  ; 1/sqrt(4) is folded into the exp constants: they treat scores as scale 2^-9
  %probs = softmax %scores, %pos, ln2=354, b=692, c=251539, shift=8 : i16[2, 1, 4] * 2^-8
  %v.r = reshape %values, shape=[4, 2, 4] : i8[4, 2, 4] * 2^-4
  %v.h = transpose %v.r, perm=[1, 0, 2] : i8[2, 4, 4] * 2^-4
  %heads = matmul %probs, %v.h : i32[2, 1, 4] * 2^-12
  %head.0, %head.1 = split %heads, axis=0 : i32[1, 1, 4] * 2^-12, i32[1, 1, 4] * 2^-12
  %merged = concat %head.0, %head.1, axis=2 : i32[1, 1, 8] * 2^-12
  %attn.in.acc = reshape %merged, shape=[1, 8] : i32[1, 8] * 2^-12
  %attn.in = requant %attn.in.acc, mult=1, shift=8 : i8[1, 8] * 2^-4
  %attn.acc = linear %attn.in, @blk.0.proj.w, @blk.0.proj.b : i32[1, 8] * 2^-11
  %attn = requant %attn.acc, mult=1, shift=3 : i16[1, 8] * 2^-8
  %x1 = add %embd, %attn : i16[1, 8] * 2^-8
  ; MLP
  %h2 = layernorm %x1, @blk.0.ln2.g, @blk.0.ln2.b, eps=1, shift=0 : i8[1, 8] * 2^-5
  %up.acc = linear %h2, @blk.0.fc.w, @blk.0.fc.b : i32[1, 32] * 2^-12
  ; per-channel multipliers (about 2^12 each) bring the accumulator to scale 2^-6
  %up = requant %up.acc, mult=@blk.0.fc.mult, shift=18 : i16[1, 32] * 2^-6
  ; GELU from 2^-6 straight to 2^-4: cubics on 16 segments of 0.5 over [-4, 4) (bound 8 =
  ; 4 / 2^-6, width 5 = 0.5 / 2^-6), x above, 0 below; the polynomial at 2^-31 (tail 31 - 6,
  ; shift 31 - 4). @blk.0.gelu.coef is zkc's fit (compiler/src/quantize/gelu.rs) for these scales.
  %act = gelu %up, @blk.0.gelu.coef, bound=8, width=5, tail=25, shift=27 : i8[1, 32] * 2^-4
  %act.c = clamp %act, lo=-127, hi=127 : i8[1, 32] * 2^-4
  %down.acc = linear %act.c, @blk.0.proj2.w, @blk.0.proj2.b : i32[1, 8] * 2^-11
  %down = requant %down.acc, mult=1, shift=3 : i16[1, 8] * 2^-8
  %blk.0.out = add %x1, %down : i16[1, 8] * 2^-8
  return %blk.0.out
}

; Final norm, logits over the vocabulary, and the greedy choice (lowest index on ties).
layer head(%blk.0.out: i16[1, 8] * 2^-8) {
  %h = layernorm %blk.0.out, @lnf.g, @lnf.b, eps=1, shift=0 : i8[1, 8] * 2^-5
  %logits = linear %h, @lm_head.w : i32[1, 16] * 2^-12
  %best = argmax %logits : i32[1]
  %token = reshape %best, shape=[] : i32[]
  return %token
}""")
