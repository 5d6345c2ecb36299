"""API errors: each carries its HTTP status and renders as the one error shape of the API,
{"error": {"message", "type", "code", "param"}}."""

from __future__ import annotations

from ..models import folder, hub
from ..engine import errors as engine


class ApiError(Exception):
    status = 500
    type = "api_error"
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict:
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


# What the engine and the model store refuse; from_engine() gives each its HTTP face.
REFUSALS = (engine.EngineError, folder.ModelError, hub.HubError)


def from_engine(error: Exception, prompt_param: str | None = None) -> ApiError:
    """The HTTP face of something the engine or the model store refused; `prompt_param` names
    the request field that held the prompt."""
    if isinstance(error, folder.NotFound):
        return ModelNotFound(str(error), param="model")
    if isinstance(error, folder.InvalidName):
        return BadRequest(str(error), code="invalid_value",
                          param="model" if error.what == "model id" else "file_name")
    if isinstance(error, folder.Conflict):
        return Conflict(str(error))
    if isinstance(error, folder.FolderUnusable):
        return BadRequest(str(error), code="folder_unusable", param="path")
    if isinstance(error, folder.ModelError):
        return BadRequest(str(error), code="invalid_value")
    if isinstance(error, hub.InvalidRepository):
        return BadRequest(str(error), code="invalid_value", param="repository")
    if isinstance(error, hub.NotOnHub):
        return NotFound(str(error), code="not_found_on_hub")
    if isinstance(error, hub.Offline):
        return ServiceUnavailable(str(error), code="offline")
    if isinstance(error, hub.HubError):
        return BadGateway(str(error))
    if isinstance(error, engine.InsufficientMemory):
        return ServiceUnavailable(str(error), code="insufficient_memory")
    if isinstance(error, engine.ModelsBusy):
        return ServiceUnavailable(str(error), retry_after=1, code="models_busy")
    if isinstance(error, engine.PromptTooLong):
        return BadRequest(str(error), code="context_length_exceeded", param=prompt_param)
    if isinstance(error, engine.EmptyPrompt):
        return BadRequest(str(error), code="empty_prompt", param=prompt_param)
    if isinstance(error, engine.WrongModelKind):
        return BadRequest(str(error), code="model_not_supported", param="model")
    if isinstance(error, engine.InvalidGrammar):
        return BadRequest(str(error), code="invalid_value", param="response_format")
    if isinstance(error, engine.FillInTheMiddleUnsupported):
        return BadRequest(str(error), code="model_not_supported", param="suffix")
    if isinstance(error, engine.QueueFull):
        return ServiceUnavailable(str(error), retry_after=error.retry_after, code="server_busy")
    if isinstance(error, engine.ModelLoadFailed):
        return ApiError(str(error), code="model_load_failed")
    if isinstance(error, engine.EngineClosed):
        return ServiceUnavailable(str(error), code="shutting_down")
    if isinstance(error, engine.SchedulerFailed):
        return ApiError(str(error), code="engine_failed")
    if isinstance(error, engine.RequestFailed):
        return ApiError(str(error))
    return InternalError()
