"""The Python library: talk to an OffGrid server with the standard library only.

    import offgrid
    client = offgrid.Client()            # $OFFGRID_URL, else $OFFGRID_HOST:$OFFGRID_PORT
    print(client.chat("Hello!"))

Errors raise OffGridError subclasses carrying the status, code and message the server sent.
Connection failures and 503 answers are retried with backoff.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator

DEFAULT_TIMEOUT = 600.0
DEFAULT_RETRIES = 3
MAX_BACKOFF = 8.0


# -- errors ---------------------------------------------------------------------------------------

class OffGridError(Exception):
    """An error the server answered (its status, code, message and param), or a connection
    failure (status 0)."""

    def __init__(self, message: str, status: int = 0, code: str | None = None,
                 param: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.param = param
        self.retry_after = retry_after


class ConnectionFailed(OffGridError):
    """The server could not be reached."""


class BadRequest(OffGridError):
    """400: a parameter is missing or wrong; `param` names it."""


class AuthenticationError(OffGridError):
    """401: no credentials, or ones the server does not accept."""


class PermissionDenied(OffGridError):
    """403: the credentials are fine but may not do this."""


class NotFound(OffGridError):
    """404."""


class ModelNotFound(NotFound):
    """404 with code model_not_found."""


class Conflict(OffGridError):
    """409."""


class RateLimited(OffGridError):
    """429: over a rate limit or quota; `retry_after` says when to try again (seconds)."""


class ServerError(OffGridError):
    """5xx."""


class ServiceUnavailable(ServerError):
    """503: busy, loading or shutting down; retried automatically before it is raised."""


class DownloadFailed(OffGridError):
    """A model download ended without the model."""


_BY_STATUS = {400: BadRequest, 401: AuthenticationError, 403: PermissionDenied, 404: NotFound,
              409: Conflict, 429: RateLimited, 503: ServiceUnavailable}


def _error(status: int, detail: dict, retry_after: float | None) -> OffGridError:
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else OffGridError)
    if detail.get("code") == "model_not_found":
        kind = ModelNotFound
    return kind(detail.get("message") or f"HTTP {status}", status, detail.get("code"),
                detail.get("param"), retry_after)


# -- the client -----------------------------------------------------------------------------------

def default_url() -> str:
    """$OFFGRID_URL, else the address the server listens on by the same settings."""
    if os.environ.get("OFFGRID_URL"):
        return os.environ["OFFGRID_URL"]
    host = os.environ.get("OFFGRID_HOST") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{os.environ.get('OFFGRID_PORT') or 11611}"


class Client:
    def __init__(self, host: str | None = None, api_key: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES):
        self.host = (host or default_url()).rstrip("/")
        self.api_key = api_key or os.environ.get("OFFGRID_API_KEY")
        self.timeout = timeout
        self.retries = retries
        self.models = Models(self)
        self.system = System(self)
        self.users = Users(self)
        self.kb = KnowledgeBase(self)
        self.agents = Agents(self)
        self.sessions = Sessions(self)

    def __repr__(self) -> str:
        return f"offgrid.Client({self.host!r})"

    def health(self) -> dict:
        return self.request("GET", "/health")

    def chat(self, message_or_messages: str | list[dict], model: str | None = None,
             system: str | None = None, stream: bool = False, **params):
        """The assistant's answer as text (an Answer), or when streaming a TextStream of text
        pieces. `params` are any of the chat completion parameters (max_tokens, temperature,
        use_knowledge_base, ...); with use_knowledge_base=True the answer's `citations` are the
        passages it was given."""
        messages = ([{"role": "user", "content": message_or_messages}]
                    if isinstance(message_or_messages, str) else list(message_or_messages))
        if system is not None:
            messages.insert(0, {"role": "system", "content": system})
        body = {"model": model or self.default_model(), "messages": messages, **params}
        if stream:
            return self._stream_text("/v1/chat/completions", body,
                                     lambda choice: choice["delta"].get("content"))
        message = self.request("POST", "/v1/chat/completions", body)["choices"][0]["message"]
        return Answer(message["content"] or "", message.get("citations"))

    def complete(self, prompt: str, model: str | None = None, stream: bool = False, **params):
        """The continuation of `prompt` as text, or an iterator of text pieces when streaming."""
        body = {"model": model or self.default_model(), "prompt": prompt, **params}
        if stream:
            return self._stream_text("/v1/completions", body, lambda choice: choice.get("text"))
        return self.request("POST", "/v1/completions", body)["choices"][0]["text"]

    def embed(self, texts: str | list[str], model: str | None = None, **params
              ) -> list[list[float]]:
        """One vector per text (a single text gives a list holding one vector)."""
        body = {"model": model or self.default_model(), "input": texts,
                "encoding_format": "float", **params}
        return [item["embedding"] for item in self.request("POST", "/v1/embeddings",
                                                            body)["data"]]

    def login(self, username: str, password: str) -> dict:
        """Log in (multi-user mode); later requests carry the login token. Returns the token's
        details: access_token, expires_at, user."""
        session = self.request("POST", "/v1/auth/login",
                               {"username": username, "password": password})
        self.api_key = session["access_token"]
        return session

    def logout(self) -> None:
        """End the login token's session; the client then has no credentials."""
        self.request("POST", "/v1/auth/logout")
        self.api_key = None

    def default_model(self) -> str:
        model = self.system.config().get("default_model")
        if not model:
            raise OffGridError("The server has no default model; pass model=...")
        return model

    # -- transport --

    def request(self, method: str, path: str, body: dict | None = None,
                query: dict | None = None, files: dict[str, tuple[str, bytes]] | None = None
                ) -> dict:
        """Any endpoint: the parsed JSON answer, or an OffGridError. `files` ({field: (file
        name, bytes)}) sends the body as multipart/form-data, with `body`'s items as fields."""
        with self._open(method, path, body, query, files) as response:
            raw = response.read()
            return json.loads(raw) if raw else {}

    def _open(self, method: str, path: str, body: dict | None, query: dict | None = None,
              files: dict[str, tuple[str, bytes]] | None = None):
        url = self.host + path + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = self._headers()
        if files is not None:
            data, headers["Content-Type"] = _multipart(body or {}, files)
        else:
            data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        attempt = 0
        while True:
            try:
                return urllib.request.urlopen(request, timeout=self.timeout)
            except urllib.error.HTTPError as failure:
                error = _error_from(failure)
                if not isinstance(error, ServiceUnavailable) or attempt >= self.retries:
                    raise error from None
                wait = error.retry_after
            except (urllib.error.URLError, OSError) as failure:
                if attempt >= self.retries:
                    raise ConnectionFailed(f"Cannot reach the OffGrid server at {self.host}: "
                                           f"{getattr(failure, 'reason', failure)}") from None
                wait = None
            time.sleep(min(wait if wait is not None else 0.25 * 2 ** attempt, MAX_BACKOFF))
            attempt += 1

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _stream_text(self, path: str, body: dict, text_of: Callable) -> "TextStream":
        return TextStream(self._open("POST", path, {**body, "stream": True}), text_of)


class Answer(str):
    """An answer's text; `citations` holds the knowledge-base passages it was given (None
    unless the request asked for the knowledge base)."""

    def __new__(cls, text: str, citations: list[dict] | None = None):
        answer = super().__new__(cls, text)
        answer.citations = citations
        return answer


class _Pieces:
    """Text that streams in from a response, piece by piece (what `_read` yields); closing it
    hangs up, and the server stops generating."""

    def __init__(self, response, *args):
        self._response = response
        self._pieces = self._read(*args)

    def _read(self, *args) -> Iterator[str]:
        raise NotImplementedError

    def __iter__(self) -> "_Pieces":
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        self._pieces.close()
        self._response.close()


class TextStream(_Pieces):
    """An answer's text as it streams; `citations` is set (where the request asked for the
    knowledge base) before the first piece."""

    def __init__(self, response, text_of: Callable):
        self.citations: list[dict] | None = None
        super().__init__(response, text_of)

    def _read(self, text_of: Callable) -> Iterator[str]:
        with self._response:
            for event in _events(self._response):
                if "error" in event:
                    raise _error(500, event["error"], None)
                for choice in event.get("choices") or []:
                    if "citations" in choice.get("delta", {}):
                        self.citations = choice["delta"]["citations"]
                    text = text_of(choice)
                    if text:
                        yield text


class TurnStream(_Pieces):
    """A session turn's answer as it streams; once it has ended, `done` holds the kept
    message, the usage and the finish reason. Closed before that, nothing is kept."""

    def __init__(self, response):
        self.done: dict | None = None
        super().__init__(response)

    def _read(self) -> Iterator[str]:
        with self._response:
            for event in _events(self._response):
                if event["type"] == "error":
                    raise _error(500, event["error"], None)
                if event["type"] == "done":
                    self.done = event
                elif event["type"] == "delta":
                    yield event["content"]


def _multipart(fields: dict, files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type."""
    boundary = "offgrid-" + os.urandom(12).hex()
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     f"{value}\r\n".encode())
    for name, (file_name, data) in files.items():
        quoted = re.sub(r'[\\"\r\n]', "_", file_name)
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                     f'filename="{quoted}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                     .encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), \
        f"multipart/form-data; boundary={boundary}"


def _quoted(name: str) -> str:
    """A name as one segment of a URL path."""
    return urllib.parse.quote(name, safe="")


def _events(response) -> Iterator[dict]:
    for raw in response:
        line = raw.decode("utf-8").strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        yield json.loads(data)


def _error_from(failure: urllib.error.HTTPError) -> OffGridError:
    try:
        detail = json.loads(failure.read()).get("error") or {}
    except (ValueError, AttributeError):
        detail = {}
    retry_after = failure.headers.get("Retry-After") if failure.headers else None
    try:
        seconds = float(retry_after) if retry_after is not None else None
    except ValueError:
        seconds = None
    return _error(failure.code, detail, seconds)


# -- namespaces -----------------------------------------------------------------------------------

class System:
    def __init__(self, client: Client):
        self._client = client

    def config(self) -> dict:
        return self._client.request("GET", "/v1/system/config")

    def stats(self) -> dict:
        return self._client.request("GET", "/v1/system/stats")


class Users:
    """Users and their API keys (multi-user mode); see docs/multi-user.md for who may do what."""

    def __init__(self, client: Client):
        self._client = client

    def me(self) -> dict:
        return self._client.request("GET", "/v1/users/me")

    def list(self) -> list[dict]:
        return self._client.request("GET", "/v1/users")["data"]

    def get(self, user_id: int) -> dict:
        return self._client.request("GET", f"/v1/users/{int(user_id)}")

    def create(self, username: str, password: str, role: str = "user") -> dict:
        return self._client.request("POST", "/v1/users", {"username": username,
                                                          "password": password, "role": role})

    def delete(self, user_id: int) -> dict:
        return self._client.request("DELETE", f"/v1/users/{int(user_id)}")

    def set_role(self, user_id: int, role: str) -> dict:
        return self._client.request("PUT", f"/v1/users/{int(user_id)}/role", {"role": role})

    def api_keys(self, user_id: int) -> list[dict]:
        return self._client.request("GET", f"/v1/users/{int(user_id)}/api-keys")["data"]

    def create_api_key(self, user_id: int, name: str = "API key", **limits) -> dict:
        """A new `og_…` key; its secret is in the answer's "key", shown this once. `limits`:
        requests_per_minute, tokens_per_day."""
        return self._client.request("POST", f"/v1/users/{int(user_id)}/api-keys",
                                    {"name": name, **limits})

    def revoke_api_key(self, user_id: int, key_id: int) -> dict:
        return self._client.request("DELETE",
                                    f"/v1/users/{int(user_id)}/api-keys/{int(key_id)}")


class Models:
    def __init__(self, client: Client):
        self._client = client

    def list(self) -> list[dict]:
        return self._client.request("GET", "/v1/models")["data"]

    def get(self, model: str) -> dict:
        return self._client.request("GET", f"/v1/models/{_quoted(model)}")

    def delete(self, model: str) -> dict:
        return self._client.request("DELETE",
                                    f"/v1/models/{_quoted(model)}")

    def search(self, query: str) -> list[dict]:
        return self._client.request("GET", "/v1/search", query={"query": query})["data"]

    def download(self, repository: str, file_name: str | None = None,
                 progress: Callable[[int, int | None], None] | None = None,
                 poll: float = 0.5) -> dict:
        """Download a GGUF file from the hub the server reaches, waiting until it is done;
        `progress(bytes_done, bytes_total)` is called as it goes. Returns the final state."""
        body = {"repository": repository}
        if file_name:
            body["file_name"] = file_name
        job = self._client.request("POST", "/v1/models/download", body)
        while True:
            if progress is not None:
                progress(job["bytes_done"], job["bytes_total"])
            if job["status"] == "completed":
                return job
            if job["status"] in ("failed", "cancelled"):
                raise DownloadFailed(job.get("error") or job["status"], code=job["status"])
            time.sleep(poll)
            job = self._client.request("GET", "/v1/models/download/progress",
                                       query={"id": job["id"]})["data"][0]

    def cancel_download(self, download_id: str | None = None) -> list[dict]:
        body = {"id": download_id} if download_id else {}
        return self._client.request("POST", "/v1/models/download/cancel", body)["data"]

    def import_from(self, path: str) -> dict:
        """Copy the models in a folder on the server's machine into its models folder."""
        return self._client.request("POST", "/v1/models/import", {"path": str(path)})

    def export(self, model: str, path: str) -> dict:
        """Copy a model and its sha256 manifest to a folder on the server's machine."""
        return self._client.request("POST", "/v1/models/export",
                                    {"model": model, "path": str(path)})


class KnowledgeBase:
    """Documents in the server's knowledge base, and search over them."""

    def __init__(self, client: Client):
        self._client = client

    def add(self, path: str | os.PathLike | None = None, *, name: str | None = None,
            content: str | None = None, metadata: dict | None = None,
            progress: Callable[[int, int], None] | None = None, poll: float = 0.3) -> dict:
        """Add a file (`path`), or text (`content`, under `name`), and wait until it is
        searchable; the document. `progress(chunks_done, chunks_total)` follows the embedding.
        The same content again gives the document already there."""
        if (path is None) == (content is None):
            raise ValueError("give either a path or content")
        later = progress is not None
        if path is not None:
            with open(path, "rb") as file:
                data = file.read()
            fields = {"async": "true"} if later else {}
            if name:
                fields["name"] = name
            answer = self._client.request("POST", "/v1/documents/ingest", fields, files={
                "file": (os.path.basename(os.fspath(path)), data)})
        else:
            answer = self._client.request("POST", "/v1/documents/ingest", {
                "name": name or "text", "content": content, "metadata": metadata or {},
                "async": later})
        if not later:
            return answer["document"]
        job = answer["job"]
        while True:
            progress(job["done"], job["total"])
            if job["status"] == "completed":
                return self.get(job["result"]["document_id"])
            if job["status"] == "failed":
                raise OffGridError(job["error"] or "the document could not be added",
                                   code="ingest_failed")
            time.sleep(poll)
            job = self._client.request("GET", f"/v1/documents/jobs/{job['id']}")

    def list(self) -> list[dict]:
        return self._client.request("GET", "/v1/documents")["documents"]

    def get(self, document_id: int) -> dict:
        return self._client.request("GET", f"/v1/documents/{document_id}")

    def chunk(self, document_id: int, index: int) -> dict:
        """One passage of a document, as a citation names it."""
        return self._client.request("GET", f"/v1/documents/{document_id}/chunks/{index}")

    def search(self, query: str, top_k: int = 5, **options) -> list[dict]:
        """The best passages for `query`; options: min_score, document_filter, mode
        ("hybrid", "keyword" or "vector"), diversity."""
        return self._client.request("POST", "/v1/documents/search",
                                    {"query": query, "top_k": top_k, **options})["results"]

    def delete(self, document_id: int) -> dict:
        return self._client.request("DELETE", f"/v1/documents/{document_id}")

    def status(self) -> dict:
        return self._client.request("GET", "/v1/rag/status")

    def enable(self, embedding_model: str | None = None) -> dict:
        body = {"embedding_model": embedding_model} if embedding_model else {}
        return self._client.request("POST", "/v1/rag/enable", body)

    def disable(self) -> dict:
        return self._client.request("POST", "/v1/rag/disable")


class Sessions:
    """Conversations kept on the server (in multi-user mode, the caller's own): each turn is
    kept with its answer, and the next one continues it."""

    def __init__(self, client: Client):
        self._client = client

    def create(self, name: str, model: str | None = None, system_prompt: str = "") -> dict:
        return self._client.request("POST", "/v1/sessions", {
            "name": name, "model": model, "system_prompt": system_prompt})

    def list(self, search: str | None = None) -> list[dict]:
        """The sessions, the latest used first; `search` keeps those whose name or messages
        hold it."""
        query = {"search": search} if search else None
        return self._client.request("GET", "/v1/sessions", query=query)["sessions"]

    def get(self, name: str) -> dict:
        return self._client.request("GET", f"/v1/sessions/{_quoted(name)}")

    def update(self, name: str, **changes) -> dict:
        """Change its `name`, `model` or `system_prompt`."""
        return self._client.request("PATCH", f"/v1/sessions/{_quoted(name)}", changes)

    def delete(self, name: str) -> dict:
        return self._client.request("DELETE", f"/v1/sessions/{_quoted(name)}")

    def messages(self, name: str) -> list[dict]:
        return self._client.request("GET", f"/v1/sessions/{_quoted(name)}/messages")["messages"]

    def say(self, name: str, content: str, stream: bool = False, **params):
        """The next turn: {"message", "usage", "finish_reason"}; or, streaming, a TurnStream of
        the answer's text. `params`: max_tokens, temperature, top_p, seed, stop,
        use_knowledge_base, ..."""
        path, body = f"/v1/sessions/{_quoted(name)}/generate", {"content": content, **params}
        if stream:
            return TurnStream(self._client._open("POST", path, {**body, "stream": True}))
        return self._client.request("POST", path, body)

    def export(self, name: str, format: str = "json"):
        """The session with its messages: a dict, or with format="md" Markdown text."""
        with self._client._open("GET", f"/v1/sessions/{_quoted(name)}/export", None,
                                {"format": format}) as response:
            raw = response.read()
        return raw.decode("utf-8") if format == "md" else json.loads(raw)


class Agents:
    """Tasks worked through by a model with tools; the tools, and (admins) the MCP servers
    whose tools join them."""

    def __init__(self, client: Client):
        self._client = client
        self.mcp = McpServers(client)

    def run(self, task: str, model: str | None = None, stream: bool = False, **options):
        """The run: {"output", "steps", "usage", "finish_reason", "task_id"}; or, streaming, an
        AgentEvents of its events as they happen. Options: style ("native" or "react"),
        max_steps, tools (names), system_prompt, timeout_s, tool_choice ("auto" or
        "required"), temperature, seed."""
        body = {"prompt": task, **({"model": model} if model else {}), **options}
        if stream:
            return AgentEvents(self._client._open("POST", "/v1/agents/run",
                                                  {**body, "stream": True}))
        return self._client.request("POST", "/v1/agents/run", body)

    def tools(self, all: bool = False) -> list[dict]:
        """The tools that are on; with all=True the others too."""
        query = {"all": "true"} if all else None
        return self._client.request("GET", "/v1/agents/tools", query=query)["tools"]

    def set_tool(self, name: str, enabled: bool) -> dict:
        """Turn a tool on or off for every run from now on (an admin's right)."""
        return self._client.request("PATCH", "/v1/agents/tools",
                                    {"name": name, "enabled": enabled})

    def call_tool(self, name: str, arguments: dict | None = None) -> dict:
        """Call one tool as an agent would, without a model: {"result", "is_error", ...}."""
        return self._client.request("POST", "/v1/agents/tools/call",
                                    {"name": name, "arguments": arguments or {}})


class AgentEvents:
    """A run's events as they happen: dicts whose "type" is status, token (a piece of the
    answer), step, error or done (the last, with the output). Closing it hangs up, and the
    server stops the run, its generation and its running tool call."""

    def __init__(self, response):
        self._response = response
        self._events = _events(response)
        self.done: dict | None = None  # the done event, once it has come

    def __iter__(self) -> "AgentEvents":
        return self

    def __next__(self) -> dict:
        event = next(self._events)
        if event.get("type") == "done":
            self.done = event
        return event

    def close(self) -> None:
        self._events.close()
        self._response.close()


class McpServers:
    """The MCP servers whose tools agents may use (admins only in multi-user mode)."""

    def __init__(self, client: Client):
        self._client = client

    def list(self) -> list[dict]:
        return self._client.request("GET", "/v1/agents/mcp")["servers"]

    def add(self, name: str, command: str | None = None, args: list[str] | None = None, *,
            env: dict | None = None, cwd: str | None = None, url: str | None = None,
            headers: dict | None = None) -> dict:
        """Add a server run as a program (`command`, `args`) or reached at `url`; it is kept
        and connected from now on."""
        return self._client.request("POST", "/v1/agents/mcp", _mcp_body(
            name, command, args, env, cwd, url, headers))

    def test(self, command: str | None = None, args: list[str] | None = None, *,
             name: str | None = None, env: dict | None = None, cwd: str | None = None,
             url: str | None = None, headers: dict | None = None) -> dict:
        """Connect to a server without keeping it (or, by `name` alone, to one that is kept):
        whether it answers, and its tools."""
        return self._client.request("POST", "/v1/agents/mcp/test", _mcp_body(
            name, command, args, env, cwd, url, headers))

    def remove(self, name: str) -> dict:
        return self._client.request("DELETE", f"/v1/agents/mcp/{_quoted(name)}")


def _mcp_body(name, command, args, env, cwd, url, headers) -> dict:
    given = {"name": name, "command": command, "args": args, "env": env, "cwd": cwd,
             "url": url, "headers": headers}
    return {key: value for key, value in given.items() if value is not None}
