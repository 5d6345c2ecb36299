"""The OpenAI face's typed requests: what parse() takes and refuses (naming the parameter),
what check_against() needs the model for, and what they ask of the engine. Also the tool-call
parser. The same paths run end to end in test_errors.py and test_openai_compat.py."""

from types import SimpleNamespace

import pytest

from offgrid.engine import toolcalling
from offgrid.engine.toolcalling import ToolCall
from offgrid.server.errors import BadRequest
from offgrid.server.openai.requests import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    EmbeddingRequest,
)

MODEL = SimpleNamespace(n_vocab=100, n_embd=8)  # what check_against reads of a model
USER = [{"role": "user", "content": "hi"}]
WEATHER = {"type": "function", "function": {
    "name": "weather", "parameters": {"type": "object", "required": ["city"],
                                      "properties": {"city": {"type": "string"}}}}}


def refused(parse, body) -> BadRequest:
    with pytest.raises(BadRequest) as error:
        parse(body)
    return error.value


def test_a_chat_request_reads_every_field():
    chat = ChatCompletionRequest.parse({
        "model": "m", "messages": [{"role": "developer", "content": "be brief"}, *USER],
        "n": 3, "seed": 7, "stop": "END", "max_tokens": 9, "max_completion_tokens": 5,
        "stream": True, "stream_options": {"include_usage": True}, "keep_alive": "5m",
        "logprobs": True, "top_logprobs": 2, "temperature": 0})
    assert chat.messages == (("system", "be brief"), ("user", "hi"))
    assert (chat.n, chat.max_tokens, chat.stop, chat.logprobs) == (3, 5, ("END",), 2)
    assert (chat.stream, chat.include_usage, chat.keep_alive) == (True, True, 300.0)
    requests = chat.generation_requests()
    assert [r.sampling.seed for r in requests] == [7, 8, 9]
    assert all(r.max_tokens == 5 and r.stop == ["END"] and r.logprobs == 2 for r in requests)


@pytest.mark.parametrize("field, value, param", [
    ("n", 0, "n"), ("n", 17, "n"), ("stop", ["a"] * 5, "stop"), ("max_tokens", 0, "max_tokens"),
    ("stream_options", {"include_usage": True}, "stream_options"),
    ("temperature", 2.5, "temperature"), ("logit_bias", {"²": 1}, "logit_bias"),
    ("logit_bias", {"1": 101}, "logit_bias"), ("top_logprobs", 3, "top_logprobs"),
    ("modalities", ["audio"], "modalities"), ("keep_alive", "soon", "keep_alive"),
    ("messages", [], "messages"), ("tool_choice", "required", "tool_choice"),
    ("response_format", {"type": "yaml"}, "response_format"),
])
def test_a_bad_chat_field_is_refused_by_name(field, value, param):
    error = refused(ChatCompletionRequest.parse, {"model": "m", "messages": USER, field: value})
    assert error.param == param


def test_a_conversation_with_tool_calls_becomes_template_text():
    chat = ChatCompletionRequest.parse({"model": "m", "tools": [WEATHER], "messages": [
        *USER, {"role": "assistant", "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "cold"}]})
    system, user, assistant, result = chat.messages
    assert system[0] == "system" and "weather" in system[1]
    assert assistant == ("assistant", toolcalling.call_text([ToolCall("weather",
                                                                      {"city": "Oslo"})]))
    assert result == ("user", "Result of the tool weather:\ncold")
    assert chat.tool_use.required is False and chat.sampling.grammar


def test_tools_are_checked_when_the_request_is_read():
    for tools, param in [([{"type": "function", "function": {"name": "no spaces"}}],
                          "tools[0].function.name"),
                         ([{"type": "function", "function": {
                             "name": "f", "parameters": {"type": "string", "maxLength": 10 ** 6}}}],
                          "tools[0].function.parameters"),
                         ("weather", "tools")]:
        assert refused(ChatCompletionRequest.parse, {"model": "m", "messages": USER,
                                                     "tools": tools}).param == param
    named = ChatCompletionRequest.parse({"model": "m", "messages": USER, "tools": [WEATHER],
                                         "tool_choice": {"type": "function",
                                                         "function": {"name": "weather"}}})
    assert named.tool_use.forced == "weather" and named.tool_use.required


def test_checks_that_need_the_model_wait_for_it():
    chat = ChatCompletionRequest.parse({"model": "m", "messages": USER,
                                        "logit_bias": {"150": -100}})
    assert chat.sampling.logit_bias == ((150, float("-inf")),)
    with pytest.raises(BadRequest, match="from 0 to 99"):
        chat.check_against(MODEL)
    completion = CompletionRequest.parse({"model": "m", "prompt": [[1, 2], [99, 100]]})
    with pytest.raises(BadRequest) as error:
        completion.check_against(MODEL)
    assert error.value.param == "prompt"
    embedding = EmbeddingRequest.parse({"model": "m", "input": "x", "dimensions": 9})
    with pytest.raises(BadRequest) as error:
        embedding.check_against(MODEL)
    assert error.value.param == "dimensions"
    with pytest.raises(BadRequest):
        DetokenizeRequest.parse({"model": "m", "tokens": [1, 100]}).check_against(MODEL)


def test_completion_prompts_in_every_form_openai_takes():
    for prompt, expected in [("a", ("a",)), (["a", "b"], ("a", "b")), ([1, 2], ((1, 2),)),
                             ([[1], [2, 3]], ((1,), (2, 3)))]:
        assert CompletionRequest.parse({"model": "m", "prompt": prompt}).prompts == expected
    completion = CompletionRequest.parse({"model": "m", "prompt": ["a", "b"], "n": 2})
    assert [r.prompt for r in completion.generation_requests()] == ["a", "a", "b", "b"]
    for body, param in [({"prompt": [1, "a"]}, "prompt"), ({"prompt": ["a"] * 17}, "prompt"),
                        ({"prompt": "a", "echo": True, "logprobs": 1}, "echo"),
                        ({"prompt": [1, 2], "suffix": "z"}, "suffix"), ({}, "prompt")]:
        assert refused(CompletionRequest.parse, {"model": "m", **body}).param == param


def test_embedding_inputs():
    assert EmbeddingRequest.parse({"model": "m", "input": ["a", [1, 2]]}).texts == ["a", [1, 2]]
    for body, param in [({"input": ""}, "input"), ({"input": ["a"] * 2049}, "input"),
                        ({"input": "a", "encoding_format": "hex"}, "encoding_format"),
                        ({"input": "a", "dimensions": 0}, "dimensions")]:
        assert refused(EmbeddingRequest.parse, {"model": "m", **body}).param == param


def test_the_tool_call_parser_keeps_complete_calls_once():
    one = '{"tool_calls": [{"name": "weather", "arguments": {"city": "Oslo"}}]}'
    assert toolcalling.parse(one) == [ToolCall("weather", {"city": "Oslo"})]
    repeated = ('{"tool_calls": [{"name": "a", "arguments": {"x": 1, "y": 2}}, '
                '{"name": "a", "arguments": {"y": 2, "x": 1}}, {"name": "b", "arguments": {}}]}')
    assert [c.name for c in toolcalling.parse(repeated)] == ["a", "b"]
    cut = '{"tool_calls": [{"name": "a", "arguments": {}}, {"name": "b", "argu'
    assert toolcalling.parse(cut) == [ToolCall("a", {})]
    assert toolcalling.parse('{"tool_calls": [{"na') == []
    assert toolcalling.parse("Plain words.") is None
    assert toolcalling.is_call('  {"tool_calls"') and not toolcalling.is_call("Hi {")
