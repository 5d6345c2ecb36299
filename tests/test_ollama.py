"""Ollama's API: the real `ollama` package, unchanged, against a real server; and over raw HTTP
what a client library hides: NDJSON, error shapes, a hang-up mid-stream, keep_alive 0."""

import json
import math

import ollama
import pytest

from support.http import get, hang_up, open_stream, post, request
from support.hubmock import HubMock
from support.models import CHAT_MODEL, EMBEDDING_MODEL, GEMMA_MODEL
from support.servers import free_port
from support.waiting import wait_until

CHAT = CHAT_MODEL + ":latest"
GREEDY = {"temperature": 0, "num_predict": 8}
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def client(base_url) -> ollama.Client:
    return ollama.Client(host=base_url)


# -- the models --------------------------------------------------------------------------------

def test_list_names_each_model_with_a_tag_and_a_digest_of_its_own(client):
    models = {m.model: m for m in client.list().models}
    assert {CHAT, EMBEDDING_MODEL + ":latest", GEMMA_MODEL + ":latest"} <= set(models)
    digests = [m.digest for m in models.values()]
    assert all(len(d) == 64 for d in digests) and len(set(digests)) == len(digests)
    chat = models[CHAT]
    assert chat.size == 98_362_432 and chat.modified_at is not None
    assert (chat.details.format, chat.details.family, chat.details.quantization_level) == (
        "gguf", "llama", "Q4_1")
    assert chat.details.parameter_size.endswith("M")


def test_show_reads_the_header_and_says_what_the_model_can_do(client):
    shown = client.show(CHAT_MODEL)  # without a tag: :latest
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.modelinfo["llama.context_length"] == 8192
    assert shown.capabilities == ["completion", "tools"]
    assert "messages" in shown.template and "num_ctx 2048" in shown.parameters
    assert client.show(EMBEDDING_MODEL + ":latest").capabilities == ["embedding"]


def test_ps_lists_the_loaded_models_with_their_context_and_expiry(client):
    running = {m.model: m for m in client.ps().models}
    assert running[CHAT].context_length == 2048 and running[CHAT].expires_at is not None
    assert len(running[CHAT].digest) == 64 and running[CHAT].size > 98_362_432


def test_version_is_numeric_semver_and_the_root_answers_a_probe(base_url):
    status, _, body = get(base_url + "/api/version")
    assert status == 200 and [part.isdigit() for part in body["version"].split(".")] == [True] * 3
    status, headers, body = request("HEAD", base_url + "/")  # Ollama's CLI probes it so
    assert status == 200 and body == "" and int(headers["Content-Length"]) > 0


# -- generation --------------------------------------------------------------------------------

def test_chat_whole_and_streamed_say_the_same(client):
    whole = client.chat(model=CHAT, messages=HELLO, options=GREEDY)
    assert whole.done and whole.done_reason in ("stop", "length")
    assert whole.message.role == "assistant" and whole.message.content
    assert 0 < whole.eval_count <= 8 and whole.prompt_eval_count > 0
    assert whole.total_duration > whole.eval_duration > 0  # nanoseconds
    parts = list(client.chat(model=CHAT, messages=HELLO, options=GREEDY, stream=True))
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    assert "".join(p.message.content for p in parts) == whole.message.content
    assert parts[-1].eval_count == whole.eval_count


def test_generate_whole_and_streamed_say_the_same(client):
    whole = client.generate(model=CHAT, prompt="The capital of France is", options=GREEDY)
    assert whole.done and whole.response and whole.eval_count <= 8
    parts = list(client.generate(model=CHAT, prompt="The capital of France is",
                                 options=GREEDY, stream=True))
    assert parts[-1].done and "".join(p.response for p in parts) == whole.response


def test_options_stop_and_num_predict(client):
    answer = client.generate(model=CHAT, prompt="1, 2, 3, 4,", raw=True,
                             options={"temperature": 0, "num_predict": 30, "stop": ["7"]})
    assert "7" not in answer.response and answer.done_reason == "stop"
    cut = client.generate(model=CHAT, prompt="1, 2, 3, 4,", raw=True,
                          options={"temperature": 0, "num_predict": 3})
    assert cut.eval_count == 3 and cut.done_reason == "length"


def test_format_holds_the_answer_to_a_schema(client):
    schema = {"type": "object", "required": ["name", "age"],
              "properties": {"name": {"type": "string", "maxLength": 12},
                             "age": {"type": "integer", "minimum": 0, "maximum": 120}}}
    answer = client.chat(model=CHAT, format=schema, options={"temperature": 0, "num_predict": 40},
                         messages=[{"role": "user", "content": "Describe Ada, aged 36."}])
    assert set(json.loads(answer.message.content)) == {"name", "age"}
    as_json = client.generate(model=CHAT, prompt="A JSON object about a cat:", format="json",
                              options={"temperature": 0, "num_predict": 8})
    assert as_json.response.lstrip().startswith("{")


def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
      city: the city's name
    """
    return "18 C and sunny"


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "required": ["city"],
                   "properties": {"city": {"type": "string", "maxLength": 20}}}}}
ASK_WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]


def test_tools_answer_in_words_or_with_a_call(client):
    for question in ("What is the weather in Berlin?", "Write a poem about the sea."):
        answer = client.chat(model=CHAT, tools=[get_weather], options=GREEDY,
                             messages=[{"role": "user", "content": question}])
        if answer.message.tool_calls:
            assert answer.message.tool_calls[0].function.name == "get_weather"
        else:
            assert answer.message.content and not answer.message.content.startswith("{")


def test_calls_carry_their_arguments_as_objects_and_their_results_are_read(base_url, client):
    """The starter model calls no tool unless told to: `tool_choice`, an extra field."""
    body = {"model": CHAT, "messages": ASK_WEATHER, "tools": [WEATHER],
            "tool_choice": "required", "stream": False,
            "options": {"temperature": 0, "num_predict": 40}}
    status, _, whole = post(base_url + "/api/chat", body)
    answer = ollama.ChatResponse(**whole)
    (call,) = answer.message.tool_calls
    assert call.function.name == "get_weather" and isinstance(call.function.arguments, dict)
    assert answer.message.content == "" and answer.done_reason == "stop"
    connection, response = open_stream(base_url, "/api/chat", body)
    lines = [ollama.ChatResponse(**json.loads(line)) for line in response.read().splitlines()]
    connection.close()
    assert [c.function.arguments for p in lines for c in p.message.tool_calls or ()] == [
        call.function.arguments]
    assert "".join(p.message.content for p in lines) == "" and lines[-1].done
    follow_up = client.chat(model=CHAT, options=GREEDY, tools=[get_weather], messages=[
        *ASK_WEATHER, answer.message,
        {"role": "tool", "content": get_weather(**call.function.arguments),
         "tool_name": "get_weather"}])
    assert follow_up.done


def test_embed_and_the_older_embeddings(client):
    result = client.embed(model=EMBEDDING_MODEL, input=["a cat", "a dog"])
    assert len(result.embeddings) == 2 and len(result.embeddings[0]) == 384
    assert math.isclose(math.hypot(*result.embeddings[0]), 1.0, rel_tol=1e-4)
    assert result.prompt_eval_count > 0
    older = client.embeddings(model=EMBEDDING_MODEL, prompt="a cat")
    assert all(math.isclose(a, b, abs_tol=1e-4)
               for a, b in zip(older.embedding, result.embeddings[0], strict=True))
    short = client.embed(model=EMBEDDING_MODEL, input="a cat", dimensions=64)
    assert len(short.embeddings[0]) == 64


# -- over raw HTTP -----------------------------------------------------------------------------

def test_errors_are_ollamas_shape(base_url):
    for path, body, status in [
            ("/api/chat", {"model": "no-such-model", "messages": HELLO}, 404),
            ("/api/chat", {"model": CHAT_MODEL + ":7b", "messages": HELLO}, 404),
            ("/api/show", {"model": "no-such-model"}, 404),
            ("/api/generate", b"{not json", 400),
            ("/api/chat", {"model": CHAT, "messages": "hi"}, 400),
            ("/api/chat", {"model": CHAT, "messages": HELLO, "options": {"temperature": "x"}},
             400),
            ("/api/embed", {"model": CHAT, "input": []}, 400)]:
        answered, _, error = post(base_url + path, body)
        assert answered == status and set(error) == {"error"}, (path, error)
        assert isinstance(error["error"], str) and error["error"]
    with pytest.raises(ollama.ResponseError) as raised:
        ollama.Client(host=base_url).chat(model="no-such-model", messages=HELLO)
    assert raised.value.status_code == 404 and "no-such-model" in raised.value.error


def test_unknown_fields_are_ignored_and_streams_are_ndjson(base_url):
    connection, response = open_stream(base_url, "/api/generate", {
        "model": CHAT, "prompt": "Hi", "options": {**GREEDY, "mirostat": 0}, "think": False})
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.read().splitlines()]
    connection.close()
    assert lines[-1]["done"] is True and "eval_duration" in lines[-1]


def _busy(base_url) -> int:
    return get(base_url + "/v1/system/stats")[2]["active_sessions"]


def test_a_hang_up_mid_stream_frees_the_slot(base_url):
    assert wait_until(lambda: _busy(base_url) == 0)
    connection, response = open_stream(base_url, "/api/chat", {
        "model": CHAT, "messages": [{"role": "user", "content": "Count to a thousand."}],
        "options": {"num_predict": 2000}})
    for _ in range(3):
        assert json.loads(response.readline())["done"] is False
    assert _busy(base_url) == 1
    hang_up(connection)
    assert wait_until(lambda: _busy(base_url) == 0)


def test_keep_alive_loads_with_an_empty_prompt_and_zero_unloads(base_url, client):
    def loaded() -> set:
        return {m.model for m in client.ps().models}

    gemma = GEMMA_MODEL + ":latest"
    answer = client.generate(model=gemma, prompt="")
    assert answer.done and answer.done_reason == "load" and gemma in loaded()
    answer = client.generate(model=gemma, prompt="", keep_alive=0)
    assert answer.done_reason == "unload" and gemma not in loaded()
    client.generate(model=gemma, prompt="Hi", options={"num_predict": 2}, keep_alive=0)
    assert wait_until(lambda: gemma not in loaded())
    status, _, body = post(base_url + "/api/chat", {"model": GEMMA_MODEL})
    assert status == 200 and body["done_reason"] == "load"
    post(base_url + "/api/chat", {"model": GEMMA_MODEL, "keep_alive": 0})


# -- pull, copy, delete ------------------------------------------------------------------------

REPO = "test-org/SmolLM2-GGUF"


@pytest.fixture(scope="module")
def hub(model_files):
    mock = HubMock()
    mock.host(REPO, CHAT_MODEL + ".gguf", model_files["starter"], bytes_per_second=50_000_000)
    mock.host(REPO, "SmolLM2-135M-Instruct.Q4_K_M.gguf", model_files["starter"])
    yield mock
    mock.close()


def test_pull_reports_progress_then_copy_and_delete(start_server, hub, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    server = start_server(models=models, env={"HF_ENDPOINT": hub.url})
    client = ollama.Client(host=server.url)
    progress = list(client.pull(f"hf.co/{REPO}:Q4_1", stream=True))
    assert progress[0].status == "pulling manifest" and progress[-1].status == "success"
    downloading = [p for p in progress if p.completed is not None]
    assert downloading and downloading[-1].completed == downloading[-1].total == 98_362_432
    assert all(p.digest is None or p.digest.startswith("sha256:") for p in downloading)
    assert [m.model for m in client.list().models] == [CHAT]
    assert client.pull(REPO).status == "success"  # no tag: the Q4_K_M file
    assert client.copy(CHAT, "copied").status == "success"
    names = {m.model: m.digest for m in client.list().models}
    assert names["copied:latest"] == names[CHAT]
    assert client.delete("copied").status == "success"
    assert "copied:latest" not in {m.model for m in client.list().models}
    status, _, error = request("DELETE", server.url + "/api/delete", {"model": "copied"})
    assert status == 404 and set(error) == {"error"}
    with pytest.raises(ollama.ResponseError):
        client.pull(f"{REPO}:Q8_0")


def test_ollamas_own_port_serves_the_same_api(start_server):
    """--ollama-port: a second listener for clients that assume 11434, whose / says what
    Ollama's says; SIGTERM stops both."""
    port = free_port()
    server = start_server("--model", CHAT_MODEL, "--ollama-port", str(port))
    there = f"http://127.0.0.1:{port}"
    status, headers, text = get(there + "/")
    assert status == 200 and text == "Ollama is running"
    assert headers["Content-Type"].startswith("text/plain")
    assert get(server.url + "/")[2]["name"] == "OffGrid LLM"
    names = [m.model for m in ollama.Client(host=there).list().models]
    assert CHAT_MODEL + ":latest" in names
    assert server.stop() == 0
    with pytest.raises(OSError):
        get(there + "/", timeout=2)
