"""Rate limits and quotas: requests per minute (counted in memory), tokens per day (counted in
the database, charged by each request's Meter once its generation has ended), and the pause
after failed logins."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

from ..store import usage
from ..store.db import Database
from .errors import TooManyRequests

MINUTE = 60.0
DAY = 24 * 3600
LOGIN_WINDOW = 15 * MINUTE  # failed logins are remembered this long


class SlidingWindow:
    """How many events each key had in the last `seconds`."""

    def __init__(self, seconds: float, clock=time.monotonic):
        self.seconds = seconds
        self._clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._next_sweep = clock() + seconds

    def count(self, key: str) -> int:
        with self._lock:
            return len(self._recent(key, self._clock()))

    def add(self, key: str) -> None:
        with self._lock:
            now = self._clock()
            self._recent(key, now).append(now)
            self._sweep()

    def take(self, limits: dict[str, int]) -> str | None:
        """Count one event for every key if each is under its limit; else count nothing and
        return the first key at its limit."""
        with self._lock:
            now = self._clock()
            for key, limit in limits.items():
                if len(self._recent(key, now)) >= limit:
                    return key
            for key in limits:
                self._recent(key, now).append(now)
            self._sweep()
            return None

    def reset_in(self, key: str) -> float:
        """Seconds until the oldest event of `key` leaves the window."""
        with self._lock:
            events = self._recent(key, self._clock())
            return events[0] + self.seconds - self._clock() if events else 0.0

    def clear(self, key: str) -> None:
        with self._lock:
            self._events.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.seconds:
            events.popleft()
        return events

    def _sweep(self) -> None:
        """Forget keys with no recent events, so that memory follows active callers only."""
        now = self._clock()
        if now >= self._next_sweep:
            self._next_sweep = now + self.seconds
            for key in [k for k, events in self._events.items() if not self._recent(k, now)]:
                del self._events[key]


@dataclass(frozen=True)
class Subject:
    """Something that limits apply to: a user, one of their keys, or an anonymous address."""
    name: str
    requests_per_minute: int  # 0: no limit
    tokens_per_day: int


class Limits:
    def __init__(self, db: Database, clock=time.time):
        self._db = db
        self._clock = clock
        self.requests = SlidingWindow(MINUTE)

    def admit(self, subjects: list[Subject], counts_tokens: bool) -> dict[str, str]:
        """Count a request against the subjects' limits: 429 if one is used up, else the
        `x-ratelimit-*` headers of the tightest ones."""
        headers = self._token_headers(subjects) if counts_tokens else {}
        limited = {s.name: s.requests_per_minute for s in subjects if s.requests_per_minute}
        full = self.requests.take(limited)
        if full is not None:
            wait = self.requests.reset_in(full)
            headers.update(_headers("requests", limited[full], 0, wait))
            raise TooManyRequests(f"Rate limit reached: {limited[full]} requests per minute; "
                                  f"retry in {math.ceil(wait)}s", retry_after=math.ceil(wait),
                                  headers=headers)
        if limited:
            headers.update(min((_headers("requests", limit, limit - self.requests.count(name),
                                         self.requests.reset_in(name))
                                for name, limit in limited.items()),
                               key=lambda h: int(h["x-ratelimit-remaining-requests"])))
        return headers

    def _token_headers(self, subjects: list[Subject]) -> dict[str, str]:
        tightest = None
        for subject in subjects:
            if subject.tokens_per_day:
                left = subject.tokens_per_day - usage.tokens_today(self._db, subject.name,
                                                                   self._clock())
                if tightest is None or left < tightest[1]:
                    tightest = (subject.tokens_per_day, left)
        if tightest is None:
            return {}
        limit, left = tightest
        wait = DAY - self._clock() % DAY  # the count starts again at midnight UTC
        headers = _headers("tokens", limit, max(0, left), wait)
        if left <= 0:
            raise TooManyRequests(f"Token quota used up: {limit} tokens per day; it resets at "
                                  "midnight UTC", retry_after=math.ceil(wait),
                                  code="token_quota_exceeded", headers=headers)
        return headers

    def charge(self, subjects: list[Subject], tokens: int) -> None:
        if tokens > 0:
            usage.charge(self._db, [s.name for s in subjects], tokens, self._clock())


class Meter:
    """What one request used, in tokens, charged to its caller's quotas as it is counted (the
    engine counts a request's tokens once it has ended, however it ended)."""

    def __init__(self, limits: Limits | None = None, subjects: tuple[Subject, ...] = ()):
        self._limits = limits
        self._subjects = list(subjects)
        self.tokens = 0

    def add(self, tokens: int) -> None:
        self.tokens += tokens
        if self._limits is not None and self._subjects:
            self._limits.charge(self._subjects, tokens)


def _headers(kind: str, limit: int, remaining: int, reset_seconds: float) -> dict[str, str]:
    return {f"x-ratelimit-limit-{kind}": str(limit),
            f"x-ratelimit-remaining-{kind}": str(remaining),
            f"x-ratelimit-reset-{kind}": f"{math.ceil(reset_seconds)}s"}


class LoginThrottle:
    """After `attempts` failed logins for one username, or from one address, within
    LOGIN_WINDOW, further attempts are refused until the oldest failure is forgotten."""

    def __init__(self, attempts: int, clock=time.monotonic):
        self.attempts = attempts
        self._failures = SlidingWindow(LOGIN_WINDOW, clock)

    def check(self, username: str, address: str) -> None:
        for key in _login_keys(username, address):
            if self._failures.count(key) >= self.attempts:
                wait = math.ceil(self._failures.reset_in(key))
                raise TooManyRequests(f"Too many failed logins; try again in {wait}s",
                                      retry_after=wait, code="too_many_login_attempts")

    def failed(self, username: str, address: str) -> None:
        for key in _login_keys(username, address):
            self._failures.add(key)

    def succeeded(self, username: str) -> None:
        # The address keeps its failures: one good account must not reset guesses at others.
        self._failures.clear(_login_keys(username, "")[0])


def _login_keys(username: str, address: str) -> tuple[str, str]:
    # No username is longer than 64 characters; a longer one must not cost memory.
    return f"user:{str(username)[:64].lower()}", f"address:{address}"
