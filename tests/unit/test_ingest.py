"""The knowledge base's ingestion: each format from real files (Debian's documentation and data
packages, this repository's Markdown and source, a PDF and a .docx written by real libraries),
the type chosen from what the client declares, the name and the content, the refusals, and
hostile files, which are refused or read quickly with nothing raised but KbError."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import pytest

from offgrid.kb import ingest
from offgrid.kb.errors import (
    DocumentTooLarge,
    EmptyDocument,
    KbError,
    UnreadableDocument,
    UnsupportedType,
)
from offgrid.kb.formats import docx
from offgrid.kb.ingest import DOCX, extract

ROOT = Path(__file__).resolve().parents[2]


def consistent(doc: ingest.Extracted) -> ingest.Extracted:
    """Blocks in order, inside the text, none blank or padded; the text holds only blocks and
    the separators between them."""
    assert doc.content_type in ingest.CONTENT_TYPES
    assert doc.blocks
    previous_end = 0
    for block in doc.blocks:
        assert previous_end <= block.start < block.end <= len(doc.text), block
        assert doc.text[previous_end:block.start].strip() == "", block
        text = doc.text[block.start:block.end]
        assert text == doc.block_text(block) and text.strip()
        assert not text[-1].isspace() and text[0] != "\n"
        assert block.kind in ("heading", "paragraph", "list_item", "code", "table_row")
        assert (1 <= block.level <= 6) if block.kind == "heading" else block.level == 0
        previous_end = block.end
    assert doc.text[previous_end:] == ""
    return doc


def texts(doc: ingest.Extracted, kind: str) -> list[str]:
    return [doc.block_text(b) for b in doc.blocks if b.kind == kind]


def headings(doc: ingest.Extracted) -> list[tuple[int, str]]:
    return [(b.level, doc.block_text(b)) for b in doc.blocks if b.kind == "heading"]


# -- formats, from real files ---------------------------------------------------------------------

def test_html_keeps_the_content_and_drops_scripts_styles_and_navigation(documents):
    page = documents["git-doc"] / "git-rebase.html"
    raw = page.read_text()
    assert "<script" in raw and "<style" in raw and "&lt;upstream&gt;" in raw
    doc = consistent(extract(page.read_bytes(), page.name))
    assert doc.content_type == "text/html" and doc.title == "git-rebase(1)"
    assert "Mihai Bazon" not in doc.text and "font-family" not in doc.text  # script, style
    assert "If <upstream> is not specified" in doc.text and "&lt;" not in doc.text
    assert headings(doc)[:4] == [(1, "git-rebase(1) Manual Page"), (2, "NAME"), (2, "SYNOPSIS"),
                                 (2, "DESCRIPTION")]
    assert "git rebase [-i | --interactive] [<options>] [--exec <cmd>]\n        [--onto" in \
        texts(doc, "code")[0]  # a pre block keeps its lines and indentation


def test_docbook_html_drops_its_navigation_and_table_of_contents(documents):
    page = documents["debian-reference-en"] / "ch03.en.html"
    raw = page.read_text()
    assert 'class="navfooter"' in raw and 'class="toc"' in raw
    doc = consistent(extract(page.read_bytes(), page.name, "text/html; charset=UTF-8"))
    assert doc.title == "Chapter 3. The system initialization"
    assert "Chapter 4. Authentication and access controls" not in doc.text  # the footer's
    assert "Table of Contents" not in doc.text
    levels = headings(doc)
    assert levels[:3] == [(1, "Chapter 3. The system initialization"),
                          (2, "3.1. An overview of the boot strap process"),
                          (3, "3.1.1. Stage 1: the UEFI")]
    assert {level for level, _ in levels} == {1, 2, 3}
    assert "package | popcon | size | initrd | bootloader | description" in texts(doc, "table_row")
    assert any(t.startswith("menuentry 'Debian GNU/Linux'") for t in texts(doc, "code"))
    assert any(t.startswith("bootup(7) describes") for t in texts(doc, "list_item"))


def test_every_page_of_the_debian_reference_reads(documents):
    for page in sorted(documents["debian-reference-en"].glob("*.html")):
        doc = consistent(extract(page.read_bytes(), page.name))
        assert doc.title and headings(doc), page.name


def test_html_structure_entities_and_whitespace():
    page = b"""<!DOCTYPE html><html><head><title>Caf&eacute; &amp; co</title>
      <style>p { color: red }</style><script>var secret = 1;</script></head><body>
      <header><a href="/">Home</a> <a href="/menu">Menu</a></header>
      <nav><ul><li>Skip me</li></ul></nav>
      <div role="navigation">Breadcrumbs</div><div class="sidebar toc">Contents</div>
      <article><header><h1>Opening   hours</h1></header>
      <p>We open at <b>nine</b>&nbsp;o&#8217;clock,
         and close   at five.</p>
      <ul><li>Monday<li>Tuesday <ul><li>mornings only</li></ul></li></ul>
      <pre>  def f():
      return 1</pre>
      <table><tr><th>Day</th><th></th><th>Open</th></tr><tr><td>Sun</td><td>no</td></tr></table>
      <template>Hidden template</template><noscript>Enable JS</noscript>
      <svg><title>icon</title><text>Logo</text></svg><p hidden>Invisible</p>
      <h2>Holidays</h2><p>Closed on 25&nbsp;December.<br>Open on the 26th.</p></article>
      <footer>Copyright 2024</footer><aside>Related</aside></body></html>"""
    doc = consistent(extract(page, "hours.html"))
    assert doc.title == "Café & co"
    for dropped in ("secret", "color", "Home", "Skip me", "Breadcrumbs", "Contents",
                    "Hidden template", "Enable JS", "Logo", "icon", "Invisible", "Copyright",
                    "Related"):
        assert dropped not in doc.text, dropped
    assert headings(doc) == [(1, "Opening hours"), (2, "Holidays")]
    assert texts(doc, "paragraph") == ["We open at nine o’clock, and close at five.",
                                       "Closed on 25 December. Open on the 26th."]
    assert texts(doc, "list_item") == ["Monday", "Tuesday", "mornings only"]
    assert texts(doc, "code") == ["  def f():\n      return 1"]
    assert texts(doc, "table_row") == ["Day | Open", "Sun | no"]


def test_pdf_pages_with_headings_from_the_outline(reference_pages):
    doc = consistent(extract(reference_pages, "debian-reference.pdf"))
    assert doc.content_type == "application/pdf" and doc.title == "Debian Reference"
    found = headings(doc)
    assert found[:4] == [(1, "GNU/Linux tutorials"), (2, "1.1 Console basics"),
                         (3, "1.1.1 The shell prompt"), (3, "1.1.2 The shell prompt under GUI")]
    assert (2, "1.2 Unix-like filesystem") in found
    assert "DebianReference" not in doc.text  # the running header of every page
    assert "Debian GNU/Linux comes with ABSOLUTELY NO WARRANTY" in doc.text
    assert all("\n\n" not in t for t in texts(doc, "paragraph"))


def test_plain_text_paragraphs_and_underlined_headings(documents):
    page = documents["git-doc"] / "git-rebase.txt"
    doc = consistent(extract(page.read_bytes(), page.name))
    assert doc.content_type == "text/plain" and doc.title == "git-rebase(1)"
    assert headings(doc)[:3] == [(1, "git-rebase(1)"), (2, "NAME"), (2, "SYNOPSIS")]
    assert "git-rebase - Reapply commits on top of another base tip" in texts(doc, "paragraph")
    assert "=====" not in doc.text and "\n----\n" not in doc.text


def test_a_whole_book_as_plain_text(documents):
    book = gzip.decompress((documents["debian-reference-en"] /
                            "debian-reference.en.txt.gz").read_bytes())
    doc = consistent(extract(book, "debian-reference.en.txt", "text/plain"))
    assert len(doc.text) > 800_000 and len(doc.blocks) > 4_000
    assert "Osamu Aoki" in doc.text and "\n-----" not in doc.text  # rules are not text


def test_markdown_from_this_repository():
    readme = (ROOT / "README.md").read_bytes()
    doc = consistent(extract(readme, "README.md", "text/markdown"))
    assert doc.content_type == "text/markdown" and doc.title == "OffGrid"
    assert headings(doc)[:2] == [(1, "OffGrid"), (2, "Two commands")]
    assert "./scripts/serve.sh" in texts(doc, "code")
    assert all(item.startswith("- ") for item in texts(doc, "list_item"))
    for page in sorted((ROOT / "docs").glob("*.md")):
        doc = consistent(extract(page.read_bytes(), page.name))
        assert doc.content_type == "text/markdown" and headings(doc), page.name
        for code in texts(doc, "code"):  # verbatim
            assert code in page.read_text(), page.name


def test_markdown_blocks():
    page = """---
title: Notes
---
Setext title
============

A paragraph
on two lines.

## Install ##

1. Download it
   and unpack it
2. Run `make`
   - nested item

```sh
make   install

# not a heading
```

    indented code
        keeps indentation

| Name | Size |
|------|-----:|
| a    | 1    |

Sub part
--------
***
Last words.
"""
    doc = consistent(extract(page.encode(), "notes.md"))
    assert headings(doc) == [(1, "Setext title"), (2, "Install"), (2, "Sub part")]
    assert texts(doc, "code") == ["title: Notes", "make   install\n\n# not a heading",
                                  "indented code\n    keeps indentation"]
    assert texts(doc, "list_item") == ["1. Download it\nand unpack it", "2. Run `make`",
                                       "- nested item"]
    assert texts(doc, "table_row") == ["| Name | Size |", "| a    | 1    |"]
    assert texts(doc, "paragraph") == ["A paragraph\non two lines.", "Last words."]


def test_docx_written_by_python_docx(word_document):
    doc = consistent(extract(word_document, "guide.docx"))
    assert doc.content_type == DOCX and doc.title == "Field guide to the office"
    assert headings(doc) == [(1, "Field guide"), (1, "Getting started"), (2, "Printers"),
                             (1, "Contacts")]
    assert texts(doc, "list_item") == ["Open the tray", "Load the paper", "Coffee is free"]
    assert texts(doc, "table_row") == ["Room | Seats", "Orca | 8", "Heron | 12"]
    assert "Help desk:\tcall 4242\nSecurity:\tcall 911" in texts(doc, "paragraph")


W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def handmade_docx(body: str, styles: str | None = None, extra: dict | None = None) -> bytes:
    """A .docx written by hand: only the parts a reader needs."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        archive.writestr("word/document.xml", f'<?xml version="1.0" encoding="UTF-8"?>'
                         f'<w:document xmlns:w="{W}" xmlns:mc="http://schemas.openxmlformats.'
                         f'org/markup-compatibility/2006"><w:body>{body}</w:body></w:document>')
        if styles is not None:
            archive.writestr("word/styles.xml", f'<w:styles xmlns:w="{W}">{styles}</w:styles>')
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return out.getvalue()


def para(text: str, style: str = "", properties: str = "") -> str:
    style = f'<w:pStyle w:val="{style}"/>' if style else ""
    return f"<w:p><w:pPr>{style}{properties}</w:pPr><w:r><w:t>{text}</w:t></w:r></w:p>"


def test_docx_written_by_hand():
    styles = ('<w:style w:styleId="Kop1"><w:name w:val="heading 1"/></w:style>'
              '<w:style w:styleId="Chapter"><w:basedOn w:val="Kop1"/></w:style>'
              '<w:style w:styleId="Step"><w:pPr><w:numPr><w:numId w:val="3"/></w:numPr>'
              '</w:pPr></w:style>'
              '<w:style w:styleId="Loop"><w:basedOn w:val="Loop"/></w:style>')
    cell = '<w:tc>{}</w:tc>'
    nested = f'<w:tbl><w:tr>{cell.format(para("inner"))}</w:tr></w:tbl>'
    body = (para("Localized heading", "Kop1") + para("Derived heading", "Chapter")
            + para("Level three", properties='<w:outlineLvl w:val="2"/>')
            + para("Numbered by style", "Step")
            + para("Numbered directly", properties="<w:numPr/>")
            + para("Loops in basedOn", "Loop")
            + f'<w:tbl><w:tr>{cell.format(para("A1"))}{cell.format(para("A2") + nested)}'
            f'</w:tr></w:tbl>'
            + '<w:p><w:r><w:t xml:space="preserve">One </w:t></w:r><w:r><w:t>run</w:t>'
            '<w:tab/><w:t>after a tab</w:t><w:delText>deleted</w:delText></w:r></w:p>'
            + '<w:p><w:r><mc:AlternateContent><mc:Choice><w:txbxContent>'
            + para("In a text box") + '</w:txbxContent></mc:Choice><mc:Fallback>'
            '<w:txbxContent>' + para("In a text box") + '</w:txbxContent></mc:Fallback>'
            '</mc:AlternateContent></w:r></w:p>')
    doc = consistent(extract(handmade_docx(body, styles), "hand.docx"))
    assert headings(doc) == [(1, "Localized heading"), (1, "Derived heading"),
                             (3, "Level three")]
    assert texts(doc, "list_item") == ["Numbered by style", "Numbered directly"]
    assert texts(doc, "table_row") == ["A1 | A2 inner"]
    assert texts(doc, "paragraph") == ["Loops in basedOn", "One run\tafter a tab",
                                       "In a text box"]
    assert doc.title == "Localized heading"  # no core title: the first heading


def test_docx_without_styles_knows_the_built_in_ids():
    body = para("Report", "Title") + para("Scope", "Heading2") + para("Text")
    core = ('<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/'
            'metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/">'
            '<dc:title>Quarterly report</dc:title></cp:coreProperties>')
    doc = consistent(extract(handmade_docx(body, extra={"docProps/core.xml": core}), "r.docx"))
    assert headings(doc) == [(1, "Report"), (2, "Scope")]
    assert doc.title == "Quarterly report"


def test_csv_rows_under_their_header(documents):
    table = documents["distro-info-data"] / "debian.csv"
    lines = table.read_text().strip().split("\n")
    doc = consistent(extract(table.read_bytes(), table.name))
    assert doc.content_type == "text/csv" and doc.title is None
    rows = texts(doc, "table_row")
    assert len(rows) == len(lines) - 1
    assert rows[0].split("\n")[:2] == ["version: 1.1", "codename: Buzz"]
    assert any("codename: Bookworm" in row for row in rows)
    semicolons = consistent(extract(b"name;city\nAda;London\nLinus;Helsinki\n", "p.csv"))
    assert texts(semicolons, "table_row") == ["name: Ada\ncity: London",
                                              "name: Linus\ncity: Helsinki"]
    tabs = consistent(extract(b"1\t2\t3\n4\t5\t6\n", "numbers.tsv"))
    assert texts(tabs, "table_row") == ["1 | 2 | 3", "4 | 5 | 6"]


def test_json_entries(documents):
    codes = documents["iso-codes"] / "iso_3166-1.json"
    countries = json.loads(codes.read_text())["3166-1"]
    doc = consistent(extract(codes.read_bytes(), codes.name))
    assert doc.content_type == "application/json" and doc.title is None
    assert headings(doc) == [(1, "3166-1")]
    entries = texts(doc, "table_row")
    assert [json.loads(entry) for entry in entries] == countries
    small = consistent(extract(b'{"name": "x", "tags": ["a", "b"]}', "x.json"))
    assert texts(small, "table_row") == ['name: "x"', 'tags: [\n  "a",\n  "b"\n]']
    lines = consistent(extract(b'{"a": 1}\n{"a": 2}\n', "log.jsonl"))
    assert texts(lines, "table_row") == ['{\n  "a": 1\n}', '{\n  "a": 2\n}']


def test_source_code_blocks_at_top_level_definitions():
    path = ROOT / "offgrid" / "kb" / "chunking.py"
    source = path.read_text()
    doc = consistent(extract(source.encode(), path.name))
    assert doc.content_type == "text/x-source" and doc.title is None
    blocks = texts(doc, "code")
    assert all(block in source for block in blocks)  # verbatim
    definitions = [b for b in blocks if b.startswith(("def ", "class ", "@dataclass"))]
    assert any(b.startswith("def chunks(") and "return _Chunker(" in b for b in definitions)
    assert any(b.startswith("class _Chunker") and "def _split_characters" in b
               for b in definitions)  # the class's blank lines keep it whole
    shell = consistent(extract(b"#!/bin/sh\nset -e\n\nif true; then\n  echo a\n\nfi\n", "x.sh"))
    assert texts(shell, "code") == ["#!/bin/sh\nset -e", "if true; then\n  echo a\n\nfi"]


# -- types -----------------------------------------------------------------------------------------

PDF_HEAD = b"%PDF-1.4\n"


@pytest.mark.parametrize("data, name, declared, expected", [
    (b"<!DOCTYPE html><p>hi</p>", "page", None, "text/html"),  # sniffed
    (b"<html><body>hi</body></html>", "upload.bin", "application/octet-stream", "text/html"),
    (b"# Title\n\ntext", "notes.md", "text/plain", "text/markdown"),  # text/plain is weak
    (b"# Title\n\ntext", "notes", "text/markdown", "text/markdown"),
    (b'{"a": 1}', "data.txt", "application/json", "application/json"),
    (b"a,b\n1,2\n", "export", "text/csv", "text/csv"),
    (b"print(1)\n", "tool.py", None, "text/x-source"),
    (b"all:\n\techo hi\n", "Makefile", None, "text/x-source"),
    (b"just words", "README", None, "text/plain"),
    (b"just words", "notes.rst", "text/x-rst", "text/plain"),
    (b"odd but text", "a.weird", "text/x-weird", "text/plain"),
])
def test_the_type_comes_from_the_declared_type_the_name_or_the_content(data, name, declared,
                                                                       expected):
    assert extract(data, name, declared).content_type == expected


def test_binary_types_are_sniffed(reference_pages, word_document):
    assert ingest.detect_type(reference_pages, "scan") == "application/pdf"
    assert ingest.detect_type(word_document, "upload", "application/octet-stream") == DOCX


def test_text_encodings():
    text = "Grüße, naïve café — ok"
    for data in (text.encode("utf-8"), b"\xef\xbb\xbf" + text.encode("utf-8"),
                 text.encode("utf-16-le").join((b"\xff\xfe", b"")), text.encode("utf-16")):
        assert extract(data, "t.txt").text == text, data
    latin = "Grüße, naïve café - ok"
    assert extract(latin.encode("latin-1"), "t.txt").text == latin
    page = '<meta charset="windows-1252"><p>caf\xe9 \x93quoted\x94</p>'.encode("latin-1")
    assert extract(page, "p.html").text == "café “quoted”"
    assert extract(b"line one\r\nline two\rline three", "crlf.txt").text == \
        "line one\nline two\nline three"


# -- refusals --------------------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8


@pytest.mark.parametrize("data, name, declared", [
    (PNG, "photo.png", None),
    (PNG, "photo.png", "image/png"),
    (b"plain words", "photo.png", "image/png"),  # what the client declares decides
    (PNG, "notes.txt", "text/plain"),  # text in name only
    (bytes(range(256)) * 64, "blob", None),
    (b"\x00\x01\x02 binary \x03\x04" * 100, "data.csv", None),
    (b"PK\x03\x04" + b"\x00" * 100, "archive.zip", None),
    (b"x", "sheet.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
])
def test_unsupported_types_are_refused_naming_the_type(data, name, declared):
    with pytest.raises(UnsupportedType) as refused:
        extract(data, name, declared)
    message = str(refused.value)
    assert name in message and "Supported:" in message and "Markdown" in message


def test_a_zip_that_is_not_a_word_document(word_document):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(UnsupportedType, match="a .xlsx file"):
        extract(out.getvalue(), "book.xlsx")
    with pytest.raises(UnreadableDocument, match="no word/document.xml"):
        extract(out.getvalue(), "book.docx")


@pytest.mark.parametrize("data, name", [
    (b"", "empty.txt"), (b" \n\t\r\n ", "blank.md"), (b"\n\n", "blank.html"),
    (b"<html><head><title>T</title><script>x()</script></head><body> </body></html>", "s.html"),
    (b"<nav>menu only</nav>", "nav.html"), (b"[]", "empty.json"), (b"{}", "empty.json"),
    (b"\n\n\n", "x.py"), (b"[null]", "nothing.json"), (b'{"a": ""}', "blank.json"),
])
def test_documents_without_text_are_empty(data, name):
    with pytest.raises(EmptyDocument, match="holds no text"):
        extract(data, name)


def test_a_pdf_without_text_is_empty():
    import pypdf
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(EmptyDocument, match="scanned"):
        extract(out.getvalue(), "scan.pdf")


def test_documents_past_the_limits_are_too_large(monkeypatch, word_document):
    monkeypatch.setattr(ingest, "MAX_TEXT_CHARS", 1000)
    with pytest.raises(DocumentTooLarge, match="1,000 characters"):
        extract(b"word " * 300, "long.txt")
    with pytest.raises(DocumentTooLarge):
        extract(b"<p>" + b"word " * 300 + b"</p>", "long.html")
    monkeypatch.setattr(ingest, "MAX_BLOCKS", 100)
    with pytest.raises(DocumentTooLarge, match="100 paragraphs"):
        extract(json.dumps(list(range(200))).encode(), "many.json")
    monkeypatch.setattr(docx, "MAX_PART_BYTES", 10_000)
    with pytest.raises(DocumentTooLarge, match="unpacks to more than"):
        extract(word_document, "guide.docx")  # its styles.xml is 350 kB


@pytest.mark.parametrize("data, name, why", [
    (PDF_HEAD + b"garbage" * 100, "broken.pdf", "not a readable PDF"),
    (b"not a zip at all", "letter.docx", "not a zip archive"),
    (b'{"a": [1, 2}', "bad.json", "not valid JSON"),
    (b'"a","b\n' + b"x" * 200_000 + b'\n', "huge-field.csv", "not valid CSV"),
])
def test_broken_files_are_unreadable(data, name, why):
    with pytest.raises(UnreadableDocument, match=why):
        extract(data, name)


def test_a_password_protected_pdf_is_unreadable(reference_pages):
    import pypdf
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(reference_pages)))
    writer.encrypt("secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(UnreadableDocument, match="password-protected"):
        extract(out.getvalue(), "locked.pdf")


# -- hostile files ---------------------------------------------------------------------------------

def zip_bomb(unpacked: int) -> bytes:
    """A .docx whose document.xml unpacks to `unpacked` bytes of whitespace from ~100 kB."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            for _ in range(unpacked >> 20):
                member.write(b" " * (1 << 20))
    return out.getvalue()


def test_a_zip_bomb_docx_is_refused_after_reading_its_bound(monkeypatch):
    monkeypatch.setattr(docx, "MAX_PART_BYTES", 4 << 20)  # 100 MB takes a second to unpack
    bomb = zip_bomb(docx.MAX_PART_BYTES * 4)
    assert len(bomb) < 50_000
    with pytest.raises(DocumentTooLarge, match="unpacks to more than 4 MB"):
        extract(bomb, "bomb.docx")


@pytest.mark.parametrize("doctype", [
    '<!DOCTYPE w:document [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;">]>',
    '<!DOCTYPE w:document [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    '<!DOCTYPE w:document SYSTEM "http://example.invalid/evil.dtd">',
])
def test_xml_with_a_dtd_or_entities_is_refused(doctype):
    document = (f'<?xml version="1.0"?>{doctype}<w:document xmlns:w="{W}"><w:body>'
                f'<w:p><w:r><w:t>&d;</w:t></w:r></w:p></w:body></w:document>')
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("word/document.xml", document)
    with pytest.raises(UnreadableDocument, match="declares a DTD"):
        extract(out.getvalue(), "laughs.docx")


def test_deeply_nested_html_reads():
    for opened, closed, depth in (("<div>", "</div>", 100_000), ("<li>", "", 20_000),
                                  ("<b>", "</b>", 20_000), ("<table><tr><td>", "", 20_000),
                                  ("<nav>", "</nav>", 20_000)):
        page = (opened * depth + "deep text" + closed * depth).encode()
        if opened == "<nav>":
            with pytest.raises(EmptyDocument):
                extract(page, "deep.html")
            continue
        doc = consistent(extract(page, "deep.html"))
        assert doc.text == "deep text", opened
    closers = ("<p>a" + "</div>" * 100_000 + "</p>").encode()  # end tags never opened
    assert extract(closers, "closers.html").text == "a"


def test_deeply_nested_json_is_unreadable():
    for nested in ("[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000):
        with pytest.raises(UnreadableDocument, match="nested too deeply"):
            extract(nested.encode(), "deep.json")


def test_truncated_and_mangled_pdfs_raise_nothing_but_kb_errors(reference_pages):
    cuts = [reference_pages[:n] for n in (100, 5_000, len(reference_pages) // 2,
                                          len(reference_pages) - 100)]
    mangled = bytearray(reference_pages)
    mangled[2000:60000:7] = b"\x00" * len(mangled[2000:60000:7])
    for data in [*cuts, bytes(mangled)]:
        try:
            consistent(extract(data, "cut.pdf"))
        except KbError:
            pass


def handmade_pdf(content: bytes, pages: int = 1, filler_objects: int = 0) -> bytes:
    """A PDF written by hand: `pages` pages that all draw one content stream, and as many
    objects besides as asked, each in the cross-reference table."""
    bodies = [b"<< /Type /Catalog /Pages 2 0 R >>",
              b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
                  b" ".join(b"%d 0 R" % (5 + n) for n in range(pages)), pages),
              b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
              b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
              *[b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
                b"/Resources << /Font << /F1 3 0 R >> >> >>"] * pages,
              *(b"[%d]" % n for n in range(filler_objects))]
    out = bytearray(PDF_HEAD)
    offsets = []
    for number, body in enumerate(bodies, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(bodies) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(bodies) + 1, xref)
    return bytes(out)


def test_a_pdf_of_many_tiny_objects_reads():
    data = handmade_pdf(b"BT /F1 12 Tf 72 700 Td (Hello objects) Tj ET", filler_objects=50_000)
    assert extract(data, "objects.pdf").text == "Hello objects"


def test_a_small_pdf_whose_pages_draw_one_huge_stream_is_refused_at_once():
    """2,000 pages drawing one 150 kB stream: pypdf would take minutes to read them all."""
    content = b"BT /F1 12 Tf 72 700 Td " + b"(word) Tj 0 -1 Td " * 8000 + b"ET"
    data = handmade_pdf(content, pages=2000)
    assert len(data) < 500_000
    with pytest.raises(DocumentTooLarge, match="more than 40 MB of content"):
        extract(data, "pages.pdf")
