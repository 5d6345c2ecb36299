#!/usr/bin/env bash
# Create .venv and install OffGrid into it with the given extras (default: server).
# The first run builds llama.cpp from source (about 5 minutes on 2 cores); later runs take seconds.
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

# Install only when the package metadata changed or an extra is asked for that is not there
# yet; extras installed before stay (so serve.sh and test.sh do not undo each other).
stamp="$venv/.offgrid-installed"
metadata="$(cat "$root/setup.cfg" "$root/pyproject.toml" | sha256sum | cut -c1-16)"
read -r installed_metadata installed_extras < "$stamp" 2>/dev/null || true
if [ "${installed_metadata:-}" = "$metadata" ]; then
    all_extras="$(echo "${installed_extras:-},$extras" | tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd,)"
else
    all_extras="$extras"
fi
if [ "${installed_metadata:-}" != "$metadata" ] || [ "$all_extras" != "${installed_extras:-}" ]; then
    echo "setup: installing OffGrid[$all_extras] into .venv (the first time builds llama.cpp: ~5 min)" >&2
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    # The portable build: llama.cpp's native build segfaults on CPUs that report AMX.
    CMAKE_ARGS="-DGGML_NATIVE=OFF" "$venv/bin/python" -m pip install --quiet -e "$root[$all_extras]"
    echo "$metadata $all_extras" > "$stamp"
fi
