"""The HTTP server: route table, request dispatch, startup and graceful shutdown."""

from __future__ import annotations

import faulthandler
import logging
import re
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from http import HTTPStatus
from typing import Callable, NamedTuple

import psutil

from .. import __version__
from ..agents.builtin import builtin_tools
from ..agents.mcp.manager import McpManager
from ..agents.tools import Toolbox
from ..config import Settings
from ..engine.registry import Registry
from ..kb.knowledge_base import KnowledgeBase
from ..metrics import Metrics, labelled
from ..models.hub import Downloads
from ..store.db import open_database
from . import policy
from .anthropic.responses import error_body as anthropic_error
from .connection import GuardedHandler, GuardedServer
from .cors import Cors
from .errors import (
    REFUSALS,
    ApiError,
    ErrorShape,
    InternalError,
    MethodNotAllowed,
    NotFound,
    ServiceUnavailable,
    translate,
)
from .gate import Gate
from .hosts import HostPolicy
from .http import ClientGone, Request, Response
from .ollama.responses import error_body as ollama_error
from .policy import Group
from .routes import (
    account,
    agents,
    anthropic,
    kb,
    lora,
    models,
    ollama,
    openai,
    responses,
    sessions,
    system,
    tokenizer,
    ui,
    users,
)
from .startup import prepare_users

log = logging.getLogger("offgrid.server")


class Route(NamedTuple):
    method: str
    path: str
    handler: Callable
    group: Group = Group.ADMIN  # who may call it (see policy.py); undeclared: admins only
    prompt: str | None = None  # the body field holding the prompt, for errors about it
    error_shape: ErrorShape | None = None  # its wire format's error body, if not OpenAI's


ROUTES = [
    ("GET", "/", system.root, Group.PUBLIC),
    ("GET", "/health", system.health, Group.PUBLIC),
    ("GET", "/ui/", ui.page, Group.PUBLIC),  # the chat page; its data is behind the API
    ("GET", "/ui/{name}", ui.asset, Group.PUBLIC),
    ("GET", "/openapi.json", system.openapi_document, Group.PUBLIC),
    ("GET", "/metrics", system.metrics, Group.MODELS),
    ("GET", "/v1/system/config", system.config, Group.PUBLIC),
    ("GET", "/v1/system/stats", system.stats, Group.MODELS),
    ("GET", "/v1/models", models.list_models, Group.MODELS),
    ("GET", "/v1/models/{model_id}", models.get_model, Group.MODELS),
    ("DELETE", "/v1/models/{model_id}", models.delete_model, Group.ADMIN),
    ("POST", "/v1/models/download", models.start_download, Group.ADMIN),
    ("GET", "/v1/models/download/progress", models.download_progress, Group.ADMIN),
    ("POST", "/v1/models/download/cancel", models.cancel_download, Group.ADMIN),
    ("POST", "/v1/models/import", models.import_models, Group.ADMIN),
    ("POST", "/v1/models/export", models.export_model, Group.ADMIN),
    ("GET", "/v1/search", models.search, Group.ADMIN),
    ("GET", "/v1/lora", lora.list_adapters, Group.MODELS),
    ("POST", "/v1/chat/completions", openai.chat_completions, Group.CHAT, "messages"),
    ("POST", "/v1/responses", responses.create, Group.CHAT, "input"),
    ("GET", "/v1/responses/{response_id}", responses.retrieve, Group.CHAT),
    ("DELETE", "/v1/responses/{response_id}", responses.delete, Group.CHAT),
    ("POST", "/v1/messages", anthropic.messages, Group.CHAT, "messages", anthropic_error),
    ("POST", "/v1/messages/count_tokens", anthropic.count_tokens, Group.CHAT, "messages",
     anthropic_error),
    ("POST", "/v1/completions", openai.completions, Group.GENERATE, "prompt"),
    ("POST", "/v1/embeddings", openai.embeddings, Group.GENERATE, "input"),
    ("POST", "/v1/tokenize", tokenizer.tokenize, Group.GENERATE),
    ("POST", "/v1/detokenize", tokenizer.detokenize, Group.GENERATE),
    ("GET", "/v1/rag/status", kb.status, Group.MODELS),
    ("GET", "/v1/documents", kb.list_documents, Group.KNOWLEDGE),
    ("POST", "/v1/documents/ingest", kb.ingest, Group.DOCUMENTS),
    ("GET", "/v1/documents/jobs/{job_id}", kb.job, Group.DOCUMENTS),
    ("POST", "/v1/documents/search", kb.search, Group.KNOWLEDGE),
    ("POST", "/v1/documents/delete", kb.delete_document_by_body, Group.DOCUMENTS),
    ("GET", "/v1/documents/{document_id}", kb.get_document, Group.KNOWLEDGE),
    ("PATCH", "/v1/documents/{document_id}", kb.share_document, Group.ADMIN),
    ("DELETE", "/v1/documents/{document_id}", kb.delete_document, Group.DOCUMENTS),
    ("GET", "/v1/documents/{document_id}/chunks/{position}", kb.get_chunk, Group.KNOWLEDGE),
    ("POST", "/v1/rag/disable", kb.disable, Group.ADMIN),
    ("POST", "/v1/rag/enable", kb.enable, Group.ADMIN),
    ("POST", "/v1/agents/run", agents.run, Group.AGENTS, "prompt"),
    ("GET", "/v1/agents/tools", agents.list_tools, Group.AGENTS),
    ("PATCH", "/v1/agents/tools", agents.set_tool, Group.TOOLS),
    ("POST", "/v1/agents/tools/call", agents.call, Group.TOOLS),
    ("GET", "/v1/agents/mcp", agents.list_mcp_servers, Group.TOOLS),
    ("POST", "/v1/agents/mcp", agents.add_mcp_server, Group.TOOLS),
    ("POST", "/v1/agents/mcp/test", agents.test_mcp_server, Group.TOOLS),
    ("DELETE", "/v1/agents/mcp/{name}", agents.remove_mcp_server, Group.TOOLS),
    ("GET", "/v1/sessions", sessions.list_sessions, Group.SESSIONS),
    ("POST", "/v1/sessions", sessions.create_session, Group.SESSIONS),
    ("GET", "/v1/sessions/{name}", sessions.get_session, Group.SESSIONS),
    ("PATCH", "/v1/sessions/{name}", sessions.update_session, Group.SESSIONS),
    ("DELETE", "/v1/sessions/{name}", sessions.delete_session, Group.SESSIONS),
    ("GET", "/v1/sessions/{name}/messages", sessions.list_messages, Group.SESSIONS),
    ("POST", "/v1/sessions/{name}/generate", sessions.generate_turn, Group.SESSIONS, "content"),
    ("GET", "/v1/sessions/{name}/export", sessions.export_session, Group.SESSIONS),
    ("POST", "/v1/auth/login", account.login, Group.LOGIN),
    ("POST", "/v1/auth/logout", account.logout, Group.ACCOUNT),
    ("GET", "/v1/users/me", account.me, Group.ACCOUNT),
    ("GET", "/v1/users", users.list_users, Group.USERS),
    ("POST", "/v1/users", users.create_user, Group.USERS),
    ("GET", "/v1/users/{user_id}", users.get_user, Group.OWN),
    ("DELETE", "/v1/users/{user_id}", users.delete_user, Group.USERS),
    ("PUT", "/v1/users/{user_id}/role", users.set_role, Group.USERS),
    ("GET", "/v1/users/{user_id}/api-keys", users.list_keys, Group.OWN),
    ("POST", "/v1/users/{user_id}/api-keys", users.create_key, Group.OWN),
    ("DELETE", "/v1/users/{user_id}/api-keys/{key_id}", users.revoke_key, Group.OWN),
    # Ollama's API, with its errors in its own shape
    ("GET", "/api/version", ollama.version, Group.PUBLIC, None, ollama_error),
    ("GET", "/api/tags", ollama.tags, Group.MODELS, None, ollama_error),
    ("POST", "/api/show", ollama.show, Group.MODELS, None, ollama_error),
    ("GET", "/api/ps", ollama.ps, Group.MODELS, None, ollama_error),
    ("POST", "/api/chat", ollama.chat, Group.CHAT, "messages", ollama_error),
    ("POST", "/api/generate", ollama.generate, Group.GENERATE, "prompt", ollama_error),
    ("POST", "/api/embed", ollama.embed, Group.GENERATE, "input", ollama_error),
    ("POST", "/api/embeddings", ollama.embeddings, Group.GENERATE, "prompt", ollama_error),
    ("POST", "/api/pull", ollama.pull, Group.ADMIN, None, ollama_error),
    ("DELETE", "/api/delete", ollama.delete, Group.ADMIN, None, ollama_error),
    ("POST", "/api/copy", ollama.copy, Group.ADMIN, None, ollama_error),
]


class Router:
    def __init__(self, routes):
        routes = [Route(*entry) for entry in routes]
        self._routes = [(_compile(route.path), route) for route in routes]

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """(route, path parameters); 404 for an unknown path, 405 for a known path and the
        wrong method. HEAD is GET without the body, as HTTP has it."""
        allowed = []
        for pattern, route in self._routes:
            found = pattern.fullmatch(path)
            if found:
                if method in (route.method, "HEAD" if route.method == "GET" else None):
                    return route, found.groupdict()
                allowed.append(route.method)
        if allowed:
            raise MethodNotAllowed(method, allowed)
        raise NotFound(f"Unknown endpoint: {path}", code="unknown_url")

    def groups(self, path: str) -> set[Group]:
        """The groups of the routes at `path` (none for an unknown path)."""
        return {route.group for pattern, route in self._routes if pattern.fullmatch(path)}

    def methods(self, path: str) -> list[str]:
        """The methods `path` takes; 404 if none."""
        found = [route.method for pattern, route in self._routes if pattern.fullmatch(path)]
        if not found:
            raise NotFound(f"Unknown endpoint: {path}", code="unknown_url")
        return found


def _compile(pattern: str) -> re.Pattern:
    return re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern))


class App:
    """Everything a handler needs: settings, the model registry, and server-wide state."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.metrics = Metrics()
        self.registry = Registry(settings, on_finished=self.metrics.record_generation,
                                 on_failure=self.metrics.record_scheduler_failure)
        self.downloads = Downloads(self.registry.folder)
        self.router = Router(ROUTES)
        self._add_gauges()
        self.db = open_database(settings)
        self.kb = KnowledgeBase(self.db, self.registry,
                                on_search=self.metrics.kb_search_seconds.observe)
        self.mcp = McpManager(self.db)
        self.toolbox = Toolbox(self.db, builtin_tools(settings, self.kb), self.mcp)
        prepare_users(settings, self.db)
        self.gate = Gate(settings, self.db)
        self.hosts = HostPolicy(settings.allowed_hosts, settings.host)
        self.cors = Cors(settings.cors_origins)
        self.started_at = time.time()
        self.process = psutil.Process()
        self.process.cpu_percent(interval=None)  # the first reading only starts the clock
        self.default_model = self.registry.default_model_id()
        self.model_state = "loading" if self.default_model else "none"
        self.model_error = ""
        self.closing = False

    def handle(self, request: Request) -> Response:
        if self.closing:
            raise ServiceUnavailable("The server is shutting down", code="shutting_down")
        self.hosts.check(request)  # before cors, which trusts Host to name this server
        cors_headers = self.cors.headers_for(request, any(
            policy.same_origin_only(self.gate.mode, group)
            for group in self.router.groups(request.path)))
        try:
            if request.method == "OPTIONS":
                return self.cors.preflight(self.router.methods(request.path), cors_headers)
            response = self._route(request)
        except ApiError as error:
            error.headers.update(cors_headers)  # so that a browser may read the error
            raise
        response.headers.update(cors_headers)
        return response

    def _route(self, request: Request) -> Response:
        route, path_params = self.router.match(request.method, request.path)
        request.route = route.path
        try:
            return self._call(route, request, path_params)
        except ApiError as error:
            error.shape = route.error_shape
            raise

    def _call(self, route: Route, request: Request, path_params: dict) -> Response:
        try:
            # The gate reads the database too: one that is gone is a 503 there as well.
            limit_headers = self.gate.admit(request, route.group, path_params)
            response = route.handler(self, request, **path_params)
        except REFUSALS as error:  # the one place these become HTTP errors
            raise translate(error, route.prompt) from None
        response.headers.update(limit_headers)
        return response

    def schedulers(self) -> dict:
        """model id -> its scheduler, for the models loaded for generation."""
        return {model_id: loaded.scheduler for model_id, loaded in self.registry.loaded().items()
                if loaded.scheduler is not None}

    def _add_gauges(self) -> None:
        def per_model(read):
            return lambda: labelled({m: read(s) for m, s in self.schedulers().items()}, "model")

        gauge = self.metrics.gauge
        gauge("offgrid_models_loaded", "Models in memory",
              lambda: {(): len(self.registry.loaded())})
        gauge("offgrid_slots_busy", "Slots generating or reading a prompt, by model",
              per_model(lambda s: s.busy_slots))
        gauge("offgrid_slots_total", "Slots, by model", per_model(lambda s: s.n_slots))
        gauge("offgrid_queue_depth", "Requests waiting for a slot, by model",
              per_model(lambda s: s.queued))
        gauge("offgrid_kv_cache_tokens", "Tokens held in the KV cache, by model",
              per_model(lambda s: s.kv_tokens_used))
        gauge("offgrid_kv_cache_capacity_tokens", "Tokens the KV cache can hold, by model",
              per_model(lambda s: s.kv_tokens_capacity))
        kv = self.registry.kv_cache
        self.metrics.read_counter("offgrid_kept_kv_hits_total", "Prompts whose prefix was "
                                  "restored from the kept KV cache", lambda: kv.hits)
        self.metrics.read_counter("offgrid_kept_kv_misses_total", "Prompts that looked for a "
                                  "kept KV state and found none", lambda: kv.misses)
        gauge("offgrid_kept_kv_ram_bytes", "Bytes of KV states kept in memory",
              lambda: {(): kv.ram_bytes})
        gauge("offgrid_kept_kv_disk_bytes", "Bytes of KV states kept on disk",
              lambda: {(): kv.disk_bytes})
        gauge("offgrid_kb_documents", "Documents in the knowledge base",
              lambda: {(): self.kb.status().documents})
        gauge("offgrid_kb_chunks", "Chunks in the knowledge base",
              lambda: {(): self.kb.status().chunks})
        gauge("offgrid_kb_jobs", "Knowledge-base jobs (ingests, re-embeddings), by status",
              lambda: labelled(Counter(job.status for job in self.kb.jobs.all()), "status"))
        gauge("offgrid_generation_tokens_per_second",
              "Tokens generated per second over the last 10 s, all requests together, by model",
              per_model(lambda s: round(s.tokens_per_second(), 3)))

    def load_default_model(self) -> None:
        """Load the default model in the background; /health reports 503 until it is ready."""
        if self.default_model:
            threading.Thread(target=self._load_default, name="load-default", daemon=True).start()

    def _load_default(self) -> None:
        try:
            loaded = self.registry.get(self.default_model)
            loaded.embedder() if loaded.model.is_embedding_only else loaded.generator()
            self.model_state = "ready"
        except Exception as error:
            log.error("could not load the default model %s: %s", self.default_model, error)
            self.model_error = str(error)
            self.model_state = "failed"

    def start_background_work(self) -> None:
        """What starts with the server and must not hold it up: the default model's load and
        the MCP servers' connections."""
        self.load_default_model()
        self.mcp.start()

    def close(self) -> None:
        self.mcp.close()
        self.registry.close()
        self.db.close()


class Handler(GuardedHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"OffGrid/{__version__}"

    def _dispatch(self) -> None:
        started = time.monotonic()
        request_id = _request_id(self.headers.get("X-Request-ID"))
        with self.server.tracking():
            app = self.server.app
            request, response = self._answer(app, request_id)
            if response is not None:
                response.headers["X-Request-ID"] = request_id
                response.headers.update(SECURITY_HEADERS)
                if app.settings.replica_name:  # which replica answered, behind a balancer
                    response.headers["X-OffGrid-Replica"] = app.settings.replica_name
                self._send(response)
        status = response.status if response is not None else 499  # the client left first
        route = request.route if request is not None else "unmatched"
        seconds = time.monotonic() - started
        app.metrics.record_request(route, self.command, status, seconds)
        log.info("%s %s %s %d %.1fms tokens=%d", request_id, _printable(self.command), route,
                 status, seconds * 1000, request.meter.tokens if request and request.meter else 0)

    def _answer(self, app: App, request_id: str) -> tuple[Request | None, Response | None]:
        """The request (None if it could not be read) and its answer (None if the client left
        before there was one)."""
        request = None
        try:
            request = Request.read(self, app.settings.max_body_bytes, request_id)
            request.address = self.server.proxies.client(request.address, request.headers)
            return request, app.handle(request)
        except ClientGone:
            self.close_connection = True
            return request, None
        except ApiError as error:
            return request, Response.error(error)
        except Exception:
            log.exception("unhandled error in %s %s [%s]", _printable(self.command),
                          _printable(self.path), request_id)
            return request, Response.error(InternalError())

    def _send(self, response: Response) -> None:
        self.answering()
        try:
            response.send(self)
        except (OSError, ClientGone):  # the client hung up, or stopped reading
            self.close_connection = True

    def version_string(self) -> str:
        return self.server_version

    def __getattr__(self, name: str):
        # Every method reaches the router: a known path answers 405 with the methods it allows.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None):
        """Errors http.server raises itself (bad request line, unknown method, ...) in the API's
        error shape."""
        status = HTTPStatus(code)
        error = ApiError(message or status.phrase, code=status.phrase.lower().replace(" ", "_"))
        error.status = code
        error.type = "invalid_request_error" if code < 500 else "api_error"
        self.close_connection = True
        try:
            Response.error(error).send(self)
        except OSError:
            pass

    def log_message(self, format: str, *args) -> None:
        """http.server's own lines, which quote the raw request line."""
        log.debug("%s %s", self.address_string(), _printable(format % args))


# What a client sends may hold terminal escapes: in the log, control characters show as \xNN.
_UNPRINTABLE = str.maketrans({ord("\\"): "\\\\",
                              **{c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7f, 0xa0))}})


def _printable(text: str) -> str:
    return text.translate(_UNPRINTABLE)


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _request_id(given: str | None) -> str:
    """The client's X-Request-ID when it is a sane token, else a new one."""
    return given if given and _REQUEST_ID.match(given) else "req-" + uuid.uuid4().hex[:16]


# On every answer: the chat page runs only its own files (no inline script or style, nothing from
# another site, no frames of it), and no answer's type is guessed from its content.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff"}


class Server(GuardedServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, app: App, port: int):
        self.app = app
        self._active = 0
        self._idle = threading.Condition()
        super().__init__(app.settings, Handler, port)

    @contextmanager
    def tracking(self):
        """Count a request as running while it is being answered."""
        with self._idle:
            self._active += 1
        try:
            yield
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def handle_error(self, request, client_address) -> None:
        """A client that vanishes mid-request is routine; anything else is logged in full."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.debug("connection from %s ended: %s", client_address[0], error)
        else:
            log.exception("error while serving %s", client_address[0])

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)


def serve(settings: Settings) -> int:
    faulthandler.enable(all_threads=True)  # a crash in native code leaves its stacks in the log
    app = App(settings)
    server = Server(app, settings.port)
    # The same API on Ollama's port too, for clients that assume it: served beside the first.
    others = [Server(app, settings.ollama_port)] if settings.ollama_port else []
    stopping = threading.Event()

    def stop(signum, _frame):
        if not stopping.is_set():
            stopping.set()
            log.info("received %s: finishing running requests", signal.Signals(signum).name)
            for each in (server, *others):
                threading.Thread(target=each.shutdown, name="shutdown").start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for each in (server, *others):
        host, port = each.server_address[:2]
        log.info("OffGrid %s listening on http://%s:%d (models in %s, data in %s)", __version__,
                 host, port, settings.models_dir, app.db.name)
    app.start_background_work()
    serving = [threading.Thread(target=each.serve_forever, args=(0.2,), name="ollama-port")
               for each in others]
    for thread in serving:
        thread.start()
    server.serve_forever(poll_interval=0.2)
    for thread in serving:
        thread.join()
    app.closing = True
    for each in (server, *others):
        each.server_close()  # stop accepting connections
        each.close_waiting()
    deadline = time.monotonic() + settings.shutdown_timeout
    if not all(each.wait_idle(max(0.0, deadline - time.monotonic()))
               for each in (server, *others)):
        log.warning("requests still running after %.0fs; stopping them", settings.shutdown_timeout)
    app.close()
    log.info("stopped")
    return 0
