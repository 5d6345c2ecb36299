"""The one way tests wait: for a condition, polled, never for a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 30, *, every: float = 0.05,
               ignoring: tuple[type[BaseException], ...] = (), message: str = "") -> T:
    """Poll `condition` until it returns something true, and return that. Exceptions of the
    `ignoring` types count as "not yet" (a server not listening yet, say). After `timeout`
    seconds fails the test with `message` and the condition's last answer.

    Timeouts are generous on purpose: a wait that comes true returns at once, and a shared
    machine may be slow."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            last = condition()
        except ignoring as error:
            last = error
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message or 'the condition'} did not come true in "
                                 f"{timeout} s; last: {last!r}")
        time.sleep(every)
