"""The model store: what /v1/models tells, downloads from a hub mirror, USB import and export,
and loading: LRU, keep-alive and the memory budget."""

import functools
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from support import ROOT
from support.cli import child_env, offgrid
from support.http import assert_error, chat_body, get, post, request
from support.hubmock import HubMock
from support.models import CHAT_MODEL, EMBEDDING_MODEL, GEMMA_MODEL
from support.waiting import wait_until

REPO = "test-org/SmolLM2-GGUF"
STARTER_FILE = CHAT_MODEL + ".gguf"


def models_by_id(url) -> dict:
    return {m["id"]: m for m in get(url + "/v1/models")[2]["data"]}


# -- what the store tells ----------------------------------------------------------------------

def test_models_carry_what_their_headers_say(base_url):
    models = models_by_id(base_url)
    chat, embedding = models[CHAT_MODEL], models[EMBEDDING_MODEL]
    assert chat["architecture"] == "llama" and chat["quantization"] == "Q4_1"
    assert 130_000_000 < chat["parameters"] < 140_000_000
    assert chat["context_length"] == 8192 and chat["chat_template"] is True
    assert chat["embedding"] is False and chat["loaded"] is True
    assert chat["size_bytes"] == 98_362_432 and chat["files"] == [STARTER_FILE]
    assert embedding["architecture"] == "bert" and embedding["embedding"] is True
    assert models[GEMMA_MODEL]["chat_template"] is False


def test_split_files_are_one_model_and_bad_files_say_why(tmp_path, model_files):
    for part in (1, 2):
        shutil.copyfile(model_files["embedding"], tmp_path / f"big-0000{part}-of-00002.gguf")
    (tmp_path / "truncated.gguf").write_bytes(model_files["embedding"].read_bytes()[:1000])
    result = offgrid("list", "--models-dir", str(tmp_path))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "SIZE", "QUANTIZATION", "LOADED"]
    assert [line.split()[0] for line in lines[1:]] == ["big", "truncated"]
    assert "50.6 MB" in lines[1] and "unreadable" in lines[2]


# -- downloads -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hub(model_files, tmp_path_factory):
    mock = HubMock()
    junk = tmp_path_factory.mktemp("junk") / "notes.gguf"
    junk.write_text("this is not a model\n" * 1000)
    mock.host(REPO, STARTER_FILE, model_files["starter"])
    mock.host(REPO, "SmolLM2-135M-Instruct.Q4_K_M.gguf", model_files["starter"])
    mock.host("test-org/junk", "notes.gguf", junk)
    yield mock
    mock.close()


@pytest.fixture
def hub_server(start_server, hub, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    return start_server(models=models, env={"HF_ENDPOINT": hub.url}), models


def start_download(url, **body):
    status, _, job = post(url + "/v1/models/download", body)
    assert status == 202, job
    return job


def job_state(url, job_id) -> dict:
    return get(f"{url}/v1/models/download/progress?id={job_id}")[2]["data"][0]


def job_end(url, job_id, ends=("completed", "failed"), timeout: float = 30) -> dict:
    """The job's state once its status is one of `ends`."""
    return wait_until(lambda: (state := job_state(url, job_id))["status"] in ends and state,
                      timeout)


def test_a_reader_that_stops_early_ends_the_command_quietly(models_dir):
    """`offgrid list | head -1`: the pipe closes before the listing is out."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "offgrid", "list", "--models-dir",
                               str(models_dir)], stdout=write_end, stderr=subprocess.PIPE,
                              env=child_env(), cwd=ROOT, timeout=60)
    finally:
        os.close(write_end)
    assert done.returncode == 0 and done.stderr == b""


def test_download_reports_progress_and_lands_verified(hub, hub_server):
    server, models = hub_server
    hosted = hub.host(REPO, STARTER_FILE, hub.repos[REPO][STARTER_FILE].path,
                      bytes_per_second=40_000_000)
    job = start_download(server.url, repository=REPO, file_name=STARTER_FILE)
    seen = []
    final = wait_until(lambda: seen.append(job_state(server.url, job["id"])) or (
        seen[-1] if seen[-1]["status"] in ("completed", "failed") else None))
    assert final["status"] == "completed", final
    assert final["bytes_done"] == final["bytes_total"] == 98_362_432 and final["percent"] == 100
    partway = [s["bytes_done"] for s in seen if s["status"] == "downloading"]
    assert partway == sorted(partway) and any(0 < done < 98_362_432 for done in partway)
    assert models_by_id(server.url)[CHAT_MODEL]["quantization"] == "Q4_1"
    assert sorted(p.name for p in models.iterdir()) == [STARTER_FILE]
    assert hosted.requests == [None]
    status, _, answer = post(server.url + "/v1/chat/completions", chat_body("Hi", max_tokens=3))
    assert status == 200


def test_download_resumes_after_the_connection_is_cut(hub, hub_server):
    server, models = hub_server
    hosted = hub.host(REPO, STARTER_FILE, hub.repos[REPO][STARTER_FILE].path,
                      cut_after=30_000_000)
    job = start_download(server.url, repository=REPO, file_name=STARTER_FILE)
    final = job_end(server.url, job["id"])
    assert final["status"] == "completed", final
    assert hosted.requests[0] is None and hosted.requests[1].startswith("bytes=")
    assert int(hosted.requests[1][len("bytes="):].rstrip("-")) >= 29_000_000
    assert (models / STARTER_FILE).stat().st_size == 98_362_432


def test_cancel_stops_a_download_and_leaves_no_model(hub, hub_server):
    server, models = hub_server
    hub.host(REPO, STARTER_FILE, hub.repos[REPO][STARTER_FILE].path, bytes_per_second=5_000_000)
    job = start_download(server.url, repository=REPO, file_name=STARTER_FILE)
    wait_until(lambda: job_state(server.url, job["id"])["bytes_done"] > 1_000_000)
    status, _, cancelled = post(server.url + "/v1/models/download/cancel", {"id": job["id"]})
    assert status == 200 and cancelled["data"][0]["id"] == job["id"]
    final = job_end(server.url, job["id"], ends=("cancelled", "completed", "failed"))
    assert final["status"] == "cancelled"
    assert CHAT_MODEL not in models_by_id(server.url)
    assert not (models / STARTER_FILE).exists()


def test_cancel_wakes_a_download_from_a_silent_mirror_and_the_rerun_resumes(hub, hub_server,
                                                                          model_files):
    server, models = hub_server
    name = "SmolLM2-silent.gguf"
    silent = hub.host(REPO, name, model_files["starter"], stall_after=1_000_000)
    try:
        job = start_download(server.url, repository=REPO, file_name=name)
        wait_until(lambda: job_state(server.url, job["id"])["bytes_done"] == 1_000_000)
        post(server.url + "/v1/models/download/cancel", {"id": job["id"]})
        # at once, not after the 30 s a silent mirror gets before a retry
        final = job_end(server.url, job["id"], ends=("cancelled", "completed", "failed"),
                        timeout=10)
        assert final["status"] == "cancelled"
    finally:
        silent.release.set()
    assert (models / f".{name}.part").stat().st_size == 1_000_000 and not (models / name).exists()
    status, _, listed = get(server.url + "/v1/models")
    assert status == 200 and listed["data"] == []
    honest = hub.host(REPO, name, model_files["starter"])
    job = start_download(server.url, repository=REPO, file_name=name)
    final = job_end(server.url, job["id"])
    assert final["status"] == "completed", final
    assert honest.requests == ["bytes=1000000-"]
    assert sorted(p.name for p in models.iterdir()) == [name]


def test_a_mirror_silent_past_the_timeout_is_a_cut_connection_and_resumed(hub, model_files,
                                                                       tmp_path):
    name = "SmolLM2-pause.gguf"
    paused = hub.host(REPO, name, model_files["starter"], stall_after=1_000_000)
    # Far shorter than the 30 s default, yet long enough for the mirror (which reads the whole
    # file before each answer) on a busy machine.
    pull_with_a_5s_timeout = ("import runpy, sys; from offgrid.models import hub; hub.TIMEOUT = 5; "
                              "runpy.run_module('offgrid', run_name='__main__')")
    try:
        pulled = offgrid("pull", REPO, name, "--models-dir", tmp_path / "models",
                         home=tmp_path / "home", env={"HF_ENDPOINT": hub.url},
                         entry=(sys.executable, "-c", pull_with_a_5s_timeout))
    finally:
        paused.release.set()
    assert pulled.returncode == 0, pulled.stderr
    assert paused.requests == [None, "bytes=1000000-"]
    assert (tmp_path / "models" / name).stat().st_size == 98_362_432


def test_a_body_longer_than_declared_is_stopped_at_the_declared_size(hub, hub_server,
                                                                    model_files):
    server, models = hub_server
    name = "SmolLM2-endless.gguf"
    size = model_files["starter"].stat().st_size
    for chunked in (True, False):  # a chunked body, or a Content-Length above the declared size
        hosted = hub.host(REPO, name, model_files["starter"], extra_bytes=50_000_000,
                          chunked=chunked)
        job = start_download(server.url, repository=REPO, file_name=name)
        final = job_end(server.url, job["id"])
        assert final["status"] == "failed" and f"more than the {size} bytes" in final["error"]
        assert final["bytes_done"] <= size
        assert hosted.sent < size + 50_000_000  # it stopped reading, not only writing
        assert list(models.iterdir()) == []
        status, _, listed = get(server.url + "/v1/models")
        assert status == 200 and listed["data"] == []


def test_a_redirect_off_http_is_refused_and_nothing_is_copied(hub, hub_server, model_files):
    server, models = hub_server
    name = "SmolLM2-elsewhere.gguf"
    local = f"file://{model_files['starter']}"  # a real model whose sha256 the mirror tells
    for target, on_head in [(local, True), (local, False), ("ftp://mirror.example/x.gguf", True)]:
        hub.host(REPO, name, model_files["starter"], redirect=target, redirect_head=on_head)
        job = start_download(server.url, repository=REPO, file_name=name)
        final = job_end(server.url, job["id"])
        assert final["status"] == "failed", (target, final)
        assert "only http and https" in final["error"] and target in final["error"]
        assert list(models.iterdir()) == []
    status, _, listed = get(server.url + "/v1/models")
    assert status == 200 and listed["data"] == []


def test_a_checksum_mismatch_or_a_non_gguf_file_leaves_nothing(hub, hub_server):
    server, models = hub_server
    hub.host(REPO, STARTER_FILE, hub.repos[REPO][STARTER_FILE].path, sha256="f" * 64)
    for repository, file_name, says in [(REPO, STARTER_FILE, "damaged"),
                                        ("test-org/junk", "notes.gguf", "not a GGUF")]:
        job = start_download(server.url, repository=repository, file_name=file_name)
        final = job_end(server.url, job["id"])
        assert final["status"] == "failed" and says in final["error"]
    assert list(models.iterdir()) == []
    hub.host(REPO, STARTER_FILE, hub.repos[REPO][STARTER_FILE].path)  # honest again


def test_download_requests_are_checked(hub, hub_server):
    server, _ = hub_server
    for body, status, param in [({"repository": "../etc", "file_name": "x.gguf"}, 400,
                                 "repository"),
                                ({"repository": REPO, "file_name": "../x.gguf"}, 400,
                                 "file_name"),
                                ({"repository": REPO, "file_name": "model.bin"}, 400,
                                 "file_name"),
                                ({"repository": "test-org/none"}, 404, None)]:
        code, _, error = post(server.url + "/v1/models/download", body)
        assert_error(code, error, status, param=param)


def test_search_over_rest(hub, hub_server):
    server, _ = hub_server
    status, _, found = get(server.url + "/v1/search?query=SmolLM2")
    assert status == 200 and [m["id"] for m in found["data"]] == [REPO]


def test_offline_answers_at_once(start_server, tmp_path):
    server = start_server(models=tmp_path, env={"HF_HUB_OFFLINE": "1",
                                                "HF_ENDPOINT": "http://10.255.255.1"})
    started = time.monotonic()
    status, _, error = post(server.url + "/v1/models/download",
                            {"repository": REPO, "file_name": STARTER_FILE})
    assert_error(status, error, 503, "offline")
    status, _, error = get(server.url + "/v1/search?query=x")
    assert_error(status, error, 503, "offline")
    assert time.monotonic() - started < 5


def test_pull_list_export_import_remove_from_the_command_line(hub, tmp_path):
    cli = functools.partial(offgrid, home=tmp_path / "home", env={"HF_ENDPOINT": hub.url})
    first, usb, second = tmp_path / "first", tmp_path / "usb", tmp_path / "second"
    pulled = cli("pull", REPO, "--models-dir", str(first))
    assert pulled.returncode == 0, pulled.stderr
    assert "100.0%" in pulled.stderr and "SmolLM2-135M-Instruct.Q4_K_M.gguf" in pulled.stdout
    found = cli("search", "SmolLM2")
    assert found.stdout.startswith(REPO)
    listed = cli("list", "--models-dir", str(first))
    assert "SmolLM2-135M-Instruct.Q4_K_M" in listed.stdout and "Q4_1" in listed.stdout
    exported = cli("export", "SmolLM2-135M-Instruct.Q4_K_M", str(usb), "--models-dir", str(first))
    assert exported.returncode == 0, exported.stderr
    manifest = json.loads((usb / "offgrid-manifest.json").read_text())
    assert manifest["files"]["SmolLM2-135M-Instruct.Q4_K_M.gguf"]["size"] == 98_362_432
    imported = cli("import", str(usb), "--models-dir", str(second))
    assert imported.stdout.strip() == "imported SmolLM2-135M-Instruct.Q4_K_M.gguf"
    again = cli("import", str(usb), "--models-dir", str(second))
    assert again.stdout.strip() == "skipped SmolLM2-135M-Instruct.Q4_K_M.gguf: already there"
    removed = cli("rm", "SmolLM2-135M-Instruct.Q4_K_M", "--models-dir", str(second))
    assert removed.returncode == 0 and list(second.glob("*.gguf")) == []
    refused = cli("rm", "../first/x", "--models-dir", str(second))
    assert refused.returncode == 1 and "Invalid model id" in refused.stderr


def test_import_refuses_a_copy_that_does_not_match_its_manifest(model_files, tmp_path, server):
    usb, target = tmp_path / "usb", tmp_path / "target"
    status, _, report = post(server.url + "/v1/models/export",
                             {"model": EMBEDDING_MODEL, "path": str(usb)})
    assert status == 200 and report["copied"] == [EMBEDDING_MODEL + ".gguf"]
    damaged = bytearray((usb / (EMBEDDING_MODEL + ".gguf")).read_bytes())
    damaged[-1] ^= 0xFF
    (usb / (EMBEDDING_MODEL + ".gguf")).write_bytes(damaged)
    result = offgrid("import", str(usb), "--models-dir", str(target))
    assert result.returncode == 1 and "does not match the manifest" in result.stderr
    assert not target.exists() or list(target.iterdir()) == []
    status, _, error = post(server.url + "/v1/models/import", {"path": "relative/path"})
    assert_error(status, error, 400, param="path")


# -- loading and unloading -------------------------------------------------------------------------

def loaded_ids(url) -> set:
    return {m["id"] for m in get(url + "/v1/models")[2]["data"] if m["loaded"]}


def test_least_recently_used_model_makes_room(start_server):
    server = start_server("--model", CHAT_MODEL, "--max-models", "2")
    assert loaded_ids(server.url) == {CHAT_MODEL}
    time.sleep(1.1)
    post(server.url + "/v1/embeddings", {"model": EMBEDDING_MODEL, "input": "hi"})
    assert loaded_ids(server.url) == {CHAT_MODEL, EMBEDDING_MODEL}
    time.sleep(1.1)
    post(server.url + "/v1/embeddings", {"model": EMBEDDING_MODEL, "input": "again"})
    status, _, _ = post(server.url + "/v1/completions",
                        {"model": GEMMA_MODEL, "prompt": "Hello", "max_tokens": 2})
    assert status == 200
    assert loaded_ids(server.url) == {EMBEDDING_MODEL, GEMMA_MODEL}


def test_idle_models_unload_after_their_keep_alive(start_server):
    server = start_server("--model", EMBEDDING_MODEL, "--keep-alive", "2s")
    assert models_by_id(server.url)[EMBEDDING_MODEL]["expires_in"] <= 2
    wait_until(lambda: EMBEDDING_MODEL not in loaded_ids(server.url))
    post(server.url + "/v1/completions", {"model": CHAT_MODEL, "prompt": "Hi", "max_tokens": 1,
                                          "keep_alive": -1})
    assert models_by_id(server.url)[CHAT_MODEL]["expires_in"] is None
    time.sleep(3.5)
    assert loaded_ids(server.url) == {CHAT_MODEL}


def test_a_model_that_does_not_fit_the_memory_budget_is_refused(start_server, model_files,
                                                                 tmp_path):
    for path in model_files.values():
        (tmp_path / path.name).symlink_to(path)
    server = start_server("--model", EMBEDDING_MODEL, models=tmp_path,
                          env={"OFFGRID_MAX_MEMORY": "200M"})
    status, _, error = post(server.url + "/v1/chat/completions", chat_body("hi"))
    found = assert_error(status, error, 503, "insufficient_memory")
    assert "MiB" in found["message"]
    status, _, _ = post(server.url + "/v1/embeddings", {"model": EMBEDDING_MODEL, "input": "x"})
    assert status == 200
    assert request("DELETE", f"{server.url}/v1/models/{EMBEDDING_MODEL}")[0] == 200
    assert EMBEDDING_MODEL not in models_by_id(server.url)
