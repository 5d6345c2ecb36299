"""What an operator sees: /v1/system/config and stats, /metrics, request ids and the log."""

import threading

from prometheus_client.parser import text_string_to_metric_families

from offgrid import __version__
from support.http import chat_body, get, hang_up, open_stream, post, request
from support.metrics import scrape, value
from support.models import CHAT_MODEL, EMBEDDING_MODEL
from support.waiting import wait_until


def test_system_config_tells_what_is_on(base_url):
    status, _, config = get(base_url + "/v1/system/config")
    assert status == 200
    assert config == {"multi_user_mode": False, "require_auth": False, "guest_access": True,
                      "version": __version__, "default_model": CHAT_MODEL,
                      "features": {"users": False, "metrics": True, "agent": True,
                                   "lora": True}}


def test_system_stats_count_for_real(base_url):
    before = get(base_url + "/v1/system/stats")[2]
    for key in ("cpu_percent", "memory_bytes", "models_loaded", "active_sessions",
                "requests_total", "tokens_generated", "uptime_seconds"):
        assert isinstance(before[key], (int, float)), key
    assert before["memory_bytes"] > 50_000_000
    post(base_url + "/v1/completions", {"model": CHAT_MODEL, "prompt": "1, 2,", "max_tokens": 5,
                                        "temperature": 0})
    after = get(base_url + "/v1/system/stats")[2]
    assert after["models_loaded"] >= 1  # before, it may have been unloaded after idling
    assert after["requests_total"] == before["requests_total"] + 2
    assert after["tokens_generated"] == before["tokens_generated"] + 5


def test_metrics_move_with_the_work(base_url):
    before = scrape(base_url)
    answers = [post(base_url + "/v1/chat/completions",
                    chat_body("Hello!", max_tokens=4, temperature=0))[2] for _ in range(2)]
    post(base_url + "/v1/embeddings", {"model": EMBEDDING_MODEL, "input": "hi"})
    post(base_url + "/v1/chat/completions", chat_body("hi", temperature=9))
    after = scrape(base_url)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/v1/chat/completions"
    assert grew("offgrid_requests_total", route=route, method="POST", status="200") == 2
    assert grew("offgrid_requests_total", route=route, method="POST", status="400") == 1
    assert grew("offgrid_requests_total", route="/v1/embeddings", method="POST",
                status="200") == 1
    assert grew("offgrid_request_duration_seconds_count", route=route) == 3
    assert grew("offgrid_generated_tokens_total", model=CHAT_MODEL) == sum(
        a["usage"]["completion_tokens"] for a in answers)
    assert grew("offgrid_prompt_tokens_total", model=CHAT_MODEL) > 10
    assert grew("offgrid_time_to_first_token_seconds_count", model=CHAT_MODEL) == 2
    assert grew("offgrid_prefix_cache_hits_total", model=CHAT_MODEL) >= 1
    assert grew("offgrid_prompt_tokens_cached_total", model=CHAT_MODEL) > 5
    assert value(after, "offgrid_models_loaded") >= 2
    assert value(after, "offgrid_slots_total", model=CHAT_MODEL) == 4
    assert value(after, "offgrid_kv_cache_capacity_tokens", model=CHAT_MODEL) == 4 * 2048
    assert value(after, "offgrid_kv_cache_tokens", model=CHAT_MODEL) > 0
    _, _, text = get(base_url + "/metrics")
    families = {family.name for family in text_string_to_metric_families(text)}
    assert {"offgrid_rate_limited_requests", "offgrid_queue_depth",
            "offgrid_generation_tokens_per_second"} <= families


def test_busy_slots_queue_and_throughput_under_load(start_server):
    """Two streams hold both slots for as long as the test keeps them; a third request waits,
    and is served once one of them hangs up."""
    server = start_server("--model", CHAT_MODEL, "--parallel", "2")
    counting = {"model": CHAT_MODEL, "prompt": "1, 2, 3,", "temperature": 0}

    def slots_and_queue() -> tuple[float, float]:
        samples = scrape(server.url)
        return (value(samples, "offgrid_slots_busy", model=CHAT_MODEL),
                value(samples, "offgrid_queue_depth", model=CHAT_MODEL))

    streams = [open_stream(server.url, "/v1/completions", {**counting, "max_tokens": 4000})
               for _ in range(2)]
    for _, response in streams:
        assert response.readline().startswith(b"data: ")  # generating
    waiting = {}
    waiter = threading.Thread(target=lambda: waiting.update(answer=post(
        server.url + "/v1/completions", {**counting, "max_tokens": 8})))
    waiter.start()
    wait_until(lambda: slots_and_queue() == (2, 1), message="two slots busy and one waiting")
    wait_until(lambda: value(scrape(server.url), "offgrid_generation_tokens_per_second",
                             model=CHAT_MODEL), message="a generation rate")
    hang_up(streams[0][0])
    waiter.join(300)
    status, _, answer = waiting["answer"]
    assert status == 200 and answer["usage"]["completion_tokens"] == 8, answer
    hang_up(streams[1][0])
    wait_until(lambda: slots_and_queue() == (0, 0), message="every slot free again")


def test_request_ids_are_echoed_or_made_and_logged(base_url, server):
    status, headers, _ = get(base_url + "/health", headers={"X-Request-ID": "trace-42"})
    assert headers["X-Request-ID"] == "trace-42"
    _, made, _ = get(base_url + "/health")
    assert made["X-Request-ID"].startswith("req-")
    _, odd, _ = get(base_url + "/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert odd["X-Request-ID"].startswith("req-")
    _, streamed, _ = request("POST", base_url + "/v1/completions",
                             {"model": CHAT_MODEL, "prompt": "Hi", "max_tokens": 3,
                              "stream": True}, headers={"X-Request-ID": "stream-7"})
    assert streamed["X-Request-ID"] == "stream-7"
    lines = wait_until(  # the line is written once the answer has gone out
        lambda: [line for line in server.log().splitlines() if "stream-7" in line],
        message="a log line for the request")
    assert len(lines) == 1
    assert lines[0].split("offgrid.server: ")[1].split()[:4] == [
        "stream-7", "POST", "/v1/completions", "200"]
    assert "tokens=" in lines[0] and not lines[0].endswith("tokens=0")
