#!/usr/bin/env bash
# Set up OffGrid and serve the starter model (SmolLM2-135M-Instruct) on http://127.0.0.1:11611.
# Extra arguments go to `offgrid serve` (see `offgrid serve --help`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh" server
export OFFGRID_MODELS_DIR="${OFFGRID_MODELS_DIR:-${OFFGRID_HOME:-$HOME/.offgrid}/models}"
export OFFGRID_DEFAULT_MODEL="${OFFGRID_DEFAULT_MODEL:-SmolLM2-135M-Instruct.Q4_1}"
"$root/.venv/bin/python" "$root/scripts/fetch_models.py" starter --dest "$OFFGRID_MODELS_DIR" >/dev/null
exec "$root/.venv/bin/offgrid" serve "$@"
