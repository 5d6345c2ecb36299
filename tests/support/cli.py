"""Running the `offgrid` command of this checkout as a subprocess, in an environment of the
test's choosing rather than of whoever runs the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from support import ROOT

PYTHON_M_OFFGRID = (sys.executable, "-m", "offgrid")


def child_env(home: Path | None = None, **variables: str) -> dict[str, str]:
    """This process's environment without its OFFGRID_ and HF_ settings, with OFFGRID_HOME at
    `home` (when given) and `variables` on top; this checkout's offgrid comes first on the
    import path, whatever the working folder."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("OFFGRID_", "HF_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if home is not None:
        env["OFFGRID_HOME"] = str(home)
    return {**env, **variables}


def offgrid(*args: str | Path, home: Path | None = None, env: dict[str, str] | None = None,
            stdin: str | None = None, timeout: float = 120, cwd: Path = ROOT,
            entry: Sequence[str | Path] = PYTHON_M_OFFGRID) -> subprocess.CompletedProcess:
    """`offgrid *args` run to its end: its exit status and text output. `env` adds to
    child_env(home); `entry` is how the command is started (`python -m offgrid` unless told)."""
    return subprocess.run([*map(str, entry), *map(str, args)], input=stdin, capture_output=True,
                          text=True, env=child_env(home, **(env or {})), cwd=cwd,
                          timeout=timeout)
