"""The official `openai` package pointed at OffGrid's Responses API: responses whole and
streamed, a tool-call round trip, text.format, previous_response_id, retrieve and delete; and,
over raw HTTP, the stream's event sequence, error shapes and a hang-up mid-stream that frees
the slot."""

import json

import openai
import pytest

from support.http import assert_error, get, hang_up, open_stream, post, request
from support.models import CHAT_MODEL
from support.waiting import wait_until

WEATHER = {"type": "function", "name": "get_weather",
           "description": "The current weather in a city",
           "parameters": {"type": "object", "additionalProperties": False, "required": ["city"],
                          "properties": {"city": {"type": "string", "maxLength": 30}}}}
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def client(base_url):
    return openai.OpenAI(base_url=base_url + "/v1", api_key="not-needed", max_retries=0)


def test_a_response(client):
    response = client.responses.create(model=CHAT_MODEL, input=QUESTION, temperature=0,
                                       instructions="Answer in one sentence.",
                                       max_output_tokens=20)
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status in ("completed", "incomplete") and response.model == CHAT_MODEL
    assert "Paris" in response.output_text
    (message,) = response.output
    assert message.type == "message" and message.role == "assistant"
    assert response.usage.total_tokens == (response.usage.input_tokens
                                           + response.usage.output_tokens)
    assert response.instructions == "Answer in one sentence."


def test_a_stream_says_what_the_whole_response_says(client):
    asked = {"model": CHAT_MODEL, "input": QUESTION, "temperature": 0, "max_output_tokens": 24}
    whole = client.responses.create(**asked)
    with client.responses.stream(**asked) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response() if whole.status == "completed" else None
    assert "".join(deltas) == whole.output_text
    if final is not None:
        assert final.output_text == whole.output_text and final.id != whole.id


def test_the_stream_sends_every_event_in_order(base_url):
    body = {"model": CHAT_MODEL, "input": QUESTION, "temperature": 0, "max_output_tokens": 200}
    connection, response = open_stream(base_url, "/v1/responses", body)
    events = _events(response.read().decode())
    names = [name for name, _ in events]
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert all(data["type"] == name for name, data in events)
    assert names[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]
    assert set(names[4:-4]) == {"response.output_text.delta"}
    assert names[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    completed = events[-1][1]["response"]
    text = "".join(data["delta"] for name, data in events if name.endswith("text.delta"))
    assert completed["output"][0]["content"][0]["text"] == text == events[-4][1]["text"]


def _events(stream: str) -> list[tuple[str, dict]]:
    found = []
    for block in stream.strip().split("\n\n"):
        name_line, data_line = block.split("\n")
        found.append((name_line.removeprefix("event: "),
                      json.loads(data_line.removeprefix("data: "))))
    return found


def test_a_tool_call_round_trip(client):
    question = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.responses.create(model=CHAT_MODEL, input=question, tools=[WEATHER],
                                    tool_choice="required", temperature=0)
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert set(json.loads(call.arguments)) == {"city"}
    # the call goes back in as an input item, with its output
    answer = [{"type": "function_call_output", "call_id": call.call_id,
               "output": "18 degrees, sunny"}]
    final = client.responses.create(model=CHAT_MODEL, input=question + [call] + answer,
                                    tools=[WEATHER], tool_choice="none", temperature=0,
                                    max_output_tokens=30)
    assert final.output[0].type == "message" and final.output_text
    # or the conversation continues from the stored response
    continued = client.responses.create(model=CHAT_MODEL, previous_response_id=first.id,
                                        input=answer, tools=[WEATHER], tool_choice="none",
                                        temperature=0, max_output_tokens=30)
    assert continued.output_text == final.output_text
    assert continued.usage.input_tokens == final.usage.input_tokens


def test_a_streamed_tool_call(client):
    with client.responses.stream(model=CHAT_MODEL, input="Is it raining in Lima?",
                                 tools=[WEATHER], temperature=0,
                                 tool_choice={"type": "function", "name": "get_weather"}
                                 ) as stream:
        names = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in names
    assert "response.function_call_arguments.done" in names
    (call,) = final.output
    assert call.type == "function_call" and set(json.loads(call.arguments)) == {"city"}


def test_text_format_json_schema(client):
    schema = {"type": "object", "required": ["city"], "additionalProperties": False,
              "properties": {"city": {"type": "string", "maxLength": 20}}}
    response = client.responses.create(
        model=CHAT_MODEL, input="Name the capital of France as JSON.", temperature=0,
        text={"format": {"type": "json_schema", "name": "city", "schema": schema}})
    assert set(json.loads(response.output_text)) == {"city"}


def test_previous_response_id_continues_the_conversation(client):
    first = client.responses.create(model=CHAT_MODEL, input="My name is Ada.", temperature=0,
                                    max_output_tokens=10)
    second = client.responses.create(model=CHAT_MODEL, input="What is my name?",
                                     previous_response_id=first.id, temperature=0,
                                     max_output_tokens=10)
    alone = client.responses.create(model=CHAT_MODEL, input="What is my name?", temperature=0,
                                    max_output_tokens=10)
    assert second.previous_response_id == first.id
    assert second.usage.input_tokens > alone.usage.input_tokens + first.usage.output_tokens


def test_retrieve_and_delete(client):
    response = client.responses.create(model=CHAT_MODEL, input=QUESTION, max_output_tokens=5)
    again = client.responses.retrieve(response.id)
    assert again.id == response.id and again.output_text == response.output_text
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(response.id)
    unstored = client.responses.create(model=CHAT_MODEL, input=QUESTION, max_output_tokens=5,
                                       store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


@pytest.mark.parametrize("body, status, code, param", [
    ({"model": CHAT_MODEL}, 400, "missing_required_parameter", "input"),
    ({"model": CHAT_MODEL, "input": [{"type": "function_call", "name": "f"}]}, 400,
     "invalid_value", "input[0].call_id"),
    ({"model": CHAT_MODEL, "input": "Hi", "tools": [{"type": "web_search"}]}, 400,
     "unsupported_parameter", "tools[0]"),
    ({"model": CHAT_MODEL, "input": "Hi", "previous_response_id": "resp_none"}, 404,
     "previous_response_not_found", "previous_response_id"),
    ({"model": CHAT_MODEL, "input": "Hi", "background": True}, 400, "unsupported_parameter",
     "background"),
])
def test_errors_name_the_parameter(base_url, body, status, code, param):
    assert_error(*post(base_url + "/v1/responses", body)[::2], status, code, param)


def test_an_unknown_response_is_a_404(base_url):
    for method in ("GET", "DELETE"):
        status, _, body = request(method, base_url + "/v1/responses/resp_none")
        assert_error(status, body, 404, "response_not_found")


def test_a_hang_up_mid_stream_frees_the_slot(base_url):
    def busy() -> int:
        return get(base_url + "/v1/system/stats")[2]["active_sessions"]

    assert wait_until(lambda: busy() == 0)
    connection, response = open_stream(base_url, "/v1/responses", {
        "model": CHAT_MODEL, "max_output_tokens": 2000, "temperature": 1.0,
        "input": "Write a very long story."})
    assert response.status == 200
    lines = [response.readline() for _ in range(12)]
    assert lines[0] == b"event: response.created\n"
    assert busy() == 1
    hang_up(connection)
    assert wait_until(lambda: busy() == 0)
