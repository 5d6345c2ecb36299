"""The engine's behaviour seen over HTTP: continuous batching, cancellation, prefix cache, stop
strings, limits and the wait queue."""

import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.http import assert_error, chat_body, get, hang_up, open_stream, post, stream
from support.models import CHAT_MODEL
from support.waiting import wait_until

COUNTING = {"model": CHAT_MODEL, "prompt": "1, 2, 3, 4,", "temperature": 0}


def _stats(base_url) -> dict:
    return get(base_url + "/v1/system/stats")[2]


def test_eight_concurrent_streams_match_their_answers_alone(base_url):
    prompts = [f"Write one sentence about the number {n}." for n in range(8)]
    alone = [post(base_url + "/v1/chat/completions",
                  chat_body(p, max_tokens=24, temperature=0))[2] for p in prompts]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda p: stream(
            base_url + "/v1/chat/completions",
            chat_body(p, max_tokens=24, temperature=0,
                      stream_options={"include_usage": True})), prompts))
    for solo, events in zip(alone, together, strict=True):
        assert events[-1] == "[DONE]"
        text = "".join(c["choices"][0]["delta"].get("content", "")
                       for c in events[:-1] if c["choices"])
        assert text == solo["choices"][0]["message"]["content"]
        usage = events[-2]["usage"]
        assert (usage["prompt_tokens"], usage["completion_tokens"]) == (
            solo["usage"]["prompt_tokens"], solo["usage"]["completion_tokens"])
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_a_client_hanging_up_mid_stream_frees_its_slot_while_others_stream(base_url, server):
    assert wait_until(lambda: _stats(base_url)["active_sessions"] == 0)
    other = {}
    runner = threading.Thread(target=lambda: other.update(events=stream(
        base_url + "/v1/completions",
        {**COUNTING, "max_tokens": 500, "stream_options": {"include_usage": True}})))
    runner.start()
    connection, response = open_stream(base_url, "/v1/completions",
                                       {**COUNTING, "max_tokens": 2000})
    for _ in range(6):
        assert response.readline()
    assert wait_until(lambda: _stats(base_url)["active_sessions"] == 2)
    hang_up(connection)
    assert wait_until(lambda: _stats(base_url)["active_sessions"] == 1)
    assert runner.is_alive(), "the other stream should still be running"
    runner.join(300)
    assert other["events"][-1] == "[DONE]"
    assert other["events"][-2]["usage"]["completion_tokens"] == 500


def test_a_client_hanging_up_before_the_answer_cancels_it(base_url, server):
    assert wait_until(lambda: _stats(base_url)["active_sessions"] == 0)
    generated_before = _stats(base_url)["tokens_generated"]
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    connection.request("POST", "/v1/completions", json.dumps({**COUNTING, "max_tokens": 2000}),
                       {"Content-Type": "application/json"})
    assert wait_until(lambda: _stats(base_url)["active_sessions"] == 1)
    hang_up(connection)
    assert wait_until(lambda: _stats(base_url)["active_sessions"] == 0)
    assert _stats(base_url)["tokens_generated"] - generated_before < 1000


def test_a_shared_prefix_is_decoded_once(base_url):
    system = " ".join(f"Rule {i}: greet visitor number {i} politely." for i in range(60))

    def ask(question):
        body = {"model": CHAT_MODEL, "max_tokens": 4, "messages": [
            {"role": "system", "content": system}, {"role": "user", "content": question}]}
        status, _, answer = post(base_url + "/v1/chat/completions", body)
        assert status == 200
        return answer

    first, second = ask("Who comes first?"), ask("And who comes last?")
    assert first["usage"]["prompt_tokens"] > 600
    assert first["usage"]["prompt_tokens_details"]["cached_tokens"] < 50
    cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached >= second["usage"]["prompt_tokens"] - 20
    assert second["timings"]["cache_n"] == cached
    assert second["timings"]["prompt_n"] == second["usage"]["prompt_tokens"] - cached <= 20


def test_stop_strings_end_the_answer_and_never_appear(base_url):
    body = {**COUNTING, "max_tokens": 30}
    full = post(base_url + "/v1/completions", body)[2]["choices"][0]["text"]
    assert full.startswith(" 5, 6, 7, 8, 9,")
    for stop in (["8,"], ["7, 8"], ["zzz", ", 7"]):
        status, _, answer = post(base_url + "/v1/completions", {**body, "stop": stop})
        expected = full[:min(full.index(s) for s in stop if s in full)]
        assert status == 200
        assert answer["choices"][0] == {"index": 0, "text": expected, "logprobs": None,
                                        "finish_reason": "stop"}
        events = stream(base_url + "/v1/completions", {**body, "stop": stop})
        assert "".join(c["choices"][0]["text"] for c in events[:-1]) == expected
        assert events[-2]["choices"][0]["finish_reason"] == "stop"


def test_a_stop_string_that_only_starts_is_released(base_url):
    """Text held back because it might begin a stop string comes out once it cannot."""
    body = {**COUNTING, "max_tokens": 30}
    full = post(base_url + "/v1/completions", body)[2]["choices"][0]["text"]
    events = stream(base_url + "/v1/completions", {**body, "stop": "6, 9"})
    assert "".join(c["choices"][0]["text"] for c in events[:-1]) == full
    assert events[-2]["choices"][0]["finish_reason"] == "length"


def test_same_seed_same_text(base_url):
    body = chat_body("Tell me a short story about a fox.", max_tokens=30, temperature=1.0,
                     seed=1234)
    texts = {post(base_url + "/v1/chat/completions", body)[2]["choices"][0]["message"]["content"]
             for _ in range(2)}
    assert len(texts) == 1


@pytest.fixture(scope="module")
def one_slot_server(start_module_server):
    """One slot of 128 tokens and no wait queue."""
    return start_module_server("--model", CHAT_MODEL, "--parallel", "1", "--queue-size", "0",
                               "--max-context", "128")


def test_a_full_queue_is_503_with_retry_after(one_slot_server):
    url = one_slot_server.url
    busy = {}
    runner = threading.Thread(target=lambda: busy.update(answer=post(
        url + "/v1/completions", {**COUNTING, "max_tokens": 100})))
    runner.start()
    assert wait_until(lambda: _stats(url)["active_sessions"] == 1)
    status, headers, error = post(url + "/v1/completions", {**COUNTING, "max_tokens": 5})
    assert_error(status, error, 503, "server_busy")
    assert int(headers["Retry-After"]) >= 1
    runner.join(300)
    assert busy["answer"][0] == 200, busy
    status, _, _ = post(url + "/v1/completions", {**COUNTING, "max_tokens": 5})
    assert status == 200


def test_generation_stops_when_the_context_is_full(one_slot_server):
    status, _, answer = post(one_slot_server.url + "/v1/completions", COUNTING)
    assert status == 200
    assert answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"]["total_tokens"] == 128


def test_more_choices_than_the_model_can_ever_hold_is_400(one_slot_server):
    status, headers, error = post(one_slot_server.url + "/v1/completions",
                                  {**COUNTING, "max_tokens": 5, "n": 2})
    assert_error(status, error, 400, "invalid_value", "n")
    assert "Retry-After" not in headers
    status, _, error = post(one_slot_server.url + "/v1/completions",
                            {**COUNTING, "prompt": ["a", "b"], "max_tokens": 5})
    assert_error(status, error, 400, "invalid_value", "n")
