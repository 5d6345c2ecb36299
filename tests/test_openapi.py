"""/openapi.json describes exactly the server's endpoints, and a property-based run of
schemathesis against it finds no server error and no response that breaks it."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CHAT_MODEL, get

from offgrid.server.app import ROUTES


def test_the_document_lists_every_route_and_nothing_else(base_url):
    status, _, document = get(base_url + "/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, operations in document["paths"].items()
                  for method in operations}
    assert documented == {(method, path) for method, path, *_ in ROUTES}


@pytest.fixture(scope="module")
def fuzz_server(start_server):
    """Small slots, so that any generation the fuzzer asks for ends quickly."""
    return start_server("--model", CHAT_MODEL, "--max-context", "96", "--parallel", "2")


def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzz_server, tmp_path):
    schemathesis = Path(sys.executable).parent / "schemathesis"
    assert schemathesis.exists() or shutil.which("schemathesis"), "schemathesis is installed"
    result = subprocess.run(
        [str(schemathesis), "run", fuzz_server.url + "/openapi.json",
         "--checks", "not_a_server_error,response_schema_conformance,status_code_conformance",
         "--max-examples", "15", "--request-timeout", "60", "--generation-deterministic",
         "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Traceback" not in fuzz_server.log()
