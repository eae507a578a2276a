#!/usr/bin/env bash
# One command from a fresh clone to a running assistant:
#   installs everything into .venv (CPU torch, deps, llama-cpp-python from a cached wheel),
#   prepares the offline models in the per-user cache, ingests seeds/ and starts the chat.
# Options: --no-serve (stop after ingesting), --ask "QUESTION" (answer one question instead of serving).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE="${RAG_CACHE:-$HOME/.cache/ragnl}"
LLAMA_VERSION=0.3.36
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
serve=1; ask=""
while [ $# -gt 0 ]; do
  case "$1" in
    --no-serve) serve=0 ;;
    --ask) ask="$2"; serve=0; shift ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
export HF_HUB_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n== %s\n' "$*"; }

if [ ! -x .venv/bin/python ]; then
  step "creating .venv"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python

step "installing the locked dependencies (requirements.lock: exact versions, hashes checked; CPU torch)"
$VPY -m pip install -q -U pip
$VPY -m pip install -q --require-hashes -r requirements.lock

# llama-cpp-python exists only as source: build the wheel once and cache it.
mkdir -p "$CACHE/wheels" .wheels
wheel=$(ls "$CACHE"/wheels/llama_cpp_python-$LLAMA_VERSION-*.whl .wheels/llama_cpp_python-$LLAMA_VERSION-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
  step "building llama-cpp-python $LLAMA_VERSION (once, ~6-10 min on 2 cores; cached in $CACHE/wheels)"
  CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 \
    $VPY -m pip wheel -q --no-deps -w "$CACHE/wheels" "llama-cpp-python==$LLAMA_VERSION"
  wheel=$(ls "$CACHE"/wheels/llama_cpp_python-$LLAMA_VERSION-*.whl | head -n1)
fi
cp -n "$wheel" .wheels/ 2>/dev/null || true
$VPY -m pip install -q --no-deps "$wheel"
$VPY -m pip install -q --no-deps -e .

step "preparing models (cached in $CACHE/models)"
.venv/bin/rag models --prepare

step "ingesting seeds/"
.venv/bin/rag ingest seeds/ --json >/dev/null
.venv/bin/rag info

if [ -n "$ask" ]; then
  exec .venv/bin/rag ask "$ask"
elif [ "$serve" = 1 ]; then
  step "starting the chat (Ctrl-C to stop)"
  exec .venv/bin/rag serve
fi
