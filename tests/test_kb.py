"""The knowledge base against real servers: documents in (JSON, uploads of real files, jobs),
search that finds the right passage, chat answers that cite it, state that survives a restart,
a new embedding model, and documents that stay their owner's."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from support import ROOT
from support.http import assert_error, chat_body, get, post, request, stream
from support.metrics import scrape, value
from support.models import CHAT_MODEL, EMBEDDING_MODEL
from support.multiuser import bearer, start_multi_user
from support.waiting import wait_until

INGEST, SEARCH = "/v1/documents/ingest", "/v1/documents/search"
CHAT = "/v1/chat/completions"
RADIO = ("# Field radio\n\n## Resetting\n\nTo reset the field radio, hold POWER and MENU together "
         "for ten seconds, until the screen flashes twice.\n\n## Batteries\n\nThe radio runs "
         "for nine hours on two AA batteries; carry a spare pair.")


def upload(url: str, path, name: str | None = None, headers: dict | None = None,
           fields: dict | None = None):
    """POST a file as multipart/form-data, as curl -F does."""
    boundary = "test-boundary-7d1"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
             .encode() for key, value in (fields or {}).items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                 f'filename="{name or path.name}"\r\n\r\n'.encode() + path.read_bytes()
                 + b"\r\n")
    return request("POST", url + INGEST, b"".join(parts) + f"--{boundary}--\r\n".encode(),
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                            **(headers or {})})


def add_text(url: str, name: str, content: str, headers: dict | None = None) -> dict:
    status, _, answer = post(url + INGEST, {"name": name, "content": content}, headers=headers)
    assert status in (200, 201), answer
    return answer["document"]


@pytest.fixture(scope="module")
def kb_models(model_files, tmp_path_factory):
    """The chat and embedding models, and a second embedding model (the same weights under
    another name) to switch to."""
    folder = tmp_path_factory.mktemp("kb-models")
    for path in (model_files["starter"], model_files["embedding"]):
        (folder / path.name).symlink_to(path)
    (folder / "minilm-again.gguf").symlink_to(model_files["embedding"])
    return folder


@pytest.fixture(scope="module")
def kb(start_module_server, kb_models):
    """A single-user server whose knowledge base has the radio notes; two embedding models,
    so it is turned on naming one."""
    server = start_module_server("--model", CHAT_MODEL, models=kb_models)
    status, _, answer = post(server.url + "/v1/rag/enable", {"embedding_model": EMBEDDING_MODEL})
    assert status == 200 and answer["enabled"], answer
    add_text(server.url, "radio.md", RADIO)
    return server


def test_a_real_document_goes_in_and_its_passages_come_out(kb, documents):
    page = documents["git-doc"] / "git-stash.html"
    status, _, answer = upload(kb.url, page)
    assert status == 201 and answer["success"] and answer["created"], answer
    document = answer["document"]
    assert document["name"] == "git-stash.html" and document["content_type"] == "text/html"
    assert document["chunks"] > 5 and len(document["sha256"]) == 64
    assert get(kb.url + f"/v1/documents/{document['id']}")[2] == document
    status, _, again = upload(kb.url, page)
    assert status == 200 and again["created"] is False and again["document"]["id"] == document["id"]
    status, _, found = post(kb.url + SEARCH, {"query": "how do I put my uncommitted changes "
                                                       "aside for later?", "top_k": 3})
    assert status == 200 and found["results"], found
    best = found["results"][0]
    assert best["document_id"] == document["id"] and "stash" in best["content"].lower()
    status, _, chunk = get(kb.url + f"/v1/documents/{document['id']}/chunks/"
                                    f"{best['chunk_index']}")
    assert status == 200 and chunk["content"] == best["content"]
    assert (chunk["start_char"], chunk["end_char"]) == (best["start_char"], best["end_char"])
    assert chunk["end_char"] - chunk["start_char"] == len(chunk["content"])


@pytest.mark.parametrize("mode", ["hybrid", "keyword", "vector"])
def test_each_search_mode_finds_the_passage(kb, mode):
    status, _, found = post(kb.url + SEARCH, {"query": "how long do the batteries last?",
                                              "mode": mode, "top_k": 2})
    assert status == 200
    assert "nine hours" in found["results"][0]["content"], (mode, found)


def test_questions_with_punctuation_are_searched_not_parsed(kb):
    for query in ("what's the radio's reset?", 'AND OR NOT "unbalanced', "*", "(", "x:y^2",
                  "NEAR(a b)"):
        status, _, found = post(kb.url + SEARCH, {"query": query})
        assert status == 200, (query, found)
    status, _, error = post(kb.url + SEARCH, {"query": ""})
    assert_error(status, error, 400, param="query")


def test_a_chat_cites_the_passage_it_was_given(kb):
    body = chat_body("How do I reset the field radio?", max_tokens=40, temperature=0,
                     use_knowledge_base=True)
    status, _, answer = post(kb.url + CHAT, body)
    assert status == 200, answer
    citations = answer["choices"][0]["message"]["citations"]
    assert citations and citations[0]["index"] == 1
    assert "POWER and MENU" in citations[0]["text"]
    assert citations[0]["document_name"] == "radio.md"
    events = stream(kb.url + CHAT, body)
    opening = events[0]["choices"][0]["delta"]
    assert opening["citations"] == citations and opening["content"] == ""
    assert all("citations" not in e["choices"][0]["delta"] for e in events[1:-1] if e["choices"])


def test_a_chat_that_finds_nothing_relevant_cites_nothing(kb):
    status, _, answer = post(kb.url + CHAT, chat_body(
        "Write a haiku about the sea.", max_tokens=20, use_knowledge_base=True))
    assert status == 200 and answer["choices"][0]["message"]["citations"] == []
    status, _, plain = post(kb.url + CHAT, chat_body("Hi", max_tokens=5))
    assert "citations" not in plain["choices"][0]["message"]


def test_bad_documents_get_the_documented_errors(kb, tmp_path):
    image = tmp_path / "photo.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    status, _, error = upload(kb.url, image)
    assert_error(status, error, 415, "unsupported_media_type")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"  \n\n ")
    status, _, error = upload(kb.url, empty)
    assert_error(status, error, 400, "empty_document")
    status, _, error = request("POST", kb.url + INGEST, b"x" * (17 * 2 ** 20),
                               headers={"Content-Type": "text/plain"})
    assert_error(status, error, 413)
    status, _, error = post(kb.url + INGEST, {"name": "x.txt"})
    assert_error(status, error, 400, "missing_required_parameter", "content")
    status, _, error = get(kb.url + "/v1/documents/99999/chunks/0")
    assert_error(status, error, 404, "document_not_found")
    assert len(get(kb.url + "/v1/documents")[2]["documents"]) >= 1  # nothing half-written


def test_a_document_added_as_a_job_shows_its_progress(kb, documents):
    status, _, answer = upload(kb.url, documents["git-doc"] / "git-rebase.html",
                               fields={"async": "true"})
    assert status == 202, answer
    job = answer["job"]
    assert job["kind"] == "ingest" and job["status"] in ("queued", "running", "completed")
    done = wait_until(lambda: (j := get(kb.url + f"/v1/documents/jobs/{job['id']}")[2])
                      ["status"] in ("completed", "failed") and j, 120)
    assert done["status"] == "completed" and done["done"] == done["total"] > 0, done
    document = get(kb.url + f"/v1/documents/{done['result']['document_id']}")[2]
    assert document["name"] == "git-rebase.html" and document["chunks"] == done["total"]


def test_the_knowledge_base_is_in_metrics(kb):
    samples = scrape(kb.url)
    assert value(samples, "offgrid_kb_documents") >= 1
    assert value(samples, "offgrid_kb_chunks") >= 3
    assert value(samples, "offgrid_kb_search_seconds_count") >= 1


def test_a_new_embedding_model_reembeds_everything_first(kb):
    chunks = get(kb.url + "/v1/rag/status")[2]["chunks"]
    status, _, answer = post(kb.url + "/v1/rag/enable", {"embedding_model": "minilm-again"})
    assert status == 200 and answer["embedding_model"] == EMBEDDING_MODEL  # until it is done
    settled = wait_until(lambda: (s := get(kb.url + "/v1/rag/status")[2])["reembedding"] is None
                         and s["embedding_model"] == "minilm-again" and s, 180)
    assert settled["chunks"] == chunks
    status, _, found = post(kb.url + SEARCH, {"query": "reset the radio", "mode": "vector"})
    assert "POWER and MENU" in found["results"][0]["content"]
    status, _, error = post(kb.url + "/v1/rag/enable", {"embedding_model": CHAT_MODEL})
    assert_error(status, error, 404, param="embedding_model")


def test_the_state_and_the_documents_survive_a_restart(start_server, kb_models, tmp_path):
    home = {"OFFGRID_HOME": str(tmp_path / "home")}
    first = start_server("--model", CHAT_MODEL, models=kb_models, env=home)
    post(first.url + "/v1/rag/enable", {"embedding_model": EMBEDDING_MODEL})
    document = add_text(first.url, "radio.md", RADIO)
    assert post(first.url + "/v1/rag/disable", {})[2]["enabled"] is False
    first.stop()
    second = start_server("--model", CHAT_MODEL, models=kb_models, env=home)
    status = get(second.url + "/v1/rag/status")[2]
    assert status["enabled"] is False and status["documents"] == 1
    status, _, error = post(second.url + SEARCH, {"query": "radio"})
    assert_error(status, error, 409, "knowledge_base_off")
    post(second.url + "/v1/rag/enable", {})
    found = post(second.url + SEARCH, {"query": "batteries"})[2]["results"]
    assert found[0]["document_id"] == document["id"]


def test_with_one_embedding_model_it_is_on_by_default(base_url):
    status = get(base_url + "/v1/rag/status")[2]
    assert status["enabled"] and status["embedding_model"] == EMBEDDING_MODEL


def test_the_command_line_adds_a_folder_and_searches_it(kb, tmp_path, documents):
    folder = tmp_path / "manuals"
    folder.mkdir()
    for name in ("git-tag.html", "git-blame.html"):
        shutil.copy(documents["git-doc"] / name, folder / name)
    (folder / ".hidden.txt").write_text("not me")

    def offgrid_kb(*args):
        return subprocess.run([sys.executable, "-m", "offgrid", "kb", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=300,
                              env={"OFFGRID_URL": kb.url, "PATH": "/usr/bin:/bin"})

    added = offgrid_kb("add", str(folder))
    assert added.returncode == 0 and "added 2 of 2 files" in added.stdout, added.stderr
    listing = offgrid_kb("list")
    assert "git-tag.html" in listing.stdout and ".hidden" not in listing.stdout
    found = offgrid_kb("search", "who changed this line last?", "--top-k", "1")
    assert found.returncode == 0 and "git-blame.html" in found.stdout, found.stdout
    document_id = next(d["id"] for d in get(kb.url + "/v1/documents")[2]["documents"]
                       if d["name"] == "git-tag.html")
    assert offgrid_kb("rm", str(document_id)).returncode == 0
    assert get(kb.url + f"/v1/documents/{document_id}")[0] == 404
    status = offgrid_kb("status")
    assert "knowledge base: on" in status.stdout
    gone = subprocess.run([sys.executable, "-m", "offgrid", "kb", "list"], cwd=ROOT, text=True,
                          capture_output=True, env={"OFFGRID_URL": "http://127.0.0.1:9",
                                                    "PATH": "/usr/bin:/bin"})
    assert gone.returncode == 1 and "offgrid serve" in gone.stderr


# -- multi-user ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(start_module_server):
    """A multi-user server that lets guests in; its one embedding model turns the knowledge
    base on."""
    return start_multi_user(start_module_server, env={
        "OFFGRID_GUEST_ACCESS": "true", "OFFGRID_USER_REQUESTS_PER_MINUTE": "0",
        "OFFGRID_GUEST_REQUESTS_PER_MINUTE": "0"})


def test_documents_stay_their_owners(site):
    _, alice = site.account("user")
    _, bob = site.account("user")
    _, guest = site.account("guest")
    secret = add_text(site.url, "alice.txt", "The vault code is 7431, known only to Alice.",
                      headers=bearer(alice))
    for token in (bob, guest, None):
        listed = get(site.url + "/v1/documents", headers=bearer(token))[2]
        assert secret["id"] not in [d["id"] for d in listed["documents"]]
        found = post(site.url + SEARCH, {"query": "vault code"}, headers=bearer(token))[2]
        assert all(r["document_id"] != secret["id"] for r in found["results"])
        assert get(site.url + f"/v1/documents/{secret['id']}", headers=bearer(token))[0] == 404
    answer = post(site.url + CHAT, chat_body("What is the vault code?", max_tokens=10,
                                             use_knowledge_base=True), headers=bearer(bob))[2]
    assert answer["choices"][0]["message"]["citations"] == []
    status, _, error = request("DELETE", site.url + f"/v1/documents/{secret['id']}",
                               headers=bearer(bob))
    assert_error(status, error, 404)
    mine = post(site.url + SEARCH, {"query": "vault code"}, headers=bearer(alice))[2]
    assert mine["results"][0]["document_id"] == secret["id"]
    status, _, error = post(site.url + INGEST, {"name": "g.txt", "content": "x"},
                            headers=bearer(guest))
    assert_error(status, error, 403)


def test_an_admin_shares_a_document_with_everyone(site):
    _, carol = site.account("user")
    _, guest = site.account("guest")
    notice = add_text(site.url, "notice.txt", "The canteen opens at seven every morning.",
                      headers=bearer(carol))
    status, _, error = request("PATCH", site.url + f"/v1/documents/{notice['id']}",
                               {"shared": True}, headers=bearer(carol))
    assert_error(status, error, 403)
    status, _, shared = request("PATCH", site.url + f"/v1/documents/{notice['id']}",
                                {"shared": True}, headers=bearer(site.admin_token))
    assert status == 200 and shared["shared"] is True
    for token in (guest, None):
        found = post(site.url + SEARCH, {"query": "when does the canteen open?"},
                     headers=bearer(token))[2]
        assert found["results"][0]["document_id"] == notice["id"], found
    every = get(site.url + "/v1/documents", headers=bearer(site.admin_token))[2]
    assert notice["id"] in [d["id"] for d in every["documents"]]


def test_adding_documents_counts_against_the_token_quota(site):
    _, token = site.account("user")
    add_text(site.url, "quota.txt", "Tokens embedded for this document are charged. " * 20,
             headers=bearer(token))
    used = get(site.url + "/v1/users/me", headers=bearer(token))[2]["tokens_used_today"]
    assert used > 100, used
