"""OffGrid: an offline LLM server with an OpenAI-compatible API, and its Python client."""

__version__ = "0.1.0"

from .client import (  # noqa: E402
    AuthenticationError,
    BadRequest,
    Client,
    Conflict,
    ConnectionFailed,
    DownloadFailed,
    ModelNotFound,
    NotFound,
    OffGridError,
    PermissionDenied,
    RateLimited,
    ServerError,
    ServiceUnavailable,
)

__all__ = ["AuthenticationError", "BadRequest", "Client", "Conflict", "ConnectionFailed",
           "DownloadFailed", "ModelNotFound", "NotFound", "OffGridError", "PermissionDenied",
           "RateLimited", "ServerError", "ServiceUnavailable", "__version__"]
