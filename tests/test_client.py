"""offgrid.Client beyond the docs' examples (tests/test_docs.py runs those): installing it,
errors, and retries."""

import os
import re
import subprocess
import sys
import threading
import time

import pytest

import offgrid
from support import ROOT
from support.metrics import scrape, value
from support.models import CHAT_MODEL
from support.multiuser import start_multi_user
from support.servers import free_port
from support.waiting import wait_until


def test_pip_install_gives_the_library_without_dependencies(tmp_path, base_url):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    started = time.monotonic()
    installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(ROOT)],
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    assert time.monotonic() - started < 120
    packages = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"],
                              capture_output=True, text=True).stdout.split()
    assert [p.split("==")[0] for p in packages if not p.startswith(("pip==", "setuptools=="))
            ] == ["offgrid"]
    script = ("import sys, offgrid; print(offgrid.Client().chat('Say hi', max_tokens=5)); "
              "assert 'llama_cpp' not in sys.modules and 'numpy' not in sys.modules")
    ran = subprocess.run([str(python), "-c", script], capture_output=True, text=True,
                         cwd=tmp_path, env={"OFFGRID_URL": base_url, "PATH": "/usr/bin:/bin"})
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip()


def test_the_host_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("OFFGRID_URL", raising=False)
    monkeypatch.setenv("OFFGRID_HOST", "0.0.0.0")
    monkeypatch.setenv("OFFGRID_PORT", "12345")
    assert offgrid.Client().host == "http://127.0.0.1:12345"
    monkeypatch.setenv("OFFGRID_URL", "http://10.0.0.9:11611/")
    assert offgrid.Client().host == "http://10.0.0.9:11611"
    assert offgrid.Client("http://example:1").host == "http://example:1"


def test_errors_carry_status_code_and_param(base_url):
    client = offgrid.Client(base_url)
    with pytest.raises(offgrid.ModelNotFound) as missing:
        client.chat("hi", model="nope")
    assert (missing.value.status, missing.value.code) == (404, "model_not_found")
    assert isinstance(missing.value, offgrid.NotFound)
    with pytest.raises(offgrid.BadRequest) as bad:
        client.complete("hi", model=CHAT_MODEL, top_p=7)
    assert bad.value.param == "top_p"
    with pytest.raises(offgrid.NotFound):
        client.request("GET", "/v1/nowhere")


def test_an_unreachable_server_fails_after_retries():
    client = offgrid.Client(f"http://127.0.0.1:{free_port()}", retries=2)
    started = time.monotonic()
    with pytest.raises(offgrid.ConnectionFailed) as failed:
        client.health()
    assert failed.value.status == 0
    assert time.monotonic() - started >= 0.25 + 0.5  # it waited between the tries


def test_a_busy_server_is_retried_until_it_answers(start_server):
    """One slot and no queue, held by a stream for as long as the test keeps it."""
    server = start_server("--model", CHAT_MODEL, "--parallel", "1", "--queue-size", "0")
    impatient = offgrid.Client(server.url, retries=0)
    busy = impatient.complete("1, 2, 3,", stream=True, max_tokens=4000, temperature=0)
    assert next(busy)  # generating: the slot is taken
    with pytest.raises(offgrid.ServiceUnavailable) as refused:
        impatient.complete("1, 2,", max_tokens=2)
    assert refused.value.retry_after >= 1
    patient = {}
    runner = threading.Thread(target=lambda: patient.update(text=offgrid.Client(
        server.url, retries=100).complete("1, 2,", max_tokens=2)))
    runner.start()
    wait_until(lambda: refusals(server.url) >= 2, message="the patient client refused once")
    busy.close()  # frees the slot: the patient client's next try gets it
    runner.join(300)
    assert patient["text"]


def refusals(url: str) -> float:
    """How many completions the server has refused as busy."""
    return value(scrape(url), "offgrid_requests_total", route="/v1/completions", method="POST",
                 status="503")


def test_streams_can_be_stopped_early(base_url):
    client = offgrid.Client(base_url)
    pieces = client.complete("1, 2, 3,", model=CHAT_MODEL, stream=True, max_tokens=500,
                             temperature=0)
    first = [next(pieces) for _ in range(3)]
    pieces.close()
    assert "".join(first).strip().startswith("4")
    wait_until(lambda: client.system.stats()["active_sessions"] == 0)


def test_the_multi_user_examples_run_as_written(start_server):
    """docs/python.md's `py` blocks need a multi-user server with the admin they name."""
    site = start_multi_user(start_server)
    examples = re.findall(r"^```py\n(.*?)^```", (ROOT / "docs" / "python.md").read_text(),
                          re.S | re.M)
    assert examples
    for code in examples:
        ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "OFFGRID_URL": site.url}, timeout=120)
        assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[:2] == ["og_", "alice"]
    assert ran.stdout.splitlines()[-1] == "401 invalid_api_key"


def test_rate_limits_raise_with_retry_after(start_server):
    site = start_multi_user(start_server, env={"OFFGRID_USER_REQUESTS_PER_MINUTE": "2"})
    user, _ = site.account("user")
    client = offgrid.Client(site.url, api_key=site.create_key(user["id"])["key"])
    client.models.list()
    client.models.list()
    with pytest.raises(offgrid.RateLimited) as limited:
        client.models.list()
    assert limited.value.status == 429 and limited.value.retry_after > 0
