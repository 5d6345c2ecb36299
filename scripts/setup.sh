#!/usr/bin/env bash
# Create .venv and install OffGrid into it with the given extras (default: server).
# The first run builds llama.cpp from source, with its RPC backend and rpc-server (about 5 minutes
# on 2 cores); later runs take seconds.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
extras="${1:-server}"
python="${PYTHON:-python3}"
venv="$root/.venv"

missing_system_packages() {
    ! "$python" -c 'import ensurepip, venv' 2>/dev/null || ! command -v g++ >/dev/null 2>&1
}

if missing_system_packages; then
    packages="python3-venv build-essential"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq $packages
    elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        sudo apt-get update -qq && sudo apt-get install -y -qq $packages
    else
        echo "setup: OffGrid needs Python's venv module and a C++ compiler (Debian: $packages)" >&2
        exit 1
    fi
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"

# The tests start a throw-away PostgreSQL cluster: Debian's server, installed here when root.
case ",$extras," in
    *,test,*) "$python" "$root/scripts/fetch_postgres.py" >/dev/null \
                  || echo "setup: the PostgreSQL tests will fail without it" >&2 ;;
esac

# The portable build: llama.cpp's native build segfaults on CPUs that report AMX. With its RPC
# backend, so that models can be spread over other machines (docs/scale-out.md).
cmake_args="-DGGML_NATIVE=OFF -DGGML_RPC=ON"

# llama-cpp-python is built from its source distribution with cmake_args, and llama.cpp's
# rpc-server (which llama-cpp-python does not build) is compiled from the same source into
# .venv/bin, so that workers and server speak the same RPC protocol version.
llama_version="$(sed -n 's/^ *llama-cpp-python==//p' "$root/setup.cfg")"
llama_source="$venv/src/llama_cpp_python-$llama_version.tar.gz"

download_llama_source() {
    [ -f "$llama_source" ] || "$venv/bin/python" -m pip download --quiet --no-deps \
        --no-binary :all: "llama-cpp-python==$llama_version" -d "$venv/src"
}

# Whether the llama-cpp-python installed is the pinned version, built with RPC.
llama_has_rpc() {
    "$venv/bin/python" - "$llama_version" 2>/dev/null <<'EOF'
import sys
import llama_cpp
from llama_cpp import llama_cpp as C
raise SystemExit(llama_cpp.__version__ != sys.argv[1] or not C.llama_supports_rpc())
EOF
}

build_llama_cpp_python() {
    echo "setup: building llama.cpp $llama_version with RPC from source (~5 min on 2 cores)" >&2
    download_llama_source
    # pip's wheel cache ignores CMAKE_ARGS: a wheel built without RPC must not be reused.
    CMAKE_ARGS="$cmake_args" "$venv/bin/python" -m pip install --quiet --no-cache-dir \
        --force-reinstall --no-deps "$llama_source"
}

build_rpc_server() {
    local site program="llama_cpp_python-$llama_version/vendor/llama.cpp/tools/rpc/rpc-server.cpp"
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')"
    download_llama_source
    tar -xzf "$llama_source" -C "$venv/src" "$program"
    g++ -std=c++17 -O2 -o "$venv/bin/rpc-server" "$venv/src/$program" -I"$site/include" \
        -L"$site/llama_cpp/lib" -lggml -lggml-base -Wl,-rpath,"$site/llama_cpp/lib"
}

# Install only when the package metadata or the build's flags changed, or an extra is asked
# for that is not there yet; extras installed before stay (so serve.sh and test.sh do not undo
# each other).
stamp="$venv/.offgrid-installed"
metadata="$( (cat "$root/setup.cfg" "$root/pyproject.toml"; echo "$cmake_args") \
    | sha256sum | cut -c1-16)"
read -r installed_metadata installed_extras 2>/dev/null < "$stamp" || true
if [ "${installed_metadata:-}" = "$metadata" ]; then
    all_extras="$(echo "${installed_extras:-},$extras" | tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd,)"
else
    all_extras="$extras"
fi
if [ "${installed_metadata:-}" != "$metadata" ] || [ "$all_extras" != "${installed_extras:-}" ]; then
    echo "setup: installing OffGrid[$all_extras] into .venv (the first time builds llama.cpp: ~5 min)" >&2
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    if [[ ",$all_extras," == *,server,* ]]; then
        if ! llama_has_rpc; then
            build_llama_cpp_python
            rm -f "$venv/bin/rpc-server"  # from another build, maybe of another version
        fi
        [ -x "$venv/bin/rpc-server" ] || build_rpc_server
    fi
    CMAKE_ARGS="$cmake_args" "$venv/bin/python" -m pip install --quiet -e "$root[$all_extras]"
    echo "$metadata $all_extras" > "$stamp"
fi
