"""`kb_search`: passages of the knowledge base, searched with the caller's rights (a user sees
their own documents and the shared ones, as in chat), numbered for the model to cite."""

from __future__ import annotations

from ...engine.errors import EngineError
from ...kb.context import Passage
from ...kb.errors import KbError
from ..tools import ToolContext, ToolResult
from .base import BuiltinTool, Refused, integer, string

MAX_QUERY_CHARS = 1000
MAX_TOP_K = 10
DEFAULT_TOP_K = 5


class KbSearch(BuiltinTool):
    name = "kb_search"
    description = ("Search the knowledge base (the documents added to this server) for passages "
                   "about a question or keywords; cite a passage by its [n].")
    parameters = {
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS,
                      "description": "what to look for"},
            "top_k": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K,
                      "description": f"how many passages, {DEFAULT_TOP_K} if left out"},
        },
        "required": ["query"],
        "additionalProperties": False,
    }
    timeout_s = 30.0

    def __init__(self, kb):
        self._kb = kb  # kb.knowledge_base.KnowledgeBase

    def run(self, arguments: dict, context: ToolContext) -> ToolResult:
        query = string(arguments, "query", MAX_QUERY_CHARS).strip()
        top_k = integer(arguments, "top_k", 1, MAX_TOP_K, DEFAULT_TOP_K)
        if not query:
            raise Refused("The query is empty: say what to look for")
        try:
            passages = self._kb.search(context.reader, query, top_k)
        except (KbError, EngineError) as error:  # off, no embedding model, no memory for it
            raise Refused(f"The knowledge base cannot be searched: {error}") from None
        if not passages:
            return ToolResult(f"No passages in the knowledge base match {query!r}")
        return ToolResult("\n\n".join(_shown(n, p) for n, p in enumerate(passages, 1)))


def _shown(number: int, passage: Passage) -> str:
    where = " > ".join((passage.document_name, *passage.section))
    return f"[{number}] {where}\n{passage.text.strip()}"
