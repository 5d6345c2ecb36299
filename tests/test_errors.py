"""Bad input gets the documented error shape and status, and the server keeps serving."""

import http.client
import json
import threading

import pytest

from support.http import answers, assert_error, chat_body, exchange, get, post, request, stream
from support.models import CHAT_MODEL, EMBEDDING_MODEL, GEMMA_MODEL

CHAT = "/v1/chat/completions"


@pytest.fixture(autouse=True)
def still_serving_afterwards(base_url):
    yield
    status, _, body = post(base_url + CHAT, chat_body("Say yes.", max_tokens=3))
    assert status == 200 and body["choices"][0]["message"]["role"] == "assistant"


def test_unknown_model_is_404_model_not_found(base_url):
    for path, body in [(CHAT, chat_body("hi", model="no-such-model")),
                       ("/v1/completions", {"model": "no-such-model", "prompt": "hi"}),
                       ("/v1/embeddings", {"model": "no-such-model", "input": "hi"})]:
        status, _, error = post(base_url + path, body)
        found = assert_error(status, error, 404, "model_not_found", "model")
        assert found["message"] == "Model not found: no-such-model"
    status, _, error = get(base_url + "/v1/models/no-such-model")
    assert_error(status, error, 404, "model_not_found")


def test_model_ids_with_paths_are_refused(base_url):
    for model in ["../models/" + CHAT_MODEL, "/etc/passwd", "a/b", "..", "x\\y"]:
        status, _, error = post(base_url + CHAT, chat_body("hi", model=model))
        assert_error(status, error, 400, "invalid_value", "model")
        status, _, error = request("DELETE", f"{base_url}/v1/models/{model.replace('/', '%2F')}")
        assert status in (400, 404)
    status, _, error = post(base_url + CHAT, chat_body("hi", model=CHAT_MODEL + ".gguf"))
    assert_error(status, error, 404, "model_not_found")


def test_malformed_json_is_400(base_url):
    for raw in [b"{bad json", b"[1, 2]", b"\xff\xfe", b"", b"null", b"7", b'"text"']:
        status, _, error = request("POST", base_url + CHAT, raw)
        assert_error(status, error, 400)


@pytest.mark.parametrize("field, value", [
    ("temperature", 2.5), ("temperature", "hot"), ("temperature", True), ("top_p", 1.5),
    ("top_k", -1), ("max_tokens", 0), ("max_tokens", 1.5), ("max_tokens", "ten"),
    ("max_completion_tokens", -3), ("frequency_penalty", 3), ("presence_penalty", -2.5),
    ("stop", ["a", "b", "c", "d", "e"]), ("stop", 7), ("stream", "yes"), ("seed", "x"),
    ("messages", "hello"), ("messages", []), ("model", 42), ("model", ""),
    ("stream_options", {"include_usage": True}),
])
def test_wrong_types_and_ranges_name_the_parameter(base_url, field, value):
    status, _, error = post(base_url + CHAT, {**chat_body("hi"), field: value})
    assert_error(status, error, 400, param=field)


@pytest.mark.parametrize("message, param", [
    ({"role": "wizard", "content": "hi"}, "messages[0].role"),
    ({"role": "user"}, "messages[0].content"),
    ({"role": "user", "content": 5}, "messages[0].content"),
    ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
     "messages[0].content[0]"),
    ("just a string", "messages[0]"),
])
def test_bad_messages_name_the_message(base_url, message, param):
    status, _, error = post(base_url + CHAT, {"model": CHAT_MODEL, "messages": [message]})
    assert_error(status, error, 400, param=param)


def test_missing_required_fields(base_url):
    for path, body, param in [(CHAT, {"messages": [{"role": "user", "content": "x"}]}, "model"),
                              (CHAT, {"model": CHAT_MODEL}, "messages"),
                              ("/v1/completions", {"model": CHAT_MODEL}, "prompt"),
                              ("/v1/embeddings", {"model": EMBEDDING_MODEL}, "input")]:
        status, _, error = post(base_url + path, body)
        assert_error(status, error, 400, "missing_required_parameter", param)


def test_parameters_the_server_cannot_honour_are_refused_not_ignored(base_url):
    for field, value in [("modalities", ["text", "audio"]), ("audio", {"voice": "alloy"}),
                         ("functions", [{"name": "f"}]),
                         ("prediction", {"type": "content", "content": "x"})]:
        status, _, error = post(base_url + CHAT, {**chat_body("hi"), field: value})
        assert_error(status, error, 400, "unsupported_parameter", field)
    status, _, error = post(base_url + "/v1/completions",
                            {"model": CHAT_MODEL, "prompt": "hi", "best_of": 3})
    assert_error(status, error, 400, "unsupported_parameter", "best_of")
    status, _, ok = post(base_url + CHAT, {**chat_body("hi", max_tokens=2), "modalities": ["text"],
                                           "user": "someone"})
    assert status == 200


def test_prompt_longer_than_the_context_is_400_context_length_exceeded(base_url):
    long_text = "word " * 3000  # far more than the 2048-token slots of the test server
    status, _, error = post(base_url + CHAT, chat_body(long_text))
    assert_error(status, error, 400, "context_length_exceeded", "messages")
    status, _, error = post(base_url + "/v1/completions",
                            {"model": CHAT_MODEL, "prompt": long_text, "stream": True})
    assert_error(status, error, 400, "context_length_exceeded", "prompt")
    status, _, error = post(base_url + "/v1/embeddings",
                            {"model": EMBEDDING_MODEL, "input": ["short", long_text]})
    assert_error(status, error, 400, "context_length_exceeded", "input")


def test_embedding_model_cannot_chat(base_url):
    status, _, error = post(base_url + CHAT, chat_body("hi", model=EMBEDDING_MODEL))
    assert_error(status, error, 400, "model_not_supported", "model")


def test_unknown_path_is_404(base_url):
    status, _, error = get(base_url + "/v1/nothing-here")
    assert_error(status, error, 404, "unknown_url")


def test_wrong_method_is_405_with_allow(base_url):
    status, headers, error = request("DELETE", base_url + CHAT)
    assert_error(status, error, 405, "method_not_allowed")
    assert headers["Allow"] == "POST"
    status, headers, error = post(base_url + "/v1/models", {})
    assert_error(status, error, 405)
    assert headers["Allow"] == "GET"


def test_any_http_method_gets_the_router_answer(base_url, server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for method in ("BREW", "TRACE"):
        connection.request(method, "/v1/models")
        response = connection.getresponse()
        assert_error(response.status, json.loads(response.read()), 405, "method_not_allowed")
        assert response.headers["Allow"] == "GET"


def test_requests_http_server_refuses_itself_get_json_errors_too(server):
    reply = exchange(server.url, b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n")
    (status, _, error), = answers(reply)
    assert_error(status, error, 431)


def test_body_over_the_limit_is_413_without_reading_it(base_url, server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest("POST", CHAT)
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(64 * 1024 * 1024))
    connection.endheaders()
    response = connection.getresponse()
    assert_error(response.status, json.loads(response.read()), 413, "request_too_large")


def test_a_corrupt_model_file_is_a_clear_500_and_the_server_goes_on(start_server, model_files,
                                                                    tmp_path):
    (tmp_path / "broken.gguf").write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 4096)
    (tmp_path / (CHAT_MODEL + ".gguf")).symlink_to(model_files["starter"])
    server = start_server("--model", CHAT_MODEL, models=tmp_path)
    for _ in range(2):  # a failed load is not cached as loaded, and fails the same way again
        status, _, error = post(server.url + CHAT, chat_body("hi", model="broken"))
        found = assert_error(status, error, 500, "model_load_failed")
        assert "broken.gguf" in found["message"]
    status, _, body = post(server.url + CHAT, chat_body("hi", max_tokens=2))
    assert status == 200
    assert "Traceback" not in server.log()


# -- text and numbers no later step can use ------------------------------------------------------

LONE_SURROGATES = [
    (CHAT, chat_body("hi \ud800"), "messages[0].content"),
    (CHAT, {"model": CHAT_MODEL, "messages": [{"role": "system", "content": "be \udfff"},
                                              {"role": "user", "content": "hi"}]},
     "messages[0].content"),
    (CHAT, {"model": CHAT_MODEL, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "a\ud83d"}]}]},
     "messages[0].content[0].text"),
    ("/v1/completions", {"model": CHAT_MODEL, "prompt": "a\udfff"}, "prompt"),
    ("/v1/completions", {"model": CHAT_MODEL, "prompt": ["fine", "a\udfff"]}, "prompt[1]"),
    ("/v1/embeddings", {"model": EMBEDDING_MODEL, "input": ["ok", "\ud800"]}, "input[1]"),
    ("/v1/tokenize", {"model": CHAT_MODEL, "content": "\ud800"}, "content"),
    (CHAT, {**chat_body("hi"), "stop": ["\udc00"]}, "stop[0]"),
]


@pytest.mark.parametrize("path, body, param", LONE_SURROGATES)
def test_text_with_a_lone_surrogate_is_400_naming_the_field(base_url, path, body, param):
    status, _, error = post(base_url + path, body)  # json.dumps writes it as \ud800
    assert_error(status, error, 400, "invalid_value", param)


def test_a_lone_surrogate_does_not_disturb_a_running_stream(base_url):
    result = {}
    runner = threading.Thread(target=lambda: result.update(events=stream(
        base_url + CHAT, chat_body("Count to ten.", max_tokens=30, temperature=0,
                                   stream_options={"include_usage": True}))))
    runner.start()
    for path, body, _ in LONE_SURROGATES:
        assert post(base_url + path, body)[0] == 400
    runner.join(300)
    assert result["events"][-1] == "[DONE]"
    assert result["events"][-2]["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize("raw", [
    b"[" * 100_000 + b"]" * 100_000,  # deeper than any parser should follow
    b'{"model": "m", "n": ' + b"7" * 5000 + b"}",  # more digits than Python will convert
    b'{"model": "m", "temperature": NaN}', b'{"model": "m", "temperature": Infinity}',
    b'{"model": "m", "keep_alive": 1e999}', b'{"model": "m", "keep_alive": -Infinity}',
    b'{"a": ' * 70 + b"1" + b"}" * 70,
])
def test_json_no_later_step_can_use_is_400(base_url, raw):
    status, _, error = request("POST", base_url + CHAT, raw)
    assert_error(status, error, 400)


def test_a_logit_bias_key_of_other_digits_is_400(base_url):
    for key in ("²", "٣", "1_0", "+2", " 3"):
        status, _, error = post(base_url + CHAT, {**chat_body("hi"), "logit_bias": {key: 1}})
        assert_error(status, error, 400, "invalid_value", "logit_bias")


# -- grammars that would cost too much ------------------------------------------------------------

def _schema_format(schema) -> dict:
    return {"response_format": {"type": "json_schema",
                                "json_schema": {"name": "x", "schema": schema}}}


def _tool(parameters) -> dict:
    return {"tools": [{"type": "function", "function": {"name": "f", "parameters": parameters}}],
            "tool_choice": "required"}


LOOP = {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}
COSTLY_GRAMMARS = [
    (_schema_format({"type": "string", "maxLength": 30_000}), "response_format"),
    (_schema_format({"type": "array", "items": {"type": "integer"}, "maxItems": 30_000}),
     "response_format"),
    (_schema_format({"type": "string", "minLength": 10 ** 7}), "response_format"),
    (_schema_format({"enum": [f"value-{i}" for i in range(20_000)]}), "response_format"),
    (_schema_format({"type": "string", "pattern": "^(a{1,9000}){1,9000}$"}), "response_format"),
    (_schema_format(LOOP), "response_format"),
    (_schema_format({"type": "wibble"}), "response_format"),
    (_tool({"type": "object", "properties": {"x": {"type": "string", "maxLength": 30_000}}}),
     "tools[0].function.parameters"),
    (_tool({"type": "object", "properties": {"x": {"type": "array", "maxItems": 30_000,
                                                   "items": {}}}}),
     "tools[0].function.parameters"),
    (_tool(LOOP), "tools[0].function.parameters"),
    (_tool({"type": "object", "properties": {"x": {"$ref": "#/$defs/nowhere"}}}),
     "tools[0].function.parameters"),
]


@pytest.mark.parametrize("fields, param", COSTLY_GRAMMARS)
def test_a_grammar_past_its_bounds_is_400_naming_the_parameter(base_url, fields, param):
    status, _, error = post(base_url + CHAT, {**chat_body("hi", max_tokens=5), **fields})
    assert_error(status, error, 400, "invalid_value", param)


def test_costly_grammars_do_not_disturb_a_running_stream(base_url):
    result = {}
    runner = threading.Thread(target=lambda: result.update(events=stream(
        base_url + CHAT, chat_body("Count to ten.", max_tokens=30, temperature=0))))
    runner.start()
    for fields, _ in COSTLY_GRAMMARS:
        assert post(base_url + CHAT, {**chat_body("hi", max_tokens=5), **fields})[0] == 400
    runner.join(300)
    assert result["events"][-1] == "[DONE]"
    assert result["events"][-2]["choices"][0]["finish_reason"] in ("stop", "length")


def test_an_invalid_request_loads_nothing(start_server):
    """Every check that needs no model comes before the model is loaded: a bad request for a
    model that is not in memory leaves it out (loading takes seconds and may evict another)."""
    base_url = start_server("--model", CHAT_MODEL).url

    def gemma_loaded() -> bool:
        return get(base_url + f"/v1/models/{GEMMA_MODEL}")[2]["loaded"]

    assert not gemma_loaded()
    chat = {"model": GEMMA_MODEL, "messages": [{"role": "user", "content": "hi"}]}
    for field, value in [("n", 0), ("n", 99), ("stop", ["a"] * 9), ("max_tokens", -1),
                         ("stream_options", {"include_usage": True}), ("temperature", 7),
                         ("logit_bias", {"x": 1}), ("tools", "all of them"),
                         ("response_format", {"type": "json_schema", "json_schema": {
                             "name": "x", "schema": {"type": "string", "maxLength": 99999}}})]:
        status, _, error = post(base_url + CHAT, {**chat, field: value})
        assert_error(status, error, 400, param=field)
    for path, body, param in [
            ("/v1/completions", {"model": GEMMA_MODEL, "prompt": "x", "echo": True,
                                 "logprobs": 2}, "echo"),
            ("/v1/completions", {"model": GEMMA_MODEL, "prompt": [1, "x"]}, "prompt"),
            ("/v1/embeddings", {"model": GEMMA_MODEL, "input": ""}, "input"),
            ("/v1/embeddings", {"model": GEMMA_MODEL, "input": "x", "dimensions": 0},
             "dimensions"),
            ("/v1/tokenize", {"model": GEMMA_MODEL, "content": 5}, "content"),
            ("/v1/detokenize", {"model": GEMMA_MODEL, "tokens": ["a"]}, "tokens")]:
        status, _, error = post(base_url + path, body)
        assert_error(status, error, 400, param=param)
    assert not gemma_loaded()
