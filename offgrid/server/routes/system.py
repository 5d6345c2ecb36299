"""Server-level endpoints: identity, health, configuration and live statistics."""

from __future__ import annotations

import time

from ... import __version__
from .. import openapi, policy
from ..errors import ServiceUnavailable
from ..http import Request, Response
from ..policy import Group
from . import ui


def root(app, request: Request) -> Response:
    """The chat page for a browser (which asks for HTML), the server's identity for the rest;
    on the Ollama port, what Ollama answers."""
    if request.connection.getsockname()[1] == app.settings.ollama_port:  # as Ollama answers
        return Response("Ollama is running", content_type="text/plain; charset=utf-8")
    if ui.wants_page(request):
        response = ui.page(app, request)
    else:
        response = Response({"name": "OffGrid LLM", "version": __version__, "status": "running"})
    response.headers["Vary"] = "Accept"
    return response


def openapi_document(app, request: Request) -> Response:
    """The API's description; the model ids in it only where anyone may list the models."""
    public = policy.decide(app.gate.mode, Group.MODELS, None) == policy.YES
    return Response(openapi.document([m.id for m in app.registry.files()] if public else []))


def health(app, request: Request) -> Response:
    """Healthy once the default model is loaded (or when there is none to load), and while no
    loaded model's scheduler has stopped on an error. A replica behind a load balancer also
    names itself and the models it has, so that one lacking a model is seen at a glance."""
    failed = [model_id for model_id, loaded in app.registry.loaded().items() if loaded.failure]
    if failed:
        raise ServiceUnavailable(f"The scheduler of {', '.join(failed)} stopped on an internal "
                                 "error; it restarts with the model's next request",
                                 code="engine_failed")
    if app.model_state == "loading":
        raise ServiceUnavailable(f"The default model {app.default_model} is still loading",
                                 retry_after=1, code="model_loading")
    if app.model_state == "failed":
        raise ServiceUnavailable(f"The default model {app.default_model} failed to load: "
                                 f"{app.model_error}", code="model_load_failed")
    if app.settings.replica_name:
        return Response({"status": "healthy", "replica": app.settings.replica_name,
                         "models": [model.id for model in app.registry.files()]})
    return Response({"status": "healthy"})


def config(app, request: Request) -> Response:
    """The mode as a client needs it: in single-user mode nothing needs credentials, and
    anyone may use everything."""
    multi_user = app.settings.multi_user
    return Response({
        "multi_user_mode": multi_user, "require_auth": multi_user and app.settings.require_auth,
        "guest_access": not multi_user or app.settings.guest_access,
        "version": __version__, "default_model": app.default_model,
        "features": {"users": multi_user, "metrics": True, "agent": True, "lora": True}})


def stats(app, request: Request) -> Response:
    """The spec's fields, then a few more. Token counts are of finished generations."""
    schedulers = app.schedulers().values()
    metrics = app.metrics
    return Response({
        "cpu_percent": app.process.cpu_percent(interval=None),
        "memory_bytes": app.process.memory_info().rss,
        "models_loaded": len(app.registry.loaded()),
        "active_sessions": sum(s.busy_slots for s in schedulers),
        "requests_total": int(metrics.requests.total()) + 1,  # this one included
        "tokens_generated": int(metrics.generated_tokens.total()),
        "uptime_seconds": int(time.time() - app.started_at),
        "slots_total": sum(s.n_slots for s in schedulers),
        "queue_depth": sum(s.queued for s in schedulers),
        "prompt_tokens_total": int(metrics.prompt_tokens.total()),
        "prompt_tokens_cached": int(metrics.cached_prompt_tokens.total())})


def metrics(app, request: Request) -> Response:
    return Response(app.metrics.render(), content_type="text/plain; version=0.0.4")
