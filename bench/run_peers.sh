#!/usr/bin/env bash
# Compares this project's retrievers with txtai's hybrid search and Haystack's hybrid pipeline on the
# same chunks and the same e5 embedder, in one run. The peers live in their own venv
# (bench/.venv-peers), never in the product's dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
SET="${1:-eval/sets/dev.jsonl}"
if [ ! -x bench/.venv-peers/bin/python ]; then
  python3 -m venv bench/.venv-peers
  bench/.venv-peers/bin/pip install -q -U pip
  bench/.venv-peers/bin/pip install -q "torch==2.13.0"
  bench/.venv-peers/bin/pip install -q "txtai[ann]" haystack-ai sentence-transformers-haystack sentence-transformers faiss-cpu numpy
fi
tmp=$(mktemp -d)
.venv/bin/python bench/export_chunks.py "$SET" "$tmp/data.json"
bench/.venv-peers/bin/python bench/peers.py "$tmp/data.json"
rm -rf "$tmp"
