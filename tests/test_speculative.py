"""Speculative decoding from the prompt, against the same model with it turned off: an answer
that quotes its prompt is drafted and checked in the same steps, and comes out token for token
what plain decoding gives (greedy and seeded sampling, logprobs, stop strings, max_tokens). A
draft model's guesses go through the same checks.

llama.cpp's CPU kernels compute a step of one token slightly differently from a step of several
(logits differ by up to about 0.5 with SmolLM2), in plain batching as in drafting. So each
request here asks for two choices: both servers then decode every step with two or more tokens,
and their logits are bit-identical. Where a step's tokens sit in the KV memory matters too (the
attention sums run over the cells in order), so the drafting server is this module's own, sent
the same requests in the same order as the plain one, not the shared server with whatever history
earlier test files gave it."""

from __future__ import annotations

import pytest

from support.http import post
from support.metrics import scrape, value
from support.models import CHAT_MODEL, GEMMA_MODEL

PASSAGE = (
    "The generator is kept in shed 3, behind the water tanks. To start it, open the fuel valve, "
    "set the choke to full, pull the cord twice, and wait thirty seconds before moving the choke "
    "back to half. Never run it inside the shed: carbon monoxide builds up within minutes. After "
    "use, close the fuel valve and let the engine cool for an hour before covering it. The spare "
    "fuel is stored in the red cans by the north fence, and each can holds twenty litres.")
QUOTE = [{"role": "system", "content": "You repeat text exactly."},
         {"role": "user", "content": "Repeat this text word for word:\n\n" + PASSAGE}]


SLOTS = ("--model", CHAT_MODEL, "--parallel", "4", "--max-context", "2048")


@pytest.fixture(scope="module")
def speculating(start_module_server):
    """Drafting from the prompt, as every server does by default."""
    return start_module_server(*SLOTS)


@pytest.fixture(scope="module")
def plain(start_module_server):
    """The same model and slots, never drafting."""
    return start_module_server(*SLOTS, "--no-speculative")


def both(speculating, plain, **fields) -> tuple[dict, dict]:
    body = {"model": CHAT_MODEL, "messages": QUOTE, "n": 2, "max_tokens": 96,
            "temperature": 0, **fields}
    answers = []
    for url in (speculating.url, plain.url):
        status, _, answer = post(url + "/v1/chat/completions", body)
        assert status == 200, answer
        answers.append(answer)
    return answers[0], answers[1]


def texts(answer: dict) -> list[str]:
    return [choice["message"]["content"] for choice in answer["choices"]]


def test_a_quoting_answer_is_drafted_and_is_what_plain_decoding_gives(speculating, plain):
    drafted, plainly = both(speculating, plain)
    assert texts(drafted) == texts(plainly)
    assert texts(drafted)[0].startswith("The generator is kept in")
    timings = drafted["timings"]
    assert timings["draft_n_accepted"] >= 40, timings  # most of the answer came from drafts
    assert timings["draft_n"] >= timings["draft_n_accepted"]
    assert "draft_n" not in plainly["timings"]
    assert drafted["usage"] == plainly["usage"]


def test_seeded_sampling_draws_the_same_tokens_with_drafts(speculating, plain):
    status, _, tokens = post(speculating.url + "/v1/tokenize", {
        "content": "<|im_end|><|endoftext|>", "model": CHAT_MODEL, "parse_special": True})
    assert status == 200, tokens
    # Ending is banned so that both choices run to max_tokens and every step holds two tokens.
    banned = {str(t): -100 for t in tokens["tokens"]}
    drafted, plainly = both(speculating, plain, temperature=0.7, seed=11, logit_bias=banned)
    assert texts(drafted) == texts(plainly)
    assert texts(drafted)[0] != texts(drafted)[1]  # seed and seed + 1


def test_logprobs_stop_strings_and_length_are_those_of_plain_decoding(speculating, plain):
    drafted, plainly = both(speculating, plain, logprobs=True, top_logprobs=2,
                            stop=["carbon monoxide"])
    assert texts(drafted) == texts(plainly)
    assert texts(drafted)[0].endswith("inside the shed: ")
    assert drafted["choices"][0]["finish_reason"] == "stop"
    assert drafted["choices"][0]["logprobs"] == plainly["choices"][0]["logprobs"]
    drafted, plainly = both(speculating, plain, max_tokens=37)
    assert texts(drafted) == texts(plainly)
    assert drafted["usage"]["completion_tokens"] == 2 * 37
    assert drafted["choices"][0]["finish_reason"] == "length"


def test_drafts_are_counted_in_metrics(speculating):
    before = scrape(speculating.url)
    status, _, answer = post(speculating.url + "/v1/chat/completions", {
        "model": CHAT_MODEL, "messages": QUOTE, "max_tokens": 64, "temperature": 0})
    assert status == 200, answer
    after = scrape(speculating.url)

    def added(name: str) -> float:
        labels = {"model": CHAT_MODEL, "source": "prompt"}
        return value(after, name, **labels) - value(before, name, **labels)

    assert added("offgrid_draft_tokens_accepted_total") == answer["timings"]["draft_n_accepted"]
    assert added("offgrid_draft_tokens_total") == answer["timings"]["draft_n"] > 0


# -- a draft model --

STORY = [{"role": "user", "content": "Tell me a short story about a lighthouse keeper."}]


@pytest.fixture(scope="module")
def drafting(start_module_server):
    """The starter model drafting for itself: the same vocabulary, guesses nearly always right
    (though no faster: on a CPU it costs as much as the model it drafts for)."""
    return start_module_server(*SLOTS, "--draft-model", CHAT_MODEL)


def drafted_by_the_model(samples) -> tuple[float, float]:
    labels = {"model": CHAT_MODEL, "source": "draft_model"}
    return (value(samples, "offgrid_draft_tokens_total", **labels),
            value(samples, "offgrid_draft_tokens_accepted_total", **labels))


def test_a_draft_models_guesses_are_checked_and_the_answer_is_plain_decodings(drafting, plain):
    before = drafted_by_the_model(scrape(drafting.url))
    guessed, plainly = both(drafting, plain, messages=STORY, max_tokens=64)
    assert texts(guessed) == texts(plainly)
    after = drafted_by_the_model(scrape(drafting.url))
    drafted, accepted = (a - b for a, b in zip(after, before, strict=True))
    assert drafted > 0 and accepted > 0, (drafted, accepted)
    assert guessed["timings"]["draft_n"] > 0  # (the first choice's)


def test_a_draft_model_with_another_vocabulary_is_not_used(start_module_server):
    server = start_module_server("--model", CHAT_MODEL, "--parallel", "1",
                                 "--draft-model", GEMMA_MODEL)
    status, _, answer = post(server.url + "/v1/chat/completions", {
        "model": CHAT_MODEL, "messages": STORY, "max_tokens": 8})
    assert status == 200, answer
    assert drafted_by_the_model(scrape(server.url)) == (0, 0)
    assert (f"draft model {GEMMA_MODEL} not used for {CHAT_MODEL}: its vocabulary has 262144 "
            "tokens, not 49152") in server.log()


def test_an_unknown_draft_model_stops_the_server_before_it_listens(start_module_server):
    server = start_module_server("--draft-model", "no-such-model", wait=False)
    assert server.process.wait(timeout=60) == 2
    assert "draft_model: Model not found: no-such-model" in server.log()
