"""Ollama's request bodies as typed requests, read whole before anything happens.

Each endpoint's request is a frozen dataclass whose `parse(body)` checks everything that needs
no model, and builds what the engine is asked: the same GenerationRequest and SamplingParams
the OpenAI face builds. Fields Ollama has and this server does not use (`think`, `template`,
`context`, `num_gpu`...) are ignored, as Ollama ignores fields it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...engine import grammar, toolcalling
from ...engine.errors import InvalidGrammar
from ...engine.requests import GenerationRequest
from ...engine.sampling import SamplingParams
from ...engine.toolcalling import ToolCall, ToolUse
from ...models.folder import NotFound
from .. import fields
from ..errors import BadRequest
from ..fields import invalid
from ..openai.requests import KnowledgeOptions, parse_tool_use

MAX_STOP_STRINGS = 16
MAX_EMBEDDING_INPUTS = 2048
ROLES = {"system", "user", "assistant", "tool"}
LATEST = ":latest"


def model_id(name: str) -> str:
    """The model id an Ollama name means: every model here is `<id>:latest`, and Ollama's
    clients may leave the tag out. A name with another tag names no model here."""
    base = name[:-len(LATEST)] if name.endswith(LATEST) else name
    if ":" in base:
        raise NotFound(name)
    return base


def model_name(body: dict) -> str:
    """The body's `model`; older clients send it as `name`."""
    return fields.string({"model": body.get("model") or body.get("name")}, "model")


@dataclass(frozen=True)
class Generating:
    """What chat and generate share: the model, how long it stays loaded, how to sample."""
    model: str  # the name as the client sent it, which the answers repeat
    model_id: str
    keep_alive: float | None
    stream: bool
    sampling: SamplingParams
    max_tokens: int | None
    stop: tuple[str, ...]

    @staticmethod
    def common(body: dict, grammar_text: str | None) -> dict:
        name = model_name(body)
        options = fields.obj(body, "options")
        predict = fields.integer(options, "num_predict", None, -2)
        fields.integer(options, "num_ctx", None, 1)  # a slot's context is the server's
        return {"model": name, "model_id": model_id(name), "keep_alive": fields.keep_alive(body),
                "stream": fields.boolean(body, "stream", True),
                "sampling": _sampling(options, grammar_text),
                "max_tokens": predict if predict is not None and predict > 0 else None,
                "stop": fields.stop_strings(options, "stop", MAX_STOP_STRINGS, "options.stop")}

    @property
    def unloads(self) -> bool:
        """keep_alive 0: unload the model as soon as this request is done."""
        return self.keep_alive == 0

    def _request(self, **prompt) -> GenerationRequest:
        return GenerationRequest(**prompt, sampling=self.sampling, max_tokens=self.max_tokens,
                                 stop=list(self.stop))


def _sampling(options: dict, grammar_text: str | None) -> SamplingParams:
    defaults = SamplingParams()
    seed = fields.integer(options, "seed", None, -(2 ** 63), 2 ** 64 - 1)
    return SamplingParams(
        grammar=grammar_text,
        temperature=fields.number(options, "temperature", defaults.temperature, 0.0, 2.0),
        top_p=fields.number(options, "top_p", defaults.top_p, 0.0, 1.0),
        top_k=fields.integer(options, "top_k", defaults.top_k, 0),
        min_p=fields.number(options, "min_p", defaults.min_p, 0.0, 1.0),
        seed=None if seed is None or seed < 0 else seed,  # Ollama's -1: a random seed
        frequency_penalty=fields.number(options, "frequency_penalty", 0.0, -2.0, 2.0),
        presence_penalty=fields.number(options, "presence_penalty", 0.0, -2.0, 2.0),
        repeat_penalty=fields.number(options, "repeat_penalty", defaults.repeat_penalty, 0.0,
                                     2.0) or 1.0)



def _format_grammar(body: dict) -> str | None:
    """`format`: "json" for any JSON object, or a JSON Schema the answer must match."""
    value = body.get("format")
    if value in (None, ""):
        return None
    if value == "json":
        return grammar.json_object()
    if not isinstance(value, dict):
        raise invalid("format", '"json" or a JSON Schema object', value)
    try:
        return grammar.json_schema(value)
    except InvalidGrammar as error:
        raise BadRequest(f"The JSON schema in 'format' cannot be enforced: {error}",
                         code="invalid_value", param="format") from None


def _no_images(item: dict, where: str) -> None:
    if item.get("images"):
        raise BadRequest("The models of this server read text only; send no 'images'",
                         code="invalid_value", param=f"{where}images")


# -- chat ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChatRequest(Generating):
    messages: tuple[tuple[str, str], ...]  # empty: only load (or unload) the model
    tool_use: ToolUse | None
    knowledge: KnowledgeOptions | None

    @classmethod
    def parse(cls, body: dict) -> "ChatRequest":
        tool_use = parse_tool_use(body)  # tool_choice, an extra field, as OpenAI has it
        messages = _messages(body.get("messages"))
        grammar_text = _format_grammar(body)
        if tool_use is not None and messages:
            if grammar_text is not None:
                raise BadRequest("'format' cannot be combined with 'tools'",
                                 code="invalid_value", param="format")
            messages = toolcalling.with_instructions(messages, tool_use)
            grammar_text = toolcalling.call_grammar(tool_use)
        return cls(**cls.common(body, grammar_text), messages=tuple(messages),
                   tool_use=tool_use, knowledge=KnowledgeOptions.parse(body))

    def generation_request(self, messages: list[tuple[str, str]] | None = None
                           ) -> GenerationRequest:
        """`messages` in place of the request's own (with sources added)."""
        return self._request(messages=list(self.messages) if messages is None else messages)


def _messages(value) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid("messages", "an array of messages", value)
    return [_message(message, f"messages[{i}]") for i, message in enumerate(value)]


def _message(message, where: str) -> tuple[str, str]:
    """A message as the (role, text) the chat template renders; tool calls and results as the
    tool-calling prompt writes them."""
    if not isinstance(message, dict):
        raise invalid(where, "an object with 'role' and 'content'", message)
    role = message.get("role")
    if role not in ROLES:
        raise invalid(f"{where}.role", "one of " + ", ".join(sorted(ROLES)), role)
    _no_images(message, f"{where}.")
    content = fields.optional_string(message, "content") or ""
    if role == "assistant" and message.get("tool_calls"):
        return "assistant", toolcalling.call_text(_tool_calls(message["tool_calls"],
                                                              f"{where}.tool_calls"))
    if role == "tool":
        return "user", toolcalling.result_text(fields.optional_string(message, "tool_name"),
                                               content)
    return role, content


def _tool_calls(calls, where: str) -> list[ToolCall]:
    """An assistant's earlier calls: Ollama writes their arguments as objects."""
    expected = 'an array of {"function": {"name": ..., "arguments": {...}}}'
    if not isinstance(calls, list):
        raise invalid(where, expected, calls)
    read = []
    for i, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise invalid(f"{where}[{i}]", expected, call)
        read.append(ToolCall(function["name"], function.get("arguments") or {}))
    return read


# -- generate --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GenerateRequest(Generating):
    prompt: str  # empty: only load (or unload) the model
    system: str | None
    suffix: str | None  # fill in the middle
    raw: bool  # the prompt as it is, without the chat template

    @classmethod
    def parse(cls, body: dict) -> "GenerateRequest":
        _no_images(body, "")
        return cls(**cls.common(body, _format_grammar(body)),
                   prompt=fields.optional_string(body, "prompt") or "",
                   system=fields.optional_string(body, "system") or None,
                   suffix=fields.optional_string(body, "suffix") or None,
                   raw=fields.boolean(body, "raw", False))

    def generation_request(self, has_template: bool) -> GenerationRequest:
        """The prompt through the chat template, as Ollama's templates take it, unless it is
        raw, fills in the middle, or the model has no template."""
        if self.raw or self.suffix is not None or not has_template:
            prompt = self.prompt if self.system is None or self.raw else (
                self.system + "\n\n" + self.prompt)
            return self._request(prompt=prompt, suffix=self.suffix)
        system = [("system", self.system)] if self.system else []
        return self._request(messages=[*system, ("user", self.prompt)])


# -- embeddings ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EmbedRequest:
    """/api/embed (`input`: a string or strings) and the older /api/embeddings (`prompt`)."""
    model: str
    model_id: str
    keep_alive: float | None
    inputs: tuple[str, ...]
    dimensions: int | None

    @classmethod
    def parse(cls, body: dict, field: str = "input") -> "EmbedRequest":
        value = body.get(field)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(
                isinstance(item, str) for item in value):
            raise invalid(field, "a string or a non-empty array of strings", value)
        if len(value) > MAX_EMBEDDING_INPUTS:
            raise invalid(field, f"at most {MAX_EMBEDDING_INPUTS} inputs", f"{len(value)} inputs")
        name = model_name(body)
        return cls(name, model_id(name), fields.keep_alive(body), tuple(value),
                   fields.integer(body, "dimensions", None, 1))


# -- the models ------------------------------------------------------------------------------------

def named_model(body: dict) -> tuple[str, str]:
    """(name, model id) of /api/show's and /api/delete's `model`."""
    name = model_name(body)
    return name, model_id(name)


@dataclass(frozen=True)
class CopyRequest:
    source: str
    destination: str

    @classmethod
    def parse(cls, body: dict) -> "CopyRequest":
        destination = fields.string(body, "destination")
        return cls(model_id(fields.string(body, "source")),
                   destination[:-len(LATEST)] if destination.endswith(LATEST) else destination)


@dataclass(frozen=True)
class PullRequest:
    """A model on the hub, as Ollama's clients name Hugging Face models:
    `[hf.co/]owner/repository[:tag]`, where a tag picks the GGUF file whose name has it (a
    quantization, say)."""
    name: str
    repository: str
    tag: str | None
    stream: bool

    HOSTS = ("hf.co/", "huggingface.co/")

    @classmethod
    def parse(cls, body: dict) -> "PullRequest":
        name = model_name(body)
        path = next((name[len(h):] for h in cls.HOSTS if name.startswith(h)), name)
        repository, _, tag = path.partition(":")
        if repository.count("/") != 1:
            raise invalid("model", "a Hugging Face repository: [hf.co/]owner/name[:tag]", name)
        return cls(name, repository, tag if tag not in ("", "latest") else None,
                   fields.boolean(body, "stream", True))
