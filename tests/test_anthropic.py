"""The official `anthropic` package pointed at OffGrid's Messages API: messages whole and
streamed, stop sequences, a tool-use round trip, count_tokens; and, over raw HTTP, Anthropic's
error shape and a hang-up mid-stream that frees the slot."""

import anthropic
import pytest

from support.http import get, hang_up, open_stream, post
from support.models import CHAT_MODEL
from support.waiting import wait_until

WEATHER = {"name": "get_weather", "description": "The current weather in a city",
           "input_schema": {"type": "object", "additionalProperties": False,
                            "required": ["city"],
                            "properties": {"city": {"type": "string", "maxLength": 30}}}}
# This package's create() has no sampling parameters (newer models refuse them); OffGrid takes
# them as Anthropic's API did, sent here as extra fields.
GREEDY = {"extra_body": {"temperature": 0}}
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def client(base_url):
    return anthropic.Anthropic(base_url=base_url, api_key="not-needed", max_retries=0)


def test_a_message(client):
    message = client.messages.create(model=CHAT_MODEL, max_tokens=20, **GREEDY,
                                     system="Answer in one sentence.", messages=QUESTION)
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_") and message.model == CHAT_MODEL
    assert "Paris" in message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert 0 < message.usage.output_tokens <= 20
    assert message.usage.input_tokens + message.usage.cache_read_input_tokens > 10


def test_a_stream_says_what_the_whole_message_says(client):
    whole = client.messages.create(model=CHAT_MODEL, max_tokens=24, **GREEDY,
                                   messages=QUESTION)
    with client.messages.stream(model=CHAT_MODEL, max_tokens=24, **GREEDY,
                                messages=QUESTION) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == whole.content[0].text == final.content[0].text
    assert final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens


def test_a_stop_sequence_ends_the_message_and_is_named(client):
    full = client.messages.create(model=CHAT_MODEL, max_tokens=30, **GREEDY,
                                  messages=QUESTION).content[0].text
    word = full.split()[3]  # one the answer says, after a few others
    stopped = client.messages.create(model=CHAT_MODEL, max_tokens=30, **GREEDY,
                                     messages=QUESTION, stop_sequences=["zzz", word])
    assert stopped.content[0].text == full[:full.index(word)]
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", word)


def test_a_tool_use_round_trip(client):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.messages.create(model=CHAT_MODEL, max_tokens=100, **GREEDY,
                                   messages=messages, tools=[WEATHER],
                                   tool_choice={"type": "any"})
    assert first.stop_reason == "tool_use"
    (call,) = first.content
    assert call.type == "tool_use" and call.name == "get_weather"
    assert isinstance(call.input["city"], str) and call.id.startswith("toolu_")
    messages += [{"role": "assistant", "content": first.content},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                               "content": "18 degrees, sunny"}]}]
    final = client.messages.create(model=CHAT_MODEL, max_tokens=40, **GREEDY,
                                   messages=messages, tools=[WEATHER],
                                   tool_choice={"type": "none"})
    assert final.content[0].type == "text" and final.content[0].text
    assert final.stop_reason in ("end_turn", "max_tokens")


def test_a_streamed_tool_use_arrives_whole(client):
    with client.messages.stream(
            model=CHAT_MODEL, max_tokens=100, **GREEDY, tools=[WEATHER],
            tool_choice={"type": "tool", "name": "get_weather"},
            messages=[{"role": "user", "content": "Is it raining in Lima?"}]) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    (call,) = final.content
    assert call.type == "tool_use" and call.name == "get_weather"
    assert set(call.input) == {"city"} and final.stop_reason == "tool_use"


def test_count_tokens_counts_what_a_message_reads(client):
    body = {"model": CHAT_MODEL, "system": "Be brief.", "messages": QUESTION}
    counted = client.messages.count_tokens(**body)
    message = client.messages.create(max_tokens=1, **body)
    assert counted.input_tokens == (message.usage.input_tokens
                                    + message.usage.cache_read_input_tokens)
    with_tools = client.messages.count_tokens(**body, tools=[WEATHER])
    assert with_tools.input_tokens > counted.input_tokens


def _anthropic_error(status: int, body, expected: int, kind: str) -> str:
    assert status == expected, body
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}, body
    assert body["error"]["type"] == kind and body["error"]["message"]
    return body["error"]["message"]


@pytest.mark.parametrize("body, expected, kind, mentions", [
    ({"model": CHAT_MODEL, "messages": QUESTION}, 400, "invalid_request_error", "max_tokens"),
    ({"model": CHAT_MODEL, "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]},
     400, "invalid_request_error", "messages.0.role"),
    ({"model": CHAT_MODEL, "max_tokens": 5, "messages": QUESTION, "temperature": 1.5},
     400, "invalid_request_error", "temperature"),
    ({"model": CHAT_MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {}}]}]}, 400, "invalid_request_error", "messages.0.content"),
    ({"model": "no-such-model", "max_tokens": 5, "messages": QUESTION}, 404, "not_found_error",
     "no-such-model"),
])
def test_errors_are_in_anthropics_shape(base_url, body, expected, kind, mentions):
    status, _, answer = post(base_url + "/v1/messages", body)
    assert mentions in _anthropic_error(status, answer, expected, kind)


def test_the_sdk_raises_its_own_errors(client):
    with pytest.raises(anthropic.NotFoundError) as raised:
        client.messages.create(model="no-such-model", max_tokens=5, messages=QUESTION)
    assert raised.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError):
        client.messages.count_tokens(model=CHAT_MODEL, messages=[])


def test_a_hang_up_mid_stream_frees_the_slot(base_url):
    def busy() -> int:
        return get(base_url + "/v1/system/stats")[2]["active_sessions"]

    assert wait_until(lambda: busy() == 0)
    connection, response = open_stream(base_url, "/v1/messages", {
        "model": CHAT_MODEL, "max_tokens": 2000, "temperature": 1.0,
        "messages": [{"role": "user", "content": "Write a very long story."}]})
    assert response.status == 200
    lines = [response.readline() for _ in range(8)]
    assert lines[0] == b"event: message_start\n"
    assert busy() == 1
    hang_up(connection)
    assert wait_until(lambda: busy() == 0)
