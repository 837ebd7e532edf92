#!/usr/bin/env python3
"""Writes the GGUF test fixtures used by zkc's GGUF reader / dequantizer tests.

Outputs (both are committed to the repository; rerun this script only to regenerate them):

  tests/fixtures/gguf/quant_vectors.gguf
      Written by gguf-py's own GGUFWriter (llama.cpp's Python package), so it is also
      "a GGUF file that zkc did not write". GGUF version 3, general.alignment = 64.
      For each type T in F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K:
        q.<T>    raw tensor data of type T, 512 elements, numpy shape [2, 256] (GGUF ne = [256, 2])
        ref.<T>  F32, same shape: gguf-py's dequantization of exactly those bytes
                 (gguf.quants.dequantize(raw, T)).
      Types gguf-py can quantize are quantized from seeded random floats (seed 0: normal(0,1)
      plus +-8 outliers, exact zeros, an all-zero 32-block and a few f16-subnormal-sized
      values). Types it cannot quantize (the K-quants in gguf 0.19) are filled with random but
      valid blocks built byte by byte (finite f16 d/dmin in [0.001, 0.1], random 6-bit
      scales/mins, random quants).
      Metadata covers every GGUF value type (test.u8 ... test.f64, test.bool, test.str,
      test.arr_str, test.arr_i32, ..., and a nested array test.nested = array of arrays of int32).

  tests/fixtures/gguf/v2_minimal.gguf
      GGUF *version 2* (gguf-py's writer always writes v3, so this one is packed by hand with
      struct): one KV general.architecture = "zkc-test", one F32 tensor `t` with ne = [3, 2]
      holding 0..5, default alignment 32.

After writing, the script re-opens both files with gguf.GGUFReader, checks that every q.*
tensor dequantizes bit-exactly to ref.*, checks an independent scalar (loop-based, ggml-style)
re-implementation of every dequantizer against gguf-py, and prints the tensor table.

Run from the repository root (needs `pip install gguf numpy`):

    python3 scripts/make_gguf_vectors.py
"""
from __future__ import annotations

import os
import struct
import sys

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT
from gguf import GGUFValueType as VT
from gguf.quants import dequantize, quantize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "gguf")
QUANT_PATH = os.path.join(OUT_DIR, "quant_vectors.gguf")
V2_PATH = os.path.join(OUT_DIR, "v2_minimal.gguf")

ALIGNMENT = 64
ROWS, COLS = 2, 256  # numpy shape; GGUF ne = [256, 2]
QK_K = 256

TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"]

rng = np.random.default_rng(0)


# --------------------------------------------------------------------------------------------
# Input floats
# --------------------------------------------------------------------------------------------
def make_floats() -> np.ndarray:
    x = rng.normal(0.0, 1.0, size=ROWS * COLS).astype(np.float32)
    n = x.size
    # a few outliers of +-8 (make block maxima / scales vary)
    idx = rng.choice(n, size=10, replace=False)
    x[idx] = rng.choice(np.array([8.0, -8.0], dtype=np.float32), size=idx.size)
    # scattered exact zeros
    idx = rng.choice(n, size=24, replace=False)
    x[idx] = 0.0
    # one whole 32-element block of zeros (d = 0 / min = 0 edge case), elements 64..95
    x[64:96] = 0.0
    # a few tiny values (f16 subnormal range / bf16 rounding)
    x[300] = 3.0e-6
    x[301] = -1.0e-7
    x[302] = 6.0e-5
    # one block that is all positive (Q4_1/Q5_1 min > 0) and one all negative, elements 128..191
    x[128:160] = np.abs(x[128:160]) + np.float32(0.25)
    x[160:192] = -np.abs(x[160:192]) - np.float32(0.5)
    return x.reshape(ROWS, COLS)


# --------------------------------------------------------------------------------------------
# Random valid K-quant blocks (for types gguf-py cannot quantize)
# --------------------------------------------------------------------------------------------
def f16_bytes(vals: np.ndarray) -> np.ndarray:
    return np.asarray(vals, dtype=np.float16).reshape(-1, 1).view(np.uint8)


def rand_f16(n: int, lo: float = 0.001, hi: float = 0.1) -> np.ndarray:
    return rng.uniform(lo, hi, size=n).astype(np.float16)


def random_blocks(qtype: QT, n_blocks: int) -> np.ndarray:
    bs, ts = gguf.GGML_QUANT_SIZES[qtype]
    u8 = lambda k: rng.integers(0, 256, size=(n_blocks, k), dtype=np.uint8)  # noqa: E731
    if qtype == QT.Q4_K:
        # d f16, dmin f16, scales[12] (packed 6-bit scales and mins), qs[128]
        blk = np.concatenate([f16_bytes(rand_f16(n_blocks)), f16_bytes(rand_f16(n_blocks)),
                              u8(12), u8(QK_K // 2)], axis=1)
    elif qtype == QT.Q5_K:
        # d f16, dmin f16, scales[12], qh[32], qs[128]
        blk = np.concatenate([f16_bytes(rand_f16(n_blocks)), f16_bytes(rand_f16(n_blocks)),
                              u8(12), u8(QK_K // 8), u8(QK_K // 2)], axis=1)
    elif qtype == QT.Q6_K:
        # ql[128], qh[64], scales int8[16], d f16
        blk = np.concatenate([u8(QK_K // 2), u8(QK_K // 4), u8(QK_K // 16),
                              f16_bytes(rand_f16(n_blocks))], axis=1)
    else:
        raise ValueError(f"no random block builder for {qtype.name}")
    assert blk.shape == (n_blocks, ts), (blk.shape, ts)
    return blk


# --------------------------------------------------------------------------------------------
# Independent scalar re-implementation (ggml style loops, f32 arithmetic, no FMA), used only to
# check that the formulas documented for the Rust side agree with gguf-py bit for bit.
# --------------------------------------------------------------------------------------------
f32 = np.float32


def h(b: bytes, o: int) -> np.float32:
    return f32(np.frombuffer(b[o:o + 2], dtype="<f2")[0])


def scalar_dequant(raw: bytes, qtype: QT, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    bs, ts = gguf.GGML_QUANT_SIZES[qtype]
    if qtype == QT.F32:
        return np.frombuffer(raw, dtype="<f4").copy()
    if qtype == QT.F16:
        return np.frombuffer(raw, dtype="<f2").astype(np.float32)
    if qtype == QT.BF16:
        u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << np.uint32(16)
        return u.view(np.float32)
    for ib in range(n // bs):
        b = raw[ib * ts:(ib + 1) * ts]
        y = out[ib * bs:(ib + 1) * bs]
        if qtype == QT.Q8_0:
            d = h(b, 0)
            for j in range(32):
                y[j] = f32(struct.unpack_from("b", b, 2 + j)[0]) * d
        elif qtype == QT.Q4_0:
            d = h(b, 0)
            for j in range(16):
                q = b[2 + j]
                y[j] = f32((q & 0xF) - 8) * d
                y[j + 16] = f32((q >> 4) - 8) * d
        elif qtype == QT.Q4_1:
            d, m = h(b, 0), h(b, 2)
            for j in range(16):
                q = b[4 + j]
                y[j] = d * f32(q & 0xF) + m
                y[j + 16] = d * f32(q >> 4) + m
        elif qtype in (QT.Q5_0, QT.Q5_1):
            d = h(b, 0)
            off = 2
            m = None
            if qtype == QT.Q5_1:
                m = h(b, 2)
                off = 4
            qh = struct.unpack_from("<I", b, off)[0]
            qs = b[off + 4:]
            for j in range(16):
                lo = (qs[j] & 0xF) | (((qh >> j) & 1) << 4)
                hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)
                if m is None:
                    y[j] = d * f32(lo - 16)
                    y[j + 16] = d * f32(hi - 16)
                else:
                    y[j] = d * f32(lo) + m
                    y[j + 16] = d * f32(hi) + m
        elif qtype in (QT.Q4_K, QT.Q5_K):
            d, dmin = h(b, 0), h(b, 2)
            sc_b = b[4:16]
            if qtype == QT.Q4_K:
                qh, qs = None, b[16:144]
            else:
                qh, qs = b[16:48], b[48:176]

            def scale_min(j: int) -> tuple[int, int]:  # ggml get_scale_min_k4
                if j < 4:
                    return sc_b[j] & 63, sc_b[j + 4] & 63
                return ((sc_b[j + 4] & 0xF) | ((sc_b[j - 4] >> 6) << 4),
                        (sc_b[j + 4] >> 4) | ((sc_b[j] >> 6) << 4))

            for c in range(4):  # 4 chunks of 64 elements, each from 32 qs bytes
                for half in range(2):  # half 0: low nibbles, half 1: high nibbles
                    j = 2 * c + half  # sub-block of 32 elements
                    sc, mn = scale_min(j)
                    d1 = d * f32(sc)
                    m1 = dmin * f32(mn)
                    for l in range(32):
                        q = (qs[32 * c + l] >> (4 * half)) & 0xF
                        if qh is not None:
                            q |= ((qh[l] >> j) & 1) << 4
                        y[32 * j + l] = d1 * f32(q) - m1
        elif qtype == QT.Q6_K:
            ql, qh = b[0:128], b[128:192]
            scales = struct.unpack_from("16b", b, 192)
            d = h(b, 208)
            for hh in range(2):  # two halves of 128 elements
                for l in range(32):
                    for k in range(4):  # element 128*hh + 32*k + l
                        qlb = ql[64 * hh + l + (32 if k in (1, 3) else 0)]
                        lo4 = (qlb & 0xF) if k < 2 else (qlb >> 4)
                        hi2 = (qh[32 * hh + l] >> (2 * k)) & 3
                        q = (lo4 | (hi2 << 4)) - 32
                        e = 128 * hh + 32 * k + l
                        y[e] = (d * f32(scales[e // 16])) * f32(q)
        else:
            raise ValueError(qtype.name)
    return out


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    a = np.ascontiguousarray(a, dtype=np.float32).reshape(-1)
    b = np.ascontiguousarray(b, dtype=np.float32).reshape(-1)
    return a.shape == b.shape and bool(np.all(a.view(np.uint32) == b.view(np.uint32)))


# --------------------------------------------------------------------------------------------
# quant_vectors.gguf
# --------------------------------------------------------------------------------------------
def write_quant_vectors() -> None:
    floats = make_floats()
    w = gguf.GGUFWriter(QUANT_PATH, arch="zkc-test")  # adds general.architecture first
    w.add_custom_alignment(ALIGNMENT)  # general.alignment (u32) = 64

    # every metadata value type
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4_000_000_000)
    w.add_int32("test.i32", -2_000_000_000)
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62) - 7)
    w.add_float32("test.f32", 3.14159)
    w.add_float64("test.f64", -2.718281828459045)
    w.add_bool("test.bool", True)
    w.add_bool("test.bool_false", False)
    w.add_string("test.str", "h\u00e9llo \u2713")
    w.add_array("test.arr_str", ["alpha", "", "\u00fcn\u00efcode"])  # includes an empty string
    w.add_array("test.arr_i32", [1, -2, 3, 2147483647])  # int -> INT32 elements
    w.add_key_value("test.arr_u64", [1, 2**64 - 1], VT.ARRAY, sub_type=VT.UINT64)
    w.add_array("test.arr_f32", [0.5, -1.25])
    w.add_array("test.arr_bool", [True, False, True])
    w.add_array("test.arr_u8", b"\x00\x7f\xff")  # bytes -> UINT8 elements
    # Nested: GGUFWriter._pack_val recurses for ARRAY elements (inner element type inferred:
    # python int -> INT32), so an array of arrays of int32 is supported by the writer.
    w.add_key_value("test.nested", [[1, 2], [3], [-4, 5, 6]], VT.ARRAY, sub_type=VT.ARRAY)

    how: dict[str, str] = {}
    for name in TYPES:
        qt = QT[name]
        if qt == QT.F32:
            raw = floats.astype(np.float32)
            how[name] = "quantized from floats (identity)"
        elif qt == QT.F16:
            raw = floats.astype(np.float16)
            how[name] = "quantized from floats (astype float16)"
        else:
            try:
                raw = quantize(floats, qt)
                how[name] = "quantized from floats (gguf.quants.quantize)"
            except NotImplementedError:
                n_blocks = floats.size // gguf.GGML_QUANT_SIZES[qt][0]
                raw = random_blocks(qt, n_blocks).reshape(ROWS, -1)
                how[name] = "built from random blocks (gguf-py cannot quantize it)"
        ref = np.ascontiguousarray(dequantize(raw, qt), dtype=np.float32).reshape(ROWS, COLS)
        assert np.all(np.isfinite(ref)), name
        raw = np.ascontiguousarray(raw)
        if qt in (QT.F32, QT.F16):
            w.add_tensor(f"q.{name}", raw)  # dtype picks the GGML type
        else:
            w.add_tensor(f"q.{name}", raw, raw_dtype=qt)  # uint8 bytes, shape derived from type
        w.add_tensor(f"ref.{name}", ref)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    for name in TYPES:
        print(f"  {name:5s}: {how[name]}")


def check_quant_vectors() -> None:
    r = gguf.GGUFReader(QUANT_PATH)
    ver = int(r.fields["GGUF.version"].parts[0][0])
    print(f"\n{os.path.relpath(QUANT_PATH, ROOT)}: {os.path.getsize(QUANT_PATH)} bytes, GGUF v{ver}, "
          f"alignment {r.alignment}, tensor data starts at byte {r.data_offset}")
    assert ver == 3 and r.alignment == ALIGNMENT and r.data_offset % ALIGNMENT == 0

    print("\nmetadata:")
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue
        types = "/".join(t.name for t in f.types)
        print(f"  {key:22s} {types:22s} {f.contents()!r}")
    # nested array: GGUFReader flattens it; check the raw bytes against the expected encoding.
    f = r.fields["test.nested"]
    assert f.types == [VT.ARRAY, VT.ARRAY, VT.INT32], f.types
    expect = struct.pack("<Q", len("test.nested")) + b"test.nested" + struct.pack("<IIQ", VT.ARRAY, VT.ARRAY, 3)
    for inner in ([1, 2], [3], [-4, 5, 6]):
        expect += struct.pack(f"<IQ{len(inner)}i", VT.INT32, len(inner), *inner)
    assert bytes(r.data[f.offset:f.offset + len(expect)]) == expect, "nested array encoding"
    print("  (test.nested raw bytes verified: ARRAY<ARRAY> count 3, each INT32 count n + values)")

    tensors = {t.name: t for t in r.tensors}
    print("\ntensors (offset = relative to data section start; ne = GGUF dims, fastest first):")
    print(f"  {'name':10s} {'type':5s} {'ne':10s} {'offset':>6s} {'abs_off':>7s} {'n_bytes':>7s}")
    for t in r.tensors:
        ne = "[" + ", ".join(str(int(x)) for x in t.shape) + "]"
        rel = t.data_offset - r.data_offset
        assert t.data_offset % ALIGNMENT == 0
        print(f"  {t.name:10s} {t.tensor_type.name:5s} {ne:10s} {rel:6d} {t.data_offset:7d} {t.n_bytes:7d}")

    print("\ndequantization check (max abs diff must be 0; bits must match):")
    for name in TYPES:
        q, ref = tensors[f"q.{name}"], tensors[f"ref.{name}"]
        qt = QT[name]
        assert q.tensor_type == qt and ref.tensor_type == QT.F32
        assert [int(x) for x in q.shape] == [COLS, ROWS] == [int(x) for x in ref.shape]
        deq = np.asarray(dequantize(np.asarray(q.data), qt), dtype=np.float32).reshape(ROWS, COLS)
        refv = np.asarray(ref.data, dtype=np.float32).reshape(ROWS, COLS)
        diff = float(np.max(np.abs(deq - refv)))
        exact = bits_equal(deq, refv)
        raw = np.asarray(q.data).tobytes()
        scal = scalar_dequant(raw, qt, ROWS * COLS)
        scal_ok = bits_equal(scal, refv)
        negz = int(np.sum((refv == 0) & np.signbit(refv)))
        print(f"  {name:5s}: max|deq-ref| = {diff}  bit-exact={exact}  scalar-reimpl bit-exact={scal_ok}  "
              f"range=[{refv.min():.4g}, {refv.max():.4g}]  -0.0 count={negz}")
        assert diff == 0.0 and exact and scal_ok, name


# --------------------------------------------------------------------------------------------
# v2_minimal.gguf (hand-packed: gguf-py's writer hardcodes GGUF_VERSION = 3)
# --------------------------------------------------------------------------------------------
def gguf_str(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def write_v2() -> None:
    out = bytearray()
    out += b"GGUF" + struct.pack("<IQQ", 2, 1, 1)  # magic, version 2, tensor_count, kv_count
    out += gguf_str("general.architecture") + struct.pack("<I", VT.STRING) + gguf_str("zkc-test")
    out += gguf_str("t") + struct.pack("<I", 2) + struct.pack("<QQ", 3, 2)  # n_dims, ne = [3, 2]
    out += struct.pack("<IQ", QT.F32, 0)  # type F32, offset 0
    out += b"\0" * (-len(out) % 32)  # pad to default alignment 32
    data = struct.pack("<6f", *range(6))
    out += data + b"\0" * (-len(data) % 32)  # ggml expects tensor data padded to alignment too
    with open(V2_PATH, "wb") as fh:
        fh.write(out)

    r = gguf.GGUFReader(V2_PATH)
    assert int(r.fields["GGUF.version"].parts[0][0]) == 2
    assert r.fields["general.architecture"].contents() == "zkc-test"
    (t,) = r.tensors
    assert t.name == "t" and t.tensor_type == QT.F32 and [int(x) for x in t.shape] == [3, 2]
    assert np.array_equal(np.asarray(t.data), np.arange(6, dtype=np.float32).reshape(2, 3))
    print(f"\n{os.path.relpath(V2_PATH, ROOT)}: {len(out)} bytes, GGUF v2, tensor t F32 ne=[3, 2] "
          f"at abs offset {t.data_offset}, values {np.asarray(t.data).reshape(-1).tolist()}")


def main() -> None:
    os.makedirs(OUT_DIR, exist_ok=True)
    try:
        from importlib.metadata import version
        gv = version("gguf")
    except Exception:  # pragma: no cover
        gv = "unknown"
    print(f"gguf-py {gv}, numpy {np.__version__}")
    print(f"writing {os.path.relpath(QUANT_PATH, ROOT)}:")
    write_quant_vectors()
    check_quant_vectors()
    write_v2()
    size = os.path.getsize(QUANT_PATH)
    assert size < 100_000, size
    print("\nOK")


if __name__ == "__main__":
    sys.exit(main())
