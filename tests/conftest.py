"""Test fixtures: real GGUF models, and real OffGrid servers started as processes on loopback.
Everything else the tests share is in support/."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from support import script
from support.hubmock import HubMock
from support.lora import write_adapter
from support.models import CHAT_MODEL, fetch_models
from support.postgres import Cluster
from support.servers import ServerProcess, starter


@pytest.fixture(scope="session")
def model_files() -> dict[str, Path]:
    return fetch_models().ensure_all()


@pytest.fixture(scope="session")
def documents() -> dict[str, Path]:
    """Real documents: Debian packages' folders of them (HTML, PDF, text, CSV, JSON), by
    package name (scripts/fetch_documents.py)."""
    return script("fetch_documents").ensure_all()


@pytest.fixture(scope="session")
def npm_mcp_servers() -> dict[str, list[str]]:
    """The MCP project's reference servers, memory and filesystem: each one's launch command,
    node and its script, installed once from npm (scripts/fetch_mcp_servers.py)."""
    return script("fetch_mcp_servers").ensure_all()


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of the Chromium the web page's tests drive: Debian's, installed with apt-get
    where it is missing (scripts/fetch_browser.py)."""
    return script("fetch_browser").ensure()


@pytest.fixture(scope="session")
def postgres() -> Cluster:
    """A throw-away PostgreSQL cluster (Debian's, installed where missing), for the session."""
    cluster = Cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def database_url(postgres) -> str:
    """The postgresql:// URL of a new, empty database of the session's cluster."""
    return postgres.new_database()


@pytest.fixture(scope="session")
def models_dir(model_files, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    for path in model_files.values():
        (folder / path.name).symlink_to(path)
    (folder / "loras").mkdir()  # the adapter docs/lora.md's examples use
    write_adapter(folder / "loras" / "example-lora.gguf", model_files["starter"], seed=0)
    return folder


def pytest_addoption(parser):
    parser.addoption("--store", choices=("sqlite", "postgresql"), default="sqlite",
                     help="the database the end-to-end servers keep their data in "
                          "(postgresql: a throw-away cluster, a new database per server)")


@pytest.fixture(scope="session")
def server_databases(request):
    """What gives each server started by the fixtures below its database: None for sqlite."""
    if request.config.getoption("--store") == "postgresql":
        return request.getfixturevalue("postgres").new_database
    return None


@pytest.fixture
def start_server(models_dir, tmp_path_factory, server_databases):
    """Servers for one test, stopped when it ends."""
    yield from starter(models_dir, tmp_path_factory, server_databases)


@pytest.fixture(scope="module")
def start_module_server(models_dir, tmp_path_factory, server_databases):
    """Servers for a test module's fixtures, stopped after its last test."""
    yield from starter(models_dir, tmp_path_factory, server_databases)


@pytest.fixture(scope="session")
def start_session_server(models_dir, tmp_path_factory, server_databases):
    yield from starter(models_dir, tmp_path_factory, server_databases)


# The repository and file the docs' download examples use, served by the hub mirror.
DOCS_REPOSITORY = "bartowski/SmolLM2-135M-Instruct-GGUF"
DOCS_FILE = "SmolLM2-135M-Instruct-Q4_K_M.gguf"


@pytest.fixture(scope="session")
def hub_mirror(model_files):
    """A Hugging Face mirror on loopback holding the docs' example repository."""
    mirror = HubMock()
    mirror.host(DOCS_REPOSITORY, DOCS_FILE, model_files["starter"])
    yield mirror
    mirror.close()


@pytest.fixture(scope="session")
def server(start_session_server, hub_mirror) -> ServerProcess:
    """The shared server: the starter model by default, 4 slots of 2048 tokens, downloads from
    the hub mirror, imports and exports in the temporary folder (where tests make theirs)."""
    return start_session_server("--model", CHAT_MODEL, "--parallel", "4", "--max-context",
                                "2048", env={"HF_ENDPOINT": hub_mirror.url,
                                             "OFFGRID_TRANSFER_DIRS": tempfile.gettempdir()})


@pytest.fixture(scope="session")
def base_url(server) -> str:
    return server.url
