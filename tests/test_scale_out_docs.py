"""docs/scale-out.md's "Migrating and copying", run as written against a throw-away PostgreSQL
cluster: a sqlite server's users are copied in, and what its `text` blocks show is what the
commands print. The example URL stands for the cluster's database."""

import os
import re
import subprocess
import sys
from pathlib import Path

from support import ROOT
from support.cli import child_env, offgrid

DOC = ROOT / "docs" / "scale-out.md"
SECTION = "### Migrating and copying"
EXAMPLE_URL = "postgresql://offgrid:secret@db.internal:5432/offgrid"


def blocks() -> list[tuple[str, str]]:
    section = DOC.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```(\w+)\n(.*?)^```", section, re.S | re.M)


def test_the_copy_walkthrough_runs_as_written(tmp_path, database_url):
    home = tmp_path / ".offgrid"
    for name, role in (("admin", "admin"), ("alice", "user")):
        made = offgrid("users", "create", name, "--role", role, home=home,
                       stdin="a-long-password\n")
        assert made.returncode == 0, made.stderr
    script = "\n".join(["set -euo pipefail"] + [code for language, code in blocks()
                                                 if language == "sh"])
    env = child_env(HOME=str(tmp_path), PATH=f"{Path(sys.executable).parent}:"
                                             f"{os.environ['PATH']}")
    done = subprocess.run(["bash", "-c", script.replace(EXAMPLE_URL, database_url)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    position = 0
    for language, shown in blocks():
        if language == "text":
            found = done.stdout.find(shown.strip(), position)
            assert found >= 0, f"{shown.strip()!r} not printed, in order, in:\n{done.stdout}"
            position = found + len(shown.strip())
