"""Rate limits and quotas: requests per minute, tokens per day (counted in the database, charged
by each request's Meter once its generation has ended), and the pauses after failed logins.

One server counts requests and failed logins in memory; servers that share a database
(PostgreSQL) count them there, so that spreading requests over them never multiplies a limit."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..store import limits as shared
from ..store import usage
from ..store.db import Connection, Database
from .errors import TooManyRequests

MINUTE = 60.0
DAY = 24 * 3600
LOGIN_WINDOW = 15 * MINUTE  # the longest login pause, and how long failures outlast theirs
ADDRESS_ATTEMPTS = 4  # times the attempts per username one address may fail, over all usernames


class _MemoryEvents:
    """Each key's recent event times, in this process: one server's own counts."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    @contextmanager
    def transaction(self) -> Iterator[_MemoryEvents]:
        with self._lock:
            yield self

    def recent(self, key: str, now: float) -> deque[float]:
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.seconds:
            events.popleft()
        return events

    def add(self, key: str, now: float) -> None:
        self.recent(key, now).append(now)

    def sweep(self, now: float) -> None:
        """Forget keys with no recent events, so that memory follows active callers only."""
        if now >= self._next_sweep:
            self._next_sweep = now + self.seconds
            for key in [k for k in self._events if not self.recent(k, now)]:
                del self._events[key]


class _SharedEvents:
    """The same, in the database every server shares (store/limits.py)."""

    def __init__(self, db: Database, seconds: float):
        self.seconds = seconds
        self._db = db

    @contextmanager
    def transaction(self) -> Iterator[_SharedEventsIn]:
        with self._db.write() as connection:
            yield _SharedEventsIn(connection, self.seconds)


@dataclass
class _SharedEventsIn:
    connection: Connection
    seconds: float

    def recent(self, key: str, now: float) -> list[float]:
        return shared.recent_requests(self.connection, key, now - self.seconds)

    def add(self, key: str, now: float) -> None:
        shared.add_request(self.connection, key, now)

    def sweep(self, now: float) -> None:
        shared.forget_requests(self.connection, now - self.seconds)


class SlidingWindow:
    """How many events each key had in the last `seconds`: counted in this process, or, given
    the `db` several servers share, there (then `clock` must be the wall clock every server
    shares, as it is by default)."""

    def __init__(self, seconds: float, clock=None, db: Database | None = None):
        self.seconds = seconds
        self._clock = clock or (time.time if db is not None else time.monotonic)
        self._events = (_SharedEvents(db, seconds) if db is not None
                        else _MemoryEvents(seconds))

    def take(self, limits: dict[str, int]) -> Taken:
        """Count one event for every key if each is under its limit, else count nothing; and
        what each key's window then holds. One step, which on a shared database is one write
        transaction: every admitted request takes the servers' write lock once."""
        with self._events.transaction() as events:
            now = self._clock()
            recent = {key: events.recent(key, now) for key in limits}
            full = next((key for key, limit in limits.items() if len(recent[key]) >= limit), None)
            window = {key: (len(times) + (full is None),
                            (times[0] if times else now) + self.seconds - now)
                      for key, times in recent.items()}
            if full is None:
                for key in limits:
                    events.add(key, now)
                events.sweep(now)
            return Taken(full, window)


@dataclass(frozen=True)
class Taken:
    """What SlidingWindow.take found."""
    full: str | None  # the first key at its limit (nothing was counted); None: counted for all
    window: dict[str, tuple[int, float]]  # each key's events, and seconds until the oldest ages


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
        self.requests = SlidingWindow(MINUTE, db=db if db.shared else None)

    def admit(self, subjects: list[Subject], counts_tokens: bool) -> dict[str, str]:
        """Count a request against the subjects' limits: 429 if one is used up, else the
        `x-ratelimit-*` headers of the tightest ones."""
        headers = self._token_headers(subjects) if counts_tokens else {}
        limited = {s.name: s.requests_per_minute for s in subjects if s.requests_per_minute}
        if not limited:
            return headers  # nothing to count: no write to the counters
        taken = self.requests.take(limited)
        if taken.full is not None:
            limit, (_, wait) = limited[taken.full], taken.window[taken.full]
            headers.update(_headers("requests", limit, 0, wait))
            raise TooManyRequests(f"Rate limit reached: {limit} requests per minute; "
                                  f"retry in {math.ceil(wait)}s", retry_after=math.ceil(wait),
                                  headers=headers)
        headers.update(min((_headers("requests", limit, limit - taken.window[name][0],
                                     taken.window[name][1])
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


@dataclass
class _Failures:
    """The failed logins of one key: a (username, address) pair, or an address."""
    limit: int
    count: int = 0
    last: float = 0.0  # when the latest was counted

    def free_at(self) -> float:
        """When the key may try again: at once below its limit, then after a pause that doubles
        with each failure past it (1 s, 2 s, 4 s, ...), LOGIN_WINDOW at most."""
        if self.count < self.limit:
            return self.last
        return self.last + min(LOGIN_WINDOW, 2.0 ** min(self.count - self.limit, 16))


class _MemoryFailures:
    """Failed logins by key, in this process."""

    def __init__(self):
        self._failures: dict[tuple, _Failures] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    @contextmanager
    def transaction(self) -> Iterator[_MemoryFailures]:
        with self._lock:
            yield self

    def get(self, key: tuple) -> _Failures | None:
        return self._failures.get(key)

    def put(self, key: tuple, record: _Failures) -> None:
        self._failures[key] = record

    def pop(self, key: tuple) -> None:
        self._failures.pop(key, None)

    def sweep(self, now: float) -> None:
        """Forget keys whose failures have run out, so that memory follows active guessers."""
        if now >= self._next_sweep:
            self._next_sweep = now + LOGIN_WINDOW
            for key in [k for k, r in self._failures.items() if now >= r.free_at() + LOGIN_WINDOW]:
                del self._failures[key]


class _SharedFailures:
    """The same, in the database every server shares (store/limits.py)."""

    def __init__(self, db: Database):
        self._db = db

    @contextmanager
    def transaction(self) -> Iterator[_SharedFailuresIn]:
        with self._db.write() as connection:
            yield _SharedFailuresIn(connection)


@dataclass
class _SharedFailuresIn:
    connection: Connection

    def get(self, key: tuple) -> _Failures | None:
        found = shared.login_failures(self.connection, _text(key))
        return _Failures(*found) if found else None

    def put(self, key: tuple, record: _Failures) -> None:
        shared.set_login_failures(self.connection, _text(key), record.limit, record.count,
                                  record.last, record.free_at() + LOGIN_WINDOW)

    def pop(self, key: tuple) -> None:
        shared.forget_login_failures(self.connection, key=_text(key))

    def sweep(self, now: float) -> None:
        shared.forget_login_failures(self.connection, before=now)


def _text(key: tuple) -> str:
    return "\x1f".join(key)  # a character no username or address holds


class LoginThrottle:
    """Failed logins, counted per username at each address and per address over all usernames
    (ADDRESS_ATTEMPTS times as many). Past `attempts`, each further try waits out a growing
    pause; guesses from elsewhere never pause a username at its owner's address. A key's
    failures are forgotten LOGIN_WINDOW after its pause ends, or on a successful login.

    An attempt is counted as failed when it starts, before the slow password check, so that
    parallel guesses see each other and no more than the limit get through. Given the `db`
    several servers share, the failures are counted there, so that guesses spread over the
    servers are counted once (then `clock` must be the wall clock, as it is by default)."""

    def __init__(self, attempts: int, clock=None, db: Database | None = None):
        self.attempts = attempts
        self._clock = clock or (time.time if db is not None else time.monotonic)
        self._failures = _SharedFailures(db) if db is not None else _MemoryFailures()

    def reserve(self, username: str, address: str) -> None:
        """Count an attempt as failed; 429 with the real wait if its username at its address,
        or its address, is pausing."""
        with self._failures.transaction() as failures:
            now = self._clock()
            records = {key: self._record(failures, key, limit, now)
                       for key, limit in self._limits(username, address).items()}
            free_at = max(record.free_at() for record in records.values())
            if free_at > now:
                wait = math.ceil(free_at - now)
                raise TooManyRequests(f"Too many failed logins; try again in {wait}s",
                                      retry_after=wait, code="too_many_login_attempts")
            for key, record in records.items():
                record.count += 1
                record.last = now
                failures.put(key, record)
            failures.sweep(now)

    def failed(self, username: str, address: str) -> None:
        """The attempt has failed: its pause runs from now, when it is answered."""
        with self._failures.transaction() as failures:
            now = self._clock()
            for key in self._limits(username, address):
                record = failures.get(key)
                if record is not None:
                    record.last = now
                    failures.put(key, record)

    def succeeded(self, username: str, address: str) -> None:
        """Forget the username's failures at this address, and take the attempt back from the
        address's; its other failures stay: one good account must not reset guesses at others."""
        pair, at_address = self._limits(username, address)
        with self._failures.transaction() as failures:
            failures.pop(pair)
            record = failures.get(at_address)
            if record is not None:
                record.count = max(0, record.count - 1)
                failures.put(at_address, record)

    def _limits(self, username: str, address: str) -> dict[tuple, int]:
        # No username is longer than 64 characters; a longer one must not cost memory.
        return {("user", str(username)[:64].lower(), address): self.attempts,
                ("address", address): self.attempts * ADDRESS_ATTEMPTS}

    def _record(self, failures, key: tuple, limit: int, now: float) -> _Failures:
        record = failures.get(key)
        if record is None or now >= record.free_at() + LOGIN_WINDOW:
            record = _Failures(limit)
            failures.put(key, record)
        return record
