"""The rate-limit counters under the end-to-end quota tests (tests/test_quotas.py), with a clock
the test moves: the sliding minute window, the daily token count, and the login throttle. The
window and the throttle are checked both ways they count: in memory (one server) and in the
PostgreSQL database servers share."""

import pytest

from offgrid.server.errors import TooManyRequests
from offgrid.server.limits import Limits, LoginThrottle, SlidingWindow, Subject
from offgrid.store.db import Database
from offgrid.store.postgres import PostgresDatabase


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "shared"])
def counted_in(request):
    """Where the counters count: None (in memory), or a shared PostgreSQL database."""
    if request.param == "memory":
        yield None
    else:
        db = PostgresDatabase(request.getfixturevalue("database_url"))
        yield db
        db.close()


def test_a_full_minute_window_frees_up_as_its_requests_age(counted_in):
    clock = Clock()
    window = SlidingWindow(60, clock, db=counted_in)
    assert window.take({"user:1": 2}).window == {"user:1": (1, 60)}
    clock.now += 30
    assert window.take({"user:1": 2}).window == {"user:1": (2, 30)}, "the oldest ages first"
    refused = window.take({"user:1": 2, "key:1": 5})
    assert refused.full == "user:1" and refused.window == {"user:1": (2, 30), "key:1": (0, 60)}
    assert window.take({"key:1": 5}).window["key:1"][0] == 1, "a refused request counted nothing"
    clock.now += 30
    assert window.take({"user:1": 2}).full is None


def test_token_use_starts_again_at_midnight_utc(tmp_path):
    clock = Clock(86400 * 20_000 - 10)  # ten seconds before a UTC midnight
    limits = Limits(Database(tmp_path / "offgrid.db"), clock)
    subject = [Subject("user:1", 0, 100)]
    limits.charge(subject, 150)
    with pytest.raises(TooManyRequests) as refused:
        limits.admit(subject, counts_tokens=True)
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "10"
    clock.now += 10
    headers = limits.admit(subject, counts_tokens=True)
    assert headers["x-ratelimit-remaining-tokens"] == "100"


def _refused(throttle: LoginThrottle, username: str, address: str) -> int:
    """The Retry-After of a refused attempt; fails the test if it is let through."""
    with pytest.raises(TooManyRequests) as refused:
        throttle.reserve(username, address)
    assert refused.value.code == "too_many_login_attempts"
    return int(refused.value.headers["Retry-After"])


def _fail(throttle: LoginThrottle, username: str, address: str) -> None:
    throttle.reserve(username, address)
    throttle.failed(username, address)


def test_failed_logins_pause_a_username_at_an_address_and_an_address(counted_in):
    clock = Clock()
    throttle = LoginThrottle(attempts=2, clock=clock, db=counted_in)
    for _ in range(2):
        _fail(throttle, "alice", "10.0.0.1")
    assert _refused(throttle, "alice", "10.0.0.1") == 1
    throttle.reserve("alice", "10.0.0.2")  # the owner, elsewhere, is not paused
    throttle.succeeded("alice", "10.0.0.2")
    for name in ("bob", "carol", "dave"):  # the address's 8th failure: 4 times the limit
        for _ in range(2):
            _fail(throttle, name, "10.0.0.1")
    assert _refused(throttle, "frank", "10.0.0.1") == 1, "one address, many usernames"
    throttle.reserve("frank", "10.0.0.3")


def test_the_pause_doubles_with_each_failure_past_the_limit_up_to_15_minutes(counted_in):
    clock = Clock()
    throttle = LoginThrottle(attempts=2, clock=clock, db=counted_in)
    for _ in range(2):
        _fail(throttle, "alice", "10.0.0.1")
    pauses = []
    while len(pauses) < 12:
        pauses.append(_refused(throttle, "alice", "10.0.0.1"))
        clock.now += pauses[-1] - 0.5
        assert _refused(throttle, "alice", "10.0.0.1") == 1, "the real wait, not the pause"
        clock.now += 0.5
        _fail(throttle, "alice", "10.0.0.1")
    assert pauses == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
    clock.now += 900 + 15 * 60  # the last pause, then the window: all forgotten
    _fail(throttle, "alice", "10.0.0.1")
    throttle.reserve("alice", "10.0.0.1")


def test_a_login_is_counted_before_its_password_is_checked(counted_in):
    clock = Clock()
    throttle = LoginThrottle(attempts=2, clock=clock, db=counted_in)
    throttle.reserve("alice", "10.0.0.1")
    throttle.reserve("alice", "10.0.0.1")
    _refused(throttle, "alice", "10.0.0.1")  # two checks still running: no third
    throttle.succeeded("alice", "10.0.0.1")
    throttle.reserve("alice", "10.0.0.1")


def test_a_success_clears_its_username_but_not_its_address(counted_in):
    clock = Clock()
    throttle = LoginThrottle(attempts=1, clock=clock, db=counted_in)
    for name in ("bob", "carol", "dave"):
        _fail(throttle, name, "10.0.0.1")
    for _ in range(3):  # the owner's own successes do not use up the address
        throttle.reserve("alice", "10.0.0.1")
        throttle.succeeded("alice", "10.0.0.1")
    _fail(throttle, "alice", "10.0.0.1")  # the address's 4th failure
    assert _refused(throttle, "erin", "10.0.0.1") == 1


def test_servers_sharing_a_database_count_each_limit_once(database_url):
    clock = Clock()
    first, second = PostgresDatabase(database_url), PostgresDatabase(database_url)
    windows = [SlidingWindow(60, clock, db=first), SlidingWindow(60, clock, db=second)]
    assert windows[0].take({"user:1": 3}).full is None
    assert windows[1].take({"user:1": 3}).full is None
    assert windows[0].take({"user:1": 3}).window["user:1"] == (3, 60)
    assert windows[1].take({"user:1": 3}).full == "user:1", "three, over two servers"
    throttles = [LoginThrottle(2, clock, db=first), LoginThrottle(2, clock, db=second)]
    _fail(throttles[0], "alice", "10.0.0.1")
    _fail(throttles[1], "alice", "10.0.0.1")
    assert _refused(throttles[0], "alice", "10.0.0.1") == 1


def test_an_admitted_request_writes_the_shared_counters_once_and_an_unlimited_one_not(
        database_url):
    db = PostgresDatabase(database_url)
    writes, write = [], db.write

    def counted_write():
        writes.append(1)
        return write()

    db.write = counted_write
    limits = Limits(db, Clock())
    headers = limits.admit([Subject("user:7", 5, 0), Subject("key:7", 3, 0)], False)
    assert headers["x-ratelimit-remaining-requests"] == "2"  # the key's, the tighter
    assert headers["x-ratelimit-reset-requests"] == "60s"
    assert len(writes) == 1, "checking, counting and the headers' figures: one transaction"
    assert limits.admit([Subject("user:8", 0, 0)], False) == {} and len(writes) == 1
    db.close()
