"""The OpenAPI 3.1 description of every endpoint, served at /openapi.json.

Operations are keyed by (method, path) exactly as the route table spells them; a test checks
that the two list the same endpoints.
"""

from __future__ import annotations

from .. import __version__


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict, required: tuple[str, ...] = (), extra: bool = True) -> dict:
    schema = {"type": "object", "properties": properties, "required": list(required)}
    if not extra:
        schema["additionalProperties"] = False
    return schema


def _array(items: dict, **bounds) -> dict:
    return {"type": "array", "items": items, **bounds}


def _number(low: float, high: float) -> dict:
    return {"type": "number", "minimum": low, "maximum": high}


INT = {"type": "integer"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
NULLABLE_STR = {"type": ["string", "null"]}

_text_part = _obj({"type": {"const": "text"}, "text": STR}, ("type", "text"))
_content = {"anyOf": [STR, _array(_text_part)]}
_tool_call = _obj({"id": STR, "type": {"const": "function"},
                   "function": _obj({"name": STR, "arguments": STR}, ("name", "arguments"))},
                  ("id", "type", "function"))
_message = {"oneOf": [
    _obj({"role": {"enum": ["system", "developer", "user"]}, "content": _content,
          "name": STR}, ("role", "content")),
    _obj({"role": {"const": "assistant"}, "content": {"anyOf": [_content, {"type": "null"}]},
          "tool_calls": _array(_tool_call, minItems=1)}, ("role",)),
    _obj({"role": {"const": "tool"}, "content": _content, "tool_call_id": STR},
         ("role", "content", "tool_call_id")),
]}
_stop = {"anyOf": [STR, _array(STR, maxItems=4), {"type": "null"}]}
_logit_bias = {"type": "object", "additionalProperties": _number(-100, 100),
               "propertyNames": {"pattern": "^[0-9]+$"}}

MODEL = _ref("ModelId")

_sampling = {
    "model": MODEL, "temperature": _number(0, 2), "top_p": _number(0, 1),
    "top_k": {"type": "integer", "minimum": 0}, "min_p": _number(0, 1),
    "frequency_penalty": _number(-2, 2), "presence_penalty": _number(-2, 2),
    "repeat_penalty": _number(0, 2), "seed": INT, "stop": _stop,
    "n": {"type": "integer", "minimum": 1, "maximum": 16}, "logit_bias": _logit_bias,
    "stream": BOOL, "stream_options": _obj({"include_usage": BOOL}), "user": STR,
}

SCHEMAS = {
    "Error": _obj({"error": _obj({"message": STR, "type": STR, "code": NULLABLE_STR,
                                  "param": NULLABLE_STR}, ("message", "type", "code", "param"))},
                  ("error",)),
    "ChatCompletionRequest": _obj({
        **_sampling, "messages": _array(_message, minItems=1),
        "max_tokens": {"type": "integer", "minimum": 1},
        "max_completion_tokens": {"type": "integer", "minimum": 1},
        "logprobs": BOOL, "top_logprobs": {"type": "integer", "minimum": 0, "maximum": 20},
        "response_format": {"oneOf": [
            _obj({"type": {"enum": ["text", "json_object"]}}, ("type",)),
            _obj({"type": {"const": "json_schema"}, "json_schema": _obj(
                {"name": STR, "description": STR, "schema": {"type": "object"}, "strict": BOOL},
                ("name",))}, ("type", "json_schema"))]},
        "tools": _array(_obj({"type": {"const": "function"}, "function": _obj(
            {"name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
             "description": STR, "parameters": {"type": "object"}, "strict": BOOL},
            ("name",))}, ("type", "function"))),
        "tool_choice": {"anyOf": [{"enum": ["none", "auto", "required"]}, _obj(
            {"type": {"const": "function"}, "function": _obj({"name": STR}, ("name",))},
            ("type", "function"))]},
        "parallel_tool_calls": BOOL,
    }, ("model", "messages")),
    "CompletionRequest": _obj({
        **_sampling, "prompt": {"anyOf": [STR, _array(STR, minItems=1, maxItems=1)]},
        "suffix": NULLABLE_STR, "echo": BOOL, "max_tokens": {"type": "integer", "minimum": 1},
        "logprobs": {"type": "integer", "minimum": 0, "maximum": 5},
    }, ("model", "prompt")),
    "EmbeddingRequest": _obj({
        "model": MODEL, "input": {"anyOf": [STR, _array(STR, minItems=1),
                                          _array({"type": "integer", "minimum": 0}, minItems=1),
                                          _array(_array({"type": "integer", "minimum": 0},
                                                        minItems=1), minItems=1)]},
        "encoding_format": {"enum": ["float", "base64"]},
        "dimensions": {"type": "integer", "minimum": 1}, "user": STR,
    }, ("model", "input")),
    "Usage": _obj({"prompt_tokens": INT, "completion_tokens": INT, "total_tokens": INT,
                   "prompt_tokens_details": _obj({"cached_tokens": INT})},
                  ("prompt_tokens", "completion_tokens", "total_tokens")),
    "ChatCompletion": _obj({
        "id": STR, "object": {"const": "chat.completion"}, "created": INT, "model": STR,
        "system_fingerprint": STR, "usage": _ref("Usage"), "timings": {"type": "object"},
        "choices": _array(_obj({
            "index": INT, "finish_reason": {"enum": ["stop", "length", "tool_calls"]},
            "logprobs": {"type": ["object", "null"]},
            "message": _obj({"role": {"const": "assistant"}, "content": NULLABLE_STR,
                             "tool_calls": _array(_tool_call)}, ("role", "content"))},
            ("index", "message", "finish_reason")))},
        ("id", "object", "created", "model", "choices", "usage")),
    "Completion": _obj({
        "id": STR, "object": {"const": "text_completion"}, "created": INT, "model": STR,
        "system_fingerprint": STR, "usage": _ref("Usage"), "timings": {"type": "object"},
        "choices": _array(_obj({"index": INT, "text": STR,
                                "finish_reason": {"enum": ["stop", "length"]},
                                "logprobs": {"type": ["object", "null"]}},
                               ("index", "text", "finish_reason")))},
        ("id", "object", "created", "model", "choices", "usage")),
    "EmbeddingList": _obj({
        "object": {"const": "list"}, "model": STR,
        "data": _array(_obj({"object": {"const": "embedding"}, "index": INT,
                             "embedding": {"anyOf": [_array({"type": "number"}), STR]}},
                            ("object", "index", "embedding"))),
        "usage": _obj({"prompt_tokens": INT, "total_tokens": INT},
                      ("prompt_tokens", "total_tokens"))}, ("object", "data", "model", "usage")),
    "Model": _obj({"id": STR, "object": {"const": "model"}, "created": INT, "owned_by": STR,
                   "size_bytes": INT, "files": _array(STR), "architecture": NULLABLE_STR,
                   "parameters": {"type": ["integer", "null"]}, "quantization": NULLABLE_STR,
                   "context_length": {"type": ["integer", "null"]},
                   "chat_template": {"type": ["boolean", "null"]},
                   "embedding": {"type": ["boolean", "null"]}, "loaded": BOOL,
                   "expires_in": {"type": ["number", "null"]}, "error": NULLABLE_STR},
                  ("id", "object", "created", "owned_by")),
    "Download": _obj({"id": STR, "repository": STR, "file_name": STR, "status": {"enum": [
        "starting", "downloading", "verifying", "completed", "failed", "cancelled"]},
        "bytes_done": INT, "bytes_total": {"type": ["integer", "null"]},
        "percent": {"type": ["number", "null"]}, "error": NULLABLE_STR},
        ("id", "repository", "file_name", "status", "bytes_done")),
    "CopyReport": _obj({"copied": _array(STR), "skipped": _array(STR),
                        "failed": {"type": "object", "additionalProperties": STR}},
                       ("copied", "skipped", "failed")),
    "DownloadRequest": _obj({"repository": STR, "file_name": STR}, ("repository",)),
    "CancelRequest": _obj({"id": STR}),
    "FolderRequest": _obj({"path": STR}, ("path",)),
    "ExportRequest": _obj({"model": STR, "path": STR}, ("model", "path")),
    "SearchResult": _obj({"id": STR, "downloads": {"type": ["integer", "null"]},
                          "likes": {"type": ["integer", "null"]}}, ("id",)),
    "TokenizeRequest": _obj({"model": MODEL, "content": STR, "add_special": BOOL,
                             "parse_special": BOOL, "with_pieces": BOOL}, ("model", "content")),
    "DetokenizeRequest": _obj({"model": MODEL, "tokens": _array({"type": "integer",
                                                                "minimum": 0})},
                              ("model", "tokens")),
}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _ref("Error")
_GENERATION_RESPONSES = {"text/event-stream": {"schema": STR}}


def _list_of(name: str) -> dict:
    return _obj({"object": {"const": "list"}, "data": _array(_ref(name))}, ("object", "data"))


def _operation(summary: str, response: dict, request: str | None = None,
               errors: tuple[int, ...] = (), streams: bool = False,
               parameters: list | None = None, status: str = "200",
               body_required: bool = True) -> dict:
    ok = _json(response)
    if streams:
        ok["content"].update(_GENERATION_RESPONSES)
    operation = {"summary": summary,
                 "responses": {status: ok, **{str(s): _json(_ERROR, "Error") for s in errors}}}
    if request:
        operation["requestBody"] = {"required": body_required,
                                    "content": {"application/json": {"schema": _ref(request)}}}
    if parameters:
        operation["parameters"] = parameters
    return operation


_BODY_ERRORS = (400, 404, 413, 500, 503)
_MODEL_ID = [{"name": "model_id", "in": "path", "required": True, "schema": STR}]

OPERATIONS = {
    ("GET", "/"): _operation("Server name, version and status", _obj(
        {"name": STR, "version": STR, "status": STR}, ("name", "version", "status"))),
    ("GET", "/health"): _operation("Healthy once the default model is loaded", _obj(
        {"status": {"const": "healthy"}}, ("status",)), errors=(503,)),
    ("GET", "/openapi.json"): _operation("This document", {"type": "object"}),
    ("GET", "/metrics"): {"summary": "Prometheus metrics, in its text format", "responses": {
        "200": {"description": "OK", "content": {"text/plain": {"schema": STR}}}}},
    ("GET", "/v1/system/config"): _operation("Mode, features and default model", _obj(
        {"multi_user_mode": BOOL, "require_auth": BOOL, "guest_access": BOOL, "version": STR,
         "default_model": NULLABLE_STR, "features": {"type": "object"}},
        ("multi_user_mode", "require_auth", "guest_access", "version", "features"))),
    ("GET", "/v1/system/stats"): _operation("Live statistics", _obj(
        {k: {"type": "number"} for k in (
            "cpu_percent", "memory_bytes", "models_loaded", "active_sessions", "requests_total",
            "tokens_generated", "uptime_seconds")},
        ("cpu_percent", "memory_bytes", "models_loaded", "active_sessions", "requests_total",
         "tokens_generated", "uptime_seconds"))),
    ("GET", "/v1/models"): _operation("The models in the models folder", _list_of("Model")),
    ("GET", "/v1/models/{model_id}"): _operation("One model", _ref("Model"), errors=(400, 404),
                                                 parameters=_MODEL_ID),
    ("DELETE", "/v1/models/{model_id}"): _operation(
        "Unload and delete a model", _obj({"id": STR, "object": {"const": "model"},
                                           "deleted": BOOL}, ("id", "deleted")),
        errors=(400, 404, 503), parameters=_MODEL_ID),
    ("POST", "/v1/models/download"): _operation(
        "Start downloading a GGUF file from the hub", _ref("Download"), "DownloadRequest",
        (400, 404, 413, 502, 503), status="202"),
    ("GET", "/v1/models/download/progress"): _operation(
        "Downloads and how far they got", _list_of("Download"),
        parameters=[{"name": "id", "in": "query", "required": False, "schema": STR}]),
    ("POST", "/v1/models/download/cancel"): _operation(
        "Cancel one download, or all", _list_of("Download"), "CancelRequest", (400, 404, 413),
        body_required=False),
    ("POST", "/v1/models/import"): _operation(
        "Copy models in from a folder on this machine", _ref("CopyReport"), "FolderRequest",
        (400, 404, 413)),
    ("POST", "/v1/models/export"): _operation(
        "Copy a model and its sha256 manifest to a folder on this machine", _ref("CopyReport"),
        "ExportRequest", (400, 404, 413, 500)),
    ("GET", "/v1/search"): _operation(
        "Search the hub for GGUF models", _list_of("SearchResult"), errors=(400, 502, 503),
        parameters=[{"name": "query", "in": "query", "required": True, "schema": STR}]),
    ("POST", "/v1/chat/completions"): _operation(
        "Chat completion", _ref("ChatCompletion"), "ChatCompletionRequest", _BODY_ERRORS, True),
    ("POST", "/v1/completions"): _operation(
        "Text completion", _ref("Completion"), "CompletionRequest", _BODY_ERRORS, True),
    ("POST", "/v1/embeddings"): _operation(
        "Embeddings", _ref("EmbeddingList"), "EmbeddingRequest", _BODY_ERRORS),
    ("POST", "/v1/tokenize"): _operation(
        "Text to tokens", _obj({"tokens": _array({"anyOf": [INT, _obj({"id": INT,
                                                                          "piece": STR})]})},
                                 ("tokens",)), "TokenizeRequest", _BODY_ERRORS),
    ("POST", "/v1/detokenize"): _operation(
        "Tokens to text", _obj({"content": STR}, ("content",)), "DetokenizeRequest",
        _BODY_ERRORS),
}


def document(model_ids: list[str]) -> dict:
    """The description, with the models this server has as examples of `model`."""
    paths: dict = {}
    for (method, path), operation in OPERATIONS.items():
        paths.setdefault(path, {})[method.lower()] = operation
    return {"openapi": "3.1.0",
            "info": {"title": "OffGrid LLM", "version": __version__,
                     "description": "An offline LLM server with an OpenAI-compatible API."},
            "servers": [{"url": "/"}], "paths": paths,
            "components": {"schemas": {**SCHEMAS, "ModelId": {"type": "string",
                                                               "examples": model_ids}}}}
