"""PDF, read with pypdf (pure Python, imported only when a PDF comes): the text of each page,
laid out as on the page, in paragraphs split on blank lines. Headings are not guessed from font
sizes: the ones taken are lines that match the PDF's own outline (its bookmarks) on the page
the outline points to, at the outline's depth. Running headers and footers (a line that starts
or ends most pages, page numbers aside) are dropped.

pypdf bounds what a hostile file can make it allocate and parse per stream; anything it raises
on a broken file becomes UnreadableDocument, and a page it cannot read is skipped. Its text
extraction is slow (about a megabyte of page content a second), so the pages' content is
measured before any is read, as is the page count, and the time spent is bounded too: a small
file whose pages all draw one huge stream is refused at once, not after minutes."""

from __future__ import annotations

import io
import logging
import re
import time
from collections import Counter

from ..document import Builder, one_line
from ..errors import DocumentTooLarge, EmptyDocument, KbError, UnreadableDocument

MAX_PAGES = 5_000
MAX_CONTENT_BYTES = 40 << 20  # the pages' content streams, unpacked; a dense page takes ~20 kB
MAX_SECONDS = 120
_NUMBERING = re.compile(r"^(chapter|part|section|appendix)?[a-z]?\d*$")
_LONGEST_NUMBERING = 16
_NON_WORD = re.compile(r"\W+")
_DIGITS = re.compile(r"\d+")


def read(data: bytes, out: Builder) -> None:
    reader = _open(data, out.name)
    try:
        pages = reader.pages
        count = len(pages)
    except Exception as error:  # pypdf raises many kinds on broken files
        raise UnreadableDocument(out.name, _why(error)) from None
    if count > MAX_PAGES:
        raise DocumentTooLarge(out.name, f"{count:,} pages; at most {MAX_PAGES:,} are read")
    _check_content_size(pages, out.name)
    texts = _page_texts(pages, out)
    if all(text is None for text in texts):
        raise UnreadableDocument(out.name, "pypdf could not read the text of any page")
    headings = _outline(reader)
    pages_lines = [_lines(text or "") for text in texts]
    furniture = _furniture(pages_lines)
    for number, lines in enumerate(pages_lines):
        _add_page(lines, furniture, headings.get(number, []), out)
    out.title = _metadata_title(reader)
    if out.empty:
        raise EmptyDocument(out.name, ": its pages have no text layer (scanned images?)")


def _pypdf():
    import pypdf  # here, not at the top: `offgrid serve` starts without it
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings are about the file
    return pypdf


def _open(data: bytes, name: str):
    pypdf = _pypdf()
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableDocument(name, "it is password-protected")
        return reader
    except KbError:
        raise
    except pypdf.errors.DependencyError:
        raise UnreadableDocument(name, "it is encrypted with AES, which this server cannot "
                                 "decrypt") from None
    except Exception as error:
        raise UnreadableDocument(name, _why(error)) from None


def _why(error: Exception) -> str:
    detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
    return f"not a readable PDF ({type(error).__name__}{': ' + detail if detail else ''})"


def _check_content_size(pages, name: str) -> None:
    total = 0
    for page in pages:
        try:
            contents = page.get_contents()
            total += len(contents.get_data()) if contents is not None else 0
        except Exception:  # that page is skipped when its text is read
            continue
        if total > MAX_CONTENT_BYTES:
            raise DocumentTooLarge(name, f"its pages draw more than {MAX_CONTENT_BYTES >> 20} MB "
                                   "of content")


def _page_texts(pages, out: Builder) -> list[str | None]:
    """Each page's text, or None where pypdf fails on it."""
    deadline = time.monotonic() + MAX_SECONDS
    texts: list[str | None] = []
    length = 0
    for page in pages:
        if time.monotonic() > deadline:
            raise DocumentTooLarge(out.name, f"reading its text takes over {MAX_SECONDS} s")
        texts.append(_page_text(page))
        length += len(texts[-1] or "")
        if length > 2 * out.max_chars:  # layout text has padding the builder drops
            raise DocumentTooLarge(out.name, f"more than {out.max_chars:,} characters of text")
    return texts


def _page_text(page) -> str | None:
    import pypdf
    for mode in ("layout", "plain"):  # layout keeps the spaces between words and paragraphs
        try:
            return page.extract_text(extraction_mode=mode)
        except pypdf.errors.LimitReachedError:
            return None  # the other mode would only hit it again
        except Exception:
            continue
    return None


def _lines(text: str) -> list[str]:
    """A page's lines with the layout's padding collapsed; blank lines kept as ""."""
    return [one_line(line) for line in text.split("\n")]


def _furniture(pages_lines: list[list[str]]) -> set[str]:
    """Running headers and footers: first or last lines (digits aside) of most pages."""
    if len(pages_lines) < 4:
        return set()
    edges = Counter()
    for lines in pages_lines:
        content = [line for line in lines if line]
        edges.update({_furniture_key(line) for line in content[:1] + content[-1:]})
    return {key for key, seen in edges.items() if seen * 2 >= len(pages_lines)}


def _furniture_key(line: str) -> str:
    return _DIGITS.sub("#", line.lower())


def _add_page(lines: list[str], furniture: set[str], headings: list[tuple[str, int]],
              out: Builder) -> None:
    content = [i for i, line in enumerate(lines) if line]
    edges = {i for i in content[:1] + content[-1:] if _furniture_key(lines[i]) in furniture}
    paragraph: list[str] = []
    for i, line in enumerate(lines):
        level = _heading_level(line, headings) if line and i not in edges else 0
        if not line or i in edges or level:
            out.add("paragraph", "\n".join(paragraph))
            paragraph = []
            if level:
                out.add("heading", line, level)
        else:
            paragraph.append(line)
    out.add("paragraph", "\n".join(paragraph))


def _heading_level(line: str, headings: list[tuple[str, int]]) -> int:
    """The outline level of the page's outline entry this line shows, consuming it; else 0."""
    squashed = _squash(line)
    for n, (title, level) in enumerate(headings):
        numbering = squashed[:len(squashed) - len(title)]
        if (squashed.endswith(title) and len(numbering) <= _LONGEST_NUMBERING
                and _NUMBERING.match(numbering)):
            del headings[n]
            return level
    return 0


def _squash(text: str) -> str:
    return _NON_WORD.sub("", text).casefold()


def _outline(reader) -> dict[int, list[tuple[str, int]]]:
    """Page index -> the (squashed title, level) of the outline entries that point to it."""
    found: dict[int, list[tuple[str, int]]] = {}
    try:
        todo = [(entry, 1) for entry in reversed(reader.outline)]
        while todo:
            entry, level = todo.pop()
            if isinstance(entry, list):
                todo.extend((child, level + 1) for child in reversed(entry))
                continue
            page = reader.get_destination_page_number(entry)
            title = _squash(str(entry.title or ""))
            if title and page is not None and page >= 0:
                found.setdefault(page, []).append((title, level))
    except Exception:  # a broken outline costs the headings, not the text
        pass
    return found


def _metadata_title(reader) -> str | None:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:
        return None
    return one_line(str(title)) if title and str(title).strip() else None
