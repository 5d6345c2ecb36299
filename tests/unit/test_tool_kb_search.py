"""The kb_search tool on a real knowledge base with the test embedding model: it finds passages
with the caller's rights, and says why when it cannot search."""

from __future__ import annotations

from pathlib import Path

import pytest

from offgrid.agents.builtin import builtin_tools
from offgrid.agents.tools import ToolContext, ToolResult
from offgrid.config import Settings
from offgrid.engine.registry import Registry
from offgrid.kb.knowledge_base import KnowledgeBase, Reader
from offgrid.store import users
from offgrid.store.db import Database
from support.builtin_tools import refused

RADIO = ("# Field radio\n\n## Resetting\n\nTo reset the field radio, hold POWER and MENU together "
         "for ten seconds, until the screen flashes twice.\n\n## Batteries\n\nThe radio runs "
         "for nine hours on two AA batteries; carry a spare pair.")


@pytest.fixture(scope="module")
def knowledge(model_files, tmp_path_factory):
    """A real knowledge base with the test embedding model, its database, and two users."""
    home = tmp_path_factory.mktemp("kb-home")
    (home / "models").mkdir()
    (home / "models" / model_files["embedding"].name).symlink_to(model_files["embedding"])
    registry = Registry(Settings(home=home))
    db = Database(home / "offgrid.db")
    kb = KnowledgeBase(db, registry)
    owner = users.create(db, "ada", "ada-password-1", "user")
    other = users.create(db, "bob", "bob-password-1", "user")
    yield kb, owner, other
    registry.close()


def search(kb, reader: Reader, **arguments) -> ToolResult:
    tool = {t.name: t for t in builtin_tools(Settings(), kb)}["kb_search"]
    return tool.call(arguments, ToolContext(Path("/nonexistent"), reader))


def test_kb_search_finds_passages_with_the_callers_rights(knowledge):
    kb, owner, other = knowledge
    document, _ = kb.add(Reader(owner.id, "user"), "radio.md", RADIO.encode())
    found = search(kb, Reader(owner.id, "user"), query="how do I reset the radio?", top_k=1)
    assert not found.is_error, found
    assert found.text.startswith("[1] radio.md > Field radio > Resetting\n")
    assert "To reset the field radio, hold POWER and MENU" in found.text and "[2]" not in found.text
    assert search(kb, Reader(other.id, "user"), query="reset the radio").text == (
        "No passages in the knowledge base match 'reset the radio'")
    assert "No passages" in search(kb, Reader(role="guest"), query="reset the radio").text
    kb.share(document.id, True)
    assert search(kb, Reader(role="guest"), query="reset the radio").text.startswith("[1] ")
    two = search(kb, Reader(single_user=True), query="radio batteries", top_k=2).text
    assert two.count("[1] ") == 1 and two.count("[2] ") == 1


def test_kb_search_says_why_it_cannot_search(knowledge):
    kb, owner, _ = knowledge
    refused(search(kb, Reader(owner.id, "user"), query="  "), "empty")
    refused(search(kb, Reader(owner.id, "user"), query="radio", top_k=50), "from 1 to 10")
    kb.disable()
    try:
        refused(search(kb, Reader(owner.id, "user"), query="radio"), "knowledge base is off")
    finally:
        kb.enable()
