"""Write docs/multi-user.md's two policy tables anew from the route table and policy.decide:
which endpoints each group holds, and what each caller gets from each group in each mode.
Run it after adding a route or a group; tests/unit/test_policy.py checks that they agree.

    .venv/bin/python scripts/write_policy_tables.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from offgrid.server.app import ROUTES, Route  # noqa: E402
from offgrid.server.policy import CALLERS, Group, Mode, decide  # noqa: E402

DOC = ROOT / "docs" / "multi-user.md"
MODES = [(Mode(False), ("`false`", "any", "any"))] + [
    (Mode(True, auth, guests), ("`true`", f"`{str(auth).lower()}`", f"`{str(guests).lower()}`"))
    for auth, guests in ((False, True), (False, False), (True, True), (True, False))]


def group_rows() -> list[str]:
    routes = [Route(*entry) for entry in ROUTES]
    rows = []
    for group in Group:
        cell = ", ".join(f"`{r.method} {r.path}`" for r in routes if r.group == group)
        if group == Group.ADMIN:
            cell += "; an endpoint that names no group is in this one"
        rows.append(f"| {group.value} | {cell} |")
    return rows


def decision_rows() -> list[str]:
    return [f"| {' | '.join(settings)} | {group.value} | "
            + " | ".join(decide(mode, group, role) for role in CALLERS) + " |"
            for mode, settings in MODES for group in Group]


def replace_table(lines: list[str], header_start: str, rows: list[str]) -> None:
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    end = start + 2
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    lines[start + 2:end] = rows


def main() -> None:
    lines = DOC.read_text().splitlines()
    replace_table(lines, "| Group | Endpoints |", group_rows())
    replace_table(lines, "| `MULTI_USER` |", decision_rows())
    DOC.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
