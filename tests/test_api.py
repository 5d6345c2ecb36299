"""Every endpoint over real HTTP, as JSON and as a stream, against real models."""

import base64
import math
import struct

from offgrid import __version__
from support.http import chat_body, get, post, stream
from support.models import CHAT_MODEL, EMBEDDING_MODEL, GEMMA_MODEL


def test_root_names_the_server(base_url):
    status, _, body = get(base_url + "/")
    assert status == 200
    assert body == {"name": "OffGrid LLM", "version": __version__, "status": "running"}


def test_health_is_healthy_once_the_default_model_is_loaded(base_url):
    status, _, body = get(base_url + "/health")
    assert (status, body) == (200, {"status": "healthy"})


def test_models_lists_every_gguf_by_file_name(base_url):
    status, _, body = get(base_url + "/v1/models")
    assert status == 200 and body["object"] == "list"
    ids = {model["id"] for model in body["data"]}
    assert ids >= {CHAT_MODEL, GEMMA_MODEL, EMBEDDING_MODEL}
    for model in body["data"]:
        assert model["object"] == "model" and model["owned_by"] == "offgrid-llm"
        assert isinstance(model["created"], int)
    status, _, one = get(f"{base_url}/v1/models/{CHAT_MODEL}")
    assert status == 200 and one["id"] == CHAT_MODEL


def test_chat_completion(base_url):
    status, _, body = post(base_url + "/v1/chat/completions",
                           chat_body("What is the capital of France?", max_tokens=30,
                                     temperature=0))
    assert status == 200
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == CHAT_MODEL
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert "Paris" in choice["message"]["content"]
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["prompt_tokens"] > 5 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_chat_stream_matches_the_json_answer(base_url):
    body = chat_body("Name three colours.", max_tokens=40, temperature=0)
    _, _, whole = post(base_url + "/v1/chat/completions", body)
    events = stream(base_url + "/v1/chat/completions",
                    {**body, "stream_options": {"include_usage": True}})
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finals) == 1
    assert finals[0]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"] == []
    counts = ("prompt_tokens", "completion_tokens", "total_tokens")
    assert [chunks[-1]["usage"][k] for k in counts] == [whole["usage"][k] for k in counts]
    # The second time, the prompt came from the prefix cache.
    assert chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] == (
        whole["usage"]["prompt_tokens"] - 1)


def test_chat_stream_without_usage_sends_none(base_url):
    events = stream(base_url + "/v1/chat/completions", chat_body("Hi", max_tokens=5))
    assert events[-1] == "[DONE]"
    assert all("usage" not in c for c in events[:-1])
    assert events[-2]["choices"][0]["finish_reason"] in ("stop", "length")


def test_completion_json_and_stream(base_url):
    body = {"model": CHAT_MODEL, "prompt": "1, 2, 3, 4,", "max_tokens": 12, "temperature": 0}
    status, _, whole = post(base_url + "/v1/completions", body)
    assert status == 200 and whole["object"] == "text_completion"
    assert whole["choices"][0]["text"].startswith(" 5, 6")
    assert whole["choices"][0]["finish_reason"] == "length"
    assert whole["usage"]["completion_tokens"] == 12
    events = stream(base_url + "/v1/completions", body)
    assert events[-1] == "[DONE]"
    assert "".join(c["choices"][0]["text"] for c in events[:-1]) == whole["choices"][0]["text"]
    assert events[-2]["choices"][0]["finish_reason"] == "length"


def test_embeddings_of_one_string_and_of_many(base_url):
    status, _, one = post(base_url + "/v1/embeddings",
                          {"model": EMBEDDING_MODEL, "input": "A cat sits on the mat."})
    assert status == 200 and one["object"] == "list" and one["model"] == EMBEDDING_MODEL
    assert len(one["data"]) == 1 and len(one["data"][0]["embedding"]) == 384
    texts = ["A cat sits on the mat.", "A kitten is sitting on a rug.",
             "The stock market fell sharply today."]
    status, _, many = post(base_url + "/v1/embeddings", {"model": EMBEDDING_MODEL, "input": texts})
    assert status == 200 and [d["index"] for d in many["data"]] == [0, 1, 2]
    vectors = [d["embedding"] for d in many["data"]]
    assert all(abs(math.hypot(*v) - 1) < 1e-3 for v in vectors)
    # Batched inputs give the same vector as the input alone.
    alone = one["data"][0]["embedding"]
    assert max(abs(a - b) for a, b in zip(vectors[0], alone, strict=True)) < 1e-4
    cats, markets = _cosine(vectors[0], vectors[1]), _cosine(vectors[0], vectors[2])
    assert cats > 0.5 > markets
    assert many["usage"]["prompt_tokens"] == many["usage"]["total_tokens"] > len(texts)


def test_embeddings_as_base64(base_url):
    _, _, as_float = post(base_url + "/v1/embeddings", {"model": EMBEDDING_MODEL, "input": "hi"})
    _, _, as_b64 = post(base_url + "/v1/embeddings",
                        {"model": EMBEDDING_MODEL, "input": "hi", "encoding_format": "base64"})
    raw = base64.b64decode(as_b64["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    floats = as_float["data"][0]["embedding"]
    assert max(abs(a - b) for a, b in zip(decoded, floats, strict=True)) < 1e-6


def test_embeddings_from_a_chat_model(base_url):
    status, _, body = post(base_url + "/v1/embeddings", {"model": CHAT_MODEL, "input": "hello"})
    assert status == 200 and len(body["data"][0]["embedding"]) == 576


def test_a_model_without_a_template_chats_with_its_architectures_format(base_url):
    """Gemma 3's file has no chat template: its turns are rendered in llama.cpp's gemma format,
    which counts more tokens than the same text as a raw prompt."""
    question = "What is two plus two?"
    status, _, chat = post(base_url + "/v1/chat/completions",
                           {"model": GEMMA_MODEL, "max_tokens": 8,
                            "messages": [{"role": "user", "content": question}]})
    assert status == 200 and chat["model"] == GEMMA_MODEL
    _, _, raw = post(base_url + "/v1/completions",
                     {"model": GEMMA_MODEL, "prompt": question, "max_tokens": 1})
    assert chat["usage"]["prompt_tokens"] > raw["usage"]["prompt_tokens"] + 5


def test_content_as_an_array_of_text_parts(base_url):
    parts = [{"type": "text", "text": "What is the capital "},
             {"type": "text", "text": "of France?"}]
    body = {"model": CHAT_MODEL, "max_tokens": 20, "temperature": 0,
            "messages": [{"role": "user", "content": parts}]}
    _, _, as_parts = post(base_url + "/v1/chat/completions", body)
    _, _, as_string = post(base_url + "/v1/chat/completions",
                           chat_body("What is the capital of France?", max_tokens=20,
                                     temperature=0))
    assert as_parts["choices"][0]["message"] == as_string["choices"][0]["message"]


def _cosine(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True)) / (math.hypot(*a) * math.hypot(*b))
