"""Uploaded bytes to an Extracted document: which kind of file it is (by content type, then
file name, then content), decoding it to text, and the format reader that finds its structure
(formats/). Everything here is untrusted input: nothing is executed or fetched, and the limits
below bound the text and work one document may cause.

    extract(data, "notes.md") -> Extracted(text, title, blocks, "text/markdown")
"""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from pathlib import PurePosixPath

from .document import Block, Builder, Extracted
from .errors import DocumentTooLarge, EmptyDocument, UnsupportedType
from .formats import data, docx, html, markdown, pdf, text

__all__ = ["CONTENT_TYPES", "MAX_BLOCKS", "MAX_TEXT_CHARS", "Block", "Extracted", "extract"]

# The most text one document may extract to, and the most blocks (each one a row in memory).
MAX_TEXT_CHARS = 20_000_000
MAX_BLOCKS = 500_000

TEXT = "text/plain"
MARKDOWN = "text/markdown"
HTML = "text/html"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
CSV = "text/csv"
JSON = "application/json"
SOURCE = "text/x-source"
CONTENT_TYPES = (TEXT, MARKDOWN, HTML, PDF, DOCX, CSV, JSON, SOURCE)

# Declared types, as browsers and clients send them, to the type read.
_DECLARED = {
    "text/plain": TEXT, "text/x-rst": TEXT, "text/x-log": TEXT,
    "text/markdown": MARKDOWN, "text/x-markdown": MARKDOWN,
    "text/html": HTML, "application/xhtml+xml": HTML,
    "application/pdf": PDF, "application/x-pdf": PDF,
    DOCX: DOCX,
    "text/csv": CSV, "application/csv": CSV, "text/tab-separated-values": CSV,
    "application/json": JSON, "text/json": JSON,
    **dict.fromkeys((
        "text/x-source", "text/x-python", "text/x-script.python", "application/x-python-code",
        "text/javascript", "application/javascript", "application/x-javascript",
        "application/typescript", "text/x-typescript", "text/x-go", "text/x-rust", "text/x-c",
        "text/x-csrc", "text/x-chdr", "text/x-c++", "text/x-c++src", "text/x-java",
        "text/x-java-source", "application/x-sh", "text/x-sh", "text/x-shellscript",
        "application/x-shellscript", "text/x-ruby", "application/x-ruby", "application/toml",
        "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "application/sql",
        "text/x-sql", "text/css", "text/x-ini", "text/x-lua", "text/x-perl", "text/x-php",
        "application/x-php"), SOURCE),
}
# Declared types that say nothing: the name or the content decides.
_GENERIC = {"", "application/octet-stream", "binary/octet-stream", "application/unknown",
            "application/x-unknown", "application/binary", "multipart/form-data"}
# Declared types that clients fall back to for any text: a known extension refines them.
_WEAK = {TEXT}

_EXTENSIONS = {
    **dict.fromkeys(("txt", "text", "log", "rst", "adoc", "asciidoc", "textile", "org"), TEXT),
    **dict.fromkeys(("md", "markdown", "mdown", "mkd", "mkdn"), MARKDOWN),
    **dict.fromkeys(("html", "htm", "xhtml", "shtml"), HTML),
    "pdf": PDF,
    "docx": DOCX,
    **dict.fromkeys(("csv", "tsv"), CSV),
    **dict.fromkeys(("json", "jsonl", "ndjson", "geojson"), JSON),
    **dict.fromkeys((
        "py", "pyi", "pyw", "js", "mjs", "cjs", "jsx", "ts", "tsx", "mts", "go", "rs", "c", "h",
        "cc", "cpp", "cxx", "hpp", "hh", "hxx", "java", "kt", "kts", "scala", "swift", "m", "mm",
        "cs", "fs", "vb", "php", "pl", "pm", "rb", "lua", "r", "jl", "dart", "zig", "nim", "ex",
        "exs", "erl", "hrl", "hs", "ml", "mli", "clj", "el", "lisp", "scm", "sh", "bash", "zsh",
        "fish", "ps1", "bat", "cmd", "toml", "yaml", "yml", "ini", "cfg", "conf", "properties",
        "env", "sql", "css", "scss", "sass", "less", "vue", "svelte", "proto", "graphql", "tf",
        "hcl", "gradle", "cmake", "mk", "make", "nix", "dockerfile", "xml", "xsd", "svg"), SOURCE),
}
# Source files known by their whole name.
_SOURCE_NAMES = {"makefile", "dockerfile", "containerfile", "gemfile", "rakefile", "justfile",
                 "cmakelists.txt", "vagrantfile", "procfile", "jenkinsfile"}

_READERS = {
    TEXT: text.read_plain, MARKDOWN: markdown.read, HTML: html.read, CSV: data.read_csv,
    JSON: data.read_json, SOURCE: text.read_source,
}
_BINARY_READERS = {PDF: pdf.read, DOCX: docx.read}

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# C0 controls but tab, newlines and form feed, and C1 controls: rare in text, common in binary.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f-\x9f]")
_SAMPLE = 1 << 16
_HTML_SNIFF = re.compile(rb"^\s*(<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>])",
                         re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)


def extract(data: bytes, name: str, content_type: str | None = None) -> Extracted:
    """The text, title and structural blocks of an uploaded file.

    Raises UnsupportedType, EmptyDocument, DocumentTooLarge or UnreadableDocument (KbError).
    """
    if not data.strip():
        raise EmptyDocument(name)
    kind = detect_type(data, name, content_type)
    out = Builder(name, MAX_TEXT_CHARS, MAX_BLOCKS)
    if kind in _BINARY_READERS:
        _BINARY_READERS[kind](data, out)
    else:
        if len(data) > 4 * MAX_TEXT_CHARS:  # UTF-8 takes at most four bytes a character
            raise DocumentTooLarge(name, f"more than {MAX_TEXT_CHARS:,} characters of text")
        _READERS[kind](decode(data, name, html=kind == HTML), out)
    return out.finish(kind, title_from_heading=kind not in (CSV, JSON, SOURCE))


def detect_type(data: bytes, name: str, content_type: str | None = None) -> str:
    """The type to read the file as: a meaningful declared type, else the name, else sniffed."""
    declared = (content_type or "").split(";")[0].strip().lower()
    by_name = type_by_name(name)
    if declared in _DECLARED and not (declared in _WEAK and by_name):
        return _DECLARED[declared]
    if by_name:
        return by_name
    if declared not in _GENERIC and not declared.startswith("text/"):
        raise UnsupportedType(f"of type {declared}", name)
    return sniff(data, name)


def type_by_name(name: str) -> str | None:
    path = PurePosixPath(name.replace("\\", "/").lower())
    if path.name in _SOURCE_NAMES:
        return SOURCE
    return _EXTENSIONS.get(path.suffix.lstrip("."))


def sniff(data: bytes, name: str) -> str:
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith(b"PK\x03\x04"):
        if _is_docx(data):
            return DOCX
        raise UnsupportedType(_describe(name, "a zip archive"), name)
    head = data[:_SAMPLE]
    for bom in (codecs.BOM_UTF8, *_UTF16_BOMS):
        if head.startswith(bom):
            head = head[len(bom):] if bom == codecs.BOM_UTF8 else b""
    if _HTML_SNIFF.match(head):
        return HTML
    try:
        decode(data[:_SAMPLE], name)
    except UnsupportedType:
        raise UnsupportedType(_describe(name, "binary data rather than text"), name) from None
    return TEXT


def _is_docx(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return False


def _describe(name: str, fallback: str) -> str:
    suffix = PurePosixPath(name).suffix
    return f"a {suffix} file" if suffix else fallback


def decode(data: bytes, name: str, html: bool = False) -> str:
    """Bytes of a text type to str, newlines as \\n: UTF-8 (BOM or not), UTF-16 with a BOM,
    an HTML page's declared charset, else Latin-1. Binary content is refused."""
    text = _decode(data, html)
    sample = text[:_SAMPLE]
    if "\x00" in sample or len(_CONTROL.findall(sample)) > len(sample) // 50:
        raise UnsupportedType("binary data rather than text", name)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode(data: bytes, html: bool) -> str:
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8", "replace")
    if data.startswith(_UTF16_BOMS):
        return data.decode("utf-16", "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if html and (declared := _declared_charset(data)):
        return data.decode(declared, "replace")
    return data.decode("latin-1")


def _declared_charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:4096])
    if not match:
        return None
    try:
        return codecs.lookup(match.group(1).decode("ascii")).name
    except LookupError:
        return None
