"""The test models, as scripts/fetch_models.py fetches and caches them."""

from __future__ import annotations

from types import ModuleType

from support import script

CHAT_MODEL = "SmolLM2-135M-Instruct.Q4_1"
GEMMA_MODEL = "gemma-3-270m-q4_k_m"
EMBEDDING_MODEL = "all-MiniLM-L6-v2-q8_0"


def fetch_models() -> ModuleType:
    """scripts/fetch_models.py, imported: ensure_all(), embedding_source(), MODELS."""
    return script("fetch_models")
