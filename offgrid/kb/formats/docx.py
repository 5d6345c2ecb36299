"""Word .docx, read with zipfile and expat (no python-docx): paragraphs, headings (paragraph
styles Title and Heading 1-9, by style name or outline level, through basedOn chains), list
paragraphs (numbered, or a List style) as list items, and table rows (cells joined by " | ";
a nested table's text stays in its cell). The title is the document's core title.

A .docx is untrusted: each part is read in pieces up to MAX_PART_BYTES uncompressed, however
small it claims to be (zip bombs), and fed to an expat parser that refuses any DTD, so no
entity can be declared, let alone expanded (billion laughs) or fetched."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from xml.parsers import expat

from ..document import Builder, one_line
from ..errors import DocumentTooLarge, UnreadableDocument

MAX_PART_BYTES = 100 << 20
_PIECE = 1 << 20
_DOCUMENT = "word/document.xml"
_STYLES = "word/styles.xml"
_CORE = "docProps/core.xml"
# Transitional and Strict OOXML spell the WordprocessingML namespace differently.
_W = ("http://schemas.openxmlformats.org/wordprocessingml/2006/main",
      "http://purl.oclc.org/ooxml/wordprocessingml/main")
_DC_TITLE = "http://purl.org/dc/elements/1.1/ title"
_MC_FALLBACK = "http://schemas.openxmlformats.org/markup-compatibility/2006 Fallback"
_HEADING_NAME = re.compile(r"^heading ?([1-9])$")
_HEADING_ID = re.compile(r"^heading([1-9])$")
_BASED_ON_DEPTH = 20


class _Refused(Exception):
    """Raised from inside expat's callbacks: the part holds a DTD."""


def read(data: bytes, out: Builder) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        raise UnreadableDocument(out.name, "not a .docx file (it is not a zip archive)") from None
    with archive:
        names = set(archive.namelist())
        if _DOCUMENT not in names:
            raise UnreadableDocument(out.name, "not a Word document: it has no word/document.xml")
        styles = _Styles()
        if _STYLES in names:
            _parse(archive, _STYLES, styles.handlers(), out.name)
        body = _Body(styles, out)
        _parse(archive, _DOCUMENT, body.handlers(), out.name)
        if _CORE in names:
            out.title = _core_title(archive, out.name)


def _parse(archive: zipfile.ZipFile, part: str, handlers: dict[str, Callable], name: str) -> None:
    """Stream one part through a DTD-refusing expat parser, bounded in uncompressed size."""
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    parser.buffer_text = True
    for event, handler in handlers.items():
        setattr(parser, event, handler)
    read = 0
    try:
        with archive.open(part) as stream:
            while piece := stream.read(_PIECE):
                read += len(piece)
                if read > MAX_PART_BYTES:
                    raise DocumentTooLarge(name, f"its {part} unpacks to more than "
                                           f"{MAX_PART_BYTES >> 20} MB")
                parser.Parse(piece, False)
        parser.Parse(b"", True)
    except _Refused:
        raise UnreadableDocument(name, f"its {part} declares a DTD or entities, which a Word "
                                 "document never does") from None
    except expat.ExpatError as error:
        raise UnreadableDocument(name, f"its {part} is not well-formed XML ({error})") from None
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as error:
        # A corrupt or encrypted member, or a compression method zipfile lacks.
        raise UnreadableDocument(name, f"its {part} cannot be unpacked ({error})") from None


def _refuse(*_args):
    raise _Refused()


def _local(name: str) -> str | None:
    """The local name of a WordprocessingML element or attribute; None for other namespaces."""
    namespace, _, local = name.rpartition(" ")
    return local if namespace in _W else None


def _attr(attrs: dict[str, str], local: str) -> str | None:
    return next((value for key, value in attrs.items() if _local(key) == local), None)


class _Styles:
    """Paragraph styles: id -> name, outline level, list-ness and the style it is based on."""

    def __init__(self):
        self.styles: dict[str, dict] = {}
        self._current: dict | None = None

    def handlers(self) -> dict[str, Callable]:
        return {"StartElementHandler": self._start, "EndElementHandler": self._end}

    def _start(self, tag: str, attrs: dict[str, str]) -> None:
        local = _local(tag)
        if local == "style":
            self._current = {"id": _attr(attrs, "styleId") or ""}
            self.styles[self._current["id"]] = self._current
        elif self._current is not None and local in ("name", "basedOn", "outlineLvl"):
            self._current[local] = _attr(attrs, "val") or ""
        elif self._current is not None and local == "numPr":
            self._current["numPr"] = True

    def _end(self, tag: str) -> None:
        if _local(tag) == "style":
            self._current = None

    def _chain(self, style_id: str):
        for _ in range(_BASED_ON_DEPTH):  # basedOn may loop in a broken file
            style = self.styles.get(style_id)
            if style is None:
                return
            yield style
            style_id = style.get("basedOn", "")

    def heading_level(self, style_id: str) -> int:
        for style in self._chain(style_id):
            name = style.get("name", "").lower()
            if name == "title" or style["id"].lower() == "title":
                return 1
            if match := _HEADING_NAME.match(name) or _HEADING_ID.match(style["id"].lower()):
                return int(match.group(1))
            if (level := _outline_level(style.get("outlineLvl"))):
                return level
        return _heading_by_id(style_id)

    def is_list(self, style_id: str) -> bool:
        return any(style.get("numPr") or style.get("name", "").lower().startswith("list")
                   for style in self._chain(style_id))


def _heading_by_id(style_id: str) -> int:
    """Without styles.xml, the built-in style ids still say it."""
    if style_id.lower() == "title":
        return 1
    match = _HEADING_ID.match(style_id.lower())
    return int(match.group(1)) if match else 0


def _outline_level(value: str | None) -> int:
    """w:outlineLvl counts from 0; 9 means body text."""
    return int(value) + 1 if value and value.isdigit() and int(value) < 9 else 0


class _Paragraph:
    def __init__(self):
        self.parts: list[str] = []
        self.style = ""
        self.numbered = False
        self.outline_level = 0


class _Body:
    """Streams document.xml: paragraphs (a text box's ones nest inside a run: a stack) and
    table rows (tables nest inside cells: a depth)."""

    def __init__(self, styles: _Styles, out: Builder):
        self.styles = styles
        self.out = out
        self.paragraphs: list[_Paragraph] = []
        self.in_text = False
        self.skipping = 0  # inside mc:Fallback, which repeats what mc:Choice holds
        self.table_depth = 0
        self.cells: list[str] = []  # of the outermost table's current row
        self.cell: list[str] | None = None

    def handlers(self) -> dict[str, Callable]:
        return {"StartElementHandler": self._start, "EndElementHandler": self._end,
                "CharacterDataHandler": self._text}

    def _start(self, tag: str, attrs: dict[str, str]) -> None:
        if tag == _MC_FALLBACK or self.skipping:
            self.skipping += 1
            return
        local = _local(tag)
        if local is None:
            return
        paragraph = self.paragraphs[-1] if self.paragraphs else None
        if local == "p":
            self.paragraphs.append(_Paragraph())
        elif local == "t":
            self.in_text = True
        elif local in ("tbl", "tr", "tc"):
            self._table_start(local)
        elif paragraph is None:
            return
        elif local == "tab":
            paragraph.parts.append("\t")
        elif local in ("br", "cr"):
            paragraph.parts.append("\n")
        elif local == "pStyle":
            paragraph.style = _attr(attrs, "val") or ""
        elif local == "numPr":
            paragraph.numbered = True
        elif local == "outlineLvl":
            paragraph.outline_level = _outline_level(_attr(attrs, "val"))

    def _table_start(self, local: str) -> None:
        if local == "tbl":
            self.table_depth += 1
        elif self.table_depth == 1 and local == "tr":
            self.cells = []
        elif self.table_depth == 1 and local == "tc":
            self.cell = []

    def _end(self, tag: str) -> None:
        if self.skipping:
            self.skipping -= 1
            return
        local = _local(tag)
        if local == "t":
            self.in_text = False
        elif local == "p" and self.paragraphs:
            self._paragraph_end(self.paragraphs.pop())
        elif local == "tbl":
            self.table_depth -= 1
        elif self.table_depth == 1 and local == "tc" and self.cell is not None:
            self.cells.append(one_line(" ".join(self.cell)))
            self.cell = None
        elif self.table_depth == 1 and local == "tr":
            self.out.add("table_row", " | ".join(cell for cell in self.cells if cell))
            self.cells = []

    def _text(self, data: str) -> None:
        if self.in_text and self.paragraphs and not self.skipping:
            self.paragraphs[-1].parts.append(data)

    def _paragraph_end(self, paragraph: _Paragraph) -> None:
        text = "".join(paragraph.parts).strip()
        if self.table_depth:
            if self.cell is not None:
                self.cell.append(text)
            return
        level = paragraph.outline_level or self.styles.heading_level(paragraph.style)
        if level:
            self.out.add("heading", one_line(text), level)
        elif paragraph.numbered or self.styles.is_list(paragraph.style):
            self.out.add("list_item", text)
        else:
            self.out.add("paragraph", text)


def _core_title(archive: zipfile.ZipFile, name: str) -> str | None:
    parts: list[str] = []
    inside = [False]

    def start(tag, _attrs):
        inside[0] = tag == _DC_TITLE

    def end(_tag):
        inside[0] = False

    def text(data):
        if inside[0]:
            parts.append(data)

    _parse(archive, _CORE, {"StartElementHandler": start, "EndElementHandler": end,
                            "CharacterDataHandler": text}, name)
    return one_line("".join(parts)) or None
