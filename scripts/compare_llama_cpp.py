#!/usr/bin/env python3
"""Independent checks of zkc against llama.cpp (the PyPI package llama-cpp-python, CPU build).

Default mode: generates a model with `zkc gen-model ARCH` (`--arch gpt2` or `llama`; a llama
model has grouped-query attention, RoPE, RMSNorm and the SiLU-gated MLP), or takes `--file
FILE.gguf` (e.g. ../shared/models/llama-2-tiny-random.gguf), runs the same tokens through
llama.cpp and through `zkc run --float --logits`, and prints the max absolute and relative logit
differences and whether the greedy tokens agree.

Greedy mode (`--model FILE.gguf --prompt TEXT --greedy N`, --prompt repeatable): for each prompt,
llama.cpp generates N tokens greedily (argmax of the logits, no sampling, F32 KV cache, n_ctx =
the model's context, flash attention off, BOS added when the vocabulary asks for it, never
stopping early), and so do zkc's
float reference (`zkc run MODEL --float --prompt TEXT --max-new N`) and zkc's integer model
(`zkc run MODEL --prompt TEXT --max-new N`). It prints the three token sequences and texts, the
first position where each of zkc's differs from llama.cpp's (with llama.cpp's logit margin there,
to tell near ties from real errors), and exits 1 if any prompt's integer tokens differ from
llama.cpp's (2 if a prompt tokenizes differently). llama.cpp rounds n_ctx up to 256 and warns
"n_ctx_seq (256) > n_ctx_train (64)": harmless, since no position goes past the model's context.

Setup (once; llama-cpp-python compiles llama.cpp, 10+ minutes on 2 cores):
    pip install llama-cpp-python numpy
    (or use the venv of scripts/train_tiny_gpt2.py: .venv-train/bin/python)
Run from the repository root:
    python3 scripts/compare_llama_cpp.py [--arch gpt2|llama] [--type f32|q8_0] [--tokens 1,2,3,...]
    python3 scripts/compare_llama_cpp.py --file ../shared/models/llama-2-tiny-random.gguf
    python3 scripts/compare_llama_cpp.py --model examples/tiny-gpt2-rust-books.gguf \\
        --prompt "The compiler" --prompt "A reference" --greedy 32 [--zkc target/release/zkc]
`--zkc PATH` runs that binary instead of `cargo run --release -q --`; `--int-args "..."` passes
options to the integer run only (e.g. "--calibrate examples/calibration-rust-books.txt").
Not part of `cargo test`: it needs the Python package and a release build of zkc.
"""
import argparse
import os
import shlex
import subprocess
import sys
import tempfile

import numpy as np

ZKC = ["cargo", "run", "--release", "-q", "--"]


def zkc(*args):
    cmd = [*ZKC, *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"error: {shlex.join(cmd)} exited {r.returncode}:\n{r.stderr}")
    return r.stdout


def parse_run(out):
    """(prompt ids, generated ids, text line) from `zkc run` output."""
    fields = {}
    for line in out.splitlines():
        key, sep, rest = line.partition(": ")
        if sep and key in ("prompt", "generated", "text"):
            fields[key] = rest.strip()
    ids = lambda s: [int(t) for t in s.split(",") if t.strip()] if s else []
    return ids(fields.get("prompt", "")), ids(fields.get("generated", "")), fields.get("text", "")


def detok(llm, ids):
    return llm.detokenize(ids).decode("utf-8", errors="replace")


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def llama_greedy(llm, prompt_ids, n):
    llm.reset()
    llm.eval(prompt_ids)
    out, steps = [], []
    for _ in range(n):
        logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
        tok = int(logits.argmax())
        out.append(tok)
        steps.append(logits)
        llm.eval([tok])
    return out, steps


def greedy_mode(args):
    from llama_cpp import Llama

    if not os.path.isfile(args.model):
        sys.exit(f"error: no such file: {args.model}")
    n_ctx = args.n_ctx or model_context(args.model)
    kw = dict(model_path=args.model, n_ctx=n_ctx, n_batch=n_ctx, logits_all=True, verbose=False,
              n_threads=args.threads, type_k=0, type_v=0)  # 0 = GGML_TYPE_F32
    try:
        llm = Llama(**kw, flash_attn=False)
    except TypeError:
        llm = Llama(**kw)
    int_args = shlex.split(args.int_args)
    print(f"model {args.model}: n_ctx {n_ctx}, greedy {args.greedy} tokens per prompt")
    worst = 0
    same = {"zkc float": 0, "zkc integer": 0}
    for prompt in args.prompt:
        # As zkc's --prompt: with BOS when the vocabulary asks for it (llama's SentencePiece).
        ids = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
        if len(ids) + args.greedy > n_ctx:
            sys.exit(f"error: prompt {prompt!r} ({len(ids)} tokens) + {args.greedy} exceeds n_ctx {n_ctx}")
        ref, ref_logits = llama_greedy(llm, ids, args.greedy)
        fp, fgen, _ = parse_run(zkc("run", args.model, "--float", "--prompt", prompt,
                                    "--max-new", str(args.greedy)))
        ip, igen, _ = parse_run(zkc("run", args.model, "--prompt", prompt,
                                    "--max-new", str(args.greedy), *int_args))
        print(f"\nprompt {prompt!r}: {len(ids)} tokens {ids if len(ids) <= 16 else ids[:16] + ['...']}")
        if fp != ids or ip != ids:
            print(f"  TOKENIZATION DIFFERS: llama.cpp {ids}, zkc float {fp}, zkc integer {ip}")
            worst = max(worst, 2)
        for label, gen in (("llama.cpp", ref), ("zkc float", fgen), ("zkc integer", igen)):
            verdict = ""
            if label != "llama.cpp":
                d = first_diff(gen, ref)
                if d is None:
                    verdict = "  == llama.cpp"
                    same[label] += 1
                else:
                    verdict = f"  DIFFERS from position {d}"
                    if d < len(gen) and d < len(ref):
                        # How close llama.cpp's own choice was there (same context up to d).
                        lg = ref_logits[d]
                        verdict += (f" (llama.cpp logit margin of its token {ref[d]} over zkc's "
                                    f"{gen[d]}: {lg[ref[d]] - lg[gen[d]]:.3f})")
            print(f"  {label:12} {detok(llm, gen)!r}{verdict}")
            print(f"  {'':12} {','.join(map(str, gen))}")
        if first_diff(igen, ref) is not None:
            worst = max(worst, 1)
    n = len(args.prompt)
    print(f"\nsummary: greedy {args.greedy} tokens, {n} prompts: zkc float == llama.cpp on "
          f"{same['zkc float']}/{n}, zkc integer == llama.cpp on {same['zkc integer']}/{n}")
    return worst


def model_context(path):
    """gpt2.context_length (or <arch>.context_length) from the GGUF's metadata."""
    try:
        from gguf import GGUFReader
    except ImportError:
        out = zkc("inspect", path)
        return int(out.split("n_ctx=")[1].split()[0])
    r = GGUFReader(path)
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    f = r.fields[f"{arch}.context_length"]
    return int(f.parts[f.data[0]][0])


def llama_cpp_version():
    import llama_cpp
    return f"(llama-cpp-python {llama_cpp.__version__})"


def main():
    global ZKC
    ap = argparse.ArgumentParser()
    ap.add_argument("--zkc", help="the zkc binary (default: cargo run --release -q --)")
    ap.add_argument("--model", help="greedy mode: this GGUF")
    ap.add_argument("--prompt", action="append", help="greedy mode: a prompt (repeatable)")
    ap.add_argument("--greedy", type=int, help="greedy mode: tokens to generate per prompt")
    ap.add_argument("--int-args", default="", help="greedy mode: extra options of the integer run")
    ap.add_argument("--n-ctx", type=int, help="greedy mode: llama.cpp's n_ctx (default: the model's)")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    ap.add_argument("--type", default="f32", choices=["f32", "q8_0"])
    ap.add_argument("--tokens", default="1,17,42,99,7,200,3,64")
    ap.add_argument("--arch", default="gpt2", choices=["gpt2", "llama", "qwen2"],
                    help="the architecture zkc gen-model makes")
    ap.add_argument("--gen-args", help="shape options passed to zkc gen-model (default for gpt2: "
                    "--layers 2 --d-model 64 --heads 4 --ctx 64 --vocab 256; for llama: its tiny "
                    "preset, 4 query heads over 2 key/value heads)")
    ap.add_argument("--file", help="compare on this GGUF instead of a generated one")
    ap.add_argument("--record", help="also write llama.cpp's tokens and logits to this file "
                    "(the fixtures of tests/tests/llama.rs)")
    args = ap.parse_args()
    if args.zkc:
        ZKC = [args.zkc]
    if args.model or args.prompt or args.greedy is not None:
        if not (args.model and args.prompt and args.greedy):
            ap.error("greedy mode needs --model, at least one --prompt and --greedy N")
        return greedy_mode(args)
    from llama_cpp import Llama

    tokens = [int(t) for t in args.tokens.split(",")]
    defaults = {"gpt2": "--layers 2 --d-model 64 --heads 4 --ctx 64 --vocab 256", "llama": "",
                "qwen2": ""}
    gen_args = (args.gen_args if args.gen_args is not None else defaults[args.arch]).split()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.file or os.path.join(tmp, "model.gguf")
        if not args.file:
            zkc("gen-model", args.arch, *gen_args, "--type", args.type, "-o", model)
        out = zkc("run", model, "--float", "--tokens", args.tokens, "--max-new", "1", "--logits")
        ours = np.array([float(x) for x in out.split("logits: ")[1].strip().split(",")])

        n_ctx = min(model_context(model), 256)
        llm = Llama(model_path=model, n_ctx=n_ctx, logits_all=True, verbose=False, n_threads=2,
                    type_k=0, type_v=0)  # 0 = GGML_TYPE_F32
        llm.eval(tokens)
        theirs = np.array(llm.scores[len(tokens) - 1], dtype=np.float64)

    if args.record:
        with open(args.record, "w") as f:
            source = args.file or f"zkc gen-model {args.arch} {' '.join(gen_args) or '(tiny preset)'}"
            f.write(f"# llama.cpp {llama_cpp_version()}, {source}, type {args.type}\n")
            f.write(f"tokens: {','.join(map(str, tokens))}\n")
            f.write(f"logits: {','.join(f'{float(x):.8g}' for x in theirs)}\n")
    diff = np.abs(ours - theirs)
    rel = diff.max() / np.abs(theirs).max()
    what = args.file or f"{args.arch} {' '.join(gen_args)} type {args.type}"
    print(f"{what}: {len(tokens)} tokens, vocab {len(ours)}")
    print(f"max |logit difference| = {diff.max():.3e}, relative to max |logit| = {rel:.3e}")
    print(f"argmax zkc {int(ours.argmax())}, llama.cpp {int(theirs.argmax())}")
    return 0 if ours.argmax() == theirs.argmax() else 1


if __name__ == "__main__":
    sys.exit(main())
