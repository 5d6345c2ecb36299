"""Typed readers for the fields of a JSON request body: each is type- and range-checked, and
every error names its parameter the way OpenAI's API does (`"param": "temperature"`). JSON null
means "not given", as OpenAI treats it. Only the faces' request parsers call these."""

from __future__ import annotations

from ..config import parse_duration
from .errors import BadRequest


def invalid(name: str, expected: str, value) -> BadRequest:
    return BadRequest(f"Invalid value for '{name}': expected {expected}, got {_describe(value)}",
                      code="invalid_value", param=name)


def missing(name: str) -> BadRequest:
    return BadRequest(f"Missing required parameter: '{name}'", code="missing_required_parameter",
                      param=name)


def _describe(value) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def number(body: dict, name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise invalid(name, f"a number from {low} to {high}", value)
    return float(value)


def integer(body: dict, name: str, default: int | None, low: int, high: int | None = None
            ) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise invalid(name, f"an integer {bound}", value)
    return value


def boolean(body: dict, name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid(name, "true or false", value)
    return value


def string(body: dict, name: str) -> str:
    """A required, non-empty string."""
    value = body.get(name)
    if value is None:
        raise missing(name)
    if not isinstance(value, str) or not value:
        raise invalid(name, "a non-empty string", value)
    return value


def optional_string(body: dict, name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid(name, "a string", value)
    return value


def choice(body: dict, name: str, options: tuple[str, ...]) -> str:
    """One of `options`; the first when not given."""
    value = body.get(name)
    if value is None:
        return options[0]
    if value not in options:
        raise invalid(name, "one of " + ", ".join(options), value)
    return value


def obj(body: dict, name: str) -> dict:
    """An object, or {} when not given."""
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(name, "an object", value)
    return value


def reject_unsupported(body: dict, names: dict[str, object]) -> None:
    """Parameters this server does not honour: refused unless given as their no-op value."""
    for name, no_op in names.items():
        if name in body and body[name] is not None and body[name] != no_op:
            raise BadRequest(f"The parameter '{name}' is not supported by this server",
                             code="unsupported_parameter", param=name)


def keep_alive(body: dict) -> float | None:
    """Seconds the model stays loaded once idle ("5m", 300, -1 for ever), as Ollama takes it."""
    value = body.get("keep_alive")
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError:
        raise invalid("keep_alive", 'seconds or a duration such as "5m"', value) from None


def is_token(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_token_array(value) -> bool:
    return isinstance(value, list) and bool(value) and all(is_token(t) for t in value)


def stop_strings(body: dict, name: str, most: int, param: str | None = None
                 ) -> tuple[str, ...]:
    """Strings that end an answer: a string or a list of up to `most`, empty ones left out.
    `param` names the field in errors (`name` unless given: "options.stop" for Ollama)."""
    value = body.get(name)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or len(value) > most or not all(
            isinstance(s, str) for s in value):
        raise invalid(param or name, f"a string or a list of up to {most} strings", value)
    return tuple(s for s in value if s)
