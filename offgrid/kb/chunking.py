"""An extracted document cut into chunks for embedding and citing, sized in the embedding
model's tokens and cut along the document's structure.

Structure first: blocks are never split unless one alone is over max_tokens (then at sentence,
line and word boundaries, or for code at blank lines, lines and words; a single run longer than
that at characters); small neighbouring blocks under the same heading are merged up to
max_tokens; a heading starts a new chunk, and the headings above a chunk are its heading_path.
Within a section each chunk after the first begins with about overlap_tokens of the one before
it: its start moves back to a sentence or word boundary, so `chunk.text` is always
`doc.text[chunk.start:chunk.end]`.

Counting tokens is the expensive part: each block, and each sentence of a block that must be
split, is counted once and the counts are added up. The separators between pieces are counted
as what they cost the tokenizer (nothing for BERT's WordPiece), measured once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .document import Block, Extracted, one_line

_PATH_CHARS = 200  # of one heading in a heading path
# After a sentence's end, and any closing quote or bracket: the whitespace between sentences.
_SENTENCES = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))\s+")
# Where an overlap may start: a sentence or a line.
_SENTENCES_OR_LINES = re.compile(_SENTENCES.pattern + r"|\s*\n\s*")
_BLANK_LINES = re.compile(r"\n[ \t]*\n\s*")
_LINES = re.compile(r"\s*\n\s*")
_WORDS = re.compile(r"\s+")
_PROSE_CUTS = (_SENTENCES, _LINES, _WORDS)
_CODE_CUTS = (_BLANK_LINES, _LINES, _WORDS)


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str  # == extracted.text[start:end]
    start: int
    end: int
    heading_path: tuple[str, ...]  # the headings above it, outermost first


@dataclass(frozen=True)
class _Unit:
    """A piece of a chunk: a block, a piece of a split block, or a carried overlap."""
    start: int
    end: int
    tokens: int
    level: int = 0  # a heading's level; 0 for content


def chunks(doc: Extracted, count_tokens: Callable[[str], int], max_tokens: int = 200,
           overlap_tokens: int = 40) -> list[Chunk]:
    """The document's chunks, in order. `count_tokens` is the embedding model's token count of
    a text, as it would embed it (what it adds to every text, such as CLS and SEP, included):
    no chunk counts over max_tokens. embedding_text() puts the title and heading path in
    front, so leave the model's context room for them above max_tokens."""
    if max_tokens < 1 or not 0 <= overlap_tokens < max_tokens:
        raise ValueError("need max_tokens >= 1 and 0 <= overlap_tokens < max_tokens")
    count = _Counter(count_tokens)
    if max_tokens <= count.fixed:
        raise ValueError(f"max_tokens must be over the {count.fixed} tokens every count adds")
    return _Chunker(doc, count, max_tokens, overlap_tokens).run()


def embedding_text(title: str | None, chunk: Chunk) -> str:
    """What gets embedded: "Title — H1 › H2", a blank line, then the chunk's text. Headings
    the chunk's text starts with, and a first heading that repeats the title, are not
    repeated in front of it."""
    path = list(chunk.heading_path)
    leading = set()
    for piece in chunk.text.split("\n\n", len(path))[:len(path)]:
        if piece not in path:
            break
        leading.add(piece)
    title = one_line(title) if title else None
    if title and path and path[0].casefold() == title.casefold():
        path.pop(0)
    path = [heading for heading in path if heading not in leading]
    if title in leading:
        title = None
    label = " — ".join(part for part in (title, " › ".join(path)) if part)
    return f"{label}\n\n{chunk.text}" if label else chunk.text


class _Counter:
    """count_tokens without what it adds to every call (BOS, CLS/SEP), and the cost of the
    blank line between two pieces."""

    def __init__(self, count_tokens: Callable[[str], int]):
        self._count = count_tokens
        self.fixed = count_tokens("")
        self.separator = max(0, self("a\n\nb") - self("a") - self("b"))

    def __call__(self, text: str) -> int:
        return max(0, self._count(text) - self.fixed)


class _Chunker:
    def __init__(self, doc: Extracted, count: _Counter, max_tokens: int, overlap_tokens: int):
        self.doc = doc
        self.count = count
        self.max = max_tokens - count.fixed  # what the pieces' own tokens may add up to
        self.overlap = overlap_tokens
        self.path: list[tuple[int, str]] = []  # (level, heading text) from the outermost
        self.units: list[_Unit] = []  # of the chunk being filled
        self.tokens = 0
        self.out: list[Chunk] = []

    def run(self) -> list[Chunk]:
        for block in self.doc.blocks:
            if block.kind == "heading":
                self._heading(block)
            else:
                for unit in self._units(block):
                    self._add(unit)
        if self._has_content() or not self.out:
            self._emit()
        return self.out

    # -- filling chunks --

    def _heading(self, block: Block) -> None:
        if self._has_content():
            self._emit()
            self._clear()
        level = block.level or 1
        while self.path and self.path[-1][0] >= level:
            self.path.pop()
        self.path.append((level, one_line(self.doc.block_text(block))[:_PATH_CHARS]))
        # Headings waiting for content keep only those still above it.
        kept = [unit for unit in self.units if unit.level < level]
        self.units, self.tokens = [], 0
        for unit in [*kept, *self._units(block, level)]:
            self._add(unit)

    def _add(self, unit: _Unit) -> None:
        joined = self.tokens + (self.count.separator if self.units else 0) + unit.tokens
        if self.units and joined > self.max:
            if self._has_content():
                previous = self._emit()
                self._clear()
                self._carry_overlap(previous, unit.tokens)
            else:  # only headings so far: they stay in the path, not in the text
                self._clear()
        if self.units:
            self.tokens += self.count.separator
        self.units.append(unit)
        self.tokens += unit.tokens

    def _has_content(self) -> bool:
        return any(unit.level == 0 for unit in self.units)

    def _clear(self) -> None:
        self.units, self.tokens = [], 0

    def _emit(self) -> _Unit | None:
        """Close the chunk being filled; its content (for the overlap) as one unit, or None."""
        if not self.units:
            return None
        start, end = self.units[0].start, self.units[-1].end
        path = tuple(text for _, text in self.path)
        self.out.append(Chunk(len(self.out), self.doc.text[start:end], start, end, path))
        content = [unit for unit in self.units if unit.level == 0] or self.units
        return _Unit(content[0].start, end, sum(unit.tokens for unit in content))

    def _carry_overlap(self, previous: _Unit | None, next_tokens: int) -> None:
        budget = min(self.overlap, self.max - next_tokens - self.count.separator)
        if previous is None or budget <= 0:
            return
        overlap = self._tail(previous, budget)
        if overlap:
            self.units.append(overlap)
            self.tokens = overlap.tokens

    def _tail(self, previous: _Unit, budget: int) -> _Unit | None:
        """About `budget` tokens at the end of `previous`, from a sentence or line start if one
        is near, else a word start. Where to start is estimated from the chunk's tokens per
        character, then counted, and moved on if over: one or two counts, not one a word."""
        text, end = self.doc.text, previous.end
        per_char = max(previous.tokens, 1) / max(end - previous.start, 1)
        target = max(previous.start, end - int(budget / per_char))
        region = max(previous.start, target - (end - target))  # some room before the target
        words = [previous.start] if region == previous.start else []
        words += [m.end() for m in _WORDS.finditer(text, region, end) if m.end() < end]
        sentences = {m.end() for m in _SENTENCES_OR_LINES.finditer(text, region, end)}
        halfway = (target + end) // 2
        start = next((w for w in words if target <= w <= halfway and w in sentences),
                     next((w for w in words if w >= target), None))
        while start is not None:
            tokens = self.count(text[start:end])
            if tokens <= budget:
                return _Unit(start, end, tokens)
            skip = start + max(1, int((tokens - budget) / per_char))
            start = next((w for w in words if w >= skip), None)
        return None

    # -- blocks to units --

    def _units(self, block: Block, level: int = 0) -> list[_Unit]:
        """The block as one unit, or, when it is over max_tokens, as pieces that fit."""
        text = self.doc.block_text(block)
        tokens = self.count(text)
        if tokens <= self.max:
            return [_Unit(block.start, block.end, tokens, level)]
        cuts = _CODE_CUTS if block.kind == "code" else _PROSE_CUTS
        # Pieces leave room for the overlap that each one after the first carries.
        limit = max(1, self.max - self.overlap - self.count.separator)
        return [_Unit(s, e, t, level)
                for s, e, t in self._split(block.start, block.end, cuts, limit)]

    def _split(self, start: int, end: int, cuts: tuple[re.Pattern, ...], limit: int):
        """(start, end, tokens) pieces of the span, each within `limit` tokens: whole segments
        at the first cut packed together, oversized ones split at the next cut."""
        if not cuts:
            yield from self._split_characters(start, end, limit)
            return
        packed: tuple[int, int, int] | None = None
        for seg_start, seg_end in _spans(self.doc.text, start, end, cuts[0]):
            tokens = self.count(self.doc.text[seg_start:seg_end])
            if packed and packed[2] + self.count.separator + tokens <= limit:
                packed = (packed[0], seg_end, packed[2] + self.count.separator + tokens)
                continue
            if packed:
                yield packed
                packed = None
            if tokens <= limit:
                packed = (seg_start, seg_end, tokens)
            else:
                yield from self._split(seg_start, seg_end, cuts[1:], limit)
        if packed:
            yield packed

    def _split_characters(self, start: int, end: int, limit: int):
        """A run with no whitespace over the limit (a long URL, base64): cut by length."""
        while start < end:
            tokens = self.count(self.doc.text[start:end])
            length = end - start
            while tokens > limit and length > 1:
                length = max(1, length * limit // tokens * 9 // 10)
                tokens = self.count(self.doc.text[start:start + length])
            yield start, start + length, tokens
            start += length


def _spans(text: str, start: int, end: int, cut: re.Pattern) -> list[tuple[int, int]]:
    """The non-blank pieces of text[start:end] between matches of `cut`, trimmed."""
    spans = []
    piece = start
    for match in cut.finditer(text, start, end):
        _append_trimmed(spans, text, piece, match.start())
        piece = match.end()
    _append_trimmed(spans, text, piece, end)
    return spans


def _append_trimmed(spans: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))
