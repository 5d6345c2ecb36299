"""The tools every OffGrid agent may be given, one module each: arithmetic, the clock, files in
the caller's workspace, the knowledge base, and, off until an admin turns them on, the web
(`http_get`) and programs on this machine (`shell`)."""

from __future__ import annotations

from ...config import Settings
from ..tools import Tool
from .calculator import Calculator
from .clock import CurrentTime
from .files import ListFiles, ReadFile, WriteFile, workspace_folder
from .http_get import HttpGet
from .kb_search import KbSearch
from .shell import Shell

__all__ = ["builtin_tools", "workspace_folder"]


def builtin_tools(settings: Settings, kb=None) -> list[Tool]:
    """Each built-in tool, once; `kb_search` when there is a knowledge base
    (kb.knowledge_base.KnowledgeBase) to search."""
    return [Calculator(), CurrentTime(), ReadFile(), WriteFile(), ListFiles(),
            *([KbSearch(kb)] if kb is not None else []),
            HttpGet(settings.http_get_networks()), Shell()]
