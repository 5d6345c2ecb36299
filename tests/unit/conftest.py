"""Real documents for the knowledge base's unit tests, made once a session: pages of the Debian
Reference's PDF written out by pypdf (outline included), and a .docx written by python-docx;
and the workspace folder the agents' file and shell tools work in."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

# The Debian Reference PDF's chapter 1 opens on page index 28; its outline points into these.
PDF_PAGES = (28, 36)


@pytest.fixture(scope="session")
def reference_pdf(documents) -> bytes:
    """The whole book (1.3 MB, 261 pages: pypdf takes seconds to read it all)."""
    return (documents["debian-reference-en"] / "debian-reference.en.pdf").read_bytes()


@pytest.fixture(scope="session")
def reference_pages(reference_pdf) -> bytes:
    """Chapter 1's first pages of the book, with their part of its outline and its title."""
    import pypdf
    writer = pypdf.PdfWriter()
    writer.append(pypdf.PdfReader(io.BytesIO(reference_pdf)), pages=PDF_PAGES)
    writer.add_metadata({"/Title": "Debian Reference"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.fixture(scope="session")
def word_document() -> bytes:
    """A .docx as Word users write them: title, headings, lists, a table, tabs and breaks."""
    import docx
    document = docx.Document()
    document.core_properties.title = "Field guide to the office"
    document.add_paragraph("Field guide", style="Title")
    document.add_heading("Getting started", level=1)
    document.add_paragraph("Badges are issued at the front desk. Bring an ID card.")
    document.add_heading("Printers", level=2)
    document.add_paragraph("The printer on floor two takes A3 paper.")
    document.add_paragraph("Open the tray", style="List Number")
    document.add_paragraph("Load the paper", style="List Number")
    document.add_paragraph("Coffee is free", style="List Bullet")
    table = document.add_table(rows=3, cols=2)
    for row, (room, seats) in enumerate([("Room", "Seats"), ("Orca", "8"), ("Heron", "12")]):
        table.cell(row, 0).text = room
        table.cell(row, 1).text = seats
    document.add_heading("Contacts", level=1)
    paragraph = document.add_paragraph("Help desk:\tcall 4242")
    paragraph.add_run().add_break()
    paragraph.add_run("Security:\tcall 911")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


@pytest.fixture
def workspace(tmp_path) -> Path:
    return tmp_path / "home" / "workspace" / "user-1"  # made by the first call
