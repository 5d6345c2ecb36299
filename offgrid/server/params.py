"""Reading request fields: each is type- and range-checked, and every error names its parameter
the way OpenAI's API does (`"param": "temperature"`)."""

from __future__ import annotations

from ..engine.sampling import SamplingParams
from .errors import BadRequest

MAX_STOP_STRINGS = 4
CHAT_ROLES = {"system", "developer", "user", "assistant"}


def _get(body: dict, name: str):
    return body.get(name)  # JSON null means "not given", as OpenAI treats it


def _fail(name: str, expected: str, value) -> BadRequest:
    return BadRequest(f"Invalid value for '{name}': expected {expected}, got {_describe(value)}",
                      code="invalid_value", param=name)


def _describe(value) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def number(body: dict, name: str, default: float, low: float, high: float) -> float:
    value = _get(body, name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise _fail(name, f"a number from {low} to {high}", value)
    return float(value)


def integer(body: dict, name: str, default: int | None, low: int, high: int | None = None
            ) -> int | None:
    value = _get(body, name)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise _fail(name, f"an integer {bound}", value)
    return value


def boolean(body: dict, name: str, default: bool) -> bool:
    value = _get(body, name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _fail(name, "true or false", value)
    return value


def string(body: dict, name: str) -> str:
    """A required, non-empty string."""
    value = _get(body, name)
    if value is None:
        raise BadRequest(f"Missing required parameter: '{name}'", code="missing_required_parameter",
                         param=name)
    if not isinstance(value, str) or not value:
        raise _fail(name, "a non-empty string", value)
    return value


def reject_unsupported(body: dict, names: dict[str, object]) -> None:
    """OpenAI parameters OffGrid does not honour: refused unless given as their no-op value."""
    for name, no_op in names.items():
        if name in body and body[name] is not None and body[name] != no_op:
            raise BadRequest(f"The parameter '{name}' is not supported by this server",
                             code="unsupported_parameter", param=name)


def stop_strings(body: dict) -> list[str]:
    value = _get(body, "stop")
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or len(value) > MAX_STOP_STRINGS or not all(
            isinstance(s, str) for s in value):
        raise _fail("stop", f"a string or a list of up to {MAX_STOP_STRINGS} strings", value)
    return [s for s in value if s]


def max_tokens(body: dict) -> int | None:
    """`max_completion_tokens` (the current name) or `max_tokens` (the older one)."""
    newer = integer(body, "max_completion_tokens", None, 1)
    return newer if newer is not None else integer(body, "max_tokens", None, 1)


def sampling(body: dict) -> SamplingParams:
    defaults = SamplingParams()
    return SamplingParams(
        temperature=number(body, "temperature", defaults.temperature, 0.0, 2.0),
        top_p=number(body, "top_p", defaults.top_p, 0.0, 1.0),
        top_k=integer(body, "top_k", defaults.top_k, 0),
        min_p=number(body, "min_p", defaults.min_p, 0.0, 1.0),
        seed=integer(body, "seed", None, -(2 ** 63), 2 ** 64 - 1),
        frequency_penalty=number(body, "frequency_penalty", 0.0, -2.0, 2.0),
        presence_penalty=number(body, "presence_penalty", 0.0, -2.0, 2.0),
        repeat_penalty=number(body, "repeat_penalty", defaults.repeat_penalty, 0.0, 2.0) or 1.0,
    )


def streaming(body: dict) -> tuple[bool, bool]:
    """(stream, include_usage)."""
    stream = boolean(body, "stream", False)
    options = _get(body, "stream_options")
    if options is None:
        return stream, False
    if not stream:
        raise BadRequest("'stream_options' is only allowed when 'stream' is true",
                         code="invalid_value", param="stream_options")
    if not isinstance(options, dict):
        raise _fail("stream_options", "an object", options)
    return stream, boolean(options, "include_usage", False)


def chat_messages(body: dict) -> list[tuple[str, str]]:
    messages = _get(body, "messages")
    if messages is None:
        raise BadRequest("Missing required parameter: 'messages'",
                         code="missing_required_parameter", param="messages")
    if not isinstance(messages, list) or not messages:
        raise _fail("messages", "a non-empty array of messages", messages)
    return [_message(message, f"messages[{i}]") for i, message in enumerate(messages)]


def _message(message, where: str) -> tuple[str, str]:
    if not isinstance(message, dict):
        raise _fail(where, "an object with 'role' and 'content'", message)
    role = message.get("role")
    if role not in CHAT_ROLES:
        raise _fail(f"{where}.role", "one of " + ", ".join(sorted(CHAT_ROLES)), role)
    if "tool_calls" in message or "function_call" in message:
        raise BadRequest("Tool calls in messages are not supported by this server",
                         code="unsupported_parameter", param=f"{where}.tool_calls")
    content = _content(message.get("content"), f"{where}.content")
    return ("system" if role == "developer" else role), content


def _content(content, where: str) -> str:
    """A string, or an array of text parts joined together."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(
                    part.get("text"), str):
                raise _fail(f"{where}[{i}]", "a text part {\"type\": \"text\", \"text\": ...}",
                            part)
            texts.append(part["text"])
        return "".join(texts)
    raise _fail(where, "a string or an array of text parts", content)


def prompt(body: dict) -> str:
    """The completion prompt: a string, or an array holding exactly one string."""
    value = _get(body, "prompt")
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value is None:
        raise BadRequest("Missing required parameter: 'prompt'",
                         code="missing_required_parameter", param="prompt")
    if not isinstance(value, str):
        raise _fail("prompt", "a string", value)
    return value


def embedding_inputs(body: dict, limit: int) -> list[str]:
    value = _get(body, "input")
    if value is None:
        raise BadRequest("Missing required parameter: 'input'",
                         code="missing_required_parameter", param="input")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(
            isinstance(item, str) and item for item in items):
        raise _fail("input", "a non-empty string or a non-empty array of non-empty strings", value)
    if len(items) > limit:
        raise BadRequest(f"Too many inputs: {len(items)}; at most {limit} per request",
                         code="invalid_value", param="input")
    return items


def choice(body: dict, name: str, options: tuple[str, ...]) -> str:
    value = _get(body, name)
    if value is None:
        return options[0]
    if value not in options:
        raise _fail(name, "one of " + ", ".join(options), value)
    return value
