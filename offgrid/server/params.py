"""Reading request fields: each is type- and range-checked, and every error names its parameter
the way OpenAI's API does (`"param": "temperature"`)."""

from __future__ import annotations

from ..config import parse_duration
from ..engine import grammar
from ..engine.errors import InvalidGrammar
from ..engine.sampling import SamplingParams
from . import toolcalls
from .errors import BadRequest

MAX_STOP_STRINGS = 4
MAX_CHOICES = 16
MAX_TOP_LOGPROBS = 20
CHAT_ROLES = {"system", "developer", "user", "assistant", "tool"}


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


def sampling(body: dict, *, n_vocab: int, grammar: str | None = None) -> SamplingParams:
    defaults = SamplingParams()
    return SamplingParams(
        logit_bias=logit_bias(body, n_vocab), grammar=grammar,
        temperature=number(body, "temperature", defaults.temperature, 0.0, 2.0),
        top_p=number(body, "top_p", defaults.top_p, 0.0, 1.0),
        top_k=integer(body, "top_k", defaults.top_k, 0),
        min_p=number(body, "min_p", defaults.min_p, 0.0, 1.0),
        seed=integer(body, "seed", None, -(2 ** 63), 2 ** 64 - 1),
        frequency_penalty=number(body, "frequency_penalty", 0.0, -2.0, 2.0),
        presence_penalty=number(body, "presence_penalty", 0.0, -2.0, 2.0),
        repeat_penalty=number(body, "repeat_penalty", defaults.repeat_penalty, 0.0, 2.0) or 1.0,
    )


def logit_bias(body: dict, n_vocab: int) -> tuple[tuple[int, float], ...]:
    """{"token id": bias from -100 to 100}; -100 bans a token, 100 all but forces it."""
    value = _get(body, "logit_bias")
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise _fail("logit_bias", "an object mapping token ids to numbers", value)
    biases = []
    for key, bias in value.items():
        if not (key.isascii() and key.isdigit()) or int(key) >= n_vocab:
            raise _fail("logit_bias", f"token ids from 0 to {n_vocab - 1} as keys", key)
        if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not -100 <= bias <= 100:
            raise _fail("logit_bias", "biases from -100 to 100", bias)
        biases.append((int(key), -float("inf") if bias == -100 else float(bias)))
    return tuple(biases)


def keep_alive(body: dict) -> float | None:
    """Seconds the model stays loaded once idle ("5m", 300, -1 for ever), as Ollama takes it."""
    value = _get(body, "keep_alive")
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError:
        raise _fail("keep_alive", 'seconds or a duration such as "5m"', value) from None


def choices(body: dict) -> int:
    return integer(body, "n", 1, 1, MAX_CHOICES)


def chat_logprobs(body: dict) -> int | None:
    """None unless `logprobs` is true; then how many alternatives (`top_logprobs`) to list."""
    top = integer(body, "top_logprobs", None, 0, MAX_TOP_LOGPROBS)
    if not boolean(body, "logprobs", False):
        if top:
            raise BadRequest("'top_logprobs' needs 'logprobs': true", code="invalid_value",
                             param="top_logprobs")
        return None
    return top or 0


def response_grammar(body: dict) -> str | None:
    """The grammar `response_format` asks for: None for text, else JSON of the given shape."""
    value = _get(body, "response_format")
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return grammar.json_object()
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(
                spec.get("schema", {}), dict):
            raise _fail("response_format", '{"type": "json_schema", "json_schema": {"name": ..., '
                                           '"schema": {...}}}', value)
        try:
            return grammar.json_schema(spec.get("schema", {}))
        except InvalidGrammar as error:
            raise BadRequest(f"The JSON schema in 'response_format' cannot be enforced: {error}",
                             code="invalid_value", param="response_format") from None
    raise _fail("response_format", 'type "text", "json_object" or "json_schema"', value)


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
    tool_names: dict[str, str] = {}  # tool call id -> function name, to label results
    return [_message(message, f"messages[{i}]", tool_names) for i, message in enumerate(messages)]


def _message(message, where: str, tool_names: dict[str, str]) -> tuple[str, str]:
    """A message as the (role, text) the chat template renders."""
    if not isinstance(message, dict):
        raise _fail(where, "an object with 'role' and 'content'", message)
    role = message.get("role")
    if role not in CHAT_ROLES:
        raise _fail(f"{where}.role", "one of " + ", ".join(sorted(CHAT_ROLES)), role)
    if role == "assistant" and message.get("tool_calls") is not None:
        calls = _tool_calls(message["tool_calls"], f"{where}.tool_calls")
        tool_names.update({c["id"]: c["function"]["name"] for c in calls})
        return "assistant", toolcalls.call_text(calls)
    content = _content(message.get("content"), f"{where}.content")
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str):
            raise _fail(f"{where}.tool_call_id", "the id of the call this answers", call_id)
        return "user", toolcalls.result_text(tool_names.get(call_id), content)
    return ("system" if role == "developer" else role), content


def _tool_calls(calls, where: str) -> list[dict]:
    expected = 'an array of {"id", "type": "function", "function": {"name", "arguments"}}'
    if not isinstance(calls, list) or not calls:
        raise _fail(where, expected, calls)
    for i, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(call.get("id"), str) or not all(
                isinstance(function.get(k), str) for k in ("name", "arguments")):
            raise _fail(f"{where}[{i}]", expected, call)
    return calls


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


def prompts(body: dict, n_vocab: int) -> list[str | list[int]]:
    """The completion prompts, as OpenAI takes them: a string, an array of strings, an array of
    token ids, or an array of such arrays."""
    value = _get(body, "prompt")
    if value is None:
        raise BadRequest("Missing required parameter: 'prompt'",
                         code="missing_required_parameter", param="prompt")
    if isinstance(value, str) or (isinstance(value, list) and value and all(
            _is_token(t) for t in value)):
        value = [value]
    if not isinstance(value, list) or not value or not all(
            isinstance(item, str) or _is_token_array(item) for item in value):
        raise _fail("prompt", "a string, an array of strings, an array of token ids, or an "
                              "array of those", value)
    if len(value) > MAX_CHOICES:
        raise _fail("prompt", f"at most {MAX_CHOICES} prompts", f"{len(value)} prompts")
    for item in value:
        if isinstance(item, list) and max(item) >= n_vocab:
            raise _fail("prompt", f"token ids below the model's vocabulary size {n_vocab}",
                        max(item))
    return value


def embedding_inputs(body: dict, limit: int, n_vocab: int) -> list[str | list[int]]:
    """Texts, or token arrays: a string, an array of strings, an array of token ids, or an
    array of such arrays."""
    value = _get(body, "input")
    if value is None:
        raise BadRequest("Missing required parameter: 'input'",
                         code="missing_required_parameter", param="input")
    if isinstance(value, str) or (isinstance(value, list) and value and all(
            _is_token(t) for t in value)):
        value = [value]
    if not isinstance(value, list) or not value or not all(
            (isinstance(item, str) and item) or _is_token_array(item) for item in value):
        raise _fail("input", "a non-empty string or array of token ids, or a non-empty array "
                             "of those", value)
    if len(value) > limit:
        raise BadRequest(f"Too many inputs: {len(value)}; at most {limit} per request",
                         code="invalid_value", param="input")
    for item in value:
        if isinstance(item, list) and max(item) >= n_vocab:
            raise _fail("input", f"token ids below the model's vocabulary size {n_vocab}",
                        max(item))
    return value


def _is_token(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_token_array(value) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_token(t) for t in value)


def choice(body: dict, name: str, options: tuple[str, ...]) -> str:
    value = _get(body, name)
    if value is None:
        return options[0]
    if value not in options:
        raise _fail(name, "one of " + ", ".join(options), value)
    return value
