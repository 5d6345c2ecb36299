"""Starting, configuring and stopping the server."""

import signal
import sys
import threading
import urllib.error
from pathlib import Path

import pytest

from offgrid import __version__
from offgrid.config import ConfigError, Settings
from support.cli import offgrid
from support.http import assert_error, get, post, stream
from support.models import CHAT_MODEL, GEMMA_MODEL
from support.waiting import wait_until

COUNTING = {"model": CHAT_MODEL, "prompt": "1, 2, 3, 4,", "temperature": 0}


def test_health_is_503_until_the_default_model_is_loaded(start_server):
    server = start_server("--model", GEMMA_MODEL, wait=False)
    seen = []

    def healthy() -> bool:
        status, _, body = get(server.url + "/health")
        seen.append((status, body))
        return status == 200

    wait_until(healthy, 120, ignoring=(OSError,))  # OSError: not listening yet
    assert seen[-1] == (200, {"status": "healthy"})
    assert len(seen) > 1, "loading takes long enough to be seen"
    statuses = [status for status, _ in seen]
    assert statuses == sorted(statuses, reverse=True), "once healthy, it stays healthy"
    for status, body in seen[:-1]:
        assert_error(status, body, 503, "model_loading")


def test_health_is_503_when_the_default_model_cannot_load(start_server, tmp_path):
    (tmp_path / "broken.gguf").write_bytes(b"GGUF" + b"\x00" * 100)
    server = start_server("--model", "broken", models=tmp_path, wait=False)

    def load_failed():
        status, _, body = get(server.url + "/health")
        return body["error"]["code"] == "model_load_failed" and (status, body)

    status, body = wait_until(load_failed, ignoring=(OSError,))
    assert_error(status, body, 503, "model_load_failed")
    assert "broken" in body["error"]["message"]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_lets_running_requests_finish(start_server, stop_signal):
    server = start_server("--model", CHAT_MODEL, env={"OFFGRID_SHUTDOWN_TIMEOUT": "300"})
    result = {}
    runner = threading.Thread(target=lambda: result.update(events=stream(
        server.url + "/v1/completions",
        {**COUNTING, "max_tokens": 100, "stream_options": {"include_usage": True}})))
    runner.start()
    wait_until(lambda: get(server.url + "/v1/system/stats")[2]["active_sessions"],
               message="the request starting")
    server.process.send_signal(stop_signal)
    runner.join(300)
    assert result["events"][-1] == "[DONE]"
    assert result["events"][-2]["usage"]["completion_tokens"] == 100
    assert server.process.wait(30) == 0
    with pytest.raises(urllib.error.URLError):
        get(server.url + "/health", timeout=5)
    assert "stopped" in server.log()


def test_config_file_environment_and_flags_in_that_order(start_server, tmp_path):
    config = tmp_path / "offgrid.toml"
    config.write_text(f'default_model = "{GEMMA_MODEL}"\nmax_context = 96\nparallel = 1\n')

    def context_used(*args, env=None):
        server = start_server("--config", str(config), *args, env=env)
        status, _, answer = post(server.url + "/v1/completions", COUNTING)
        _, _, system = get(server.url + "/v1/system/config")
        server.stop()
        return answer["usage"]["total_tokens"], system["default_model"]

    assert context_used() == (96, GEMMA_MODEL)
    assert context_used(env={"OFFGRID_MAX_CONTEXT": "112"}) == (112, GEMMA_MODEL)
    assert context_used("--max-context", "80", "--model", CHAT_MODEL,
                        env={"OFFGRID_MAX_CONTEXT": "112"}) == (80, CHAT_MODEL)


def test_settings_precedence_and_errors(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text("port = 9000\nparallel = 2\nhost = '0.0.0.0'\n")
    settings = Settings.load({"parallel": 3}, environ={"OFFGRID_HOME": str(home),
                                                       "OFFGRID_PORT": "9100"})
    assert (settings.host, settings.port, settings.parallel) == ("0.0.0.0", 9100, 3)
    assert settings.models_dir == home / "models"
    with pytest.raises(ConfigError, match="port"):
        Settings.load(environ={"OFFGRID_PORT": "eleven"})
    with pytest.raises(ConfigError, match="parallel"):
        Settings.load({"parallel": 0}, environ={})
    (home / "config.toml").write_text("port = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.load(environ={"OFFGRID_HOME": str(home)})


@pytest.mark.parametrize("command", [
    [sys.executable, "offgrid.py"], [sys.executable, "-m", "offgrid"],
    [str(Path(sys.executable).parent / "offgrid")]])
def test_every_entry_point_is_the_same_command(command):
    result = offgrid("--version", entry=command)
    assert result.returncode == 0 and result.stdout.strip() == f"offgrid {__version__}"
    result = offgrid("serve", "--port", "nope", entry=command)
    assert result.returncode == 2 and "--port" in result.stderr
