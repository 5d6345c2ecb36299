"""API errors: each carries its HTTP status and renders as the one error shape of the API,
{"error": {"message", "type", "code", "param"}}, or as the error shape of the wire format its
route speaks (the route table names a renderer: `ErrorShape`)."""

from __future__ import annotations

from collections.abc import Callable

from ..agents import errors as agents
from ..engine import errors as engine
from ..kb import errors as kb
from ..models import folder, hub
from ..store import errors as store

ErrorShape = Callable[["ApiError"], dict]  # an error's body in a wire format of its own


class ApiError(Exception):
    status = 500
    type = "api_error"
    code = "internal_error"
    shape: ErrorShape | None = None  # set for the routes of a wire format with its own shape

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict:
        if self.shape is not None:
            return self.shape(self)
        return {"error": {"message": self.message, "type": self.type, "code": self.code,
                          "param": self.param}}


class BadRequest(ApiError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class Unauthorized(ApiError):
    """No credentials where they are needed, or ones that are not valid."""
    status = 401
    type = "invalid_request_error"
    code = "authentication_required"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message, code=code,
                         headers={"WWW-Authenticate": 'Bearer realm="offgrid"'})


class Forbidden(ApiError):
    """Known caller, not allowed to do this."""
    status = 403
    type = "invalid_request_error"
    code = "permission_denied"


class NotFound(ApiError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    type = "api_error"  # as the API reference shows it
    code = "model_not_found"


class MethodNotAllowed(ApiError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"

    def __init__(self, method: str, allowed: list[str]):
        super().__init__(f"Method {method} is not allowed here; use {', '.join(allowed)}",
                         headers={"Allow": ", ".join(allowed)})


class RequestTimeout(ApiError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class Conflict(ApiError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class BadGateway(ApiError):
    status = 502
    code = "hub_error"


class LengthRequired(ApiError):
    status = 411
    type = "invalid_request_error"
    code = "length_required"


class PayloadTooLarge(ApiError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaType(ApiError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class TooManyRequests(ApiError):
    """A rate limit or quota is used up; `Retry-After` says in how many seconds to retry."""
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message, code=code,
                         headers={**(headers or {}), "Retry-After": str(retry_after)})


class ServiceUnavailable(ApiError):
    status = 503
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: int | None = None, code: str | None = None):
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        super().__init__(message, code=code, headers=headers)


class InternalError(ApiError):
    def __init__(self):
        super().__init__("The server hit an internal error; the request was not completed")


# What the engine, the models folder, the hub, the knowledge base, the agents and the database
# refuse, as the API's errors. The first entry whose class the error is an instance of wins, so
# subclasses come before their bases; `prompt` names the request field that held the prompt.
TRANSLATIONS: list[tuple[type[Exception], Callable[[Exception, str | None], ApiError]]] = [
    (folder.NotFound, lambda e, prompt: ModelNotFound(str(e), param="model")),
    (folder.InvalidName, lambda e, prompt: BadRequest(
        str(e), code="invalid_value", param="model" if e.what == "model id" else "file_name")),
    (folder.Conflict, lambda e, prompt: Conflict(str(e))),
    (folder.FolderUnusable, lambda e, prompt: BadRequest(str(e), code="folder_unusable",
                                                         param="path")),
    (folder.ModelError, lambda e, prompt: BadRequest(str(e), code="invalid_value")),
    (hub.InvalidRepository, lambda e, prompt: BadRequest(str(e), code="invalid_value",
                                                         param="repository")),
    (hub.NotOnHub, lambda e, prompt: NotFound(str(e), code="not_found_on_hub")),
    (hub.Offline, lambda e, prompt: ServiceUnavailable(str(e), code="offline")),
    (hub.HubError, lambda e, prompt: BadGateway(str(e))),
    (engine.InsufficientMemory, lambda e, prompt: ServiceUnavailable(
        str(e), code="insufficient_memory")),
    (engine.ModelsBusy, lambda e, prompt: ServiceUnavailable(str(e), retry_after=1,
                                                             code="models_busy")),
    (engine.PromptTooLong, lambda e, prompt: BadRequest(str(e), code="context_length_exceeded",
                                                        param=prompt)),
    (engine.EmptyPrompt, lambda e, prompt: BadRequest(str(e), code="empty_prompt", param=prompt)),
    (engine.TooManyChoices, lambda e, prompt: BadRequest(str(e), code="invalid_value",
                                                         param="n")),
    (engine.WrongModelKind, lambda e, prompt: BadRequest(str(e), code="model_not_supported",
                                                         param="model")),
    (engine.InvalidGrammar, lambda e, prompt: BadRequest(str(e), code="invalid_value",
                                                         param="response_format")),
    (engine.FillInTheMiddleUnsupported, lambda e, prompt: BadRequest(
        str(e), code="model_not_supported", param="suffix")),
    (engine.AdapterNotFound, lambda e, prompt: NotFound(str(e), code="lora_not_found",
                                                        param="lora")),
    (engine.AdapterMismatch, lambda e, prompt: BadRequest(str(e), code="lora_mismatch",
                                                          param="lora")),
    (engine.QueueFull, lambda e, prompt: ServiceUnavailable(
        str(e), retry_after=e.retry_after, code="server_busy")),
    (engine.ModelLoadFailed, lambda e, prompt: ApiError(str(e), code="model_load_failed")),
    (engine.RpcWorkerUnreachable, lambda e, prompt: ServiceUnavailable(
        str(e), code="rpc_worker_unreachable")),
    (engine.EngineClosed, lambda e, prompt: ServiceUnavailable(str(e), code="shutting_down")),
    (engine.SchedulerFailed, lambda e, prompt: ApiError(str(e), code="engine_failed")),
    (engine.RequestFailed, lambda e, prompt: ApiError(str(e))),
    (kb.UnsupportedType, lambda e, prompt: UnsupportedMediaType(str(e), param="file")),
    (kb.EmptyDocument, lambda e, prompt: BadRequest(str(e), code="empty_document",
                                                    param="file")),
    (kb.UnreadableDocument, lambda e, prompt: BadRequest(str(e), code="unreadable_document",
                                                         param="file")),
    (kb.DocumentTooLarge, lambda e, prompt: PayloadTooLarge(str(e), code="document_too_large")),
    (kb.DocumentNotFound, lambda e, prompt: NotFound(str(e), code="document_not_found")),
    (kb.NoEmbeddingModel, lambda e, prompt: ModelNotFound(str(e), param="embedding_model")),
    (kb.KnowledgeBaseOff, lambda e, prompt: Conflict(str(e), code="knowledge_base_off")),
    (agents.NoSuchTool, lambda e, prompt: NotFound(str(e), code="tool_not_found")),
    (agents.ToolDisabled, lambda e, prompt: Conflict(str(e), code="tool_disabled")),
    (store.InvalidValue, lambda e, prompt: BadRequest(str(e), code="invalid_value",
                                                      param=e.field)),
    (store.Conflict, lambda e, prompt: Conflict(str(e), code=e.code)),
    (store.Missing, lambda e, prompt: NotFound(str(e))),
    (store.Unavailable, lambda e, prompt: ServiceUnavailable(str(e), retry_after=5,
                                                             code="database_unavailable")),
]
REFUSALS = (engine.EngineError, folder.ModelError, hub.HubError, store.StoreError, kb.KbError,
            agents.AgentError)


def translate(error: Exception, prompt: str | None = None) -> ApiError:
    """The API error for something the engine, the models folder, the hub or the database
    refused; an internal error for anything else."""
    for kind, make in TRANSLATIONS:
        if isinstance(error, kind):
            return make(error, prompt)
    return InternalError()
