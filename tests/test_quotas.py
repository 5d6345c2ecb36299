"""Requests per minute and tokens per day: used up, refused with 429 and the headers that say
when to retry, and recovered."""

import time

import pytest

from support.http import assert_error, chat_body, hang_up, open_stream, stream
from support.metrics import scrape, total
from support.models import CHAT_MODEL
from support.multiuser import bearer, offgrid_users, start_multi_user
from support.waiting import wait_until

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def site(start_module_server):
    site = start_multi_user(start_module_server, env={"OFFGRID_USER_REQUESTS_PER_MINUTE": "3",
                                               "OFFGRID_USER_TOKENS_PER_DAY": "0"})
    yield site
    site.server.stop()


def test_requests_per_minute_run_out_and_an_admin_lifts_the_limit(site):
    user, token = site.account("user")
    other, other_token = site.account("user")
    seen = [site.call("GET", "/v1/models", token=token)[1] for _ in range(3)]
    assert [h["x-ratelimit-remaining-requests"] for h in seen] == ["2", "1", "0"]
    assert {h["x-ratelimit-limit-requests"] for h in seen} == {"3"}
    assert all(1 <= int(h["x-ratelimit-reset-requests"].rstrip("s")) <= 60 for h in seen)
    status, headers, error = site.call("GET", "/v1/models", token=token)
    assert_error(status, error, 429, "rate_limit_exceeded")
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert site.call("GET", "/v1/models", token=other_token)[0] == 200  # others go on
    result = offgrid_users(site.server.home, "quota", user["username"],
                           "--requests-per-minute", "0")
    assert result.returncode == 0 and "no limit" in result.stdout
    status, headers, _ = site.call("GET", "/v1/models", token=token)
    assert status == 200 and "x-ratelimit-limit-requests" not in headers


def test_tokens_per_day_run_out_after_the_generation_that_crosses_them(site):
    user, token = site.account("user")
    offgrid_users(site.server.home, "quota", user["username"], "--tokens-per-day", "20",
                  "--requests-per-minute", "0")
    # A prompt over 20 tokens crosses the quota whatever the (sampled) answer's length.
    question = "Tell me, in a few words, what the weather is like in Paris on a spring afternoon."
    status, headers, answer = site.call("POST", CHAT, chat_body(question, max_tokens=20),
                                        token=token)
    assert status == 200 and answer["usage"]["prompt_tokens"] > 20
    assert (headers["x-ratelimit-limit-tokens"], headers["x-ratelimit-remaining-tokens"]) == (
        "20", "20")
    me = site.call("GET", "/v1/users/me", token=token)[2]
    assert me["tokens_used_today"] == answer["usage"]["total_tokens"]
    status, headers, error = site.call("POST", CHAT, chat_body("Hi", max_tokens=20), token=token)
    assert_error(status, error, 429, "token_quota_exceeded")
    until_midnight = 86400 - time.time() % 86400
    assert abs(int(headers["Retry-After"]) - until_midnight) < 60
    assert headers["x-ratelimit-remaining-tokens"] == "0"
    offgrid_users(site.server.home, "quota", user["username"], "--tokens-per-day", "default")
    assert site.call("POST", CHAT, chat_body("Hi", max_tokens=2), token=token)[0] == 200


def test_streamed_and_embedding_tokens_are_charged_too(site):
    user, token = site.account("user")
    offgrid_users(site.server.home, "quota", user["username"], "--requests-per-minute", "0")
    key = site.create_key(user["id"], token=token)
    events = stream(site.url + CHAT, {**chat_body("Hi", max_tokens=8),
                                      "stream_options": {"include_usage": True}},
                    headers={"Authorization": f"Bearer {key['key']}"})
    streamed = events[-2]["usage"]["total_tokens"]
    status, _, embedded = site.call("POST", "/v1/embeddings",
                                    {"model": "all-MiniLM-L6-v2-q8_0", "input": "one two"},
                                    token=token)
    assert status == 200
    me = site.call("GET", "/v1/users/me", token=token)[2]
    assert me["tokens_used_today"] == streamed + embedded["usage"]["total_tokens"]


def test_a_keys_own_limit_applies_on_top_of_its_users(site):
    user, token = site.account("user")
    offgrid_users(site.server.home, "quota", user["username"], "--requests-per-minute", "0")
    tight = site.create_key(user["id"], token=token, requests_per_minute=1)
    loose = site.create_key(user["id"], token=token)
    assert site.call("GET", "/v1/models", token=tight["key"])[0] == 200
    status, _, error = site.call("GET", "/v1/models", token=tight["key"])
    assert_error(status, error, 429, "rate_limit_exceeded")
    assert site.call("GET", "/v1/models", token=loose["key"])[0] == 200


def test_anonymous_guests_are_limited_per_address(start_server):
    open_site = start_multi_user(start_server, env={"OFFGRID_GUEST_ACCESS": "true",
                                                    "OFFGRID_GUEST_REQUESTS_PER_MINUTE": "2"})
    assert [open_site.call("GET", "/v1/models")[0] for _ in range(2)] == [200, 200]
    status, _, error = open_site.call("GET", "/v1/models")
    assert_error(status, error, 429, "rate_limit_exceeded")
    assert open_site.call("GET", "/v1/models", token=open_site.admin_token)[0] == 200
    open_site.server.stop()


def _generated_so_far(site) -> float:
    """Prompt and generated tokens of every generation the server ended, by /metrics."""
    return total(scrape(site.url, headers=bearer(site.admin_token)),
                 "offgrid_prompt_tokens_total", "offgrid_generated_tokens_total")


def test_a_stream_cut_short_is_charged_every_token_it_generated(site):
    user, token = site.account("user")
    offgrid_users(site.server.home, "quota", user["username"], "--tokens-per-day", "20",
                  "--requests-per-minute", "0")
    before = _generated_so_far(site)
    connection, response = open_stream(site.url, "/v1/completions", {
        "model": CHAT_MODEL, "prompt": "1, 2, 3, 4,", "temperature": 0, "max_tokens": 400},
        headers=bearer(token))
    events = 0
    while events < 20:  # well past the quota, and far from the end
        events += response.readline().startswith(b"data: ")
    hang_up(connection)

    def charged() -> int:
        return site.call("GET", "/v1/users/me", token=token)[2]["tokens_used_today"]

    assert wait_until(lambda: charged() > 0 and charged() == _generated_so_far(site) - before)
    assert 20 < charged() < 200, "charged for what it generated before the hang-up, no more"
    status, _, error = site.call("POST", CHAT, chat_body("Hi", max_tokens=5), token=token)
    assert_error(status, error, 429, "token_quota_exceeded")
