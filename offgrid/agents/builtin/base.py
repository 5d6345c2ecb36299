"""What every built-in tool shares: arguments read as the untrusted model output they are (the
grammar should have shaped them, but nothing here relies on it), a refusal that becomes an
error result the model can act on, and the time a call may take."""

from __future__ import annotations

import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..tools import Tool, ToolContext, ToolResult

_WATCH_EVERY = 0.05  # seconds between looks at a call's cancel flag


class Refused(Exception):
    """The call cannot be done as asked; the message tells the model why and what to do."""


class BuiltinTool(Tool):
    def call(self, arguments: dict, context: ToolContext) -> ToolResult:
        try:
            if not isinstance(arguments, dict):
                raise Refused("The arguments must be a JSON object")
            unknown = sorted(set(arguments) - set(self.parameters["properties"]))
            if unknown:
                raise Refused(f"{self.name} takes no argument {unknown[0]!r}; it takes: "
                              + ", ".join(self.parameters["properties"]))
            return self.run(arguments, context)
        except Refused as refusal:
            return ToolResult(str(refusal), is_error=True)

    @abstractmethod
    def run(self, arguments: dict, context: ToolContext) -> ToolResult:
        """The call, with `arguments` a dict; raises Refused for what the model must fix."""


def string(arguments: dict, name: str, max_chars: int, default: str | None = None) -> str:
    """A string argument, present unless it has a default, of at most `max_chars`."""
    value = arguments.get(name, default)
    if value is None:
        raise Refused(f"The argument {name!r} is missing")
    if not isinstance(value, str):
        raise Refused(f"The argument {name!r} must be a string")
    if len(value) > max_chars:
        raise Refused(f"The argument {name!r} is {len(value)} characters long; the most is "
                      f"{max_chars}")
    return value


def integer(arguments: dict, name: str, low: int, high: int, default: int) -> int:
    value = arguments.get(name, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise Refused(f"The argument {name!r} must be a whole number from {low} to {high}")
    return value


def seconds_left(tool: Tool, context: ToolContext) -> float:
    """How long the call may still take: the tool's own limit, or less where the run's deadline
    comes first."""
    return max(0.0, min(tool.timeout_s, context.deadline - time.monotonic()))


class Watch:
    """Why a call was stopped from outside, if it was."""

    def __init__(self):
        self.reason: str | None = None  # "cancelled" or "timed out"


@contextmanager
def stopped_when_due(context: ToolContext, seconds: float, stop: Callable[[], None]
                     ) -> Iterator[Watch]:
    """Calls `stop()` from another thread when the run is cancelled or `seconds` have passed,
    whichever comes first, unless the body has ended by then; the Watch says which it was."""
    watch, ended = Watch(), threading.Event()
    due = time.monotonic() + seconds

    def watcher() -> None:
        while not ended.wait(_WATCH_EVERY):
            if context.cancelled.is_set() or time.monotonic() >= due:
                watch.reason = "cancelled" if context.cancelled.is_set() else "timed out"
                stop()
                return

    thread = threading.Thread(target=watcher, name="tool-watch", daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        ended.set()
        thread.join()
