"""OffGrid: an offline LLM server with an OpenAI-compatible API, and its Python client."""

__version__ = "0.1.0"

from .client import Client, OffGridError  # noqa: E402  (the client needs __version__)

__all__ = ["Client", "OffGridError", "__version__"]
