"""OpenAI's request bodies as typed requests, read whole before anything happens.

Each endpoint's request is a frozen dataclass: `parse(body)` does every check that needs no
model (so a bad request loads nothing, evicts nothing), and `check_against(model)` the few that
need the loaded model: token ids below its vocabulary, embedding dimensions. Errors name the
parameter the way OpenAI's API does. The requests then say what to ask of the engine.

The other chat faces (Anthropic's Messages, OpenAI's Responses) read their bodies into a
ChatCompletionRequest, with the readers here that do not depend on the body's shape: `sampling`,
`lora_choices`, `tool`, `choose_tools` and `schema_grammar`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

from ...engine import grammar, toolcalling
from ...engine.errors import InvalidGrammar
from ...engine.generate import choices
from ...engine.llama import Model
from ...engine.requests import GenerationRequest
from ...engine.sampling import SamplingParams
from ...engine.toolcalling import Tool, ToolCall, ToolUse
from .. import fields
from ..errors import BadRequest
from ..fields import invalid, is_token, is_token_array, missing

MAX_STOP_STRINGS = 4
MAX_CHOICES = 16
MAX_TOP_LOGPROBS = 20
MAX_COMPLETION_LOGPROBS = 5
MAX_EMBEDDING_INPUTS = 2048
MAX_ADAPTERS = 8  # LoRA adapters one request may combine
MAX_ADAPTER_SCALE = 10.0
KNOWLEDGE_TOP_K = 4  # passages a chat with the knowledge base gets, unless it asks otherwise
CHAT_ROLES = {"system", "developer", "user", "assistant", "tool"}
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NO_PARAMETERS = {"type": "object", "properties": {}}

# OpenAI parameters this server does not implement, with the value that asks for nothing.
CHAT_UNSUPPORTED = {"modalities": ["text"], "audio": {}, "prediction": {}, "functions": [],
                    "function_call": "none", "web_search_options": {}}
COMPLETION_UNSUPPORTED = {"best_of": 1}


# -- what chat and completions share ---------------------------------------------------------------

@dataclass(frozen=True)
class Generating:
    """The parts of a chat or completion request that say how to generate."""
    model: str
    keep_alive: float | None
    n: int  # choices per prompt
    sampling: SamplingParams
    max_tokens: int | None
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool
    lora: tuple[tuple[str, float], ...]  # (adapter id or name, scale), as asked

    @staticmethod
    def common(body: dict, max_tokens: int | None, grammar: str | None = None) -> dict:
        stream, include_usage = _streaming(body)
        return {"model": fields.string(body, "model"), "keep_alive": fields.keep_alive(body),
                "n": fields.integer(body, "n", 1, 1, MAX_CHOICES),
                "sampling": sampling(body, grammar), "max_tokens": max_tokens,
                "stop": fields.stop_strings(body, "stop", MAX_STOP_STRINGS), "stream": stream,
                "include_usage": include_usage, "lora": lora_choices(body)}

    def check_against(self, model: Model) -> None:
        for token, _ in self.sampling.logit_bias:
            if token >= model.n_vocab:
                raise invalid("logit_bias", f"token ids from 0 to {model.n_vocab - 1} as keys",
                              str(token))

    def _choices(self, request: GenerationRequest) -> list[GenerationRequest]:
        return choices(replace(request, sampling=self.sampling, max_tokens=self.max_tokens,
                               stop=list(self.stop)), self.n)


def sampling(body: dict, grammar_text: str | None) -> SamplingParams:
    """The sampling parameters a body gives (by OpenAI's names), under `grammar_text`."""
    defaults = SamplingParams()
    return SamplingParams(
        logit_bias=_logit_bias(body), grammar=grammar_text,
        temperature=fields.number(body, "temperature", defaults.temperature, 0.0, 2.0),
        top_p=fields.number(body, "top_p", defaults.top_p, 0.0, 1.0),
        top_k=fields.integer(body, "top_k", defaults.top_k, 0),
        min_p=fields.number(body, "min_p", defaults.min_p, 0.0, 1.0),
        seed=fields.integer(body, "seed", None, -(2 ** 63), 2 ** 64 - 1),
        frequency_penalty=fields.number(body, "frequency_penalty", 0.0, -2.0, 2.0),
        presence_penalty=fields.number(body, "presence_penalty", 0.0, -2.0, 2.0),
        repeat_penalty=fields.number(body, "repeat_penalty", defaults.repeat_penalty, 0.0, 2.0)
        or 1.0)


def lora_choices(body: dict) -> tuple[tuple[str, float], ...]:
    """`lora`: [{"id" or "name": ..., "scale": 1.0}, ...], the LoRA adapters to apply (the
    model they are loaded for checks that they exist and fit it)."""
    value = body.get("lora")
    if value is None:
        return ()
    expected = f'an array of up to {MAX_ADAPTERS} {{"id" or "name", "scale"}} objects'
    if not isinstance(value, list) or len(value) > MAX_ADAPTERS or not all(
            isinstance(item, dict) for item in value):
        raise invalid("lora", expected, value)
    chosen = []
    for i, item in enumerate(value):
        keys = [item[k] for k in ("id", "name") if item.get(k) is not None]
        if len(keys) != 1 or not isinstance(keys[0], str) or not keys[0]:
            raise invalid(f"lora[{i}]", 'an object with one of "id" or "name"', item)
        scale = item.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (
                -MAX_ADAPTER_SCALE <= scale <= MAX_ADAPTER_SCALE):
            raise invalid(f"lora[{i}].scale", f"a number from {-MAX_ADAPTER_SCALE} to "
                                              f"{MAX_ADAPTER_SCALE}", scale)
        chosen.append((keys[0], float(scale)))
    return tuple(chosen)


def _logit_bias(body: dict) -> tuple[tuple[int, float], ...]:
    """{"token id": bias from -100 to 100}; -100 bans a token, 100 all but forces it."""
    value = body.get("logit_bias")
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise invalid("logit_bias", "an object mapping token ids to numbers", value)
    biases = []
    for key, bias in value.items():
        if not (key.isascii() and key.isdigit()) or len(key) > 9:
            raise invalid("logit_bias", "token ids as keys", key)
        if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not -100 <= bias <= 100:
            raise invalid("logit_bias", "biases from -100 to 100", bias)
        biases.append((int(key), -float("inf") if bias == -100 else float(bias)))
    return tuple(biases)



def _streaming(body: dict) -> tuple[bool, bool]:
    """(stream, include_usage)."""
    stream = fields.boolean(body, "stream", False)
    options = body.get("stream_options")
    if options is None:
        return stream, False
    if not stream:
        raise BadRequest("'stream_options' is only allowed when 'stream' is true",
                         code="invalid_value", param="stream_options")
    if not isinstance(options, dict):
        raise invalid("stream_options", "an object", options)
    return stream, fields.boolean(options, "include_usage", False)


# -- chat ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KnowledgeOptions:
    """`use_knowledge_base` and its `knowledge_base` options: passages for the prompt."""
    top_k: int
    min_score: float | None
    document_filter: list[int] | None

    @classmethod
    def parse(cls, body: dict) -> "KnowledgeOptions | None":
        if not fields.boolean(body, "use_knowledge_base", False):
            if body.get("knowledge_base") is not None:
                raise BadRequest("'knowledge_base' needs 'use_knowledge_base': true",
                                 code="invalid_value", param="knowledge_base")
            return None
        options = fields.obj(body, "knowledge_base")
        filter_ = options.get("document_filter")
        if filter_ is not None and (not isinstance(filter_, list) or not all(
                is_token(d) for d in filter_)):
            raise invalid("knowledge_base.document_filter", "an array of document ids", filter_)
        min_score = options.get("min_score")
        if min_score is not None and (isinstance(min_score, bool) or not isinstance(
                min_score, (int, float))):
            raise invalid("knowledge_base.min_score", "a number", min_score)
        top_k = options.get("top_k", KNOWLEDGE_TOP_K)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 20:
            raise invalid("knowledge_base.top_k", "an integer from 1 to 20", top_k)
        return cls(top_k, None if min_score is None else float(min_score), filter_)


@dataclass(frozen=True)
class ChatCompletionRequest(Generating):
    messages: tuple[tuple[str, str], ...]  # (role, text) as the chat template renders them
    logprobs: int | None  # None: none; n: each token's and its n likeliest alternatives'
    tool_use: ToolUse | None
    knowledge: KnowledgeOptions | None  # passages from the knowledge base go in the prompt

    @classmethod
    def parse(cls, body: dict) -> "ChatCompletionRequest":
        fields.reject_unsupported(body, CHAT_UNSUPPORTED)
        tool_use = parse_tool_use(body)
        messages = _chat_messages(body)
        grammar_text = _response_grammar(body)
        if tool_use is not None:
            if grammar_text is not None:
                raise BadRequest("'response_format' cannot be combined with tools; set "
                                 "'tool_choice' to \"none\" or leave 'response_format' out",
                                 code="invalid_value", param="response_format")
            messages = toolcalling.with_instructions(messages, tool_use)
            grammar_text = toolcalling.call_grammar(tool_use)
        max_tokens = fields.integer(body, "max_completion_tokens", None, 1)
        if max_tokens is None:  # the older name
            max_tokens = fields.integer(body, "max_tokens", None, 1)
        return cls(**cls.common(body, max_tokens, grammar_text), messages=tuple(messages),
                   logprobs=_chat_logprobs(body), tool_use=tool_use,
                   knowledge=KnowledgeOptions.parse(body))

    def generation_requests(self, messages: list[tuple[str, str]] | None = None
                            ) -> list[GenerationRequest]:
        """The n choices; `messages` in place of the request's own (with sources added)."""
        chosen = list(self.messages) if messages is None else messages
        return self._choices(GenerationRequest(messages=chosen, logprobs=self.logprobs))


def _chat_logprobs(body: dict) -> int | None:
    """None unless `logprobs` is true; then how many alternatives (`top_logprobs`) to list."""
    top = fields.integer(body, "top_logprobs", None, 0, MAX_TOP_LOGPROBS)
    if not fields.boolean(body, "logprobs", False):
        if top:
            raise BadRequest("'top_logprobs' needs 'logprobs': true", code="invalid_value",
                             param="top_logprobs")
        return None
    return top or 0


def _response_grammar(body: dict) -> str | None:
    """The grammar `response_format` asks for: None for text, else JSON of the given shape."""
    value = body.get("response_format")
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return grammar.json_object()
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(
                spec.get("schema", {}), dict):
            raise invalid("response_format", '{"type": "json_schema", "json_schema": {"name": '
                                             '..., "schema": {...}}}', value)
        return schema_grammar(spec.get("schema", {}), "response_format")
    raise invalid("response_format", 'type "text", "json_object" or "json_schema"', value)


def schema_grammar(schema: dict, param: str) -> str:
    """The grammar of JSON that `schema` allows; a 400 naming `param` if it cannot be enforced."""
    try:
        return grammar.json_schema(schema)
    except InvalidGrammar as error:
        raise BadRequest(f"The JSON schema in '{param}' cannot be enforced: {error}",
                         code="invalid_value", param=param) from None


def _chat_messages(body: dict) -> list[tuple[str, str]]:
    messages = body.get("messages")
    if messages is None:
        raise missing("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages", "a non-empty array of messages", messages)
    tool_names: dict[str, str] = {}  # tool call id -> function name, to label results
    return [_message(message, f"messages[{i}]", tool_names) for i, message in enumerate(messages)]


def _message(message, where: str, tool_names: dict[str, str]) -> tuple[str, str]:
    """A message as the (role, text) the chat template renders."""
    if not isinstance(message, dict):
        raise invalid(where, "an object with 'role' and 'content'", message)
    role = message.get("role")
    if role not in CHAT_ROLES:
        raise invalid(f"{where}.role", "one of " + ", ".join(sorted(CHAT_ROLES)), role)
    if role == "assistant" and message.get("tool_calls") is not None:
        calls = _tool_calls(message["tool_calls"], f"{where}.tool_calls")
        tool_names.update({call_id: call.name for call_id, call in calls})
        return "assistant", toolcalling.call_text([call for _, call in calls])
    content = _content(message.get("content"), f"{where}.content")
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str):
            raise invalid(f"{where}.tool_call_id", "the id of the call this answers", call_id)
        return "user", toolcalling.result_text(tool_names.get(call_id), content)
    return ("system" if role == "developer" else role), content


def _tool_calls(calls, where: str) -> list[tuple[str, ToolCall]]:
    """(id, call) for each of an assistant message's earlier calls."""
    expected = 'an array of {"id", "type": "function", "function": {"name", "arguments"}}'
    if not isinstance(calls, list) or not calls:
        raise invalid(where, expected, calls)
    read = []
    for i, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(call.get("id"), str) or not all(
                isinstance(function.get(k), str) for k in ("name", "arguments")):
            raise invalid(f"{where}[{i}]", expected, call)
        read.append((call["id"], ToolCall(function["name"], call_arguments(function["arguments"]))))
    return read


def call_arguments(arguments: str):
    """A call's arguments as JSON, or as the text they were when they are not JSON."""
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def _content(content, where: str) -> str:
    """A string, or an array of text parts joined together."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(
                    part.get("text"), str):
                raise invalid(f"{where}[{i}]", "a text part {\"type\": \"text\", \"text\": ...}",
                              part)
            texts.append(part["text"])
        return "".join(texts)
    raise invalid(where, "a string or an array of text parts", content)


def parse_tool_use(body: dict) -> ToolUse | None:
    """The request's tool use, or None when it offers no tools or says tool_choice "none"
    (Ollama's requests read it the same way)."""
    tools = _tools(body.get("tools"))
    choice = body.get("tool_choice")
    if choice not in (None, "none", "auto", "required"):
        choice = _forced_name(choice)
    return choose_tools(tools, choice, fields.boolean(body, "parallel_tool_calls", True))


def choose_tools(tools: tuple[Tool, ...], choice: str | None, parallel: bool) -> ToolUse | None:
    """The tool use of a request offering `tools`, whose choice is None (not given), "none",
    "auto", "required", or the name of the one tool to call."""
    if choice is None:
        choice = "auto" if tools else "none"
    if choice == "none":
        return None
    if not tools:
        raise BadRequest("'tool_choice' needs 'tools'", code="invalid_value", param="tool_choice")
    if choice in ("auto", "required"):
        return ToolUse(tools, choice == "required", None, parallel)
    if choice not in {t.name for t in tools}:
        raise BadRequest(f"'tool_choice' names {choice!r}, which is not among 'tools'",
                         code="invalid_value", param="tool_choice")
    return ToolUse(tools, True, choice, parallel)


def _tools(value) -> tuple[Tool, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid("tools", "an array of function tools", value)
    return tuple(_tool(item, f"tools[{i}]") for i, item in enumerate(value))


def _tool(item, where: str) -> Tool:
    function = item.get("function") if isinstance(item, dict) else None
    if not isinstance(item, dict) or item.get("type") != "function" or not isinstance(function,
                                                                                     dict):
        raise invalid(where, 'an object {"type": "function", "function": {...}}', item)
    return tool(function, f"{where}.function", "parameters")


def tool(spec: dict, where: str, schema_field: str) -> Tool:
    """A tool from an object with its `name`, `description` and, in `schema_field`, the JSON
    Schema of its arguments; errors name its fields under `where`."""
    name = spec.get("name")
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        raise invalid(f"{where}.name", "1 to 64 letters, digits, '_' or '-'", name)
    description = fields.optional_string(spec, "description") or ""
    parameters = spec.get(schema_field) or NO_PARAMETERS
    if not isinstance(parameters, dict):
        raise invalid(f"{where}.{schema_field}", "a JSON Schema object", parameters)
    try:
        grammar.json_schema(parameters)  # refused here, the tool can be named
    except InvalidGrammar as error:
        raise BadRequest(f"The parameters of {name!r} cannot be enforced: {error}",
                         code="invalid_value", param=f"{where}.{schema_field}") from None
    return Tool(name, description, parameters)


def _forced_name(choice) -> str:
    function = choice.get("function") if isinstance(choice, dict) else None
    if not isinstance(function, dict) or choice.get("type") != "function" or not isinstance(
            function.get("name"), str):
        raise invalid("tool_choice", '"none", "auto", "required" or {"type": "function", '
                                     '"function": {"name": ...}}', choice)
    return function["name"]


# -- completions -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CompletionRequest(Generating):
    prompts: tuple[str | tuple[int, ...], ...]  # each gets n choices, numbered prompt by prompt
    suffix: str | None  # fill in the middle
    echo: bool
    logprobs: int | None

    @classmethod
    def parse(cls, body: dict) -> "CompletionRequest":
        fields.reject_unsupported(body, COMPLETION_UNSUPPORTED)
        echo = fields.boolean(body, "echo", False)
        logprobs = fields.integer(body, "logprobs", None, 0, MAX_COMPLETION_LOGPROBS)
        if echo and logprobs is not None:
            raise BadRequest("'echo' with 'logprobs' (log-probabilities of the prompt) is not "
                             "supported", code="unsupported_parameter", param="echo")
        suffix = fields.optional_string(body, "suffix") or None
        prompts = _prompts(body)
        if suffix is not None and not all(isinstance(p, str) for p in prompts):
            raise BadRequest("'suffix' needs the prompt as text", code="invalid_value",
                             param="suffix")
        return cls(**cls.common(body, fields.integer(body, "max_tokens", None, 1)),
                   prompts=prompts, suffix=suffix, echo=echo, logprobs=logprobs)

    def check_against(self, model: Model) -> None:
        super().check_against(model)
        _within_vocabulary("prompt", self.prompts, model)

    def generation_requests(self) -> list[GenerationRequest]:
        return [request for prompt in self.prompts for request in self._choices(
            GenerationRequest(prompt=prompt if isinstance(prompt, str) else list(prompt),
                              suffix=self.suffix, logprobs=self.logprobs))]


def _prompts(body: dict) -> tuple[str | tuple[int, ...], ...]:
    """As OpenAI takes them: a string, an array of strings, an array of token ids, or an array
    of such arrays."""
    value = _texts_or_tokens(body, "prompt", "a string, an array of strings, an array of token "
                                             "ids, or an array of those", allow_empty=True)
    if len(value) > MAX_CHOICES:
        raise invalid("prompt", f"at most {MAX_CHOICES} prompts", f"{len(value)} prompts")
    return value


def _texts_or_tokens(body: dict, name: str, expected: str, allow_empty: bool
                     ) -> tuple[str | tuple[int, ...], ...]:
    value = body.get(name)
    if value is None:
        raise missing(name)
    if isinstance(value, str) or is_token_array(value):
        value = [value]
    if not isinstance(value, list) or not value or not all(
            (isinstance(item, str) and (allow_empty or item)) or is_token_array(item)
            for item in value):
        raise invalid(name, expected, value)
    return tuple(item if isinstance(item, str) else tuple(item) for item in value)


def _within_vocabulary(name: str, items, model: Model) -> None:
    highest = max((max(item) for item in items if not isinstance(item, str)), default=-1)
    if highest >= model.n_vocab:
        raise invalid(name, f"token ids below the model's vocabulary size {model.n_vocab}",
                      highest)


# -- embeddings and the tokenizer ------------------------------------------------------------------

@dataclass(frozen=True)
class EmbeddingRequest:
    model: str
    keep_alive: float | None
    inputs: tuple[str | tuple[int, ...], ...]
    encoding: str  # "float" or "base64"
    dimensions: int | None  # keep the first ones, scaled back to unit length

    @classmethod
    def parse(cls, body: dict) -> "EmbeddingRequest":
        inputs = _texts_or_tokens(body, "input", "a non-empty string or array of token ids, or a "
                                                 "non-empty array of those", allow_empty=False)
        if len(inputs) > MAX_EMBEDDING_INPUTS:
            raise BadRequest(f"Too many inputs: {len(inputs)}; at most {MAX_EMBEDDING_INPUTS} "
                             "per request", code="invalid_value", param="input")
        return cls(fields.string(body, "model"), fields.keep_alive(body), inputs,
                   fields.choice(body, "encoding_format", ("float", "base64")),
                   fields.integer(body, "dimensions", None, 1))

    def check_against(self, model: Model) -> None:
        _within_vocabulary("input", self.inputs, model)
        if self.dimensions is not None and self.dimensions > model.n_embd:
            raise invalid("dimensions", f"an integer from 1 to {model.n_embd}", self.dimensions)

    @property
    def texts(self) -> list[str | list[int]]:
        return [item if isinstance(item, str) else list(item) for item in self.inputs]


@dataclass(frozen=True)
class TokenizeRequest:
    model: str
    content: str
    add_special: bool
    parse_special: bool
    with_pieces: bool

    @classmethod
    def parse(cls, body: dict) -> "TokenizeRequest":
        content = body.get("content")
        if not isinstance(content, str):
            raise invalid("content", "a string", content)
        return cls(fields.string(body, "model"), content,
                   fields.boolean(body, "add_special", True),
                   fields.boolean(body, "parse_special", True),
                   fields.boolean(body, "with_pieces", False))


@dataclass(frozen=True)
class DetokenizeRequest:
    model: str
    tokens: tuple[int, ...]

    @classmethod
    def parse(cls, body: dict) -> "DetokenizeRequest":
        tokens = body.get("tokens")
        if not isinstance(tokens, list) or not all(is_token(t) for t in tokens):
            raise invalid("tokens", "an array of token ids", tokens)
        return cls(fields.string(body, "model"), tuple(tokens))

    def check_against(self, model: Model) -> None:
        if any(t >= model.n_vocab for t in self.tokens):
            raise invalid("tokens", f"an array of token ids from 0 to {model.n_vocab - 1}",
                          max(self.tokens))
