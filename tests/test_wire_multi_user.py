"""The Responses and Messages APIs on a multi-user server: the SDKs' own ways of sending a key
(`Authorization: Bearer` for openai, `x-api-key` for anthropic), Anthropic's error shape for a
missing or wrong key, and stored responses that belong to their caller."""

import anthropic
import openai
import pytest

from support.models import CHAT_MODEL
from support.multiuser import NO_LIMITS, start_multi_user

HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def site(start_module_server):
    return start_multi_user(start_module_server, env=NO_LIMITS)


@pytest.fixture(scope="module")
def keys(site) -> tuple[str, str]:
    """The API keys of two users, A and B."""
    return tuple(site.create_key(site.create_user()["id"])["key"] for _ in range(2))


def _openai(site, key):
    return openai.OpenAI(base_url=site.url + "/v1", api_key=key, max_retries=0)


def test_a_stored_response_is_its_owners_alone(site, keys):
    alice, bob = (_openai(site, key) for key in keys)
    response = alice.responses.create(model=CHAT_MODEL, input="Hi", max_output_tokens=3)
    assert alice.responses.retrieve(response.id).id == response.id
    with pytest.raises(openai.NotFoundError):
        bob.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        bob.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError) as refused:
        bob.responses.create(model=CHAT_MODEL, input="And?", previous_response_id=response.id,
                             max_output_tokens=3)
    assert refused.value.body["code"] == "previous_response_not_found"
    continued = alice.responses.create(model=CHAT_MODEL, input="And?", max_output_tokens=3,
                                       previous_response_id=response.id)
    assert continued.previous_response_id == response.id
    alice.responses.delete(response.id)


def test_the_anthropic_package_sends_its_key_as_x_api_key(site, keys):
    client = anthropic.Anthropic(base_url=site.url, api_key=keys[0], max_retries=0)
    message = client.messages.create(model=CHAT_MODEL, max_tokens=3, messages=HI)
    assert message.usage.output_tokens > 0
    assert client.messages.count_tokens(model=CHAT_MODEL, messages=HI).input_tokens > 0


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "og_" + "x" * 40}, {"x-api-key": "nope"}])
def test_without_a_valid_key_anthropic_clients_get_anthropics_401(site, headers):
    status, _, body = site.call("POST", "/v1/messages", {
        "model": CHAT_MODEL, "max_tokens": 3, "messages": HI}, headers=headers)
    assert status == 401 and body["type"] == "error", body
    assert body["error"]["type"] == "authentication_error" and body["error"]["message"]
