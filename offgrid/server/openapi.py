"""The OpenAPI 3.1 description of every endpoint, served at /openapi.json.

Operations are keyed by (method, path) exactly as the route table spells them; a test checks
that the two list the same endpoints.
"""

from __future__ import annotations

from .. import __version__
from .routes import ui


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
NULLABLE_INT = {"type": ["integer", "null"]}

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
SESSION_NAME = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}

_text_parts = {"anyOf": [STR, _array(_obj({"type": {"enum": ["input_text", "output_text"]},
                                           "text": STR}, ("type", "text")))]}
_response_item = {"oneOf": [
    _obj({"type": {"const": "message"}, "role": {"enum": [
        "user", "assistant", "system", "developer"]}, "content": _text_parts},
        ("role", "content")),
    _obj({"type": {"const": "function_call"}, "call_id": STR, "name": STR, "arguments": STR},
         ("type", "call_id", "name", "arguments")),
    _obj({"type": {"const": "function_call_output"}, "call_id": STR, "output": _text_parts},
         ("type", "call_id", "output")),
]}
_anthropic_text = _obj({"type": {"const": "text"}, "text": STR}, ("type", "text"))
_anthropic_tool_use = _obj({"type": {"const": "tool_use"}, "id": STR, "name": STR,
                            "input": {"type": "object"}}, ("type", "id", "name", "input"))
_anthropic_tool_result = _obj({
    "type": {"const": "tool_result"}, "tool_use_id": STR, "is_error": BOOL,
    "content": {"anyOf": [STR, _array(_anthropic_text)]}}, ("type", "tool_use_id"))
_anthropic_conversation = {
    "model": MODEL, "system": {"anyOf": [STR, _array(_anthropic_text)]},
    "messages": _array({"oneOf": [
        _obj({"role": {"const": "user"}, "content": {"anyOf": [STR, _array(
            {"oneOf": [_anthropic_text, _anthropic_tool_result]}, minItems=1)]}},
            ("role", "content")),
        _obj({"role": {"const": "assistant"}, "content": {"anyOf": [STR, _array(
            {"oneOf": [_anthropic_text, _anthropic_tool_use]}, minItems=1)]}},
            ("role", "content"))]}, minItems=1),
    "tools": _array(_obj({"name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                          "description": STR, "input_schema": {"type": "object"}},
                         ("name", "input_schema"))),
    "tool_choice": _obj({"type": {"enum": ["auto", "any", "tool", "none"]}, "name": STR,
                         "disable_parallel_tool_use": BOOL}, ("type",)),
}

# LoRA adapters by id or name (GET /v1/lora), each with its scale
_lora = _array({"oneOf": [_obj({"id": STR, "scale": _number(-10, 10)}, ("id",)),
                          _obj({"name": STR, "scale": _number(-10, 10)}, ("name",))]},
               maxItems=8)

_sampling = {
    "model": MODEL, "lora": _lora, "temperature": _number(0, 2), "top_p": _number(0, 1),
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
        "parallel_tool_calls": BOOL, "use_knowledge_base": BOOL,
        "knowledge_base": _obj({"top_k": {"type": "integer", "minimum": 1, "maximum": 20},
                                "min_score": {"type": "number"},
                                "document_filter": _array({"type": "integer", "minimum": 0})}),
    }, ("model", "messages")),
    "CompletionRequest": _obj({
        **_sampling, "prompt": {"anyOf": [
            STR, _array(STR, minItems=1, maxItems=16),
            _array({"type": "integer", "minimum": 0}, minItems=1),
            _array(_array({"type": "integer", "minimum": 0}, minItems=1), minItems=1,
                   maxItems=16)]},
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
                             "tool_calls": _array(_tool_call),
                             "citations": _array(_ref("Citation"))}, ("role", "content"))},
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
    "LoraAdapter": _obj({
        "id": STR, "name": STR, "path": STR, "scale": {"type": "number"},
        "base_model": NULLABLE_STR, "architecture": NULLABLE_STR,
        "alpha": {"type": ["number", "null"]}, "rank": NULLABLE_INT, "error": NULLABLE_STR,
        "loaded": BOOL, "loaded_for": _array(STR)},
        ("id", "name", "path", "scale", "base_model", "loaded")),
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
    "User": _obj({"id": INT, "object": {"const": "user"}, "username": STR,
                  "role": {"enum": ["admin", "user", "guest"]}, "created_at": INT,
                  "quota": _obj({"requests_per_minute": INT, "tokens_per_day": INT}),
                  "tokens_used_today": INT},
                 ("id", "object", "username", "role", "created_at", "quota")),
    "UserList": _obj({"object": {"const": "list"}, "data": _array(_ref("User"))},
                     ("object", "data")),
    "CreateUserRequest": _obj({"username": STR, "password": STR,
                               "role": {"enum": ["admin", "user", "guest"]}},
                              ("username", "password")),
    "RoleRequest": _obj({"role": {"enum": ["admin", "user", "guest"]}}, ("role",)),
    "LoginRequest": _obj({"username": STR, "password": STR}, ("username", "password")),
    "Login": _obj({"access_token": STR, "token_type": {"const": "bearer"}, "expires_in": INT,
                   "expires_at": INT, "user": _ref("User")},
                  ("access_token", "token_type", "expires_in", "expires_at", "user")),
    "ApiKey": _obj({"id": INT, "object": {"const": "api_key"}, "user_id": INT, "name": STR,
                    "prefix": STR, "created_at": INT, "last_used_at": NULLABLE_INT,
                    "revoked_at": NULLABLE_INT, "requests_per_minute": NULLABLE_INT,
                    "tokens_per_day": NULLABLE_INT, "key": STR},
                   ("id", "object", "user_id", "name", "prefix", "created_at")),
    "ApiKeyList": _obj({"object": {"const": "list"}, "data": _array(_ref("ApiKey"))},
                       ("object", "data")),
    "Citation": _obj({"index": INT, "document_id": INT, "document_name": STR,
                      "chunk_index": INT, "start_char": INT, "end_char": INT, "text": STR,
                      "score": {"type": "number"}},
                     ("index", "document_id", "document_name", "chunk_index", "text")),
    "RagStatus": _obj({"enabled": BOOL, "embedding_model": NULLABLE_STR,
                       "available_embedding_models": _array(STR), "documents": INT,
                       "chunks": INT, "reembedding": {"anyOf": [_ref("Job"), {"type": "null"}]}},
                      ("enabled", "embedding_model", "documents", "chunks")),
    "EnableRequest": _obj({"embedding_model": STR}),
    "Document": _obj({"id": INT, "object": {"const": "document"}, "name": STR,
                      "title": NULLABLE_STR, "content_type": STR, "size": INT, "sha256": STR,
                      "chunks": INT, "metadata": {"type": "object"}, "shared": BOOL,
                      "owner_id": NULLABLE_INT, "created_at": INT},
                     ("id", "object", "name", "content_type", "size", "chunks")),
    "DocumentList": _obj({"object": {"const": "list"}, "documents": _array(_ref("Document")),
                          "count": INT}, ("documents", "count")),
    "IngestRequest": _obj({"name": STR, "content": STR, "content_type": STR,
                           "metadata": {"type": "object"}, "async": BOOL}, ("name", "content")),
    "IngestUpload": _obj({"file": {"type": "string", "contentMediaType":
                                   "application/octet-stream"},
                          "name": STR, "async": {"enum": ["true", "false"]}}, ("file",)),
    "Ingest": _obj({"success": BOOL, "created": BOOL, "document": _ref("Document"),
                    "job": _ref("Job")}, ("success",)),
    "Job": _obj({"id": STR, "object": {"const": "job"}, "kind": {"enum": ["ingest", "reembed"]},
                 "status": {"enum": ["queued", "running", "completed", "failed"]}, "done": INT,
                 "total": INT, "percent": {"type": ["number", "null"]}, "error": NULLABLE_STR,
                 "result": {"type": "object"}, "created_at": INT},
                ("id", "object", "kind", "status", "done", "total")),
    "DocumentSearchRequest": _obj({
        "query": STR, "top_k": {"type": "integer", "minimum": 1, "maximum": 50},
        "min_score": {"type": "number"}, "mode": {"enum": ["hybrid", "keyword", "vector"]},
        "document_filter": _array({"type": "integer", "minimum": 0}),
        "diversity": _number(0, 1)}, ("query",)),
    "DocumentSearch": _obj({"object": {"const": "list"}, "query": STR, "results": _array(_obj({
        "content": STR, "document_id": INT, "document_name": STR, "chunk_index": INT,
        "start_char": INT, "end_char": INT, "section": _array(STR), "score": {"type": "number"},
        "similarity": {"type": ["number", "null"]}},
        ("content", "document_id", "document_name", "chunk_index", "score")))},
        ("query", "results")),
    "Chunk": _obj({"object": {"const": "chunk"}, "document_id": INT, "document_name": STR,
                   "chunk_index": INT, "content": STR, "start_char": INT, "end_char": INT,
                   "section": _array(STR)}, ("document_id", "chunk_index", "content")),
    "DeleteDocumentRequest": _obj({"id": {"anyOf": [INT, STR]}}, ("id",)),
    "ShareRequest": _obj({"shared": BOOL}, ("shared",)),
    "DocumentDeleted": _obj({"success": BOOL, "id": INT, "object": {"const": "document"},
                             "deleted": BOOL}, ("success", "id", "deleted")),
    "AgentRunRequest": _obj({
        "prompt": STR, "task": STR, "model": MODEL, "style": {"enum": ["native", "react"]},
        "max_steps": {"type": "integer", "minimum": 1, "maximum": 50}, "system_prompt": STR,
        "tools": _array(STR), "stream": BOOL, "timeout_s": _number(1, 3600),
        "tool_choice": {"enum": ["auto", "required"]}, "temperature": _number(0, 2),
        "seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}}),
    "AgentStep": _obj({"type": {"enum": ["thought", "tool_call", "tool_result", "answer",
                                         "error"]},
                       "content": STR, "tool_name": NULLABLE_STR, "tool_args": {},
                       "tool_result": NULLABLE_STR, "duration_ms": {"type": "number"}},
                      ("type", "content", "tool_name", "tool_args", "tool_result",
                       "duration_ms")),
    "AgentRun": _obj({"object": {"const": "agent.run"}, "task_id": STR, "model": STR,
                      "style": STR, "output": STR, "steps": _array(_ref("AgentStep")),
                      "usage": _obj({"prompt_tokens": INT, "completion_tokens": INT,
                                     "total_tokens": INT}),
                      "finish_reason": {"enum": ["stop", "max_steps", "timeout",
                                                 "repeated_failure", "length", "error"]}},
                     ("task_id", "output", "steps", "usage", "finish_reason")),
    "Tool": _obj({"name": STR, "description": STR, "parameters": {"type": "object"},
                  "enabled": BOOL, "source": {"enum": ["builtin", "mcp"]},
                  "server": NULLABLE_STR, "admins_only": BOOL, "timeout_s": {"type": "number"}},
                 ("name", "description", "parameters", "enabled", "source")),
    "ToolList": _obj({"object": {"const": "list"}, "tools": _array(_ref("Tool"))}, ("tools",)),
    "ToolSwitch": _obj({"name": STR, "enabled": BOOL}, ("name", "enabled")),
    "ToolCallRequest": _obj({"name": STR, "arguments": {"type": "object"}}, ("name",)),
    "ToolCallResult": _obj({"name": STR, "result": STR, "is_error": BOOL,
                            "content": _array({"type": "object"}), "structured_content": {},
                            "duration_ms": {"type": "number"}}, ("name", "result", "is_error")),
    "McpServerRequest": _obj({"name": STR, "command": STR, "args": _array(STR),
                              "env": {"type": "object", "additionalProperties": STR},
                              "cwd": STR, "url": STR,
                              "headers": {"type": "object", "additionalProperties": STR}},
                             ("name",)),
    "McpServer": _obj({"name": STR, "transport": {"enum": ["stdio", "http"]},
                       "status": {"enum": ["connecting", "connected", "crashed", "failed",
                                           "stopped"]},
                       "tools": INT, "last_error": NULLABLE_STR, "restarts": INT,
                       "stderr": _array(STR)}, ("name", "transport", "status", "tools")),
    "McpServerList": _obj({"object": {"const": "list"}, "servers": _array(_ref("McpServer"))},
                          ("servers",)),
    "McpTest": _obj({"ok": BOOL, "tools": _array(_obj({"name": STR, "description": STR,
                                                       "parameters": {"type": "object"}})),
                     "error": NULLABLE_STR, "stderr": _array(STR)}, ("ok", "tools")),
    "ResponseRequest": _obj({
        "model": MODEL, "input": {"anyOf": [STR, _array(_response_item, minItems=1)]},
        "instructions": NULLABLE_STR, "previous_response_id": NULLABLE_STR, "store": BOOL,
        "stream": BOOL, "temperature": _number(0, 2), "top_p": _number(0, 1),
        "max_output_tokens": {"type": "integer", "minimum": 1}, "parallel_tool_calls": BOOL,
        "tools": _array(_obj({"type": {"const": "function"},
                              "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                              "description": STR, "parameters": {"type": "object"},
                              "strict": BOOL}, ("type", "name"))),
        "tool_choice": {"anyOf": [{"enum": ["none", "auto", "required"]}, _obj(
            {"type": {"const": "function"}, "name": STR}, ("type", "name"))]},
        "text": _obj({"format": {"oneOf": [
            _obj({"type": {"enum": ["text", "json_object"]}}, ("type",)),
            _obj({"type": {"const": "json_schema"}, "name": STR, "schema": {"type": "object"},
                  "strict": BOOL}, ("type", "name", "schema"))]}}),
        "metadata": {"type": "object", "additionalProperties": STR}, "user": STR,
        "use_knowledge_base": BOOL, "knowledge_base": {"type": "object"}, "lora": _lora},
        ("model", "input")),
    "Response": _obj({
        "id": STR, "object": {"const": "response"}, "created_at": INT,
        "status": {"enum": ["completed", "incomplete", "failed", "in_progress"]},
        "model": STR, "output": _array({"type": "object"}), "previous_response_id": NULLABLE_STR,
        "instructions": NULLABLE_STR, "store": BOOL, "usage": {"type": ["object", "null"]},
        "citations": _array(_ref("Citation"))},
        ("id", "object", "created_at", "status", "model", "output")),
    "AnthropicError": _obj({"type": {"const": "error"}, "error": _obj(
        {"type": STR, "message": STR}, ("type", "message"))}, ("type", "error")),
    "AnthropicCountRequest": _obj(_anthropic_conversation, ("model", "messages")),
    "AnthropicMessageRequest": _obj({
        **_anthropic_conversation, "max_tokens": {"type": "integer", "minimum": 1},
        "stop_sequences": _array(STR, maxItems=16), "temperature": _number(0, 1),
        "top_p": _number(0, 1), "top_k": {"type": "integer", "minimum": 0}, "stream": BOOL,
        "metadata": {"type": "object"}, "use_knowledge_base": BOOL,
        "knowledge_base": {"type": "object"}, "lora": _lora},
        ("model", "messages", "max_tokens")),
    "AnthropicMessage": _obj({
        "id": STR, "type": {"const": "message"}, "role": {"const": "assistant"}, "model": STR,
        "content": _array({"oneOf": [_anthropic_text, _anthropic_tool_use]}),
        "stop_reason": {"enum": ["end_turn", "max_tokens", "stop_sequence", "tool_use"]},
        "stop_sequence": NULLABLE_STR, "citations": _array(_ref("Citation")),
        "usage": _obj({"input_tokens": INT, "output_tokens": INT,
                       "cache_creation_input_tokens": INT, "cache_read_input_tokens": INT},
                      ("input_tokens", "output_tokens"))},
        ("id", "type", "role", "model", "content", "stop_reason", "usage")),
    "CreateKeyRequest": _obj({"name": STR, "requests_per_minute": {"type": "integer",
                                                                   "minimum": 0},
                              "tokens_per_day": {"type": "integer", "minimum": 0}}),
    "SessionRequest": _obj({"name": SESSION_NAME, "model": MODEL, "system_prompt": STR},
                           ("name",)),
    "SessionChange": _obj({"name": SESSION_NAME, "model": MODEL, "system_prompt": STR}),
    "Session": _obj({"name": STR, "model": NULLABLE_STR, "system_prompt": STR,
                     "created_at": INT, "updated_at": INT, "message_count": INT},
                    ("name", "model", "system_prompt", "message_count")),
    "SessionList": _obj({"sessions": _array(_ref("Session")), "count": INT},
                        ("sessions", "count")),
    "SessionMessage": _obj({"id": INT, "role": {"enum": ["user", "assistant"]},
                            "content": STR, "created_at": INT,
                            "citations": _array(_ref("Citation")), "usage": _ref("Usage")},
                           ("id", "role", "content")),
    "SessionMessages": _obj({"session": STR, "messages": _array(_ref("SessionMessage")),
                             "count": INT}, ("messages", "count")),
    "TurnRequest": _obj({
        "content": {"type": "string", "minLength": 1}, "stream": BOOL,
        "max_tokens": {"type": "integer", "minimum": 1},
        "temperature": _number(0, 2), "top_p": _number(0, 1), "seed": INT,
        "use_knowledge_base": BOOL}, ("content",)),
    "Turn": _obj({"message": _ref("SessionMessage"), "usage": _ref("Usage"),
                  "finish_reason": STR}, ("message", "usage", "finish_reason")),
}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _ref("Error")
_SSE_EVENT = _obj({"data": STR, "event": STR, "id": STR}, ("data",))


def _list_of(name: str) -> dict:
    return _obj({"object": {"const": "list"}, "data": _array(_ref(name))}, ("object", "data"))


def _operation(summary: str, response: dict, request: str | None = None,
               errors: tuple[int, ...] = (), streams: bool = False,
               parameters: list | None = None, status: str = "200",
               body_required: bool = True) -> dict:
    ok = _json(response)
    if streams:  # it may answer with SSE: events of JSON data, which the docs describe
        ok["content"]["text/event-stream"] = {"schema": _SSE_EVENT}
    operation = {"summary": summary,
                 "responses": {status: ok, **{str(s): _json(_ERROR, "Error") for s in errors}}}
    if request:
        operation["requestBody"] = {"required": body_required,
                                    "content": {"application/json": {"schema": _ref(request)}}}
    if parameters:
        operation["parameters"] = parameters
    return operation


def _with_upload(operation: dict, schema: str) -> dict:
    """The ingest operation: a multipart/form-data body as well as JSON, and its answers: 201
    a new document, 200 the same one again, 202 a job."""
    operation["requestBody"]["content"]["multipart/form-data"] = {"schema": _ref(schema)}
    for status in ("200", "202"):
        operation["responses"][status] = operation["responses"]["201"]
    return operation


def _with_page(operation: dict) -> dict:
    operation["responses"]["200"]["content"]["text/html"] = {"schema": STR}
    return operation


def _static(summary: str, media_types: tuple[str, ...], parameters: list | None = None) -> dict:
    """A file of the web page, whose types are its files' (a 404 for a name it lacks)."""
    operation = {"summary": summary, "responses": {
        "200": {"description": "OK", "content": {kind: {"schema": STR} for kind in media_types}},
        "404": _json(_ERROR, "Error")}}
    if parameters:
        operation["parameters"] = parameters
    return operation


def _anthropic(operation: dict) -> dict:
    """An operation whose errors are in Anthropic's shape."""
    for status, answer in operation["responses"].items():
        if status != "200":
            answer["content"]["application/json"]["schema"] = _ref("AnthropicError")
    return operation


_AUTH_ERRORS = (401, 403, 429)  # in multi-user mode; see docs/multi-user.md
_BODY_ERRORS = (400, 404, 413, 500, 503, *_AUTH_ERRORS)
# In single-user mode the account endpoints answer 404 multi_user_disabled.
_ACCOUNT_ERRORS = (404, *_AUTH_ERRORS)
_ACCOUNT_BODY_ERRORS = (400, 413, *_ACCOUNT_ERRORS)


def _path_ids(*names: str) -> list[dict]:
    return [{"name": name, "in": "path", "required": True, "schema": STR} for name in names]


_MODEL_ID = _path_ids("model_id")
_SESSION = _path_ids("name")

OPERATIONS = {
    ("GET", "/"): _with_page(_operation("Server name, version and status; the chat page to a "
                                        "client whose Accept names text/html", _obj(
        {"name": STR, "version": STR, "status": STR}, ("name", "version", "status")))),
    ("GET", "/ui/"): _static("The chat page", ("text/html",)),
    ("GET", "/ui/{name}"): _static("A file of the chat page", tuple(
        kind.split(";")[0] for kind in ui.TYPES.values()), _path_ids("name")),
    ("GET", "/health"): _operation("Healthy once the default model is loaded", _obj(
        {"status": {"const": "healthy"}}, ("status",)), errors=(503,)),
    ("GET", "/openapi.json"): _operation("This document", {"type": "object"}),
    ("GET", "/metrics"): {"summary": "Prometheus metrics, in its text format", "responses": {
        "200": {"description": "OK", "content": {"text/plain": {"schema": STR}}},
        **{str(s): _json(_ERROR, "Error") for s in _AUTH_ERRORS}}},
    ("GET", "/v1/system/config"): _operation("Mode, features and default model", _obj(
        {"multi_user_mode": BOOL, "require_auth": BOOL, "guest_access": BOOL, "version": STR,
         "default_model": NULLABLE_STR, "features": {"type": "object"}},
        ("multi_user_mode", "require_auth", "guest_access", "version", "features"))),
    ("GET", "/v1/system/stats"): _operation("Live statistics", errors=_AUTH_ERRORS, response=_obj(
        {k: {"type": "number"} for k in (
            "cpu_percent", "memory_bytes", "models_loaded", "active_sessions", "requests_total",
            "tokens_generated", "uptime_seconds")},
        ("cpu_percent", "memory_bytes", "models_loaded", "active_sessions", "requests_total",
         "tokens_generated", "uptime_seconds"))),
    ("GET", "/v1/models"): _operation("The models in the models folder", _list_of("Model"),
                                      errors=_AUTH_ERRORS),
    ("GET", "/v1/models/{model_id}"): _operation("One model", _ref("Model"),
                                                 errors=(400, 404, *_AUTH_ERRORS),
                                                 parameters=_MODEL_ID),
    ("DELETE", "/v1/models/{model_id}"): _operation(
        "Unload and delete a model", _obj({"id": STR, "object": {"const": "model"},
                                           "deleted": BOOL}, ("id", "deleted")),
        errors=(400, 404, 503, *_AUTH_ERRORS), parameters=_MODEL_ID),
    ("POST", "/v1/models/download"): _operation(
        "Start downloading a GGUF file from the hub", _ref("Download"), "DownloadRequest",
        (400, 404, 413, 502, 503, *_AUTH_ERRORS), status="202"),
    ("GET", "/v1/models/download/progress"): _operation(
        "Downloads and how far they got", _list_of("Download"), errors=_AUTH_ERRORS,
        parameters=[{"name": "id", "in": "query", "required": False, "schema": STR}]),
    ("POST", "/v1/models/download/cancel"): _operation(
        "Cancel one download, or all", _list_of("Download"), "CancelRequest",
        (400, 404, 413, *_AUTH_ERRORS),
        body_required=False),
    ("POST", "/v1/models/import"): _operation(
        "Copy models in from a folder on this machine", _ref("CopyReport"), "FolderRequest",
        (400, 404, 413, *_AUTH_ERRORS)),
    ("POST", "/v1/models/export"): _operation(
        "Copy a model and its sha256 manifest to a folder on this machine", _ref("CopyReport"),
        "ExportRequest", (400, 404, 413, 500, *_AUTH_ERRORS)),
    ("GET", "/v1/search"): _operation(
        "Search the hub for GGUF models", _list_of("SearchResult"),
        errors=(400, 502, 503, *_AUTH_ERRORS),
        parameters=[{"name": "query", "in": "query", "required": True, "schema": STR}]),
    ("GET", "/v1/lora"): _operation(
        "The LoRA adapters in the models folder's loras/, and the loaded models holding each",
        _obj({"object": {"const": "list"}, "adapters": _array(_ref("LoraAdapter"))},
             ("adapters",)), errors=_AUTH_ERRORS),
    ("POST", "/v1/chat/completions"): _operation(
        "Chat completion", _ref("ChatCompletion"), "ChatCompletionRequest", _BODY_ERRORS, True),
    ("POST", "/v1/responses"): _operation(
        "OpenAI Responses: a response, or (stream) its events as SSE; kept unless store is "
        "false", _ref("Response"), "ResponseRequest", _BODY_ERRORS, True),
    ("GET", "/v1/responses/{response_id}"): _operation(
        "A kept response of the caller's", _ref("Response"), errors=(404, *_AUTH_ERRORS),
        parameters=_path_ids("response_id")),
    ("DELETE", "/v1/responses/{response_id}"): _operation(
        "Delete a kept response of the caller's", _obj({
            "id": STR, "object": {"const": "response"}, "deleted": BOOL}, ("id", "deleted")),
        errors=(404, *_AUTH_ERRORS), parameters=_path_ids("response_id")),
    ("POST", "/v1/messages"): _anthropic(_operation(
        "Anthropic Messages: a message, or (stream) its events as SSE", _ref("AnthropicMessage"),
        "AnthropicMessageRequest", _BODY_ERRORS, True)),
    ("POST", "/v1/messages/count_tokens"): _anthropic(_operation(
        "Anthropic Messages: the tokens a body's prompt takes",
        _obj({"input_tokens": INT}, ("input_tokens",)), "AnthropicCountRequest",
        _BODY_ERRORS)),
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
    ("GET", "/v1/rag/status"): _operation(
        "The knowledge base: on or off, its embedding model, what it holds", _ref("RagStatus"),
        errors=_AUTH_ERRORS),
    ("POST", "/v1/rag/enable"): _operation(
        "Turn the knowledge base on, optionally with another embedding model (which re-embeds "
        "everything in a job)", _ref("RagStatus"), "EnableRequest", (400, 404, 413,
                                                                     *_AUTH_ERRORS),
        body_required=False),
    ("POST", "/v1/rag/disable"): _operation("Turn the knowledge base off", _ref("RagStatus"),
                                            errors=_AUTH_ERRORS),
    ("GET", "/v1/documents"): _operation("The documents the caller may see",
                                         _ref("DocumentList"), errors=_AUTH_ERRORS),
    ("POST", "/v1/documents/ingest"): _with_upload(_operation(
        "Add a document (a file as multipart field `file`, or text as JSON); the answer comes "
        "once it is searchable, or at once with a job when `async` is true", _ref("Ingest"),
        "IngestRequest", (400, 404, 409, 413, 415, 500, 503, *_AUTH_ERRORS), status="201"),
        "IngestUpload"),
    ("GET", "/v1/documents/jobs/{job_id}"): _operation(
        "An ingest job and how far it got", _ref("Job"), errors=(404, *_AUTH_ERRORS),
        parameters=_path_ids("job_id")),
    ("POST", "/v1/documents/search"): _operation(
        "The passages that best match a query", _ref("DocumentSearch"),
        "DocumentSearchRequest", (400, 409, 413, 500, 503, *_AUTH_ERRORS)),
    ("POST", "/v1/documents/delete"): _operation(
        "Remove a document (the seed system's form)", _ref("DocumentDeleted"),
        "DeleteDocumentRequest", (400, 404, 413, *_AUTH_ERRORS)),
    ("GET", "/v1/documents/{document_id}"): _operation(
        "One document", _ref("Document"), errors=(404, *_AUTH_ERRORS),
        parameters=_path_ids("document_id")),
    ("PATCH", "/v1/documents/{document_id}"): _operation(
        "Share a document with every user, or stop (admins)", _ref("Document"),
        "ShareRequest", (400, 404, 413, *_AUTH_ERRORS), parameters=_path_ids("document_id")),
    ("DELETE", "/v1/documents/{document_id}"): _operation(
        "Remove a document with its chunks and vectors", _ref("DocumentDeleted"),
        errors=(404, *_AUTH_ERRORS), parameters=_path_ids("document_id")),
    ("GET", "/v1/documents/{document_id}/chunks/{position}"): _operation(
        "One passage of a document, as a citation names it", _ref("Chunk"),
        errors=(404, *_AUTH_ERRORS), parameters=_path_ids("document_id", "position")),
    ("POST", "/v1/agents/run"): _operation(
        "Work a task through with tools: the run, or (stream) its events as SSE, `done` last",
        _ref("AgentRun"), "AgentRunRequest", (400, 404, 409, 413, 500, 503, *_AUTH_ERRORS),
        True),
    ("GET", "/v1/agents/tools"): _operation(
        "The tools that are on (all=true: every tool)", _ref("ToolList"), errors=_AUTH_ERRORS,
        parameters=[{"name": "all", "in": "query", "required": False, "schema": STR}]),
    ("PATCH", "/v1/agents/tools"): _operation(
        "Turn a tool on or off, for every run from now on", _ref("Tool"), "ToolSwitch",
        (400, 404, 413, *_AUTH_ERRORS)),
    ("POST", "/v1/agents/tools/call"): _operation(
        "Call one tool that is on, without a model", _ref("ToolCallResult"), "ToolCallRequest",
        (400, 404, 409, 413, *_AUTH_ERRORS)),
    ("GET", "/v1/agents/mcp"): _operation(
        "The MCP servers and how each is doing", _ref("McpServerList"), errors=_AUTH_ERRORS),
    ("POST", "/v1/agents/mcp"): _operation(
        "Add an MCP server (a program over stdio, or a streamable-HTTP URL); it is kept and "
        "connected in the background", _ref("McpServer"), "McpServerRequest",
        (400, 409, 413, *_AUTH_ERRORS), status="201"),
    ("POST", "/v1/agents/mcp/test"): _operation(
        "Connect to an MCP server and list its tools, keeping nothing", _ref("McpTest"),
        "McpServerRequest", (400, 404, 413, *_AUTH_ERRORS)),
    ("DELETE", "/v1/agents/mcp/{name}"): _operation(
        "Stop and remove an MCP server", _obj({"name": STR, "object": {"const": "mcp_server"},
                                               "deleted": BOOL}, ("name", "deleted")),
        errors=(404, *_AUTH_ERRORS), parameters=_path_ids("name")),
    ("GET", "/v1/sessions"): _operation(
        "The caller's sessions, the latest used first (search: in names and messages)",
        _ref("SessionList"), errors=_AUTH_ERRORS,
        parameters=[{"name": "search", "in": "query", "required": False, "schema": STR}]),
    ("POST", "/v1/sessions"): _operation(
        "Start a session", _ref("Session"), "SessionRequest", (400, 404, 409, 413,
                                                               *_AUTH_ERRORS), status="201"),
    ("GET", "/v1/sessions/{name}"): _operation(
        "A session", _ref("Session"), errors=(404, *_AUTH_ERRORS), parameters=_SESSION),
    ("PATCH", "/v1/sessions/{name}"): _operation(
        "Rename a session, or change its model or system prompt", _ref("Session"),
        "SessionChange", (400, 404, 409, 413, *_AUTH_ERRORS), parameters=_SESSION),
    ("DELETE", "/v1/sessions/{name}"): _operation(
        "Delete a session and its messages", _obj({"name": STR, "deleted": BOOL},
                                                  ("name", "deleted")),
        errors=(404, *_AUTH_ERRORS), parameters=_SESSION),
    ("GET", "/v1/sessions/{name}/messages"): _operation(
        "A session's messages, in order", _ref("SessionMessages"),
        errors=(404, *_AUTH_ERRORS), parameters=_SESSION),
    ("POST", "/v1/sessions/{name}/generate"): _operation(
        "Say the next message and get the answer (stream: SSE delta events, then done); the "
        "turn is kept whole or not at all", _ref("Turn"), "TurnRequest",
        (400, 404, 409, 413, 500, 503, *_AUTH_ERRORS), True, _SESSION),
    ("GET", "/v1/sessions/{name}/export"): _operation(
        "A session with its messages, as JSON or (format=md) Markdown", _ref("Session"),
        errors=(400, 404, *_AUTH_ERRORS), parameters=[*_SESSION, {
            "name": "format", "in": "query", "required": False,
            "schema": {"enum": ["json", "md"]}}]),
    ("POST", "/v1/auth/login"): _operation(
        "A login token for a username and password", _ref("Login"), "LoginRequest",
        (400, 401, 404, 413, 429)),
    ("POST", "/v1/auth/logout"): _operation(
        "End the login token's session", _obj({"logged_out": BOOL}, ("logged_out",)),
        errors=(400, *_ACCOUNT_ERRORS)),
    ("GET", "/v1/users/me"): _operation("The caller", _ref("User"), errors=_ACCOUNT_ERRORS),
    ("GET", "/v1/users"): _operation("Every user (admins)", _ref("UserList"),
                                     errors=_ACCOUNT_ERRORS),
    ("POST", "/v1/users"): _operation("Create a user (admins)", _ref("User"),
                                      "CreateUserRequest", (409, *_ACCOUNT_BODY_ERRORS)),
    ("GET", "/v1/users/{user_id}"): _operation(
        "A user (admins; users: themselves)", _ref("User"), errors=_ACCOUNT_ERRORS,
        parameters=_path_ids("user_id")),
    ("DELETE", "/v1/users/{user_id}"): _operation(
        "Delete a user, their keys and tokens (admins)",
        _obj({"id": INT, "object": {"const": "user"}, "deleted": BOOL}, ("id", "deleted")),
        errors=(409, *_ACCOUNT_ERRORS), parameters=_path_ids("user_id")),
    ("PUT", "/v1/users/{user_id}/role"): _operation(
        "Change a user's role (admins)", _ref("User"), "RoleRequest",
        (409, *_ACCOUNT_BODY_ERRORS), parameters=_path_ids("user_id")),
    ("GET", "/v1/users/{user_id}/api-keys"): _operation(
        "A user's API keys, without their secrets", _ref("ApiKeyList"),
        errors=_ACCOUNT_ERRORS, parameters=_path_ids("user_id")),
    ("POST", "/v1/users/{user_id}/api-keys"): _operation(
        "A new API key; `key` is its secret, shown only this once", _ref("ApiKey"),
        "CreateKeyRequest", _ACCOUNT_BODY_ERRORS, parameters=_path_ids("user_id")),
    ("DELETE", "/v1/users/{user_id}/api-keys/{key_id}"): _operation(
        "Revoke an API key", _ref("ApiKey"), errors=_ACCOUNT_ERRORS,
        parameters=_path_ids("user_id", "key_id")),
}


# -- Ollama's API: its own error shape, and NDJSON where it streams -------------------------------

_keep_alive = {"anyOf": [STR, {"type": "number"}]}
_ollama_common = {"model": STR, "keep_alive": _keep_alive, "stream": BOOL,
                  "options": _obj({"num_predict": INT, "num_ctx": INT, "temperature": _number(0, 2),
                                   "top_k": {"type": "integer", "minimum": 0},
                                   "top_p": _number(0, 1), "min_p": _number(0, 1), "seed": INT,
                                   "stop": _array(STR, maxItems=16),
                                   "repeat_penalty": _number(0, 2),
                                   "presence_penalty": _number(-2, 2),
                                   "frequency_penalty": _number(-2, 2)}),
                  "format": {"anyOf": [{"enum": ["", "json"]}, {"type": "object"}]}}
OLLAMA_SCHEMAS = {
    "OllamaError": _obj({"error": STR}, ("error",)),
    "OllamaChatRequest": _obj({
        **_ollama_common, "tools": _array({"type": "object"}), "use_knowledge_base": BOOL,
        "tool_choice": {"anyOf": [STR, {"type": "object"}]},
        "messages": _array(_obj({"role": {"enum": ["system", "user", "assistant", "tool"]},
                                 "content": STR, "tool_name": STR,
                                 "tool_calls": _array({"type": "object"})}, ("role",)))},
        ("model",)),
    "OllamaGenerateRequest": _obj({**_ollama_common, "prompt": STR, "system": STR,
                                   "suffix": STR, "raw": BOOL}, ("model",)),
    "OllamaEmbedRequest": _obj({"model": STR, "keep_alive": _keep_alive,
                                "input": {"anyOf": [STR, _array(STR, minItems=1)]},
                                "dimensions": {"type": "integer", "minimum": 1}},
                               ("model", "input")),
    "OllamaEmbeddingsRequest": _obj({"model": STR, "prompt": STR}, ("model", "prompt")),
    "OllamaModelRequest": _obj({"model": STR}, ("model",)),
    "OllamaPullRequest": _obj({"model": STR, "stream": BOOL, "insecure": BOOL}, ("model",)),
    "OllamaCopyRequest": _obj({"source": STR, "destination": STR}, ("source", "destination")),
}
_OLLAMA_ERRORS = (400, 404, 413, 500, 502, 503, *_AUTH_ERRORS)


def _ollama(summary: str, request: str | None = None, streams: bool = False) -> dict:
    """An operation of Ollama's API: JSON (or NDJSON lines) and errors as {"error": ...}."""
    ok = _json({"type": "object"})
    if streams:
        ok["content"]["application/x-ndjson"] = {"schema": STR}
    operation = {"summary": summary, "responses": {"200": ok, **{
        str(s): _json(_ref("OllamaError"), "Error") for s in _OLLAMA_ERRORS}}}
    if request:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": _ref(request)}}}
    return operation


OPERATIONS.update({
    ("GET", "/api/version"): _ollama("The Ollama API version this server follows"),
    ("GET", "/api/tags"): _ollama("Ollama: the models, as name:latest with their sha256"),
    ("POST", "/api/show"): _ollama("Ollama: a model's header, template and capabilities",
                                   "OllamaModelRequest"),
    ("GET", "/api/ps"): _ollama("Ollama: the loaded models"),
    ("POST", "/api/chat"): _ollama("Ollama: chat", "OllamaChatRequest", True),
    ("POST", "/api/generate"): _ollama("Ollama: generate", "OllamaGenerateRequest", True),
    ("POST", "/api/embed"): _ollama("Ollama: embeddings", "OllamaEmbedRequest"),
    ("POST", "/api/embeddings"): _ollama("Ollama: one embedding (older)",
                                         "OllamaEmbeddingsRequest"),
    ("POST", "/api/pull"): _ollama("Ollama: download from the hub, with progress",
                                   "OllamaPullRequest", True),
    ("DELETE", "/api/delete"): _ollama("Ollama: delete a model", "OllamaModelRequest"),
    ("POST", "/api/copy"): _ollama("Ollama: a model under a second name", "OllamaCopyRequest"),
})


def document(model_ids: list[str]) -> dict:
    """The description, with the models this server has as examples of `model`."""
    paths: dict = {}
    for (method, path), operation in OPERATIONS.items():
        paths.setdefault(path, {})[method.lower()] = operation
    return {"openapi": "3.1.0",
            "info": {"title": "OffGrid LLM", "version": __version__,
                     "description": "An offline LLM server with an OpenAI-compatible API."},
            "servers": [{"url": "/"}], "paths": paths,
            "security": [{}, {"bearer": []}, {"api_key": []}],
            "components": {"schemas": {**SCHEMAS, **OLLAMA_SCHEMAS, "ModelId": {"type": "string",
                                                               "examples": model_ids}},
                           "securitySchemes": {"bearer": {
                               "type": "http", "scheme": "bearer",
                               "description": "An API key (og_…) or a login token, in "
                                              "multi-user mode"},
                               "api_key": {
                                   "type": "apiKey", "in": "header", "name": "x-api-key",
                                   "description": "An API key (og_…), as Anthropic's clients "
                                                  "send it"}}}}
