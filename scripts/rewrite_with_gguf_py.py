#!/usr/bin/env python3
"""Rewrites a GGUF with llama.cpp's own writer (PyPI `gguf`), so zkc is tested on a file it did
not write: different key order, alignment 64, gguf-py's padding and tensor layout.

Writes tests/fixtures/gguf/gpt2_by_gguf_py.gguf from a zkc-generated model of this shape (the
test `gguf_py_written_model_runs_like_zkcs_own` generates the same model and compares):

    cargo run --release -- gen-model gpt2 --layers 1 --d-model 32 --heads 2 --ctx 16 \
        --vocab 300 --seed 7 -o /tmp/zkc-small.gguf
    python3 scripts/rewrite_with_gguf_py.py /tmp/zkc-small.gguf tests/fixtures/gguf/gpt2_by_gguf_py.gguf

Needs `pip install gguf numpy`.
"""
import sys

import gguf


def main(src, dst):
    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(dst, arch)
    # gguf-py adds general.architecture itself; reverse the rest so the key order differs too.
    for name, field in reversed(list(r.fields.items())):
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        vtype = field.types[0]
        sub = field.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(name, field.contents(), vtype, sub_type=sub)
    w.add_key_value("general.alignment", 64, gguf.GGUFValueType.UINT32)
    w.data_alignment = 64
    for t in reversed(r.tensors):
        w.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    back = gguf.GGUFReader(dst)
    print(f"wrote {dst}: {len(back.tensors)} tensors, {len(back.fields)} fields, alignment {back.alignment}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
