"""docs/multi-user.md's walkthrough, run as written, in order, against a fresh multi-user
server: its shell blocks as one script, its Python blocks inside it, and what its `text` blocks
show must be what that script prints."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from support import ROOT
from support.cli import child_env
from support.models import CHAT_MODEL
from support.servers import free_port

DOC = ROOT / "docs" / "multi-user.md"
SECTION = "## From nothing to a chat with an API key"
DEFAULT_URL = re.compile(r"http://(localhost|127\.0\.0\.1):11611")


def walkthrough() -> list[tuple[str, str]]:
    """(language, code) of each fenced block of the section, in order."""
    section = DOC.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```(\w+)\n(.*?)^```", section, re.S | re.M)


def as_script(blocks: list[tuple[str, str]]) -> str:
    parts = ["set -euo pipefail"]
    for language, code in blocks:
        if language == "sh":
            parts.append(code)
        elif language == "py":
            parts.append(f"\"$PYTHON\" - <<'PYTHON'\n{code}PYTHON")
    return "\n".join(parts)


def test_the_walkthrough_has_shell_python_and_expected_output():
    languages = {language for language, _ in walkthrough()}
    assert {"sh", "py", "text"} <= languages


def test_the_walkthrough_runs_as_written(models_dir, tmp_path):
    port = free_port()
    env = child_env(tmp_path / "home", OFFGRID_PORT=str(port),
                    OFFGRID_MODELS_DIR=str(models_dir), OFFGRID_DEFAULT_MODEL=CHAT_MODEL,
                    PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                    PYTHON=sys.executable)
    script = DEFAULT_URL.sub(f"http://127.0.0.1:{port}", as_script(walkthrough()))
    shell = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    try:
        output, errors = shell.communicate(timeout=300)
    finally:
        _stop_group(shell.pid)  # the server the walkthrough started in the background
    server_log = (tmp_path / "offgrid.log").read_text(errors="replace")
    assert shell.returncode == 0, errors + server_log
    position = 0
    for language, shown in walkthrough():
        if language == "text":
            found = output.find(shown.strip(), position)
            assert found >= 0, f"{shown.strip()!r} not printed, in order, in:\n{output}"
            position = found + len(shown.strip())
    assert "Traceback" not in server_log


def _stop_group(group: int) -> None:
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        pass
