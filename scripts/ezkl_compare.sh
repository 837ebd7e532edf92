#!/usr/bin/env bash
# Benchmarks EZKL against zkc on the ONNX fixtures (tests/fixtures/onnx/) with
# scripts/ezkl_compare.py, in a venv at target/ezkl-venv with pinned versions, made on first use
# (and brought back to the pins when they change here). Not part of the tests (.ci/run): EZKL's
# setup and proof of the gpt2_block take minutes and GBs.
#
# Examples:
#   bash scripts/ezkl_compare.sh --models mlp,gpt2_block --no-zkc
#   bash scripts/ezkl_compare.sh --out target/ezkl-bench/compare.json --md target/ezkl-bench/compare.md
# Options: see the docstring of scripts/ezkl_compare.py (--models, --no-zkc, --no-ezkl, --zkc,
# --work, --timeout, --out, --md). The SRS is generated locally (insecure, benchmarking only):
# nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="target/ezkl-venv"
PKGS=("ezkl==23.0.5" "onnxruntime==1.32.0" "numpy==2.4.6")
STAMP="$VENV/.zkc-pins"

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "ezkl_compare: making $VENV" >&2
    python3 -m venv "$VENV"
fi
if [[ "$(cat "$STAMP" 2>/dev/null)" != "${PKGS[*]}" ]]; then
    echo "ezkl_compare: installing ${PKGS[*]}" >&2
    "$VENV/bin/pip" install --disable-pip-version-check --quiet "${PKGS[@]}"
    echo "${PKGS[*]}" > "$STAMP"
fi

exec "$VENV/bin/python" scripts/ezkl_compare.py "$@"
