"""A failure inside the engine stays with the request that caused it, and a scheduler that dies
anyway fails its requests with a 500, says so in /health and /metrics, and is replaced on the
model's next request.

The server runs in this process, so that a test can break its engine on purpose: it is the real
App and HTTP server with a real model; only the fault is planted.
"""

import queue
import threading

import pytest

from offgrid.config import Settings
from offgrid.engine.errors import RequestFailed, SchedulerFailed
from offgrid.engine.requests import Failed, Finished, GenerationRequest
from offgrid.server.app import App, Server
from support.http import assert_error, chat_body, get, post, stream
from support.metrics import scrape, value
from support.models import CHAT_MODEL
from support.servers import free_port
from support.waiting import wait_until

CHAT = "/v1/chat/completions"


class Planted(RuntimeError):
    """The fault a test plants."""


@pytest.fixture
def served(models_dir, tmp_path):
    """(url, app) of an OffGrid server running in this process."""
    settings = Settings(home=tmp_path / "home", models_dir=models_dir, port=free_port(),
                        default_model=CHAT_MODEL, parallel=2, max_context=512)
    app = App(settings)
    server = Server(app, settings.port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    app.load_default_model()
    url = f"http://127.0.0.1:{settings.port}"
    assert wait_until(lambda: get(url + "/health")[0] == 200, 60)
    yield url, app
    server.shutdown()
    server.server_close()
    thread.join()
    app.close()


def _scheduler(app):
    return app.registry.get(CHAT_MODEL).generator()


def _raise(*_args, **_kwargs):
    raise Planted("planted fault")


def _events(events: queue.SimpleQueue) -> list:
    found = []
    while not events.empty():
        found.append(events.get()[1])
    return found


def test_a_request_that_breaks_preparation_fails_alone(served):
    url, app = served
    scheduler = _scheduler(app)
    events = queue.SimpleQueue()
    # Text the HTTP edge refuses, handed to the engine directly: the chat template cannot
    # encode it.
    generation = scheduler.submit(GenerationRequest(messages=[("user", "hi \ud800")]), events)
    assert generation.wait_ended(30)
    (failed,) = _events(events)
    assert isinstance(failed, Failed) and isinstance(failed.error, RequestFailed)
    assert scheduler.failure is None
    status, _, answer = post(url + CHAT, chat_body("Say yes.", max_tokens=3))
    assert status == 200 and answer["choices"][0]["finish_reason"] in ("stop", "length")


def test_a_request_that_breaks_while_decoding_fails_alone(served):
    url, app = served
    scheduler = _scheduler(app)
    prepare = scheduler._new_job

    def with_a_broken_sampler(generation):
        job = prepare(generation)
        if "explode" in generation.request.messages[-1][1]:
            job.sampler.sample = _raise
        return job

    scheduler._new_job = with_a_broken_sampler
    neighbour = {}
    runner = threading.Thread(target=lambda: neighbour.update(events=stream(
        url + CHAT, chat_body("Count to twenty.", max_tokens=40, temperature=0))))
    runner.start()
    status, _, error = post(url + CHAT, chat_body("Please explode.", max_tokens=20))
    assert_error(status, error, 500, "internal_error")
    runner.join(300)
    assert neighbour["events"][-1] == "[DONE]"
    assert neighbour["events"][-2]["choices"][0]["finish_reason"] in ("stop", "length")
    assert scheduler.failure is None and scheduler.in_flight == 0
    assert get(url + "/health")[0] == 200


def test_a_scheduler_that_dies_fails_its_requests_and_is_restarted(served):
    url, app = served
    broken = _scheduler(app)
    broken._drop_cancelled = _raise  # the decode loop's first step on new work
    status, _, error = post(url + CHAT, chat_body("Hello", max_tokens=5))
    assert_error(status, error, 500, "engine_failed")
    assert isinstance(broken.failure, Planted) and broken.in_flight == 0
    status, _, error = get(url + "/health")
    found = assert_error(status, error, 503, "engine_failed")
    assert CHAT_MODEL in found["message"]
    assert value(scrape(url), "offgrid_scheduler_failures_total", model=CHAT_MODEL) == 1
    with pytest.raises(SchedulerFailed):
        broken.submit(GenerationRequest(prompt="x"), queue.SimpleQueue())
    status, _, answer = post(url + CHAT, chat_body("Hello", max_tokens=5))  # a new scheduler
    assert status == 200, answer
    assert _scheduler(app) is not broken and _scheduler(app).failure is None
    assert get(url + "/health")[0] == 200


def test_a_cancelled_request_ends_with_what_it_cost(served):
    _, app = served
    events = queue.SimpleQueue()
    scheduler = _scheduler(app)
    generation = scheduler.submit(GenerationRequest(prompt="1, 2, 3,", max_tokens=400), events)
    while generation.completion_tokens < 3:
        events.get(timeout=30)
    generation.cancel()
    assert generation.wait_ended(30)
    last = _events(events)[-1]
    assert isinstance(last, Finished) and last.reason == "cancelled"
    assert last.completion_tokens == generation.completion_tokens >= 3
    assert generation.prompt_tokens == last.prompt_tokens > 0
