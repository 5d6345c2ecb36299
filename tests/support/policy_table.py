"""docs/multi-user.md's tables, read: who gets what in each mode, and which endpoints each
group holds."""

from __future__ import annotations

import re

from offgrid.server.policy import CALLERS, Group, Mode
from support import ROOT

DOC = ROOT / "docs" / "multi-user.md"


def _table_rows(header_start: str) -> list[list[str]]:
    """The cells of the markdown table whose header row starts with `header_start`."""
    lines = DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _flag(cell: str) -> list[bool]:
    return {"`true`": [True], "`false`": [False], "any": [False, True]}[cell]


def documented_outcomes() -> dict[tuple[Mode, Group], dict[str | None, str]]:
    """(mode, group) -> {role or None: outcome}, for every mode the table covers."""
    table = {}
    for multi, auth, guests, group, *outcomes in _table_rows("| `MULTI_USER`"):
        for mode in [Mode(m, a, g) for m in _flag(multi) for a in _flag(auth)
                     for g in _flag(guests)]:
            table[mode, Group(group)] = dict(zip(CALLERS, outcomes, strict=True))
    return table


def documented_groups() -> dict[Group, set[tuple[str, str]]]:
    return {Group(group): set(re.findall(r"`(GET|POST|PUT|DELETE|PATCH) ([^`]+)`", endpoints))
            for group, endpoints in _table_rows("| Group | Endpoints")}
