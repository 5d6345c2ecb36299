"""A chat's knowledge: what to search for, the passages found put into the prompt as numbered
sources within a token budget, and the citations that go back with the answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

SHORT_QUESTION_WORDS = 6  # a question this short is read with the one before it
INSTRUCTIONS = ("Answer from the numbered sources below when they hold the answer, and cite each "
                "source you use as [n]. If they do not answer the question, say so.")


@dataclass(frozen=True)
class Passage:
    """A chunk found for a query, and where it comes from."""
    document_id: int
    document_name: str
    chunk_index: int
    start_char: int
    end_char: int
    text: str
    section: tuple[str, ...]
    score: float
    similarity: float | None  # cosine with the query, where the chunk has a vector


@dataclass(frozen=True)
class Citation:
    index: int  # the [n] the answer may cite it by
    passage: Passage

    def as_dict(self) -> dict:
        p = self.passage
        return {"index": self.index, "document_id": p.document_id,
                "document_name": p.document_name, "chunk_index": p.chunk_index,
                "start_char": p.start_char, "end_char": p.end_char, "text": p.text,
                "score": round(p.score, 4)}


def question(messages: list[tuple[str, str]]) -> str | None:
    """The text to search for: the last user message, with the one before it when it is short
    (a follow-up such as "and in winter?" means little alone)."""
    asked = [text for role, text in messages if role == "user" and text.strip()]
    if not asked:
        return None
    if len(asked) > 1 and len(asked[-1].split()) < SHORT_QUESTION_WORDS:
        return asked[-2] + "\n" + asked[-1]
    return asked[-1]


def with_sources(messages: list[tuple[str, str]], passages: list[Passage], budget: int,
                 count_tokens: Callable[[str], int]
                 ) -> tuple[list[tuple[str, str]], list[Citation]]:
    """The messages with the passages as numbered sources in the system message, as many as fit
    `budget` tokens, best first; and the citations of those that went in."""
    citations: list[Citation] = []
    blocks: list[str] = []
    used = count_tokens(INSTRUCTIONS)
    for passage in passages:
        block = _source(len(citations) + 1, passage)
        cost = count_tokens(block)
        if used + cost > budget:
            continue  # a shorter one further down may still fit
        used += cost
        blocks.append(block)
        citations.append(Citation(len(citations) + 1, passage))
    if not citations:
        return messages, []
    sources = INSTRUCTIONS + "\n\n" + "\n\n".join(blocks)
    if messages and messages[0][0] == "system":
        return [("system", messages[0][1] + "\n\n" + sources), *messages[1:]], citations
    return [("system", sources), *messages], citations


def _source(index: int, passage: Passage) -> str:
    where = " > ".join((passage.document_name, *passage.section))
    return f"[{index}] {where}\n{passage.text.strip()}"
