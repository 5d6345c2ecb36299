"""/openapi.json describes exactly the server's endpoints, and a property-based run of
schemathesis against it finds no server error and no response that breaks it."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from offgrid.server.app import ROUTES
from support.http import get, request
from support.hubmock import HubMock
from support.models import CHAT_MODEL
from support.multiuser import start_multi_user


def test_the_document_lists_every_route_and_nothing_else(base_url):
    status, _, document = get(base_url + "/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, operations in document["paths"].items()
                  for method in operations}
    assert documented == {(method, path) for method, path, *_ in ROUTES}


@pytest.fixture(scope="module")
def fuzz_server(start_module_server, model_files, tmp_path_factory):
    """Small slots, so that any generation the fuzzer asks for ends quickly; its own models
    folder, since the fuzzer may delete models; and a hub mirror, so the hub endpoints answer
    without the internet."""
    models = tmp_path_factory.mktemp("fuzz-models")
    for path in model_files.values():
        (models / path.name).symlink_to(path)
    hub = HubMock()
    yield start_module_server("--model", CHAT_MODEL, "--max-context", "96", "--parallel", "2",
                              models=models, env={"HF_ENDPOINT": hub.url})
    hub.close()


def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzz_server, tmp_path):
    # import and export read and write folders on this machine: not for random paths; MCP
    # servers and turning tools on (shell among them) start programs: not random ones; Ollama's
    # API streams NDJSON by default, which the document can only name, not describe
    _fuzz(fuzz_server, tmp_path, "--exclude-path-regex",
          "^/v1/models/(import|export)$|^/v1/agents/(mcp|tools$)|^/api/")


def test_schemathesis_on_the_account_endpoints_of_a_multi_user_server(start_server, tmp_path):
    """In single-user mode these all answer 404; here an admin's key reaches their logic."""
    site = start_multi_user(start_server, "--max-context", "96",
                            env={"OFFGRID_LOGIN_ATTEMPTS": "100000"})
    key = site.create_key(1)["key"]
    _fuzz(site.server, tmp_path, "--header", f"Authorization: Bearer {key}",
          "--include-path-regex", "^/v1/(users|auth)")
    site.server.stop()


def _fuzz(server, cwd, *options: str) -> None:
    schemathesis = Path(sys.executable).parent / "schemathesis"
    assert schemathesis.exists() or shutil.which("schemathesis"), "schemathesis is installed"
    result = subprocess.run(
        [str(schemathesis), "run", server.url + "/openapi.json",
         "--checks", "not_a_server_error,response_schema_conformance,status_code_conformance",
         "--max-examples", "15", "--request-timeout", "60", "--generation-deterministic",
         "--no-color", *options],
        capture_output=True, text=True, timeout=600, cwd=cwd)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Traceback" not in server.log()


def test_where_credentials_are_required_the_description_names_no_models(start_server):
    site = start_multi_user(start_server, env={"OFFGRID_REQUIRE_AUTH": "true"})
    status, _, text = request("GET", site.url + "/openapi.json")
    assert status == 200 and CHAT_MODEL not in json.dumps(text)
    assert get(site.url + "/v1/models")[0] == 401
