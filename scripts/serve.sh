#!/usr/bin/env bash
# Set up OffGrid, build offgrid.pyz when it is missing or older than what goes into it, and serve
# the starter model (SmolLM2-135M-Instruct) on http://127.0.0.1:11611 with
# `python3 offgrid.pyz serve`, with the MiniLM embedding model beside it for /v1/embeddings.
# Extra arguments go to `offgrid serve` (see `offgrid serve --help`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pyz="$root/offgrid.pyz"

pyz_is_stale() {
    [ ! -f "$pyz" ] || [ -n "$(find "$root/offgrid" "$root/build_pyz.sh" \
        "$root/.venv/.offgrid-installed" -newer "$pyz" -type f ! -name '*.pyc' -print -quit)" ]
}

"$root/scripts/setup.sh" server
if pyz_is_stale; then
    "$root/build_pyz.sh" "$pyz"
fi
export OFFGRID_MODELS_DIR="${OFFGRID_MODELS_DIR:-${OFFGRID_HOME:-$HOME/.offgrid}/models}"
export OFFGRID_DEFAULT_MODEL="${OFFGRID_DEFAULT_MODEL:-SmolLM2-135M-Instruct.Q4_1}"
for model in starter embedding; do
    "$root/.venv/bin/python" "$root/scripts/fetch_models.py" "$model" \
        --dest "$OFFGRID_MODELS_DIR" >/dev/null
done
exec "${PYTHON:-python3}" "$pyz" serve "$@"
