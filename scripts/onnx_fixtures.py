#!/usr/bin/env python3
"""Writes the ONNX test fixtures in tests/fixtures/onnx/: four small PyTorch models exported with
the TorchScript exporter (`torch.onnx.export(..., opset_version=17, dynamo=False)`, fixed input
shapes, constant folding), an input, onnxruntime's output on it and a calibration set for each,
and README.md (versions, each graph's op types, node and parameter counts).

Run it through scripts/onnx_fixtures.sh, which makes the pinned venv (target/onnx-venv). Every
random draw is seeded, so a rerun with the same versions writes byte-identical files.

Files, for each model NAME in mlp, convnet, gpt2_block, decomposed:

  NAME.onnx              the model (opset 17, float32, one input "input", one output "output").
  NAME.input.json        one input, in EZKL's data format:
                             {"input_data": [[x0, x1, ...]]}
                         "input_data" holds one list per model input (these models have one);
                         each list is the input tensor flattened in row-major (C) order. The
                         numbers are float32 values written as the decimal that round-trips
                         (reading them as f32 gives the exact tensor that was fed to the model).
  NAME.output.json       onnxruntime's output on that input:
                             {"output_data": [[y0, y1, ...]], "shape": [..],
                              "onnxruntime": "<version>"}
                         "output_data" is one row-major list per model output, "shape" the shape
                         of the (only) output.
  NAME.calibration.json  16 more inputs (drawn the same way as the input, after it), in EZKL's
                         data format for `calibrate_settings`:
                             {"input_data": [[sample 1 ..., sample 2 ..., ..., sample 16 ...]]}
                         i.e. still ONE list per model input, holding the 16 flattened samples
                         one after another (16 * numel(input) numbers). This is what EZKL reads:
                         its calibrate splits each input's list into chunks of numel(input shape)
                         numbers (GraphData::split_into_batches) and runs the model on each chunk
                         as one calibration sample; a list whose length is not a multiple of
                         numel is rejected. (A list per sample, [[s1], [s2], ...], would instead
                         be read as 16 different model inputs.) A reader gets the number of
                         samples as len(input_data[0]) / numel(input shape) and sample i as the
                         slice [i * numel, (i + 1) * numel) of input_data[0].
                         Checked with ezkl 23.0.5: 16 concatenated samples calibrate differently
                         from the first alone (all are used); 53 numbers for a [1, 16] input are
                         rejected ("calibration data length (=53) must be evenly divisible by the
                         original input_size(=16)"); and 16 lists of one sample each calibrate
                         exactly as the first sample alone (the other lists are ignored).

Usage: scripts/onnx_fixtures.sh   (or: target/onnx-venv/bin/python scripts/onnx_fixtures.py [OUTDIR])
"""
import json
import math
import os
import platform
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn

OPSET = 17
CALIBRATION_SAMPLES = 16
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "tests", "fixtures", "onnx")


# --- the models -------------------------------------------------------------------------------


class Mlp(nn.Module):
    """[1, 16] -> Linear(16,32) -> ReLU -> Linear(32,32) -> ReLU -> Linear(32,4)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)
        )

    def forward(self, x):
        return self.net(x)


class ConvNet(nn.Module):
    """[1, 1, 8, 8] -> Conv2d(1,4,3,padding=1) -> ReLU -> AvgPool2d(2) -> Flatten -> Linear(64,10)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.AvgPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.relu(self.conv(x)))))


SEQ, D_MODEL, N_HEAD, D_HEAD, D_FF = 8, 32, 2, 16, 128


class Gpt2Block(nn.Module):
    """One GPT-2 pre-norm block on [1, 8, 32]: x + attn(ln_1(x)), then + mlp(ln_2(.)).

    Attention: one Linear(32, 96) for q, k, v; split; heads (2 of 16); q @ k^T times 1/sqrt(16);
    plus a causal mask (a constant buffer: 0 on and below the diagonal, -10000.0 above);
    softmax over the last axis; @ v; heads merged; Linear(32, 32). MLP: Linear(32, 128) ->
    GELU(approximate='tanh') -> Linear(128, 32). Shapes are Python constants, so the exported
    graph has no Shape/Gather arithmetic.
    """

    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(D_MODEL)
        self.c_attn = nn.Linear(D_MODEL, 3 * D_MODEL)
        self.c_proj = nn.Linear(D_MODEL, D_MODEL)
        self.ln_2 = nn.LayerNorm(D_MODEL)
        self.c_fc = nn.Linear(D_MODEL, D_FF)
        self.gelu = nn.GELU(approximate="tanh")
        self.mlp_proj = nn.Linear(D_FF, D_MODEL)
        above = torch.triu(torch.ones(SEQ, SEQ, dtype=torch.bool), diagonal=1)
        # +0.0 on and below the diagonal (not the -0.0 of (1 - tril) * -10000), -10000.0 above
        self.register_buffer("mask", torch.zeros(SEQ, SEQ).masked_fill(above, -10000.0))
        self.scale = 1.0 / math.sqrt(D_HEAD)

    def attn(self, h):
        q, k, v = self.c_attn(h).split(D_MODEL, dim=-1)
        q = q.reshape(1, SEQ, N_HEAD, D_HEAD).transpose(1, 2)  # [1, H, T, Dh]
        k = k.reshape(1, SEQ, N_HEAD, D_HEAD).transpose(1, 2)
        v = v.reshape(1, SEQ, N_HEAD, D_HEAD).transpose(1, 2)
        scores = (q @ k.transpose(-2, -1)) * self.scale  # [1, H, T, T]
        scores = scores + self.mask
        probs = torch.softmax(scores, dim=-1)
        y = (probs @ v).transpose(1, 2).reshape(1, SEQ, D_MODEL)
        return self.c_proj(y)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp_proj(self.gelu(self.c_fc(self.ln_2(x))))


class Decomposed(nn.Module):
    """[1, 16] -> Linear(16,32) -> LayerNorm written out in elementary ops -> exact GELU -> Linear(32,8)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.w = nn.Parameter(torch.ones(32))
        self.b = nn.Parameter(torch.zeros(32))
        self.gelu = nn.GELU()
        self.fc2 = nn.Linear(32, 8)

    def forward(self, x):
        x = self.fc1(x)
        mean = x.mean(-1, keepdim=True)
        d = x - mean
        var = (d**2).mean(-1, keepdim=True)
        x = d / torch.sqrt(var + 1e-5) * self.w + self.b
        return self.fc2(self.gelu(x))


def perturb_norms(model, gen):
    """LayerNorm gains/biases start at 1/0, which would hide a wrong gain or bias: move them a
    little (gain 1 + 0.1 N(0,1), bias 0.1 N(0,1))."""
    pairs = [(m.weight, m.bias) for m in model.modules() if isinstance(m, nn.LayerNorm)]
    if isinstance(model, Decomposed):
        pairs.append((model.w, model.b))
    with torch.no_grad():
        for gain, bias in pairs:
            gain.copy_(1.0 + 0.1 * torch.randn(gain.shape, generator=gen))
            bias.copy_(0.1 * torch.randn(bias.shape, generator=gen))


def normal_input(shape, gen):
    return torch.randn(shape, generator=gen)


def image_input(shape, gen):
    return torch.rand(shape, generator=gen)  # an 8x8 "image" in [0, 1)


# name, constructor, input shape, input sampler, seed
MODELS = [
    ("mlp", Mlp, [1, 16], normal_input, 1001),
    ("convnet", ConvNet, [1, 1, 8, 8], image_input, 1002),
    ("gpt2_block", Gpt2Block, [1, SEQ, D_MODEL], normal_input, 1003),
    ("decomposed", Decomposed, [1, 16], normal_input, 1004),
]


# --- writing ------------------------------------------------------------------------------------


def flat(t):
    """Row-major float32 values as Python floats (exact: every f32 is a double)."""
    return [float(v) for v in np.asarray(t, dtype=np.float32).reshape(-1)]


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)
        f.write("\n")


def normalize_model(path):
    """Drop the fields that vary with the build of torch rather than with the model (the
    producer version carries e.g. a "+cu132" tag, doc strings may carry source locations), so
    the file depends only on the model and the exporter's logic."""
    m = onnx.load(path)
    m.producer_name = "pytorch"
    m.producer_version = torch.__version__.split("+")[0]
    m.doc_string = ""
    m.graph.doc_string = ""
    for n in m.graph.node:
        n.doc_string = ""
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)
    return m


def fmt_value(v):
    if isinstance(v, float):
        return str(np.float32(v))  # the shortest decimal of the f32: 1e-05, not 9.999999747378752e-06
    if isinstance(v, list):
        return "[" + ", ".join(fmt_value(x) for x in v) + "]"
    if isinstance(v, bytes):
        return v.decode()
    return str(v)


def graph_listing(m):
    """The graph as text: inputs, initializers (name and shape) and every node with its inputs,
    outputs and attributes (a Constant's value in full when it has at most 16 numbers)."""
    def dims(vi):
        return [d.dim_value for d in vi.type.tensor_type.shape.dim]

    out = []
    for vi in m.graph.input:
        out.append(f"input  {vi.name} f32{dims(vi)}\n")
    for t in m.graph.initializer:
        out.append(f"init   {t.name} f32{list(t.dims)}\n")
    for n in m.graph.node:
        attrs = []
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                arr = onnx.numpy_helper.to_array(a.t)
                val = fmt_value(arr.tolist()) if arr.size <= 16 else f"<{arr.dtype}{list(arr.shape)}>"
                attrs.append(f"{a.name}={onnx.helper.tensor_dtype_to_np_dtype(a.t.data_type).name}:{val}")
            else:
                attrs.append(f"{a.name}={fmt_value(onnx.helper.get_attribute_value(a))}")
        attr_text = (" {" + ", ".join(attrs) + "}") if attrs else ""
        out.append(f"{n.op_type}({', '.join(n.input)}) -> {', '.join(n.output)}{attr_text}\n")
    for vi in m.graph.output:
        out.append(f"output {vi.name} f32{dims(vi)}\n")
    return "".join(out)


def run_ort(path, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # reproducible reductions
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    return out


def export(name, ctor, shape, sample, seed, out_dir):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # nn.Linear/Conv2d default init draws from the global generator
    model = ctor()
    perturb_norms(model, gen)
    model.eval()
    x = sample(shape, gen)
    calib = [sample(shape, gen) for _ in range(CALIBRATION_SAMPLES)]

    path = os.path.join(out_dir, f"{name}.onnx")
    with torch.no_grad():
        expected = model(x)
        torch.onnx.export(
            model,
            (x,),
            path,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
            input_names=["input"],
            output_names=["output"],
            export_params=True,
        )
    m = normalize_model(path)

    got = run_ort(path, x)
    err = float(np.max(np.abs(got - expected.numpy())))
    if got.shape != tuple(expected.shape) or not err <= 1e-5:
        sys.exit(f"{name}: onnxruntime disagrees with PyTorch: shape {got.shape} vs "
                 f"{tuple(expected.shape)}, max abs error {err:.3g}")
    # The calibration samples run too: a check that onnxruntime takes each of them.
    for c in calib:
        cal_out = run_ort(path, c)
        cal_err = float(np.max(np.abs(cal_out - model(c).detach().numpy())))
        if not cal_err <= 1e-5:
            sys.exit(f"{name}: onnxruntime disagrees with PyTorch on a calibration sample ({cal_err:.3g})")

    write_json(os.path.join(out_dir, f"{name}.input.json"), {"input_data": [flat(x)]})
    write_json(
        os.path.join(out_dir, f"{name}.output.json"),
        {"output_data": [flat(got)], "shape": list(got.shape), "onnxruntime": ort.__version__},
    )
    write_json(
        os.path.join(out_dir, f"{name}.calibration.json"),
        {"input_data": [[v for c in calib for v in flat(c)]]},
    )

    ops = [n.op_type for n in m.graph.node]
    listing = graph_listing(m)
    distinct = sorted(set(ops))
    info = {
        "name": name,
        "doc": (ctor.__doc__ or "").strip().splitlines()[0],
        "input": list(shape),
        "output": list(got.shape),
        "ops": ops,
        "distinct": distinct,
        "nodes": len(ops),
        "params": sum(p.numel() for p in model.parameters()),
        "initializer_values": sum(int(np.prod(t.dims)) for t in m.graph.initializer),
        "initializers": len(m.graph.initializer),
        "bytes": os.path.getsize(path),
        "err": err,
        "listing": listing,
        "opset": [f"{o.domain or 'ai.onnx'} {o.version}" for o in m.opset_import],
    }
    print(f"{name}: {info['nodes']} nodes, {info['params']} parameters, {info['bytes']} bytes, "
          f"opset {', '.join(info['opset'])}; onnxruntime vs PyTorch max abs error {err:.2e}")
    print(f"  ops (graph order): {' '.join(ops)}")
    print(f"  distinct: {', '.join(distinct)}")
    return info


README_HEAD = """\
# ONNX test fixtures

Written by `scripts/onnx_fixtures.sh` (do not edit by hand; rerun it instead):

```sh
bash scripts/onnx_fixtures.sh   # makes target/onnx-venv with the pinned packages, then runs
                                # scripts/onnx_fixtures.py, which writes this folder
```

Every random draw is seeded (weights: PyTorch's default init after `torch.manual_seed`; the
LayerNorm gains and biases moved off 1/0 by 0.1 N(0,1); inputs: N(0,1), the convnet's an 8x8
image in [0,1)), so a rerun with the same versions writes byte-identical files.

Exported with {versions} (PyPI's torch, the CUDA build, run on
the CPU: PyTorch's CPU-only index was not reachable here), with the TorchScript exporter (`torch.onnx.export(model, (x,), path,
opset_version=17, dynamo=False, do_constant_folding=True)`, input named `input`, output named
`output`, fixed shapes: no dynamic axes); the script then clears the producer version's build tag
and doc strings and checks the model with `onnx.checker` (full check). onnxruntime's output is
checked against PyTorch's to 1e-5 (max abs error below) on the input and on the 16 calibration
samples.

## Files, for each model NAME

| file | content |
| --- | --- |
| `NAME.onnx` | the model: opset 17 (domain ai.onnx), float32, one input, one output |
| `NAME.input.json` | one input in EZKL's data format: `{{"input_data": [[...]]}}`, one list per model input, each the tensor flattened row-major; the numbers are float32 values (read them as f32 for the exact input) |
| `NAME.output.json` | onnxruntime's output on it: `{{"output_data": [[...]], "shape": [...], "onnxruntime": "<version>"}}` |
| `NAME.calibration.json` | 16 further inputs in EZKL's calibration format: `{{"input_data": [[s1..., s2..., ..., s16...]]}}`: still one list per model input, the 16 flattened samples one after another (EZKL's `calibrate_settings` cuts each list into chunks of numel(input shape) and runs each chunk as one sample; checked with ezkl 23.0.5, which rejects a length that is not a multiple and reads `[[s1], [s2], ...]` as just `s1`). Sample i is `input_data[0][i*numel : (i+1)*numel]` |

## Models

| model | input | output | nodes | parameters | initializer values | .onnx bytes | ORT vs PyTorch |
| --- | --- | --- | --- | --- | --- | --- | --- |
"""


def write_readme(out_dir, infos, versions):
    lines = [README_HEAD.format(versions=versions)]
    for i in infos:
        lines.append(
            f"| `{i['name']}` | `{i['input']}` | `{i['output']}` | {i['nodes']} | {i['params']} | "
            f"{i['initializer_values']} | {i['bytes']} | {i['err']:.1e} |\n"
        )
    lines.append("\n(Parameters: the PyTorch model's. Initializer values: every number in the graph's "
                 "initializers, which also hold the gpt2_block's causal mask; scalars, split sizes "
                 "and reshape shapes are `Constant` nodes, counted among the nodes.)\n")
    for i in infos:
        lines.append(f"\n### {i['name']}\n\n{i['doc']}\n\n")
        lines.append(f"Opset: {', '.join(i['opset'])}. Op types ({len(i['distinct'])}): "
                     f"{', '.join('`' + o + '`' for o in i['distinct'])}.\n\n")
        lines.append(f"Nodes in graph order ({i['nodes']}): {' '.join(i['ops'])}\n\n")
        lines.append("```\n" + i["listing"] + "```\n")
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write("".join(lines))


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    versions = (f"Python {platform.python_version()}, torch {torch.__version__.split('+')[0]}, "
                f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}")
    print(versions)
    infos = [export(*spec, out_dir) for spec in MODELS]
    write_readme(out_dir, infos, versions)
    print(f"wrote {len(infos)} models to {out_dir}")


if __name__ == "__main__":
    main()
