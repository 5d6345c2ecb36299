"""Markdown, read line by line as CommonMark lays out blocks: ATX (# ...) and setext
(underlined) headings, paragraphs, list items (nested ones too, each its own block, marker
kept), fenced and indented code blocks (kept verbatim), pipe-table rows, and YAML front matter
(as code). Inline markup stays as written: it is readable as plain text."""

from __future__ import annotations

import re
import textwrap

from ..document import Builder, one_line

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_BREAK = re.compile(r"^ {0,3}([-*_])([ \t]*\1){2,}[ \t]*$")
_ITEM = re.compile(r"^(\s*)([-*+]|\d{1,9}[.)])([ \t]+|$)")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?(\s*:?-+:?\s*\|)+\s*(:?-+:?\s*)?\|?\s*$")
_INDENTED = re.compile(r"^( {4}|\t)")
_FRONT_MATTER_LINES = 200


def read(text: str, out: Builder) -> None:
    _Reader(out).read(text.split("\n"))


class _Reader:
    def __init__(self, out: Builder):
        self.out = out
        self.paragraph: list[str] = []
        self.item: list[str] = []
        self.item_indent = 0
        self.code: list[str] = []  # an indented code block
        self.fence: tuple[str, int, int] | None = None  # char, length, indent
        self.blank_before = True

    def read(self, lines: list[str]) -> None:
        start = self._front_matter(lines)
        for line in lines[start:]:
            if self.fence:
                self._fenced_line(line)
            elif not line.strip():
                self._blank()
            else:
                self._line(line)
                self.blank_before = False
        self._flush()  # an unclosed fence runs to the end

    def _front_matter(self, lines: list[str]) -> int:
        if not lines or lines[0].rstrip() != "---":
            return 0
        for end in range(1, min(len(lines), _FRONT_MATTER_LINES)):
            if lines[end].rstrip() in ("---", "..."):
                self.out.add("code", "\n".join(lines[1:end]).strip("\n"))
                return end + 1
        return 0

    def _fenced_line(self, line: str) -> None:
        char, length, indent = self.fence
        stripped = line.strip()
        if stripped.startswith(char * length) and not stripped.strip(char):
            self._flush_code()
            return
        self.code.append(line[min(indent, len(line) - len(line.lstrip())):])

    def _blank(self) -> None:
        self._flush_paragraph()
        if self.code:
            self.code.append("")
        if self.item:
            self.item.append("")
        self.blank_before = True

    def _line(self, line: str) -> None:
        fence = _FENCE.match(line)
        if fence and not (fence.group(2)[0] == "`" and "`" in fence.group(3)):  # ``x`` is not
            self._flush()
            marks = fence.group(2)
            self.fence = (marks[0], len(marks), len(fence.group(1)))
            return
        if self.code and _INDENTED.match(line):
            self.code.append(line[4:] if line.startswith("    ") else line[1:])
            return
        self._flush_code()
        if self.item and self._continues_item(line):
            self.item.append(line.strip())
        elif heading := _ATX.match(line):
            self._flush()
            self.out.add("heading", (heading.group(2) or "").strip(), len(heading.group(1)))
        elif self.paragraph and not self.item and (underline := _SETEXT.match(line)):
            self.out.add("heading", one_line(" ".join(self.paragraph)),
                         1 if underline.group(1)[0] == "=" else 2)
            self.paragraph = []
        elif _BREAK.match(line):
            self._flush()
        elif item := _ITEM.match(line):
            self._flush()
            self.item = [line.strip()]
            self.item_indent = len(item.group(0)) if item.group(3) else len(item.group(0)) + 1
        elif _TABLE_ROW.match(line):
            self._flush()
            if not _TABLE_RULE.match(line):
                self.out.add("table_row", line.strip())
        elif not self.paragraph and self.blank_before and _INDENTED.match(line):
            self._flush()
            self.code = [line[4:] if line.startswith("    ") else line[1:]]
        else:
            self._flush_item()
            self.paragraph.append(line.rstrip())

    def _continues_item(self, line: str) -> bool:
        """A line inside the open list item: indented under its text, or (lazily) a line right
        after it that starts nothing new."""
        indent = len(line) - len(line.lstrip())
        if _ITEM.match(line):
            return False
        if self.blank_before:
            return indent >= min(self.item_indent, 4)
        return not (_ATX.match(line) or _BREAK.match(line) or _TABLE_ROW.match(line))

    def _flush_paragraph(self) -> None:
        if self.paragraph:
            self.out.add("paragraph", textwrap.dedent("\n".join(self.paragraph)).strip("\n"))
            self.paragraph = []

    def _flush_item(self) -> None:
        if self.item:
            self.out.add("list_item", "\n".join(self.item).strip("\n"))
            self.item = []

    def _flush_code(self) -> None:
        if self.fence or self.code:
            self.out.add("code", "\n".join(self.code).strip("\n"))
        self.fence = None
        self.code = []

    def _flush(self) -> None:
        self._flush_paragraph()
        self._flush_item()
        self._flush_code()
