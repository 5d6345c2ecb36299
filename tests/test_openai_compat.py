"""OpenAI compatibility in depth: each parameter changes the output as OpenAI documents it."""

import json
import math
from typing import Annotated

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from support.http import assert_error, chat_body, post, stream
from support.models import CHAT_MODEL, EMBEDDING_MODEL

COUNTING = {"model": CHAT_MODEL, "prompt": "1, 2, 3, 4,", "temperature": 0, "max_tokens": 12}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "additionalProperties": False,
                   "required": ["city", "unit"],
                   "properties": {"city": {"type": "string", "maxLength": 30},
                                  "unit": {"enum": ["celsius", "fahrenheit"]}}}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "The current time in a timezone",
    "parameters": {"type": "object", "required": ["timezone"],
                   "properties": {"timezone": {"type": "string", "maxLength": 30}}}}}


@pytest.fixture(scope="module")
def client(base_url):
    return openai.OpenAI(base_url=base_url + "/v1", api_key="not-needed", max_retries=0)


def complete(base_url, **params) -> dict:
    status, _, body = post(base_url + "/v1/completions", {**COUNTING, **params})
    assert status == 200, body
    return body


def text_of(body: dict) -> str:
    return body["choices"][0]["text"]


def tokens_of(base_url, text: str) -> list[int]:
    status, _, body = post(base_url + "/v1/tokenize",
                           {"model": CHAT_MODEL, "content": text, "add_special": False})
    assert status == 200
    return body["tokens"]


# -- sampling parameters ---------------------------------------------------------------------------

def test_cutting_the_distribution_to_one_token_is_greedy(base_url):
    greedy = text_of(complete(base_url))
    for narrowing in ({"top_p": 0.0}, {"top_k": 1}, {"min_p": 1.0}):
        assert text_of(complete(base_url, temperature=1.5, seed=7, **narrowing)) == greedy


def test_penalties_change_a_repetitive_answer(base_url):
    greedy = text_of(complete(base_url, max_tokens=30))
    for penalty in ({"frequency_penalty": 2.0}, {"presence_penalty": 2.0},
                    {"repeat_penalty": 1.8}):
        assert text_of(complete(base_url, max_tokens=30, **penalty)) != greedy


def test_logit_bias_bans_and_forces_tokens(base_url):
    greedy = text_of(complete(base_url))
    first = tokens_of(base_url, greedy)[0]
    banned = text_of(complete(base_url, logit_bias={str(first): -100}))
    assert tokens_of(base_url, banned)[0] != first
    forced = tokens_of(base_url, " cat")[0]
    assert text_of(complete(base_url, max_tokens=3, logit_bias={str(forced): 100})) == " cat" * 3


def test_max_completion_tokens_limits_the_answer(base_url):
    status, _, body = post(base_url + "/v1/chat/completions",
                           chat_body("Tell me a long story.", max_completion_tokens=7))
    assert body["usage"]["completion_tokens"] == 7
    assert body["choices"][0]["finish_reason"] == "length"


def test_n_draws_several_choices_as_parallel_sequences(client):
    response = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Tell me a joke."}], n=3,
        max_tokens=12, temperature=1.0, seed=11)
    assert [c.index for c in response.choices] == [0, 1, 2]
    texts = [c.message.content for c in response.choices]
    assert len(set(texts)) > 1, "each choice draws with its own seed"
    again = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Tell me a joke."}], n=3,
        max_tokens=12, temperature=1.0, seed=11)
    assert [c.message.content for c in again.choices] == texts
    single = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Tell me a joke."}],
        max_tokens=12, temperature=1.0, seed=11)
    assert single.choices[0].message.content == texts[0], "choice 0 draws with the seed itself"
    assert response.usage.prompt_tokens == single.usage.prompt_tokens, "the prompt counts once"
    assert 3 <= response.usage.completion_tokens <= 3 * 12


def test_n_streams_every_choice(base_url):
    events = stream(base_url + "/v1/chat/completions",
                    chat_body("Say hello.", n=2, max_tokens=8, temperature=0,
                              stream_options={"include_usage": True}))
    assert events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if e["choices"]]
    for index in (0, 1):
        mine = [c["choices"][0] for c in chunks if c["choices"][0]["index"] == index]
        assert mine[0]["delta"]["role"] == "assistant"
        assert [m["finish_reason"] for m in mine if m["finish_reason"]] in (["stop"], ["length"])
    texts = ["".join(c["choices"][0]["delta"].get("content", "") for c in chunks
                     if c["choices"][0]["index"] == i) for i in (0, 1)]
    assert texts[0] == texts[1], "temperature 0 gives every choice the same text"
    _, _, single = post(base_url + "/v1/chat/completions",
                        chat_body("Say hello.", max_tokens=8, temperature=0))
    assert events[-2]["usage"]["completion_tokens"] == 2 * single["usage"]["completion_tokens"]


def test_chat_logprobs(client):
    response = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=5,
        temperature=0, logprobs=True, top_logprobs=3)
    entries = response.choices[0].logprobs.content
    assert len(entries) == response.usage.completion_tokens == 5
    assert "".join(e.token for e in entries) == response.choices[0].message.content
    for entry in entries:
        assert entry.logprob <= 0 and bytes(entry.bytes).decode() == entry.token
        assert len(entry.top_logprobs) == 3
        ranked = [t.logprob for t in entry.top_logprobs]
        assert ranked == sorted(ranked, reverse=True)
        assert entry.top_logprobs[0].token == entry.token  # temperature 0 takes the likeliest
        assert math.isclose(entry.top_logprobs[0].logprob, entry.logprob)
    plain = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=5)
    assert plain.choices[0].logprobs is None


def test_chat_logprobs_when_streaming(client):
    chunks = list(client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=6,
        temperature=0, logprobs=True, top_logprobs=2, stream=True))
    entries = [e for c in chunks if c.choices and c.choices[0].logprobs
               for e in c.choices[0].logprobs.content]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(entries) == 6 and "".join(e.token for e in entries) == text
    assert all(len(e.top_logprobs) == 2 for e in entries)


def test_top_logprobs_needs_logprobs(base_url):
    status, _, error = post(base_url + "/v1/chat/completions", chat_body("hi", top_logprobs=2))
    assert_error(status, error, 400, param="top_logprobs")


# -- structured output -----------------------------------------------------------------------------

class City(BaseModel):
    name: str = Field(max_length=40)
    country: str = Field(max_length=40)
    population: int
    landmarks: list[Annotated[str, Field(max_length=40)]] = Field(max_length=3)


def test_structured_output_parses_into_a_pydantic_model(client):
    for city in ("Paris", "Tokyo", "Lima"):
        completion = client.chat.completions.parse(
            model=CHAT_MODEL, response_format=City, temperature=1.0, max_tokens=400,
            messages=[{"role": "user", "content": f"Describe {city} as JSON."}])
        assert isinstance(completion.choices[0].message.parsed, City)


def test_json_schema_is_enforced_every_time(base_url):
    schema = {"type": "object", "additionalProperties": False,
              "required": ["answer", "confidence", "tags"],
              "properties": {"answer": {"type": "string", "maxLength": 50},
                             "confidence": {"type": "number"},
                             "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]},
                                      "maxItems": 3}}}
    for seed in range(4):
        status, _, body = post(base_url + "/v1/chat/completions", chat_body(
            "Is the sky blue?", seed=seed, temperature=1.0, max_tokens=200,
            response_format={"type": "json_schema",
                             "json_schema": {"name": "reply", "strict": True, "schema": schema}}))
        assert status == 200
        jsonschema.validate(json.loads(body["choices"][0]["message"]["content"]), schema)


STRICT_SCHEMA = {"type": "object", "required": ["city", "founded", "size", "districts"],
                 "properties": {
                     "city": {"type": "string", "maxLength": 40},
                     "founded": {"type": "integer", "minimum": -3000, "maximum": 2026},
                     "size": {"enum": ["village", "town", "city"]},
                     "districts": {"type": "array", "maxItems": 3, "items": {
                         "type": "object", "required": ["name"],
                         "properties": {"name": {"type": "string", "maxLength": 30},
                                        "since": {"type": "string", "format": "date"}}}},
                     "motto": {"type": "string", "maxLength": 60}}}


def test_structured_output_is_strict_json_for_every_seed(base_url):
    """Sampled at temperature 1, every answer is JSON a strict parser takes (no raw control
    characters in strings) and that validates against the schema."""
    for first_seed in range(0, 16, 4):
        status, _, body = post(base_url + "/v1/chat/completions", chat_body(
            "Describe a city as JSON.", n=4, seed=first_seed, temperature=1.0, max_tokens=300,
            response_format={"type": "json_schema",
                             "json_schema": {"name": "city", "schema": STRICT_SCHEMA}}))
        assert status == 200, body
        for choice in body["choices"]:
            assert choice["finish_reason"] == "stop", choice
            jsonschema.validate(json.loads(choice["message"]["content"], strict=True),
                                STRICT_SCHEMA)
    status, _, body = post(base_url + "/v1/chat/completions", chat_body(
        "Write a note with two lines as JSON.", n=8, seed=99, temperature=1.0, max_tokens=150,
        response_format={"type": "json_object"}))
    for choice in body["choices"]:
        if choice["finish_reason"] == "stop":  # an object may be cut short by max_tokens
            assert isinstance(json.loads(choice["message"]["content"], strict=True), dict)


def test_json_object_mode_returns_an_object(base_url):
    status, _, body = post(base_url + "/v1/chat/completions", chat_body(
        "Give the name and age of a person as JSON.", temperature=0, max_tokens=200,
        response_format={"type": "json_object"}))
    assert status == 200 and body["choices"][0]["finish_reason"] == "stop"
    assert isinstance(json.loads(body["choices"][0]["message"]["content"]), dict)


def test_a_schema_that_cannot_be_enforced_is_400(base_url):
    status, _, error = post(base_url + "/v1/chat/completions", chat_body(
        "hi", response_format={"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"$ref": "#/$defs/missing"}}}))
    assert_error(status, error, 400, param="response_format")


# -- tools -----------------------------------------------------------------------------------------

def test_required_tool_call_round_trip(client):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(model=CHAT_MODEL, messages=messages, tools=[WEATHER],
                                           tool_choice="required", temperature=0)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "18 degrees, sunny"}]
    final = client.chat.completions.create(model=CHAT_MODEL, messages=messages, tools=[WEATHER],
                                           tool_choice="none", temperature=0, max_tokens=40)
    assert final.choices[0].message.tool_calls is None
    assert final.choices[0].message.content
    assert final.choices[0].finish_reason in ("stop", "length")


def test_tool_call_round_trip_when_streaming(client):
    messages = [{"role": "user", "content": "What time is it in Tokyo?"}]
    chunks = list(client.chat.completions.create(
        model=CHAT_MODEL, messages=messages, tools=[WEATHER, TIME], stream=True, temperature=0,
        tool_choice={"type": "function", "function": {"name": "get_time"}}))
    deltas = [c.choices[0].delta.tool_calls for c in chunks if c.choices and
              c.choices[0].delta.tool_calls]
    assert len(deltas) == 1 and deltas[0][0].index == 0
    call = deltas[0][0]
    assert call.id.startswith("call_") and call.function.name == "get_time"
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments["timezone"], str)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    messages += [{"role": "assistant", "content": None, "tool_calls": [{
        "id": call.id, "type": "function",
        "function": {"name": "get_time", "arguments": call.function.arguments}}]},
                 {"role": "tool", "tool_call_id": call.id, "content": "09:30"}]
    answer = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=CHAT_MODEL, messages=messages, stream=True, max_tokens=30, temperature=0)
        if c.choices)
    assert answer


def test_a_named_function_is_called_once_and_whole(base_url):
    """Greedy, the starter model would repeat the call for as long as the grammar let it."""
    for tools in ([TIME], [WEATHER, TIME]):
        status, _, body = post(base_url + "/v1/chat/completions", chat_body(
            "What time is it in Lima?", tools=tools, temperature=0, max_tokens=200,
            tool_choice={"type": "function", "function": {"name": "get_time"}}))
        choice = body["choices"][0]
        assert choice["finish_reason"] == "tool_calls", choice
        assert choice["message"]["content"] is None
        (call,) = choice["message"]["tool_calls"]
        assert call["function"]["name"] == "get_time"
        jsonschema.validate(json.loads(call["function"]["arguments"]),
                            TIME["function"]["parameters"])


def test_a_call_cut_short_never_reaches_the_client_as_text(base_url):
    body = chat_body("What is the weather in Paris?", tools=[WEATHER], tool_choice="required",
                     temperature=0, max_tokens=6)
    status, _, answer = post(base_url + "/v1/chat/completions", body)
    choice = answer["choices"][0]
    assert status == 200 and choice["finish_reason"] == "length"
    assert choice["message"]["content"] is None and "tool_calls" not in choice["message"]
    events = stream(base_url + "/v1/chat/completions", body)
    said = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert said == "" and events[-2]["choices"][0]["finish_reason"] == "length"


def test_parallel_tool_calls_false_makes_exactly_one_call(client):
    for _ in range(2):
        response = client.chat.completions.create(
            model=CHAT_MODEL, tools=[WEATHER, TIME], tool_choice="required",
            parallel_tool_calls=False, temperature=1.0,
            messages=[{"role": "user", "content": "Weather in Rome and time in Oslo?"}])
        calls = response.choices[0].message.tool_calls
        assert len(calls) == 1 and calls[0].function.name in ("get_weather", "get_time")


def test_auto_answers_in_words_or_with_a_valid_call(client):
    for question in ("What is the weather in Berlin?", "Write a poem about the sea."):
        response = client.chat.completions.create(
            model=CHAT_MODEL, tools=[WEATHER], temperature=0, max_tokens=60,
            messages=[{"role": "user", "content": question}])
        message = response.choices[0].message
        if message.tool_calls:
            assert response.choices[0].finish_reason == "tool_calls"
            jsonschema.validate(json.loads(message.tool_calls[0].function.arguments),
                                WEATHER["function"]["parameters"])
        else:
            assert message.content and not message.content.lstrip().startswith("{")


def test_tool_choice_naming_an_unknown_function_is_400(base_url):
    status, _, error = post(base_url + "/v1/chat/completions", chat_body(
        "hi", tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}}))
    assert_error(status, error, 400, param="tool_choice")
    status, _, error = post(base_url + "/v1/chat/completions", chat_body(
        "hi", tools=[{"type": "function", "function": {"name": "bad name!"}}]))
    assert_error(status, error, 400, param="tools[0].function.name")


# -- completions -----------------------------------------------------------------------------------

def test_completion_echo_logprobs_and_n(client):
    echoed = client.completions.create(model=CHAT_MODEL, prompt="1, 2, 3, 4,", max_tokens=4,
                                       temperature=0, echo=True)
    assert echoed.choices[0].text.startswith("1, 2, 3, 4, 5")
    scored = client.completions.create(model=CHAT_MODEL, prompt="1, 2, 3, 4,", max_tokens=4,
                                       temperature=0, logprobs=2, n=2)
    assert len(scored.choices) == 2
    logprobs = scored.choices[0].logprobs
    assert "".join(logprobs.tokens) == scored.choices[0].text
    assert len(logprobs.token_logprobs) == len(logprobs.top_logprobs) == 4
    assert all(len(top) == 2 for top in logprobs.top_logprobs)
    assert logprobs.text_offset == [sum(len(t) for t in logprobs.tokens[:i]) for i in range(4)]


def test_completion_suffix_needs_a_fill_in_the_middle_model(base_url):
    status, _, error = post(base_url + "/v1/completions",
                            {**COUNTING, "suffix": "10, 11"})
    assert_error(status, error, 400, "model_not_supported", "suffix")


# -- embeddings and tokens -------------------------------------------------------------------------

def test_embedding_dimensions_and_token_arrays(client, base_url):
    whole = client.embeddings.create(model=EMBEDDING_MODEL, input="hello world").data[0].embedding
    short = client.embeddings.create(model=EMBEDDING_MODEL, input="hello world",
                                     dimensions=64).data[0].embedding
    assert len(short) == 64 and abs(math.hypot(*short) - 1) < 1e-4
    scale = math.hypot(*whole[:64])
    assert all(abs(a - b / scale) < 1e-4 for a, b in zip(short, whole[:64], strict=True))
    _, _, tokenized = post(base_url + "/v1/tokenize",
                           {"model": EMBEDDING_MODEL, "content": "hello world"})
    from_tokens = client.embeddings.create(model=EMBEDDING_MODEL, input=[tokenized["tokens"]])
    assert all(abs(a - b) < 1e-5 for a, b in zip(from_tokens.data[0].embedding, whole, strict=True))
    status, _, error = post(base_url + "/v1/embeddings",
                            {"model": EMBEDDING_MODEL, "input": ["x"] * 2049})
    assert_error(status, error, 400, param="input")
    status, _, error = post(base_url + "/v1/embeddings",
                            {"model": EMBEDDING_MODEL, "input": [10 ** 9]})
    assert_error(status, error, 400, param="input")


def test_tokenize_and_detokenize_round_trip(base_url):
    _, _, tokenized = post(base_url + "/v1/tokenize",
                           {"model": CHAT_MODEL, "content": "Hello, world!", "with_pieces": True})
    pieces = tokenized["tokens"]
    assert "".join(p["piece"] for p in pieces) == "Hello, world!"
    status, _, back = post(base_url + "/v1/detokenize",
                           {"model": CHAT_MODEL, "tokens": [p["id"] for p in pieces]})
    assert status == 200 and back == {"content": "Hello, world!"}
    status, _, error = post(base_url + "/v1/detokenize", {"model": CHAT_MODEL, "tokens": [-1]})
    assert_error(status, error, 400, param="tokens")


def test_several_prompts_and_token_prompts(base_url):
    counting = tokens_of(base_url, "1, 2, 3, 4,")
    status, _, body = post(base_url + "/v1/completions", {
        **COUNTING, "prompt": ["1, 2, 3, 4,", "10, 20, 30,", counting], "n": 2, "max_tokens": 3,
        "echo": True})
    assert status == 200 and [c["index"] for c in body["choices"]] == list(range(6))
    texts = [c["text"] for c in body["choices"]]
    assert texts[0] == texts[1] == texts[4] == texts[5]  # the same prompt, as text or tokens
    assert texts[0].startswith("1, 2, 3, 4, 5") and texts[2].startswith("10, 20, 30, 40")
    _, _, one = post(base_url + "/v1/completions", {**COUNTING, "max_tokens": 3})
    _, _, other = post(base_url + "/v1/completions",
                       {**COUNTING, "prompt": "10, 20, 30,", "max_tokens": 3})
    assert body["usage"]["prompt_tokens"] == (2 * one["usage"]["prompt_tokens"]
                                              + other["usage"]["prompt_tokens"])
    assert body["usage"]["completion_tokens"] == 6 * 3
    status, _, error = post(base_url + "/v1/completions",
                            {**COUNTING, "prompt": [[1, 10 ** 9]]})
    assert_error(status, error, 400, param="prompt")
