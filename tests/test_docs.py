"""The examples in README.md and docs/ run, as written, against a real server."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from offgrid.config import Settings
from support.docs import code_blocks

# How each stream says it is over: OpenAI's chat with [DONE], Anthropic's Messages and OpenAI's
# Responses with a last event of their own.
# How each kind of stream ends; agents' and sessions' end with a data event of type done.
STREAM_ENDS = ("data: [DONE]", "event: message_stop", "event: response.completed",
               "event: response.incomplete")
DEFAULT_URL = re.compile(r"http://(localhost|127\.0\.0\.1):11611")


def at(base_url: str, code: str) -> str:
    return DEFAULT_URL.sub(base_url, code)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("where, code", code_blocks("bash"))
def test_curl_examples(base_url, where, code):
    assert code.startswith("curl ")
    result = subprocess.run(["bash", "-e", "-c", at(base_url, code)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    output = result.stdout.strip()
    if output.startswith(("data: ", "event: ")):
        last = output.split("\n\n")[-1].splitlines()[0]
        assert last in STREAM_ENDS or json.loads(last[len("data: "):])["type"] == "done", last
    else:
        assert "error" not in json.loads(output)


@pytest.mark.parametrize("where, code", code_blocks("python"))
def test_python_examples(base_url, where, code):
    env = {**os.environ, "OFFGRID_URL": base_url}
    result = subprocess.run([sys.executable, "-c", at(base_url, code)], capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


@pytest.mark.parametrize("where, code", code_blocks("toml"))
def test_config_examples_are_valid_settings(tmp_path, where, code):
    config = tmp_path / "config.toml"
    config.write_text(code)
    settings = Settings.load(environ={}, config_file=config)
    assert settings.port == 11611
