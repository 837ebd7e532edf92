#!/usr/bin/env python3
"""Independent check of zkc's float reference: llama.cpp's logits on a zkc-generated GGUF.

Generates a model with `zkc gen-model`, runs the same tokens through llama.cpp (the PyPI package
llama-cpp-python, CPU build) and through `zkc run --float --logits`, and prints the max absolute
and relative logit differences and whether the greedy tokens agree.

Setup (once; llama-cpp-python compiles llama.cpp, several minutes):
    pip install llama-cpp-python numpy
Run from the repository root:
    python3 scripts/compare_llama_cpp.py [--type f32|q8_0] [--tokens 1,2,3,...]
Not part of `cargo test`: it needs the Python package and a release build of zkc.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np


def zkc(*args):
    cmd = ["cargo", "run", "--release", "-q", "--", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--type", default="f32", choices=["f32", "q8_0"])
    ap.add_argument("--tokens", default="1,17,42,99,7,200,3,64")
    ap.add_argument("--gen-args", default="--layers 2 --d-model 64 --heads 4 --ctx 64 --vocab 256",
                    help="shape options passed to zkc gen-model")
    args = ap.parse_args()
    from llama_cpp import Llama

    tokens = [int(t) for t in args.tokens.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model.gguf")
        zkc("gen-model", "gpt2", *args.gen_args.split(), "--type", args.type, "-o", model)
        out = zkc("run", model, "--float", "--tokens", args.tokens, "--max-new", "1", "--logits")
        ours = np.array([float(x) for x in out.split("logits: ")[1].strip().split(",")])

        llm = Llama(model_path=model, n_ctx=64, logits_all=True, verbose=False, n_threads=2)
        llm.eval(tokens)
        theirs = np.array(llm.scores[len(tokens) - 1], dtype=np.float64)

    diff = np.abs(ours - theirs)
    rel = diff.max() / np.abs(theirs).max()
    print(f"type {args.type}: {len(tokens)} tokens, vocab {len(ours)}")
    print(f"max |logit difference| = {diff.max():.3e}, relative to max |logit| = {rel:.3e}")
    print(f"argmax zkc {int(ours.argmax())}, llama.cpp {int(theirs.argmax())}")
    return 0 if ours.argmax() == theirs.argmax() else 1


if __name__ == "__main__":
    sys.exit(main())
