"""The official `openai` package pointed at OffGrid."""

import math

import openai
import pytest

from support.models import CHAT_MODEL, EMBEDDING_MODEL


@pytest.fixture(scope="module")
def client(base_url):
    return openai.OpenAI(base_url=base_url + "/v1", api_key="not-needed", max_retries=0)


def test_chat(client):
    response = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=20, temperature=0)
    assert "Paris" in response.choices[0].message.content
    assert response.choices[0].finish_reason in ("stop", "length")
    assert response.usage.total_tokens == (response.usage.prompt_tokens
                                           + response.usage.completion_tokens)


def test_chat_stream(client):
    chunks = list(client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Count to three."}],
        max_tokens=20, temperature=0, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage.completion_tokens > 0


def test_completions(client):
    response = client.completions.create(model=CHAT_MODEL, prompt="1, 2, 3, 4,", max_tokens=6,
                                         temperature=0)
    assert response.choices[0].text.startswith(" 5, 6")
    assert response.usage.completion_tokens == 6
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=CHAT_MODEL, prompt="1, 2, 3, 4,", max_tokens=6, temperature=0, stream=True))
    assert streamed == response.choices[0].text


def test_embeddings(client):
    response = client.embeddings.create(model=EMBEDDING_MODEL, input=["hello", "world"])
    assert len(response.data) == 2 and len(response.data[0].embedding) == 384
    assert abs(math.hypot(*response.data[0].embedding) - 1) < 1e-3
    assert response.usage.prompt_tokens > 0
    as_float = client.embeddings.create(model=EMBEDDING_MODEL, input="hello",
                                        encoding_format="float")
    assert max(abs(a - b) for a, b in zip(as_float.data[0].embedding,
                                          response.data[0].embedding, strict=True)) < 1e-6


def test_models(client):
    ids = {model.id for model in client.models.list()}
    assert CHAT_MODEL in ids and EMBEDDING_MODEL in ids
    assert client.models.retrieve(CHAT_MODEL).id == CHAT_MODEL


def test_errors_raise_the_sdks_exceptions(client):
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(model="no-such-model",
                                       messages=[{"role": "user", "content": "hi"}])
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=CHAT_MODEL, temperature=3,
                                       messages=[{"role": "user", "content": "hi"}])
    assert bad.value.body["param"] == "temperature"
