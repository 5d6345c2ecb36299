"""The knowledge base through the other wire formats: `use_knowledge_base` as an extra field on
Ollama's /api/chat, OpenAI's /v1/responses and Anthropic's /v1/messages puts the passages found
into the prompt, and each answer names them as `citations`, as /v1/chat/completions does."""

import pytest

from support.http import post
from support.models import CHAT_MODEL

QUESTION = "Where is the spare water pump kept?"
FACES = {
    "ollama": ("/api/chat", {"model": CHAT_MODEL, "stream": False,
                             "messages": [{"role": "user", "content": QUESTION}],
                             "options": {"num_predict": 8}},
               lambda answer: answer["message"]["citations"]),
    "responses": ("/v1/responses", {"model": CHAT_MODEL, "input": QUESTION,
                                    "max_output_tokens": 8, "store": False},
                  lambda answer: answer["citations"]),
    "anthropic": ("/v1/messages", {"model": CHAT_MODEL, "max_tokens": 8,
                                   "messages": [{"role": "user", "content": QUESTION}]},
                  lambda answer: answer["citations"]),
}


@pytest.fixture(scope="module")
def pump_note(base_url):
    status, _, added = post(base_url + "/v1/documents/ingest", {
        "name": "pump.txt", "content": "The spare water pump is kept in the boathouse, on the "
        "shelf above the life jackets."})
    assert status in (200, 201), added
    return added["document"]["id"]


@pytest.mark.parametrize("face", FACES)
def test_each_face_cites_the_passages_it_was_given(base_url, pump_note, face):
    path, body, citations_of = FACES[face]
    status, _, answer = post(base_url + path, {**body, "use_knowledge_base": True})
    assert status == 200, answer
    citations = citations_of(answer)
    assert citations and citations[0]["document_id"] == pump_note
    assert citations[0]["index"] == 1 and "boathouse" in citations[0]["text"]
    status, _, plain = post(base_url + path, body)
    assert status == 200 and "citations" not in (plain["message"] if face == "ollama" else plain)
