#!/usr/bin/env python3
"""Trains a small GPT-2 on the Rust books and writes it as a GGUF that zkc and llama.cpp load.

The model is exactly GPT-2: learned token and position embeddings, pre-LayerNorm blocks
(eps 1e-5), fused QKV attention with a causal mask and an output projection, an MLP with the
tanh approximation of GELU, a final LayerNorm and an output head tied to the token embedding.
The vocabulary is byte level, so every byte of UTF-8 text is one token whose id is the byte's
value. The GGUF mirrors /work/shared/models/trained-gpt2-byte-tiny.gguf: the same tensor names,
shapes and types (all F32, no `output.weight`: llama.cpp and zkc tie the head to
`token_embd.weight`), the same metadata keys in the same order, and the same 258-token
tokenizer:

- ids 0..255: GPT-2's byte-to-unicode characters in byte order (id = byte value; 'Ġ' = 32),
- id 256: 'þÿ', the result of the single merge "þ ÿ". Bytes 0xFE and 0xFF never occur in UTF-8,
  so the merge never fires. It is there because llama.cpp refuses a `gpt2` tokenizer without a
  `tokenizer.ggml.merges` key ("cannot find tokenizer merges in model file"), and gguf-py can
  write no empty array (`add_array` silently drops one, the low-level writer raises),
- id 257: `<|endoftext|>` (control), bos and eos; `add_bos_token` false.

Training text: the mdBook books that ship with the Rust toolchain's documentation (MIT or
Apache-2.0), by default book, nomicon, reference and rust-by-example. Each chapter's <main> is
turned into text (scripts, styles, navigation, buttons and the hidden "boring" lines of code
examples dropped; the book's old editions and rust-by-example's translations skipped;
paragraphs on one line each, whitespace collapsed; code blocks kept line by line), in sorted
path order, exact duplicate pages dropped. Every 20th chapter (index 19, 39, ...
of the sorted list) is held out and never trained on; the reported loss is on all of it, in
bits per byte, from independent windows of `--ctx` bytes (each window from an empty context,
as `zkc run` would see it).

Setup (once, from the repository root; torch's PyPI wheel is large):
    python3 -m venv .venv-train
    .venv-train/bin/pip install torch numpy gguf
    .venv-train/bin/pip install llama-cpp-python      # only for scripts/compare_llama_cpp.py
Run:
    .venv-train/bin/python scripts/train_tiny_gpt2.py -o examples/tiny-gpt2-rust-books.gguf \\
        --heldout-out examples/heldout-rust-books.txt \\
        --calibration-out examples/calibration-rust-books.txt
The run is deterministic for a given seed and thread count (--threads, default 1). The 4x128
model of examples/README.md:
    .venv-train/bin/python scripts/train_tiny_gpt2.py --layers 4 --d-model 128 --heads 4 \
        --d-ff 512 --ctx 64 --steps 2500 --batch 32 --lr 2e-3 --weight-decay 0.1 -o OUT.gguf
Any GGUF in this layout, scored on the same held-out split (no training):
    .venv-train/bin/python scripts/train_tiny_gpt2.py --eval-gguf MODEL.gguf
"""
import argparse
import hashlib
import html
import html.parser
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DEFAULT_BOOKS = "book,nomicon,reference,rust-by-example"
# Pages of an mdBook's root that are not chapters: the whole-book page (it repeats every chapter,
# held-out ones included), the table of contents and the error page. (Only at the root:
# rust-by-example has a real chapter hello/print.html.)
ROOT_SKIP = {"print.html", "toc.html", "404.html"}
MIN_PAGE_CHARS = 400
HELDOUT_EVERY = 20

EOT = "<|endoftext|>"
N_VOCAB = 258


# ----------------------------------------------------------------------------- data

class MainText(html.parser.HTMLParser):
    """The text of an mdBook page's <main>: paragraphs on one line, code blocks line by line."""

    BLOCK = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "dl", "dt", "dd",
             "blockquote", "table", "tr", "figure", "figcaption", "section", "header", "footer",
             "br", "hr", "details", "summary", "aside", "main"}
    DROP = {"script", "style", "nav", "button", "svg", "noscript", "iframe", "template"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.in_main = 0
        self.drop = 0          # depth inside dropped elements
        self.pre = 0           # depth inside <pre>
        self.stack = []        # (tag, dropped?) for elements opened inside <main>
        self.blocks = []       # finished blocks: (is_code, text)
        self.cur = []
        self.cur_code = False

    def flush(self):
        text = "".join(self.cur)
        self.cur = []
        if self.cur_code:
            lines = [l.rstrip() for l in text.split("\n")]
            while lines and not lines[0]:
                lines.pop(0)
            while lines and not lines[-1]:
                lines.pop()
            out, blank = [], False
            for l in lines:
                if not l:
                    if not blank:
                        out.append(l)
                    blank = True
                else:
                    out.append(l)
                    blank = False
            text = "\n".join(out)
        else:
            text = " ".join(text.split())
        if text:
            self.blocks.append(text)
        self.cur_code = False

    def handle_starttag(self, tag, attrs):
        if tag == "main":
            self.in_main += 1
            return
        if not self.in_main:
            return
        if tag in ("br", "hr", "img", "input", "meta", "link", "wbr"):  # void elements
            if tag in ("br", "hr") and not self.drop:
                if self.pre:
                    self.cur.append("\n")
                else:
                    self.flush()
            return
        cls = dict(attrs).get("class") or ""
        dropped = tag in self.DROP or "boring" in cls.split() or "hidden" in cls.split()
        self.stack.append((tag, dropped))
        if dropped:
            self.drop += 1
            return
        if self.drop:
            return
        if tag == "pre":
            self.flush()
            self.pre += 1
            self.cur_code = True
        elif tag in self.BLOCK and not self.pre:
            self.flush()
        elif tag in ("td", "th"):
            self.cur.append(" ")

    def handle_endtag(self, tag):
        if tag == "main":
            if self.in_main:
                self.flush()
                self.in_main -= 1
            return
        if not self.in_main:
            return
        # Pop to the matching open tag (HTML in these pages is well formed; this tolerates
        # an unclosed <p> or <li>).
        idx = None
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                idx = i
                break
        if idx is None:
            return
        for t, dropped in reversed(self.stack[idx:]):
            if dropped:
                self.drop -= 1
            elif not self.drop:
                if t == "pre":
                    self.flush()
                    self.pre -= 1
                elif t in self.BLOCK and not self.pre:
                    self.flush()
        del self.stack[idx:]

    def handle_data(self, data):
        if self.in_main and not self.drop:
            self.cur.append(data)


def page_text(path):
    p = MainText()
    p.feed(path.read_text(encoding="utf-8", errors="replace"))
    p.close()
    return "\n".join(p.blocks)


def default_docs_dir():
    sysroot = subprocess.run(["rustc", "--print", "sysroot"], check=True, capture_output=True,
                             text=True).stdout.strip()
    return Path(sysroot) / "share" / "doc" / "rust" / "html"


def load_chapters(docs, books):
    """Sorted (relative path, text) of every chapter page of the given books."""
    chapters, seen = [], set()
    for book in books:
        root = docs / book
        if not root.is_dir():
            sys.exit(f"error: {root} is not a directory (is the rust-docs component installed?)")
        # A subdirectory with its own toc.html is another whole book inside this one: the
        # book's old editions (redirect stubs) and rust-by-example's translations (es, ja, ko,
        # zh). Only the English current edition is used.
        nested = [d.parent for d in root.rglob("toc.html") if d.parent != root]
        for path in sorted(root.rglob("*.html")):
            rel = path.relative_to(docs)
            if path.parent == root and path.name in ROOT_SKIP:
                continue
            if any(n in path.parents for n in nested):
                continue
            text = page_text(path)
            if len(text) < MIN_PAGE_CHARS:
                continue
            digest = hashlib.sha256(text.encode()).digest()
            if digest in seen:
                continue
            seen.add(digest)
            chapters.append((rel.as_posix(), text))
    chapters.sort(key=lambda c: c[0])
    return chapters


def split_chapters(chapters):
    train, held = [], []
    for i, c in enumerate(chapters):
        (held if i % HELDOUT_EVERY == HELDOUT_EVERY - 1 else train).append(c)
    return train, held


def join(chapters):
    return "\n\n".join(t for _, t in chapters) + "\n"


def line_slice(text, start, size):
    """About `size` bytes of whole lines of `text`, from the first line starting at or after
    byte `start` (valid UTF-8: cut only at newlines)."""
    data = text.encode("utf-8")
    if start > 0:
        nl = data.find(b"\n", start)
        start = 0 if nl < 0 else nl + 1
    end = data.rfind(b"\n", start, start + size)
    end = len(data) if end < 0 or start + size >= len(data) else end + 1
    return data[start:end].decode("utf-8")


# ----------------------------------------------------------------------------- model

class Block(nn.Module):
    def __init__(self, d, heads, d_ff):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=1e-5)
        self.up = nn.Linear(d, d_ff)
        self.down = nn.Linear(d_ff, d)

    def forward(self, x):
        b, t, d = x.shape
        h = self.ln1(x)
        q, k, v = self.qkv(h).split(d, dim=2)
        q = q.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        k = k.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        v = v.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # scale 1/sqrt(d_head)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self, layers, d, heads, d_ff, ctx, vocab=N_VOCAB):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(Block(d, heads, d_ff) for _ in range(layers))
        self.lnf = nn.LayerNorm(d, eps=1e-5)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() == 2:
                std = 0.02
                if name.endswith("proj.weight") or name.endswith("down.weight"):
                    std = 0.02 / math.sqrt(2 * layers)  # GPT-2's residual scaling
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        return self.lnf(x) @ self.wte.weight.T  # tied head


def windows(ids, ctx):
    """Non-overlapping (input, target) windows of `ctx` predictions each."""
    n = (len(ids) - 1) // ctx
    x = torch.from_numpy(ids[: n * ctx].reshape(n, ctx).astype(np.int64))
    y = torch.from_numpy(ids[1 : n * ctx + 1].reshape(n, ctx).astype(np.int64))
    return x, y


@torch.no_grad()
def bits_per_byte(model, x, y, batch=256):
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(x), batch):
        logits = model(x[i : i + batch])
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[i : i + batch].reshape(-1),
                                 reduction="sum").item()
        count += y[i : i + batch].numel()
    model.train()
    return total / count / math.log(2)


def unigram_bits(train_ids, held_ids):
    counts = np.bincount(train_ids, minlength=256).astype(np.float64) + 1.0
    p = counts / counts.sum()
    return float(-np.log2(p[held_ids]).mean())


# ----------------------------------------------------------------------------- GGUF

def byte_tokens():
    """GPT-2's byte-to-unicode characters, indexed by byte value."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]


def write_gguf(model, args, path, name, description):
    import gguf

    w = gguf.GGUFWriter(str(path), "gpt2")  # writes general.architecture first
    w.add_name(name)
    w.add_description(description)
    w.add_context_length(args.ctx)
    w.add_embedding_length(args.d_model)
    w.add_block_count(args.layers)
    w.add_feed_forward_length(args.d_ff)
    w.add_head_count(args.heads)
    w.add_layer_norm_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    tokens = byte_tokens() + ["þÿ", EOT]
    assert len(tokens) == N_VOCAB
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.NORMAL] * 257 + [gguf.TokenType.CONTROL])
    w.add_token_merges(["þ ÿ"])
    w.add_bos_token_id(N_VOCAB - 1)
    w.add_eos_token_id(N_VOCAB - 1)
    w.add_add_bos_token(False)

    def t(name, p):
        w.add_tensor(name, p.detach().cpu().numpy().astype(np.float32))

    t("token_embd.weight", model.wte.weight)
    t("position_embd.weight", model.wpe.weight)
    for i, b in enumerate(model.blocks):
        t(f"blk.{i}.attn_norm.weight", b.ln1.weight)
        t(f"blk.{i}.attn_norm.bias", b.ln1.bias)
        t(f"blk.{i}.attn_qkv.weight", b.qkv.weight)  # [3d, d]: rows q, k, v; ggml ne = [d, 3d]
        t(f"blk.{i}.attn_qkv.bias", b.qkv.bias)
        t(f"blk.{i}.attn_output.weight", b.proj.weight)
        t(f"blk.{i}.attn_output.bias", b.proj.bias)
        t(f"blk.{i}.ffn_norm.weight", b.ln2.weight)
        t(f"blk.{i}.ffn_norm.bias", b.ln2.bias)
        t(f"blk.{i}.ffn_up.weight", b.up.weight)
        t(f"blk.{i}.ffn_up.bias", b.up.bias)
        t(f"blk.{i}.ffn_down.weight", b.down.weight)
        t(f"blk.{i}.ffn_down.bias", b.down.bias)
    t("output_norm.weight", model.lnf.weight)
    t("output_norm.bias", model.lnf.bias)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def read_gguf(path):
    """A GPT2 with the weights of a GGUF written in this layout (for --eval-gguf)."""
    from gguf import GGUFReader

    r = GGUFReader(str(path))

    def u32(key):
        f = r.fields[key]
        return int(f.parts[f.data[0]][0])

    layers, d = u32("gpt2.block_count"), u32("gpt2.embedding_length")
    model = GPT2(layers, d, u32("gpt2.attention.head_count"), u32("gpt2.feed_forward_length"),
                 u32("gpt2.context_length"))
    tensors = {t.name: torch.from_numpy(np.array(t.data, dtype=np.float32)) for t in r.tensors}
    names = {"wte.weight": "token_embd.weight", "wpe.weight": "position_embd.weight",
             "lnf.weight": "output_norm.weight", "lnf.bias": "output_norm.bias"}
    parts = {"ln1": "attn_norm", "qkv": "attn_qkv", "proj": "attn_output", "ln2": "ffn_norm",
             "up": "ffn_up", "down": "ffn_down"}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("blocks."):
                _, i, part, kind = name.split(".")
                gname = f"blk.{i}.{parts[part]}.{kind}"
            else:
                gname = names[name]
            p.copy_(tensors[gname].reshape(p.shape))
    return model


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("docs", nargs="?", type=Path,
                    help="the toolchain's HTML docs (default: $(rustc --print sysroot)/share/doc/rust/html)")
    ap.add_argument("--books", default=DEFAULT_BOOKS, help=f"comma-separated (default {DEFAULT_BOOKS})")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--d-ff", type=int, help="default 4 * d-model")
    ap.add_argument("--ctx", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (cosine decay to 10%%)")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=1.0, help="gradient norm clip")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (2 is faster on an idle machine; 1 wastes nothing "
                         "when the cores are shared)")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--name", help="general.name (default: the output's stem)")
    ap.add_argument("-o", "--out", type=Path, help="the GGUF to write")
    ap.add_argument("--eval-gguf", type=Path,
                    help="instead of training: this GGUF's loss on the held-out split")
    ap.add_argument("--heldout-out", type=Path, help="write a slice of the held-out text (UTF-8)")
    ap.add_argument("--heldout-bytes", type=int, default=24 * 1024,
                    help="size of that slice; 0 writes the whole held-out split")
    ap.add_argument("--calibration-out", type=Path, help="write a slice of the training text")
    ap.add_argument("--calibration-bytes", type=int, default=8 * 1024)
    ap.add_argument("--dump-text", type=Path, help="also write the whole train/held-out texts to DIR")
    args = ap.parse_args()
    args.d_ff = args.d_ff or 4 * args.d_model
    if not args.out and not args.eval_gguf:
        ap.error("-o OUT.gguf is required (or --eval-gguf FILE)")
    if args.d_model % args.heads:
        sys.exit("error: --d-model must be a multiple of --heads")

    command = "python3 scripts/train_tiny_gpt2.py " + shlex.join(sys.argv[1:])
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)

    docs = args.docs or default_docs_dir()
    books = [b for b in args.books.split(",") if b]
    t0 = time.time()
    chapters = load_chapters(docs, books)
    train_ch, held_ch = split_chapters(chapters)
    train_text, held_text = join(train_ch), join(held_ch)
    train_ids = np.frombuffer(train_text.encode("utf-8"), dtype=np.uint8)
    held_ids = np.frombuffer(held_text.encode("utf-8"), dtype=np.uint8)
    print(f"data: {docs} books {','.join(books)}: {len(chapters)} chapters, "
          f"train {len(train_ch)} ({len(train_ids):,} bytes), held out {len(held_ch)} "
          f"({len(held_ids):,} bytes), {time.time() - t0:.1f}s", flush=True)
    print("held out: " + ", ".join(c[0] for c in held_ch), flush=True)

    if args.dump_text:
        args.dump_text.mkdir(parents=True, exist_ok=True)
        (args.dump_text / "train.txt").write_text(train_text, encoding="utf-8")
        (args.dump_text / "heldout.txt").write_text(held_text, encoding="utf-8")
    if args.heldout_out:
        size = args.heldout_bytes or len(held_ids)
        args.heldout_out.write_text(line_slice(held_text, 0, size), encoding="utf-8")
    if args.calibration_out:
        # From the middle of the training text, whole lines.
        args.calibration_out.write_text(
            line_slice(train_text, len(train_ids) // 2, args.calibration_bytes), encoding="utf-8")

    uni = unigram_bits(train_ids, held_ids)
    if args.eval_gguf:
        model = read_gguf(args.eval_gguf)
        ctx = model.wpe.weight.shape[0]
        hx, hy = windows(held_ids, ctx)
        print(f"{args.eval_gguf}: held out {bits_per_byte(model, hx, hy):.4f} bits/byte over "
              f"{hy.numel():,} bytes ({len(hx)} windows of {ctx}); unigram {uni:.3f}")
        return
    hx, hy = windows(held_ids, args.ctx)

    model = GPT2(args.layers, args.d_model, args.heads, args.d_ff, args.ctx)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {args.layers} blocks, d {args.d_model}, {args.heads} heads, d_ff {args.d_ff}, "
          f"ctx {args.ctx}: {n_params:,} parameters; unigram {uni:.3f} bits/byte", flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        frac = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    rng = np.random.default_rng(args.seed)
    offsets = np.arange(args.ctx + 1)
    t0 = time.time()
    running = None
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        starts = rng.integers(0, len(train_ids) - args.ctx - 1, size=args.batch)
        chunk = torch.from_numpy(train_ids[starts[:, None] + offsets].astype(np.int64))
        logits = model(chunk[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        bits = loss.item() / math.log(2)
        running = bits if running is None else 0.98 * running + 0.02 * bits
        if (step + 1) % args.eval_every == 0 and step + 1 < args.steps:
            n = min(len(hx), 512)  # a fixed prefix of the held-out windows, for speed
            print(f"step {step + 1}: train {running:.3f} bits/byte, held out (first {n} windows) "
                  f"{bits_per_byte(model, hx[:n], hy[:n]):.3f}, lr {lr_at(step):.2e}, "
                  f"{time.time() - t0:.0f}s", flush=True)
    train_time = time.time() - t0
    held = bits_per_byte(model, hx, hy)
    print(f"done: {args.steps} steps in {train_time:.0f}s; train (running) {running:.3f} bits/byte; "
          f"held out {held:.4f} bits/byte over {hy.numel():,} bytes ({len(hx)} windows of {args.ctx})",
          flush=True)

    name = args.name or args.out.stem
    description = (
        f"GPT-2 architecture, {args.layers} layers, n_embd {args.d_model}, {args.heads} heads, "
        f"n_ff {args.d_ff}, ctx {args.ctx}, tied head, byte-level vocab {N_VOCAB}, F32; "
        f"trained with PyTorch on the Rust toolchain's books ({','.join(books)}; MIT/Apache-2.0), "
        f"every {HELDOUT_EVERY}th chapter held out; held-out {held:.3f} bits/byte "
        f"(unigram {uni:.3f}); {args.steps} steps of {args.batch}x{args.ctx} bytes; "
        f"command: {command}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_gguf(model, args, args.out, name, description)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes): {description}")


if __name__ == "__main__":
    main()
