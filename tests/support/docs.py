"""The fenced code blocks of README.md and docs/, for the tests that run them as written."""

from __future__ import annotations

import re
from pathlib import Path

from support import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def code_blocks(language: str, paths: list[Path] = DOCS) -> list[tuple[str, str]]:
    """(where, code) for every fenced block of `language` in `paths` (all the docs unless
    told)."""
    found = []
    for path in paths:
        text = path.read_text()
        for match in re.finditer(rf"^```{language}\n(.*?)^```", text, re.S | re.M):
            line = text[:match.start()].count("\n") + 1
            found.append((f"{path.name}:{line}", match.group(1)))
    return found
