#!/usr/bin/env bash
# Fetches llama.cpp's SentencePiece ("llama" / SPM) test vocabulary and its tokenizer test cases
# into target/vocab/:
#   ggml-vocab-llama-spm.gguf  ggml-vocab-llama-spm.gguf.inp  ggml-vocab-llama-spm.gguf.out
# They ship in the PyPI source distribution of llama-cpp-python (vendor/llama.cpp/models/). The
# sdist's URL comes from PyPI's JSON simple API (PEP 691), and the download is checked against the
# pinned SHA-256 before anything is extracted. (`pip download` of this sdist would build its
# metadata with CMake: minutes for three small files.)
# Idempotent: does nothing when the three files are already there. Used by tests/tests/spm_tokenizer.rs
# (which skips without them) and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="0.3.16"
SDIST="llama_cpp_python-${VERSION}.tar.gz"
SHA256="34ed0f9bd9431af045bb63d9324ae620ad0536653740e9bb163a2e1fcb973be6"
INDEX="https://pypi.org/simple/llama-cpp-python/"
DEST="target/vocab"
FILES=(ggml-vocab-llama-spm.gguf ggml-vocab-llama-spm.gguf.inp ggml-vocab-llama-spm.gguf.out)

missing=0
for f in "${FILES[@]}"; do
    [[ -s "$DEST/$f" ]] || missing=1
done
if [[ $missing == 0 ]]; then
    echo "fetch_llama_spm_vocab: $DEST already has the llama SPM vocabulary"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

url="$(curl -fsSL --retry 3 -H "Accept: application/vnd.pypi.simple.v1+json" "$INDEX" |
    python3 -c '
import json, sys
name = sys.argv[1]
urls = [f["url"] for f in json.load(sys.stdin)["files"] if f["filename"] == name]
if not urls:
    sys.exit(f"{name} is not listed on PyPI")
print(urls[0])
' "$SDIST")"
echo "fetch_llama_spm_vocab: downloading $SDIST"
curl -fsSL --retry 3 -o "$tmp/$SDIST" "$url"
echo "$SHA256  $tmp/$SDIST" | sha256sum --check --quiet

prefix="llama_cpp_python-${VERSION}/vendor/llama.cpp/models"
members=()
for f in "${FILES[@]}"; do
    members+=("$prefix/$f")
done
tar -xzf "$tmp/$SDIST" -C "$tmp" "${members[@]}"
mkdir -p "$DEST"
for f in "${FILES[@]}"; do
    # Write under a temporary name and rename, so an interrupted run leaves no partial file.
    cp "$tmp/$prefix/$f" "$DEST/$f.part"
    mv "$DEST/$f.part" "$DEST/$f"
done
echo "fetch_llama_spm_vocab: wrote ${FILES[*]} to $DEST"
