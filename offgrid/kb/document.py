"""An extracted document: its plain text, and the structural blocks that point into it. Every
format reader fills a Builder, which lays the blocks out one after another, so that offsets
hold by construction and the size limits are checked as the text grows, not after."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import DocumentTooLarge, EmptyDocument

BLOCK_KINDS = ("heading", "paragraph", "list_item", "code", "table_row")
# One-line neighbours of these kinds sit on consecutive lines; any other pair is a blank line
# apart.
_LINE_KINDS = ("list_item", "table_row")
_TITLE_CHARS = 300


@dataclass(frozen=True, slots=True)
class Block:
    """A structural piece of the text: Extracted.text[start:end], end exclusive."""
    kind: str
    start: int
    end: int
    level: int = 0  # headings: 1..6


@dataclass(frozen=True)
class Extracted:
    text: str  # the document as plain text; every offset points into it
    title: str | None
    blocks: tuple[Block, ...]  # in order, covering the meaningful text
    content_type: str  # the normalized type, one of ingest.CONTENT_TYPES

    def block_text(self, block: Block) -> str:
        return self.text[block.start:block.end]


def one_line(text: str) -> str:
    """Whitespace runs, newlines included, as single spaces."""
    return " ".join(text.split())


class Builder:
    """Collects blocks in document order into one text; refuses a document past the limits."""

    def __init__(self, name: str, max_chars: int, max_blocks: int):
        self.name = name
        self.title: str | None = None
        self.max_chars = max_chars
        self._max_blocks = max_blocks
        self._parts: list[str] = []
        self._length = 0
        self._blocks: list[Block] = []
        self._one_liner = False  # the last block: a one-line list item or table row

    def add(self, kind: str, text: str, level: int = 0) -> None:
        """Append a block; text that is blank is skipped. Callers strip and normalize it."""
        if not text or text.isspace():
            return
        one_liner = kind in _LINE_KINDS and "\n" not in text
        if self._blocks:
            tight = one_liner and self._one_liner and kind == self._blocks[-1].kind
            self._append("\n" if tight else "\n\n")
        self._one_liner = one_liner
        start = self._length
        self._append(text)
        if len(self._blocks) >= self._max_blocks:
            raise DocumentTooLarge(self.name, f"more than {self._max_blocks:,} paragraphs, "
                                   "rows or entries")
        self._blocks.append(Block(kind, start, self._length, min(level, 6) if level else 0))

    def _append(self, text: str) -> None:
        self._length += len(text)
        if self._length > self.max_chars:
            raise DocumentTooLarge(self.name, f"more than {self.max_chars:,} characters of "
                                   "text")
        self._parts.append(text)

    @property
    def empty(self) -> bool:
        return not self._blocks

    def finish(self, content_type: str, title_from_heading: bool = True) -> Extracted:
        """The document; its title falls back to the first heading. Empty is an error."""
        if not self._blocks:
            raise EmptyDocument(self.name)
        text = "".join(self._parts)
        title = self.title
        if not title and title_from_heading:
            heading = next((b for b in self._blocks if b.kind == "heading"), None)
            title = text[heading.start:heading.end] if heading else None
        title = one_line(title)[:_TITLE_CHARS] if title else None
        return Extracted(text, title or None, tuple(self._blocks), content_type)
