#!/usr/bin/env bash
# Set up OffGrid with its test dependencies, fetch the test models, and run the whole test suite,
# naming its 15 slowest tests at the end. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh" server,test
"$root/.venv/bin/python" "$root/scripts/fetch_models.py" test >/dev/null
cd "$root"
exec "$root/.venv/bin/python" -m pytest --durations=15 "$@"
