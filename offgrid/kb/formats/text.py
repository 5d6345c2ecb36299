"""Plain text and source code. Plain text is paragraphs split on blank lines, with the one kind
of heading plain text marks reliably: a line underlined (and maybe overlined) with a run of
=, -, ~ and kin, as reStructuredText and AsciiDoc write them; levels in order of first use.
Source code is code blocks, one per top-level definition: a new block starts after a blank line
only where the next line is not indented, so a function's inner blank lines keep it whole."""

from __future__ import annotations

import re
import textwrap

from ..document import Builder, one_line

_UNDERLINE = re.compile(r"^([=\-~^*+#\"'`:._])\1{2,}\s*$")
_LONGEST_TITLE = 120
# A line that closes what an earlier one opened continues its block.
_CONTINUES = re.compile(r"^(\s|[)\]}]|end\b|fi\b|done\b|esac\b)")


def read_plain(text: str, out: Builder) -> None:
    styles: list[tuple[str, bool]] = []  # heading marks in order of first use: level - 1
    for lines in _paragraphs(text):
        _read_paragraph(lines, styles, out)


def _paragraphs(text: str):
    lines: list[str] = []
    for line in text.split("\n"):
        if line.strip():
            lines.append(line.rstrip())
        elif lines:
            yield lines
            lines = []
    if lines:
        yield lines


def _read_paragraph(lines: list[str], styles: list[tuple[str, bool]], out: Builder) -> None:
    """Emit a paragraph's lines, split around any underlined headings in it."""
    body_from = 0
    i = 0
    while i + 1 < len(lines):
        title, mark = lines[i], lines[i + 1]
        if not _is_underline(mark, title):
            i += 1
            continue
        overlined = i > body_from and lines[i - 1].strip() == mark.strip()
        _add_body(lines[body_from:i - 1 if overlined else i], out)
        style = (mark.strip()[0], overlined)
        if style not in styles:
            styles.append(style)
        out.add("heading", one_line(title), styles.index(style) + 1)
        i += 2
        body_from = i
    _add_body(lines[body_from:], out)


def _is_underline(mark: str, title: str) -> bool:
    title = title.strip()
    return (bool(_UNDERLINE.match(mark)) and 0 < len(title) <= _LONGEST_TITLE
            and not _UNDERLINE.match(title) and len(mark.strip()) >= len(title) - 2)


def _add_body(lines: list[str], out: Builder) -> None:
    if lines and not all(_UNDERLINE.match(line.strip()) for line in lines):  # rules aside
        out.add("paragraph", textwrap.dedent("\n".join(lines)).strip("\n"))


def read_source(text: str, out: Builder) -> None:
    block: list[str] = []
    after_blank = False
    for line in text.split("\n"):
        line = line.rstrip()
        if not line:
            after_blank = bool(block)
            if block:
                block.append("")
            continue
        if after_blank and not _CONTINUES.match(line):
            out.add("code", "\n".join(block).strip("\n"))
            block = []
        after_blank = False
        block.append(line)
    out.add("code", "\n".join(block).strip("\n"))
