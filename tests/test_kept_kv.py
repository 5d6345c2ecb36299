"""The kept KV cache with real servers: a conversation that comes back after another one took
its only slot, or after a restart, restores its prefix and answers exactly as a fresh decode."""

from __future__ import annotations

import os
import shutil

import pytest

from support.http import post
from support.metrics import scrape, value
from support.models import CHAT_MODEL

RULES = " ".join(f"Rule {i}: greet visitor number {i} politely." for i in range(60))
FACTS = " ".join(f"Fact {i}: the river number {i} flows north to the sea." for i in range(60))
KV_OFF = {"OFFGRID_KV_CACHE_RAM_MB": "0", "OFFGRID_KV_CACHE_DISK_MB": "0"}


@pytest.fixture(scope="module")
def own_models(models_dir, tmp_path_factory):
    """A copy of the chat model whose mtime these tests may change."""
    folder = tmp_path_factory.mktemp("kv-models")
    shutil.copy(models_dir / f"{CHAT_MODEL}.gguf", folder)
    return folder


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("kv-home")


def chat(server, messages: list[tuple[str, str]]) -> dict:
    body = {"model": CHAT_MODEL, "max_tokens": 12, "temperature": 0,
            "messages": [{"role": role, "content": text} for role, text in messages]}
    status, _, answer = post(server.url + "/v1/chat/completions", body)
    assert status == 200, answer
    return answer


def text(answer: dict) -> str:
    return answer["choices"][0]["message"]["content"]


def cached(answer: dict) -> int:
    assert answer["timings"]["cache_n"] == answer["usage"]["prompt_tokens_details"][
        "cached_tokens"]
    return answer["timings"]["cache_n"]


A = [("system", RULES), ("user", "Who comes first?")]
B = [("system", FACTS), ("user", "Which river is longest?")]
SHORT = [("user", "Name a colour.")]


@pytest.fixture(scope="module")
def first_run(start_module_server, own_models, home):
    """A, then B in A's only slot, then A's next turn; then a short question, another, and
    the first again; the server stopped after."""
    server = start_module_server("--parallel", "1", models=own_models,
                                 env={"OFFGRID_HOME": str(home)})
    first = chat(server, A)
    chat(server, B)
    returning = A + [("assistant", text(first)), ("user", "And who comes last?")]
    again = chat(server, returning)
    metrics = scrape(server.url)
    asked = chat(server, SHORT)
    chat(server, [("user", "Name a fruit.")])
    asked_again = chat(server, SHORT)
    server.stop()
    return first, returning, again, metrics, (asked, asked_again)


def test_a_conversation_returning_to_a_taken_slot_restores_its_prefix(first_run):
    first, _, again, metrics, _ = first_run
    assert first["usage"]["prompt_tokens"] > 600
    assert cached(again) >= first["usage"]["prompt_tokens"]
    assert value(metrics, "offgrid_kept_kv_hits_total") == 1
    assert value(metrics, "offgrid_kept_kv_ram_bytes") > 0


def test_a_short_question_asked_again_restores_its_whole_prompt(first_run):
    asked, asked_again = first_run[-1]
    assert cached(asked_again) == asked_again["usage"]["prompt_tokens"] - 1  # all but the last
    assert cached(asked_again) > cached(asked)
    assert text(asked_again) == text(asked)


def test_a_restored_prefix_answers_as_a_fresh_decode(first_run, start_module_server,
                                                     own_models):
    _, returning, again, *_ = first_run
    fresh = start_module_server("--parallel", "1", models=own_models, env=KV_OFF)
    alone = chat(fresh, returning)
    assert cached(alone) == 0
    assert text(alone) == text(again)
    fresh.stop()


def test_a_restarted_server_restores_the_prefix_from_disk(first_run, start_module_server,
                                                          own_models, home):
    _, returning, again, *_ = first_run
    assert list((home / "kv").glob("*.kv"))  # the slot's state, written as the server stopped
    server = start_module_server("--parallel", "1", models=own_models,
                                 env={"OFFGRID_HOME": str(home)})
    restarted = chat(server, returning)
    assert cached(restarted) >= again["usage"]["prompt_tokens"] - 1
    assert text(restarted) == text(again)
    metrics = scrape(server.url)
    assert value(metrics, "offgrid_kept_kv_hits_total") == 1
    assert value(metrics, "offgrid_kept_kv_disk_bytes") > 0
    server.stop()


def test_states_of_a_changed_model_file_are_dropped(first_run, start_module_server,
                                                    own_models, home):
    model = own_models / f"{CHAT_MODEL}.gguf"
    os.utime(model, ns=(model.stat().st_atime_ns, model.stat().st_mtime_ns + 10**9))
    server = start_module_server("--parallel", "1", models=own_models,
                                 env={"OFFGRID_HOME": str(home)})
    assert not list((home / "kv").glob("*.kv"))
    assert cached(chat(server, first_run[1])) == 0
    server.stop()
