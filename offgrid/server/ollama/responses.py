"""Ollama's answers: chat and generate as one JSON object or as NDJSON lines (the last with
`done`, `done_reason` and durations in nanoseconds; an error after the first line is a last
`{"error"}` line), tool calls with their arguments as objects, embeddings, pull progress, and
the model cards that /api/tags, /api/show and /api/ps list."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

from ...engine import toolcalling
from ...engine.generate import Run
from ...engine.requests import Failed, Finished, Text
from ...engine.sampling import SamplingParams
from ...engine.toolcalling import ToolUse
from ...models.folder import ModelFile
from ...models.hub import Download
from ..errors import ApiError, BadGateway, translate
from ..http import ClientGone, NdjsonStream, Response
from ..openai.responses import shortened

# Header keys that say a model fills in the middle (llama.cpp's newer name, then its older).
FIM_KEYS = ("tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id")
TEMPLATE_KEY = "tokenizer.chat_template"
FOREVER = "9999-12-31T23:59:59Z"  # when a model kept loaded for ever expires
PROGRESS_SECONDS = 0.25  # how often a pull looks at its download


def error_body(error: ApiError) -> dict:
    """Ollama's error shape, for every error its routes answer."""
    return {"error": error.message}


def timestamp(seconds: float | None = None) -> str:
    """RFC 3339 in UTC, as Ollama writes times: now, or `seconds` since the epoch."""
    moment = datetime.fromtimestamp(time.time() if seconds is None else seconds, timezone.utc)
    return moment.isoformat().replace("+00:00", "Z")


# -- chat and generate -----------------------------------------------------------------------------

class Reply:
    """One chat or generate answer being built, whole or line by line."""

    def __init__(self, model: str, started_ns: int, load_ns: int):
        self.model = model
        self.started_ns = started_ns  # when the request came (time.monotonic_ns)
        self.load_ns = load_ns  # how long loading the model took
        self.said = ""  # the text so far

    def line(self, **values) -> dict:
        return {"model": self.model, "created_at": timestamp(), **values}

    def ended(self, reason: str) -> dict:
        """The last line of a request that only loaded or unloaded the model."""
        return self.line(**self._empty(), done=True, done_reason=reason)

    def _done(self, finished: Finished) -> dict:
        return {"done": True, "done_reason": finished.reason,
                "total_duration": time.monotonic_ns() - self.started_ns,
                "load_duration": self.load_ns,
                "prompt_eval_count": finished.prompt_tokens,
                "prompt_eval_duration": int(finished.prompt_ms * 1e6),
                "eval_count": finished.completion_tokens,
                "eval_duration": int(finished.generation_ms * 1e6)}

    def _empty(self) -> dict:
        raise NotImplementedError

    def piece(self, text: str) -> dict | None:
        """The line for newly generated text; None while it is held back."""
        raise NotImplementedError

    def closing(self, finished: Finished) -> list[dict]:
        return [self.line(**self._empty(), **self._done(finished))]

    def whole(self, finished: Finished) -> dict:
        raise NotImplementedError


class GenerateReply(Reply):
    def _empty(self) -> dict:
        return {"response": ""}

    def piece(self, text: str) -> dict:
        self.said += text
        return self.line(response=text, done=False)

    def whole(self, finished: Finished) -> dict:
        return self.line(response=self.said, **self._done(finished))


class ChatReply(Reply):
    def __init__(self, model: str, started_ns: int, load_ns: int, tool_use: ToolUse | None,
                 citations: list[dict] | None = None):
        super().__init__(model, started_ns, load_ns)
        self.tool_use = tool_use
        self.citations = citations  # the knowledge base's passages it was given, if asked
        self._holding = tool_use is not None  # text that may be a tool call is held back
        self._cited = False

    def _empty(self) -> dict:
        return {"message": {"role": "assistant", "content": ""}}

    def _message(self, content: str, calls: list | None = None) -> dict:
        message = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        if self.citations is not None and not self._cited:
            message["citations"], self._cited = self.citations, True
        return message

    def piece(self, text: str) -> dict | None:
        self.said += text
        if self._holding:
            if not self.said.strip() or toolcalling.is_call(self.said):
                return None  # a tool call is written whole, at the end
            self._holding, text = False, self.said
        return self.line(message=self._message(text), done=False)

    def _calls(self) -> list[dict] | None:
        calls = toolcalling.parse(self.said) if self.tool_use else None
        return [{"function": {"name": c.name, "arguments": c.arguments}} for c in calls or ()]

    def closing(self, finished: Finished) -> list[dict]:
        held = [] if not self._holding or toolcalling.is_call(self.said) else [self.said]
        calls = self._calls() if self._holding else None
        lines = [self.line(message=self._message(text, calls), done=False)
                 for text in held or ([""] if calls else [])]
        return lines + super().closing(finished)

    def whole(self, finished: Finished) -> dict:
        calling = self.tool_use is not None and toolcalling.is_call(self.said)
        return self.line(message=self._message("" if calling else self.said, self._calls()),
                         **self._done(finished))


def render(run: Run, reply: Reply, stream: bool) -> Response:
    """The answer to a run: NDJSON lines, or one JSON object."""
    if stream:
        return NdjsonStream(_lines(run, reply))
    return Response(_whole(run, reply))


def _lines(run: Run, reply: Reply) -> Iterator[dict]:
    try:
        for _, event in run:
            if isinstance(event, Text):
                line = reply.piece(event.text)
                if line is not None:
                    yield line
            elif isinstance(event, Failed):
                yield error_body(translate(event.error))
            else:
                yield from reply.closing(event)
    finally:
        run.close()


def _whole(run: Run, reply: Reply) -> dict:
    finished = None
    try:
        for _, event in run:
            if isinstance(event, Failed):
                raise translate(event.error)
            if isinstance(event, Text):
                reply.said += event.text
            else:
                finished = event
    finally:
        run.close()
    if finished is None:
        raise ClientGone()
    return reply.whole(finished)


# -- the models ------------------------------------------------------------------------------------

def parameter_size(parameters: int) -> str:
    """As Ollama writes it: "135M", "7.2B"."""
    if parameters >= 1e9:
        return f"{parameters / 1e9:.1f}B"
    return f"{parameters / 1e6:.0f}M"


def details(model_file: ModelFile) -> dict:
    info = model_file.info
    family = info.architecture if info else ""
    return {"parent_model": "", "format": "gguf", "family": family,
            "families": [family] if family else None,
            "parameter_size": parameter_size(info.parameters) if info else "",
            "quantization_level": (info.quantization or "") if info else ""}


def card(name: str, model_file: ModelFile, digest: str) -> dict:
    """A model as /api/tags lists it."""
    return {"name": name, "model": name, "modified_at": timestamp(model_file.modified),
            "size": model_file.size, "digest": digest, "details": details(model_file)}


def capabilities(model_file: ModelFile) -> list[str]:
    info = model_file.info
    if info is None:
        return []
    if info.is_embedding:
        return ["embedding"]
    return ["completion", "tools"] + (["insert"] if any(
        key in info.metadata for key in FIM_KEYS) else [])


def show(model_file: ModelFile, context_length: int) -> dict:
    """/api/show: the header's keys as `model_info`, its chat template, what sampling a request
    gets unless it says otherwise, and what the model can do."""
    info = model_file.info
    metadata = dict(info.metadata) if info else {}
    template = metadata.pop(TEMPLATE_KEY, "")
    if info:
        metadata["general.parameter_count"] = info.parameters
    sampling = SamplingParams()  # what a request gets unless its options say otherwise
    defaults = "\n".join(f"{key} {value}" for key, value in (
        ("num_ctx", context_length), ("temperature", sampling.temperature),
        ("top_k", sampling.top_k), ("top_p", sampling.top_p), ("min_p", sampling.min_p)))
    return {"modelfile": f"FROM {model_file.path}\n", "parameters": defaults,
            "template": template, "license": metadata.get("general.license", ""),
            "details": details(model_file), "model_info": metadata,
            "capabilities": capabilities(model_file),
            "modified_at": timestamp(model_file.modified)}


def running(name: str, model_file: ModelFile, digest: str, memory: int,
            expires_at: float | None, context_length: int) -> dict:
    """A loaded model as /api/ps lists it; `expires_at` in monotonic seconds."""
    expires = FOREVER if expires_at is None else timestamp(
        time.time() + expires_at - time.monotonic())
    return {"name": name, "model": name, "size": memory, "digest": digest,
            "details": details(model_file), "expires_at": expires, "size_vram": 0,
            "context_length": context_length}


def embeddings(model: str, vectors, prompt_tokens: int, started_ns: int, load_ns: int,
               dimensions: int | None) -> dict:
    return {"model": model,
            "embeddings": [[float(x) for x in shortened(v, dimensions)] for v in vectors],
            "total_duration": time.monotonic_ns() - started_ns, "load_duration": load_ns,
            "prompt_eval_count": prompt_tokens}


# -- pull ------------------------------------------------------------------------------------------

def pull(job: Download, stream: bool, caller_gone: Callable[[], bool]) -> Response:
    """A download's progress as Ollama's pull reports it, line by line until it ends; or, not
    streamed, its end."""
    if stream:
        return NdjsonStream(_progress(job, caller_gone))
    for _ in _progress(job, caller_gone):
        pass
    if job.status != "completed":
        raise BadGateway(job.error or f"The download was {job.status}")
    return Response({"status": "success"})


def _progress(job: Download, caller_gone: Callable[[], bool]) -> Iterator[dict]:
    yield {"status": "pulling manifest"}
    said = None
    while not caller_gone():
        finished = job.finished  # read first, so that the last state read is the final one
        line = _state(job)
        if line is not None and line != said:
            said = line
            yield line
        if finished:
            break
        time.sleep(PROGRESS_SECONDS)
    if job.status == "completed":
        yield {"status": "success"}
    elif job.finished:
        yield {"error": job.error or f"The download was {job.status}"}


def _state(job: Download) -> dict | None:
    """How far the download is, as a progress line; None before its bytes start."""
    if job.status == "verifying":
        return {"status": "verifying sha256 digest"}
    if job.status not in ("downloading", "completed"):
        return None
    line = {"status": f"pulling {job.file_name}", "total": job.bytes_total,
            "completed": job.bytes_done}
    if job.sha256:
        line["digest"] = "sha256:" + job.sha256
    return line
