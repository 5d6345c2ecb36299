"""The JSON body parser under every endpoint (tests/test_errors.py sends the same bodies to a
server): values every later step can use as they are, or a 400 saying what is wrong."""

from __future__ import annotations

from email.message import Message

import pytest

from offgrid.server.errors import BadRequest
from offgrid.server.http import MAX_JSON_DEPTH, Request, field_name, parse_json


def refusal(body: bytes) -> BadRequest:
    with pytest.raises(BadRequest) as refused:
        parse_json(body)
    assert refused.value.status == 400
    return refused.value


def nested(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


def test_ordinary_json_is_read_as_it_is():
    body = '{"model": "m", "n": 2, "t": 0.5, "ok": true, "none": null, "text": "snow ☃ 😀"}'
    assert parse_json(body.encode()) == {"model": "m", "n": 2, "t": 0.5, "ok": True,
                                         "none": None, "text": "snow ☃ 😀"}
    assert parse_json(b'"\\ud83d\\ude00"') == "😀", "an escaped surrogate pair is one character"
    assert parse_json(b"[1e308, -1e308, 5e-324]") == [1e308, -1e308, 5e-324]


@pytest.mark.parametrize("body", [b"NaN", b'{"t": NaN}', b'{"t": Infinity}', b"[-Infinity]",
                                  b'{"t": 1e999}', b"[-1e400]"])
def test_numbers_json_does_not_have_are_refused(body):
    assert "not valid JSON" in refusal(body).message


def test_an_integer_of_thousands_of_digits_is_refused():
    assert "not valid JSON" in refusal(b'{"n": ' + b"7" * 5000 + b"}").message


@pytest.mark.parametrize("body", [b"{bad json", b"", b"\xff\xfe", b'{"a": 1,}', b"{'a': 1}"])
def test_what_is_not_json_is_refused(body):
    assert "not valid JSON" in refusal(body).message


def test_nesting_is_refused_past_its_depth_naming_the_top_field():
    assert parse_json(nested(MAX_JSON_DEPTH)) is not None
    deep = refusal(nested(MAX_JSON_DEPTH + 1))
    assert (deep.code, deep.param) == ("invalid_value", "a")
    assert f"deeper than {MAX_JSON_DEPTH} levels" in deep.message
    assert "deeper than" in refusal(b"[" * 100_000 + b"]" * 100_000).message


@pytest.mark.parametrize("body, param", [
    (b'{"prompt": "a\\ud800"}', "prompt"),
    (b'{"messages": [{"role": "user", "content": "x\\udfff"}]}', "messages[0].content"),
    (b'{"input": ["fine", "\\ud800"]}', "input[1]"),
    (b'{"stop": ["\\udc00"]}', "stop[0]"),
    (b'{"logit_bias": {"\\ud800": 1}}', "logit_bias.\\ud800"),
])
def test_a_lone_surrogate_is_refused_naming_its_field(body, param):
    refused = refusal(body)
    assert (refused.code, refused.param) == ("invalid_value", param)
    assert "lone UTF-16 surrogate" in refused.message
    refused.message.encode("utf-8")  # the message itself can be sent


def test_field_names_are_written_as_openai_writes_them():
    assert field_name(("messages", 0, "content", 1, "text")) == "messages[0].content[1].text"
    assert field_name(("a",)) == "a" and field_name(()) is None


def request_with(body: bytes) -> Request:
    return Request(method="POST", path="/v1/x", query={}, headers=Message(), body=body,
                   connection=None)


@pytest.mark.parametrize("body, says", [
    (b"", "empty"), (b"null", "must be a JSON object"), (b"[1, 2]", "must be a JSON object"),
    (b'"text"', "must be a JSON object"), (b"7", "must be a JSON object"),
])
def test_a_request_body_must_be_an_object(body, says):
    with pytest.raises(BadRequest, match=says):
        request_with(body).json()
    assert request_with(b'{"a": [1]}').json() == {"a": [1]}
