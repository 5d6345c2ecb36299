"""Chunking extracted documents, with the real embedding model's tokenizer (all-MiniLM-L6-v2)
counting: offsets that always hold, no chunk over max_tokens, the document's structure kept
(headings start chunks and make their paths, small blocks merge, blocks split only when too big,
at sentences, lines or words), overlap within a section and never across one."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from offgrid.engine.llama import Model
from offgrid.kb.chunking import Chunk, chunks, embedding_text
from offgrid.kb.document import Block, Extracted
from offgrid.kb.ingest import extract

ROOT = Path(__file__).resolve().parents[2]
MAX, OVERLAP = 200, 40


@pytest.fixture(scope="module")
def model(model_files):
    model = Model(model_files["embedding"])
    yield model
    model.close()


@pytest.fixture(scope="module")
def tokens(model):
    """What count_tokens is in the knowledge base: the embedding model's token count."""
    return lambda text: len(model.tokenize(text))


class Counting:
    """model.tokenize's length, as the knowledge base counts; remembers how much it read."""

    def __init__(self, model: Model):
        self.model = model
        self.characters = 0

    def __call__(self, text: str) -> int:
        self.characters += len(text)
        return len(self.model.tokenize(text))


@pytest.fixture(scope="module")
def real_documents(documents, reference_pages, word_document) -> dict[str, Extracted]:
    reference = documents["debian-reference-en"]
    files = {
        "html": (reference / "ch03.en.html").read_bytes(),
        "git-html": (documents["git-doc"] / "git-rebase.html").read_bytes(),
        "txt": (documents["git-doc"] / "git-rebase.txt").read_bytes(),
        "md": (ROOT / "docs" / "api.md").read_bytes(),
        "pdf": reference_pages,
        "docx": word_document,
        "csv": (documents["distro-info-data"] / "ubuntu.csv").read_bytes(),
        "json": (documents["iso-codes"] / "iso_4217.json").read_bytes(),
        "py": (ROOT / "offgrid" / "engine" / "scheduler.py").read_bytes(),
    }
    names = {"html": "ch03.html", "git-html": "git-rebase.html", "txt": "git-rebase.txt",
             "md": "api.md", "pdf": "ref.pdf", "docx": "guide.docx", "csv": "ubuntu.csv",
             "json": "iso_4217.json", "py": "scheduler.py"}
    return {kind: extract(data, names[kind]) for kind, data in files.items()}


def heading_path_at(doc: Extracted, position: int) -> tuple[str, ...]:
    """The headings above `position`, worked out on their own from the blocks."""
    path: list[tuple[int, str]] = []
    for block in doc.blocks:
        if block.start >= position:
            break
        if block.kind == "heading":
            path = [entry for entry in path if entry[0] < block.level]
            path.append((block.level, " ".join(doc.block_text(block).split())))
    return tuple(text for _, text in path)


def content(doc: Extracted) -> list[Block]:
    return [block for block in doc.blocks if block.kind != "heading"]


def check(doc: Extracted, found: list[Chunk], count, max_tokens: int = MAX,
          overlap_tokens: int = OVERLAP) -> None:
    assert found and [chunk.index for chunk in found] == list(range(len(found)))
    for chunk in found:
        assert chunk.text == doc.text[chunk.start:chunk.end] and chunk.text.strip()
        assert count(chunk.text) <= max_tokens, chunk
    for before, after in itertools.pairwise(found):
        assert before.start < after.start and before.end < after.end
        if after.start < before.end:  # an overlap: same section, a word boundary, not too long
            assert after.heading_path == before.heading_path
            assert doc.text[after.start - 1].isspace()
            assert count(doc.text[after.start:before.end]) <= overlap_tokens + count("")
    for block in content(doc):  # every block's text is in a chunk
        inside = [c for c in found if c.start < block.end and c.end > block.start]
        assert inside and inside[0].start <= block.start and inside[-1].end >= block.end, block
        assert all(doc.text[a.end:b.start].strip() == "" for a, b in itertools.pairwise(inside))
    for chunk in found:
        first = next(b for b in content(doc) if b.end > chunk.start)
        assert chunk.heading_path == heading_path_at(doc, max(first.start, chunk.start))
        headings = [b for b in doc.blocks if b.kind == "heading" and
                    chunk.start <= b.start < chunk.end]
        if headings:  # headings only lead a chunk: none follows its content
            assert first.start > headings[-1].start


@pytest.mark.parametrize("kind", ["html", "git-html", "txt", "md", "pdf", "docx", "csv", "json",
                                  "py"])
def test_chunks_of_real_documents_keep_every_rule(model, real_documents, kind):
    doc = real_documents[kind]
    count = Counting(model)
    found = chunks(doc, count, MAX, OVERLAP)
    # Each block is counted once, sentences of the blocks split once more, overlaps a little:
    # never a count per candidate cut.
    assert count.characters <= 3 * len(doc.text) + 100
    check(doc, found, count)


def test_small_blocks_merge_and_code_that_fits_stays_whole(tokens, real_documents):
    doc = real_documents["html"]
    found = chunks(doc, tokens, MAX, OVERLAP)
    assert len(found) * 3 < len(doc.blocks)
    assert sum(tokens(c.text) for c in found) > len(found) * MAX // 2
    for block in doc.blocks:
        if block.kind == "code" and tokens(doc.block_text(block)) <= MAX:
            assert any(c.start <= block.start and block.end <= c.end for c in found), block


def test_each_section_overlaps_only_within_itself(tokens, real_documents):
    found = chunks(real_documents["txt"], tokens, MAX, OVERLAP)
    same = [(a, b) for a, b in itertools.pairwise(found) if a.heading_path == b.heading_path]
    across = [(a, b) for a, b in itertools.pairwise(found) if a.heading_path != b.heading_path]
    assert same and across
    assert sum(b.start < a.end for a, b in same) >= 0.8 * len(same)
    assert all(b.start >= a.end for a, b in across)
    without = chunks(real_documents["txt"], tokens, MAX, 0)
    assert all(b.start >= a.end for a, b in itertools.pairwise(without))


def one_block(text: str, kind: str = "paragraph", heading: str = "Section") -> Extracted:
    body_start = len(heading) + 2
    return Extracted(f"{heading}\n\n{text}", "A document",
                     (Block("heading", 0, len(heading), 1),
                      Block(kind, body_start, body_start + len(text))), "text/plain")


def test_a_long_paragraph_splits_at_sentence_ends(tokens, documents):
    page = (documents["git-doc"] / "git-rebase.txt").read_text()
    description = page.split("DESCRIPTION\n-----------\n")[1].split("\nOPTIONS\n")[0]
    sentences = " ".join(description.split())  # one paragraph of many sentences
    doc = one_block(sentences)
    assert tokens(sentences) > 3 * MAX
    found = chunks(doc, tokens, MAX, OVERLAP)
    check(doc, found, tokens)
    assert len(found) > 3
    # Cut at sentence ends, but where one "sentence" (an ASCII-art history) alone is too long.
    assert sum(c.text.endswith((".", ":", ")")) for c in found) > 0.7 * len(found)
    assert all(c.heading_path == ("Section",) for c in found)


def test_a_long_code_block_splits_at_blank_lines_then_lines(tokens):
    source = (ROOT / "offgrid" / "kb" / "chunking.py").read_text().strip()
    doc = one_block(source, "code")
    found = chunks(doc, tokens, MAX, OVERLAP)
    check(doc, found, tokens)
    assert all(doc.text[c.start - 1] in " \n" for c in found[1:])
    ends = [c.end for c in found[:-1]]
    assert sum(doc.text[end:end + 2] == "\n\n" for end in ends) > len(ends) // 2


def test_a_run_without_spaces_is_cut_to_fit(tokens):
    run = "QUJD" * 2000  # base64: one "word" of thousands of tokens
    doc = one_block(f"Before it. {run} After it.")
    found = chunks(doc, tokens, MAX, OVERLAP)
    check(doc, found, tokens)
    assert len(found) > 2 and found[-1].text.endswith("After it.")


def test_headings_start_chunks_and_make_their_paths(tokens):
    page = ("# Guide\n\n## Install\n\nRun the installer.\n\n## Use\n\n### Daily\n\n"
            "Open the app.\n\n# Appendix\n\n## Empty\n\n# Notes\n\nLast words.\n\n## Trailing")
    doc = extract(page.encode(), "guide.md")
    found = chunks(doc, tokens, MAX, OVERLAP)
    assert [(c.text, c.heading_path) for c in found] == [
        ("Guide\n\nInstall\n\nRun the installer.", ("Guide", "Install")),
        ("Use\n\nDaily\n\nOpen the app.", ("Guide", "Use", "Daily")),
        ("Notes\n\nLast words.", ("Notes",)),
    ]
    only_headings = extract(b"# Just a title", "title.md")
    assert [c.text for c in chunks(only_headings, tokens)] == ["Just a title"]


def test_a_heading_that_does_not_fit_with_its_text_stays_in_the_path(tokens):
    words = " ".join(["word"] * (MAX - 3))
    doc = extract(f"# A long heading here\n\n{words}".encode(), "x.md")
    (chunk,) = chunks(doc, tokens, MAX, OVERLAP)
    assert chunk.text == words and chunk.heading_path == ("A long heading here",)


def test_embedding_text_puts_the_title_and_heading_path_in_front():
    chunk = Chunk(0, "The text.", 0, 9, ("Guide", "Install", "Linux"))
    assert embedding_text("Manual", chunk) == "Manual — Guide › Install › Linux\n\nThe text."
    assert embedding_text("Guide", chunk) == "Guide — Install › Linux\n\nThe text."
    assert embedding_text(None, chunk) == "Guide › Install › Linux\n\nThe text."
    assert embedding_text(None, Chunk(0, "Plain.", 0, 6, ())) == "Plain."
    assert embedding_text("Manual", Chunk(0, "Plain.", 0, 6, ())) == "Manual\n\nPlain."
    leading = Chunk(0, "Install\n\nLinux\n\nRun it.", 0, 22, ("Guide", "Install", "Linux"))
    assert embedding_text("Manual", leading) == "Manual — Guide\n\nInstall\n\nLinux\n\nRun it."


@pytest.mark.parametrize("max_tokens, overlap_tokens", [(0, 0), (10, 10), (10, -1), (2, 0)])
def test_impossible_sizes_are_refused(tokens, max_tokens, overlap_tokens):
    doc = extract(b"Some text.", "x.txt")
    with pytest.raises(ValueError):
        chunks(doc, tokens, max_tokens, overlap_tokens)
