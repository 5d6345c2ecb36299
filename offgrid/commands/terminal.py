"""What the commands write to the terminal besides their results: errors, and progress bars on
stderr (redrawn in place on a terminal; elsewhere only once full, so logs stay readable)."""

from __future__ import annotations

import sys

BAR_WIDTH = 30


def fail(message: str, status: int = 1) -> int:
    """Say what went wrong; the command's exit status."""
    print(f"offgrid: {message}", file=sys.stderr)
    return status


def progress(label: str, done: int, total: int | None, detail: str = "",
             end: bool = False) -> None:
    """A bar of `done` out of `total` (None: not known yet); `end` finishes its line."""
    if not end and not sys.stderr.isatty():
        return
    filled = BAR_WIDTH * done // total if total else 0
    shown = f"{100 * done / total:5.1f}%" if total else "  ?  "
    print(f"\r{label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {shown} {detail}   ",
          end="\n" if end else "", file=sys.stderr, flush=True)
