"""Chat sessions against real servers and the starter model: names and their refusals, turns
kept whole (one answer or a stream, never half a turn: a hang-up, a refused prompt or a killed
server keep nothing), the prefix cache reusing the conversation, a history longer than the slot,
export, restarts, citations, and each user's sessions their own."""

from __future__ import annotations

import json
import signal

import pytest

from support.http import assert_error, get, hang_up, open_stream, post, request, stream
from support.models import CHAT_MODEL
from support.multiuser import start_multi_user

SESSIONS = "/v1/sessions"


@pytest.fixture(scope="module")
def server(start_module_server):
    """One slot of 1024 tokens: the prefix cache is that slot's, and long talks outgrow it."""
    return start_module_server("--model", CHAT_MODEL, "--parallel", "1", "--max-context", "1024")


def create(url: str, name: str, **fields) -> dict:
    status, _, session = post(url + SESSIONS, {"name": name, **fields})
    assert status == 201, session
    return session


def say(url: str, name: str, content: str, **options) -> dict:
    status, _, turn = post(f"{url}{SESSIONS}/{name}/generate",
                           {"content": content, "max_tokens": 12, "temperature": 0, **options})
    assert status == 200, turn
    return turn


def messages(url: str, name: str) -> list[dict]:
    status, _, answer = get(f"{url}{SESSIONS}/{name}/messages")
    assert status == 200, answer
    return answer["messages"]


def tokens(url: str, text: str) -> int:
    return len(post(url + "/v1/tokenize", {"model": CHAT_MODEL, "content": text})[2]["tokens"])


# -- the sessions themselves -------------------------------------------------------------------

def test_a_session_is_created_listed_found_renamed_and_deleted(server):
    made = create(server.url, "plans-2026", system_prompt="You plan trips.")
    assert made == {**made, "name": "plans-2026", "model": None,
                    "system_prompt": "You plan trips.", "message_count": 0}
    create(server.url, "other.notes", model=CHAT_MODEL)
    listed = get(server.url + SESSIONS)[2]
    assert {"plans-2026", "other.notes"} <= {s["name"] for s in listed["sessions"]}
    found = get(server.url + SESSIONS + "?search=PLANS")[2]["sessions"]
    assert [s["name"] for s in found] == ["plans-2026"]

    status, _, renamed = request("PATCH", f"{server.url}{SESSIONS}/plans-2026",
                                 {"name": "trip_plans", "system_prompt": "Be brief."})
    assert status == 200 and renamed["name"] == "trip_plans"
    assert renamed["system_prompt"] == "Be brief."
    assert_error(*get(f"{server.url}{SESSIONS}/plans-2026")[::2], 404)
    status, _, clash = request("PATCH", f"{server.url}{SESSIONS}/trip_plans",
                               {"name": "other.notes"})
    assert_error(status, clash, 409, "session_exists")

    assert request("DELETE", f"{server.url}{SESSIONS}/trip_plans")[0] == 200
    assert_error(*request("DELETE", f"{server.url}{SESSIONS}/trip_plans")[::2], 404)
    assert_error(*get(f"{server.url}{SESSIONS}/trip_plans/messages")[::2], 404)


@pytest.mark.parametrize("name", ["", "a/b", "with space", "x" * 65, "..", "é", 7])
def test_names_outside_the_rule_are_refused(server, name):
    status, _, body = post(server.url + SESSIONS, {"name": name})
    assert_error(status, body, 400, param="name")


def test_a_clash_an_unknown_model_and_a_wrong_field_are_refused(server):
    create(server.url, "taken")
    assert_error(*post(server.url + SESSIONS, {"name": "taken"})[::2], 409, "session_exists")
    assert_error(*post(server.url + SESSIONS, {"name": "m", "model": "no-such-model"})[::2],
                 404)
    assert_error(*post(server.url + SESSIONS, {"name": "m", "system_prompt": 3})[::2], 400,
                 param="system_prompt")
    assert_error(*request("PATCH", f"{server.url}{SESSIONS}/taken", {})[::2], 400)
    assert_error(*get(f"{server.url}{SESSIONS}/taken/export?format=pdf")[::2], 400,
                 param="format")


# -- turns --------------------------------------------------------------------------------------

def test_a_turn_keeps_the_question_and_the_answer(server):
    create(server.url, "first-turn")
    turn = say(server.url, "first-turn", "Name a colour.")
    answer = turn["message"]
    assert answer["role"] == "assistant" and answer["content"]
    assert turn["finish_reason"] in ("stop", "length")
    assert turn["usage"]["completion_tokens"] >= 1
    kept = messages(server.url, "first-turn")
    assert [(m["role"], m["content"]) for m in kept] == [("user", "Name a colour."),
                                                        ("assistant", answer["content"])]
    assert kept[1]["usage"] == turn["usage"]


def test_the_second_turn_decodes_only_the_new_message(server):
    create(server.url, "cached", system_prompt="You answer in one short sentence.")
    first = say(server.url, "cached", "The generator is in shed 3. Remember it.")["usage"]
    question = "Where is the generator?"
    second = say(server.url, "cached", question)["usage"]
    cached = second["prompt_tokens_details"]["cached_tokens"]
    assert cached >= first["prompt_tokens"], (first, second)  # the whole first prompt, at least
    # Decoded: the new message, the template's marks around it (about 10 tokens), and the last
    # token or two of the previous answer, which a cut-short answer ends differently when the
    # conversation is written out again.
    assert second["prompt_tokens"] - cached <= tokens(server.url, question) + 14, second


def test_a_streamed_turn_sends_deltas_then_the_kept_message(server):
    create(server.url, "streamed")
    events = stream(f"{server.url}{SESSIONS}/streamed/generate",
                    {"content": "Count to five.", "max_tokens": 12, "temperature": 0})
    assert events[-1]["type"] == "done" and all(e["type"] == "delta" for e in events[:-1])
    text = "".join(e["content"] for e in events[:-1])
    done = events[-1]
    assert done["message"]["content"] == text and done["finish_reason"] in ("stop", "length")
    assert done["usage"]["prompt_tokens_details"]["cached_tokens"] >= 0
    assert messages(server.url, "streamed")[-1]["content"] == text


def test_a_client_that_hangs_up_keeps_nothing_and_frees_the_slot(server):
    create(server.url, "hung-up")
    connection, response = open_stream(server.url, f"{SESSIONS}/hung-up/generate",
                                       {"content": "Tell a long story.", "max_tokens": 400})
    assert response.status == 200
    assert json.loads(response.readline().decode()[len("data: "):])["type"] == "delta"
    hang_up(connection)
    say(server.url, "hung-up", "Hi")  # the one slot is free again
    assert [m["content"] for m in messages(server.url, "hung-up")][0] == "Hi"


def test_a_refused_turn_keeps_nothing(server):
    create(server.url, "refused")
    status, _, body = post(f"{server.url}{SESSIONS}/refused/generate",
                           {"content": "word " * 3000, "max_tokens": 4})
    assert_error(status, body, 400, "context_length_exceeded")
    assert_error(*post(f"{server.url}{SESSIONS}/refused/generate",
                       {"content": "Hi", "temperature": 9})[::2], 400, param="temperature")
    assert_error(*post(f"{server.url}{SESSIONS}/refused/generate", {"content": ""})[::2], 400,
                 param="content")
    assert_error(*post(f"{server.url}{SESSIONS}/none-such/generate", {"content": "Hi"})[::2],
                 404)
    assert messages(server.url, "refused") == []


def test_a_talk_longer_than_the_slot_drops_its_oldest_turns(server):
    create(server.url, "long-talk", system_prompt="Keep this system prompt.")
    paragraph = "The field radio needs charging every evening before the night shift. " * 12
    for turn in range(6):  # about 200 tokens a turn against a slot of 1024
        say(server.url, "long-talk", f"Note {turn}: {paragraph}", max_tokens=8)
    assert len(messages(server.url, "long-talk")) == 12  # all kept, though not all fit
    last = say(server.url, "long-talk", "Which note came last?", max_tokens=8)["usage"]
    assert last["prompt_tokens"] < 1024 - 8


def test_an_export_holds_the_whole_conversation(server):
    create(server.url, "exported", system_prompt="Be kind.")
    answer = say(server.url, "exported", "Say hello.")["message"]["content"]
    status, headers, markdown = get(f"{server.url}{SESSIONS}/exported/export?format=md")
    assert status == 200 and headers["Content-Type"].startswith("text/markdown")
    assert 'filename="exported.md"' in headers["Content-Disposition"]
    assert markdown.startswith("# exported\n") and "## System\n\nBe kind." in markdown
    assert "Say hello." in markdown and answer in markdown
    status, _, whole = get(f"{server.url}{SESSIONS}/exported/export")
    assert status == 200 and whole["name"] == "exported"
    assert [m["role"] for m in whole["messages"]] == ["user", "assistant"]


def test_a_turn_with_the_knowledge_base_cites_and_keeps_its_sources(server):
    status, _, added = post(server.url + "/v1/documents/ingest", {
        "name": "shed.txt", "content": "The spare generator is kept in shed 3, behind the "
        "water tanks. Its key hangs in the radio room."})
    assert status == 201, added
    create(server.url, "with-kb")
    turn = say(server.url, "with-kb", "Where is the spare generator kept?",
               use_knowledge_base=True)
    citations = turn["message"]["citations"]
    assert citations and citations[0]["document_name"] == "shed.txt"
    assert messages(server.url, "with-kb")[-1]["citations"] == citations


# -- restarts ------------------------------------------------------------------------------------

def test_a_conversation_survives_a_restart_and_a_killed_server_keeps_no_half_turn(start_server,
                                                                                 tmp_path):
    home = {"OFFGRID_HOME": str(tmp_path / "home")}
    first = start_server("--model", CHAT_MODEL, env=home)
    create(first.url, "kept")
    answer = say(first.url, "kept", "Hello there.")["message"]["content"]
    connection, response = open_stream(first.url, f"{SESSIONS}/kept/generate",
                                       {"content": "Tell a long story.", "max_tokens": 400})
    assert response.status == 200 and response.readline().startswith(b"data: ")
    first.process.send_signal(signal.SIGKILL)
    first.stop()
    connection.close()

    second = start_server("--model", CHAT_MODEL, env=home)
    assert [(m["role"], m["content"]) for m in messages(second.url, "kept")] == [
        ("user", "Hello there."), ("assistant", answer)]
    assert say(second.url, "kept", "Still there?")["message"]["content"]
    assert get(f"{second.url}{SESSIONS}/kept")[2]["message_count"] == 4


# -- owners ----------------------------------------------------------------------------------------

def test_each_user_sees_only_their_own_sessions(start_server):
    site = start_multi_user(start_server, "--model", CHAT_MODEL)
    _, ada = site.account("user")
    _, bo = site.account("user")
    _, guest = site.account("guest")
    assert site.call("POST", SESSIONS, {"name": "notes"}, token=ada)[0] == 201
    assert site.call("POST", SESSIONS, {"name": "notes"}, token=bo)[0] == 201  # a name per owner
    status, _, turn = site.call("POST", f"{SESSIONS}/notes/generate",
                                {"content": "Hi", "max_tokens": 4}, token=ada)
    assert status == 200, turn
    status, _, bos = site.call("GET", f"{SESSIONS}/notes/messages", token=bo)
    assert status == 200 and bos["messages"] == []
    assert site.call("POST", SESSIONS, {"name": "adas-only"}, token=ada)[0] == 201
    assert_error(*site.call("GET", f"{SESSIONS}/adas-only", token=bo)[::2], 404)
    assert_error(*site.call("DELETE", f"{SESSIONS}/adas-only", token=site.admin_token)[::2],
                 404)
    assert [s["name"] for s in site.call("GET", SESSIONS, token=bo)[2]["sessions"]] == ["notes"]
    assert_error(*site.call("GET", SESSIONS, token=guest)[::2], 403)
    assert_error(*site.call("GET", SESSIONS)[::2], 401)


def test_a_turn_takes_the_lora_field_and_refuses_an_unknown_adapter(server):
    create(server.url, "tuned")
    assert say(server.url, "tuned", "Hi", lora=[])["message"]["role"] == "assistant"
    status, _, body = post(f"{server.url}{SESSIONS}/tuned/generate",
                           {"content": "Hi", "lora": [{"id": "no-such-adapter"}]})
    assert_error(status, body, 404, "lora_not_found")
    assert_error(*post(f"{server.url}{SESSIONS}/tuned/generate",
                       {"content": "Hi", "lora": "x"})[::2], 400, param="lora")
    assert len(messages(server.url, "tuned")) == 2
