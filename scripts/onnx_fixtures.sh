#!/usr/bin/env bash
# Writes the ONNX test fixtures (tests/fixtures/onnx/: mlp, convnet, gpt2_block, decomposed; see
# the README there) with scripts/onnx_fixtures.py, in a venv at target/onnx-venv with pinned
# versions, made on first use (and brought back to the pins when they change here).
#
# torch: the CPU-only wheel from PyTorch's own index when that index answers; otherwise PyPI's
# torch, which is the CUDA build for Linux x86_64 and pulls ~4 GB of nvidia-* wheels (the venv is
# ~5.5 GB), but runs on the CPU all the same. The fixtures were made with PyPI's (PyTorch's index
# was not reachable here); the script drops the build tag ("+cu132") from the producer version.
#
# Usage: bash scripts/onnx_fixtures.sh [OUTDIR]   (default tests/fixtures/onnx)
# Not part of the tests: the fixtures it writes are committed. Deterministic: a rerun with the
# same pins writes byte-identical files (`sha256sum tests/fixtures/onnx/*` to check).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="target/onnx-venv"
TORCH="torch==2.15.0"
OTHERS=("onnx==1.23.2" "onnxruntime==1.32.0" "numpy==2.4.6")
TORCH_CPU_INDEX="https://download.pytorch.org/whl/cpu"
STAMP="$VENV/.zkc-pins"
PINS="$TORCH ${OTHERS[*]}"

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "onnx_fixtures: making $VENV"
    python3 -m venv "$VENV"
fi
if [[ "$(cat "$STAMP" 2>/dev/null)" != "$PINS" ]]; then
    pip=("$VENV/bin/pip" install --disable-pip-version-check --quiet)
    if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1] + '/torch/', timeout=10)" \
        "$TORCH_CPU_INDEX" 2>/dev/null; then
        echo "onnx_fixtures: installing $TORCH (CPU wheel from $TORCH_CPU_INDEX)"
        "${pip[@]}" --index-url "$TORCH_CPU_INDEX" --extra-index-url https://pypi.org/simple "$TORCH"
    else
        echo "onnx_fixtures: PyTorch's CPU index is not reachable: installing $TORCH from PyPI" \
            "(the CUDA build and its nvidia-* wheels, ~4 GB; minutes)"
        "${pip[@]}" "$TORCH"
    fi
    echo "onnx_fixtures: installing ${OTHERS[*]}"
    "${pip[@]}" "${OTHERS[@]}"
    echo "$PINS" > "$STAMP"
fi

# -W: torch warns that the TorchScript exporter is the legacy one; it is the one chosen here (its
# node lists are predictable).
exec "$VENV/bin/python" -W "ignore::DeprecationWarning" -W "ignore::UserWarning" scripts/onnx_fixtures.py "$@"
