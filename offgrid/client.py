"""The Python library: talk to an OffGrid server with the standard library only.

    import offgrid
    client = offgrid.Client()            # http://127.0.0.1:11611, or $OFFGRID_URL
    print(client.chat("Hello!"))
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator

DEFAULT_TIMEOUT = 600.0


class OffGridError(Exception):
    """An error answered by the server (status, code and message from its error body), or a
    connection failure (status 0)."""

    def __init__(self, message: str, status: int = 0, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


def _default_host() -> str:
    if os.environ.get("OFFGRID_URL"):
        return os.environ["OFFGRID_URL"]
    host = os.environ.get("OFFGRID_HOST") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{os.environ.get('OFFGRID_PORT') or 11611}"


class Client:
    def __init__(self, host: str | None = None, api_key: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT):
        self.host = (host or _default_host()).rstrip("/")
        self.api_key = api_key or os.environ.get("OFFGRID_API_KEY")
        self.timeout = timeout

    # -- the API --

    def health(self) -> dict:
        return self._call("GET", "/health")

    def chat(self, message_or_messages: str | list[dict], model: str | None = None,
             system: str | None = None, stream: bool = False, **params):
        """The assistant's answer as text, or an iterator of text pieces when streaming."""
        messages = ([{"role": "user", "content": message_or_messages}]
                    if isinstance(message_or_messages, str) else list(message_or_messages))
        if system is not None:
            messages.insert(0, {"role": "system", "content": system})
        body = {"model": model or self.default_model(), "messages": messages, **params}
        if stream:
            return self._stream_text("/v1/chat/completions", body,
                                     lambda choice: choice["delta"].get("content"))
        return self._call("POST", "/v1/chat/completions", body)["choices"][0]["message"]["content"]

    def complete(self, prompt: str, model: str | None = None, stream: bool = False, **params):
        """The continuation of `prompt` as text, or an iterator of text pieces when streaming."""
        body = {"model": model or self.default_model(), "prompt": prompt, **params}
        if stream:
            return self._stream_text("/v1/completions", body, lambda choice: choice.get("text"))
        return self._call("POST", "/v1/completions", body)["choices"][0]["text"]

    def embed(self, texts: str | list[str], model: str) -> list[list[float]]:
        """One vector per text (a single text gives a list holding one vector)."""
        body = {"model": model, "input": texts, "encoding_format": "float"}
        return [item["embedding"] for item in self._call("POST", "/v1/embeddings", body)["data"]]

    def models(self) -> list[dict]:
        return self._call("GET", "/v1/models")["data"]

    def default_model(self) -> str:
        model = self._call("GET", "/v1/system/config").get("default_model")
        if not model:
            raise OffGridError("The server has no default model; pass model=...")
        return model

    # -- transport --

    def _open(self, method: str, path: str, body: dict | None):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.host + path, data=data, method=method,
                                         headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            raise _error_from(error) from None
        except (urllib.error.URLError, OSError) as error:
            raise OffGridError(f"Cannot reach the OffGrid server at {self.host}: {error}") from None

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        with self._open(method, path, body) as response:
            return json.loads(response.read())

    def _stream_text(self, path: str, body: dict, text_of) -> Iterator[str]:
        response = self._open("POST", path, {**body, "stream": True})

        def pieces():
            with response:
                for raw in response:
                    line = raw.decode("utf-8").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    event = json.loads(data)
                    if "error" in event:
                        raise OffGridError(event["error"].get("message", "stream failed"),
                                           500, event["error"].get("code"))
                    for choice in event.get("choices", []):
                        text = text_of(choice)
                        if text:
                            yield text

        return pieces()


def _error_from(error: urllib.error.HTTPError) -> OffGridError:
    try:
        detail = json.loads(error.read()).get("error", {})
    except (ValueError, AttributeError):
        detail = {}
    return OffGridError(detail.get("message") or f"HTTP {error.code}", error.code,
                        detail.get("code"))
