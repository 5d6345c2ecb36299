"""Data files: CSV (and TSV) as one block per row, each "column: value" lines under the header
(the row's cells joined by " | " when there is no header), the dialect sniffed; JSON as pretty
text, one block per top-level entry or array item, stepping into large containers (a single
wrapping key, a long list) with the key as a heading. JSON Lines reads as one entry a line."""

from __future__ import annotations

import csv
import io
import json

from ..document import Builder
from ..errors import UnreadableDocument

_SAMPLE = 1 << 16
_DELIMITERS = ",;\t|"
_DEEPEST_HEADING = 2  # containers nested deeper stay whole blocks
_SPLIT_ABOVE = 8  # entries of a nested container that make it worth splitting


def read_csv(text: str, out: Builder) -> None:
    sample = text[:_SAMPLE]
    sniffer = csv.Sniffer()
    try:
        dialect = sniffer.sniff(sample, delimiters=_DELIMITERS)
    except csv.Error:
        dialect = csv.excel
    rows = csv.reader(io.StringIO(text), dialect)
    try:
        first = [cell.strip() for cell in next(rows, [])]
        header = first if _has_header(sniffer, sample, first) else None
        if header is None:
            out.add("table_row", _row_text(first, None))
        for row in rows:
            out.add("table_row", _row_text(row, header))
    except csv.Error as error:
        raise UnreadableDocument(out.name, f"not valid CSV ({error})") from None
    if header and out.empty:  # a header alone is still the table's text
        out.add("table_row", " | ".join(header))


def _has_header(sniffer: csv.Sniffer, sample: str, first: list[str]) -> bool:
    """The sniffer's guess (it tells only where columns differ in type or length), or a first
    row of distinct names that are not numbers."""
    try:
        if sniffer.has_header(sample):
            return True
    except csv.Error:
        pass
    return all(first) and len(set(first)) == len(first) and not any(map(_is_number, first))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _row_text(row: list[str], header: list[str] | None) -> str:
    if not header:
        return " | ".join(cell.strip() for cell in row if cell.strip())
    return "\n".join(
        f"{header[i] if i < len(header) and header[i] else f'column {i + 1}'}: {cell.strip()}"
        for i, cell in enumerate(row) if cell.strip())


def read_json(text: str, out: Builder) -> None:
    try:
        value = _parse(text, out.name)
        _add_entries(value, 0, out)
    except RecursionError:
        raise UnreadableDocument(out.name, "its JSON is nested too deeply") from None


def _parse(text: str, name: str):
    try:
        return json.loads(text)
    except ValueError as error:
        problem = error
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) > 1:  # JSON Lines: a list of values
        try:
            return [json.loads(line) for line in lines]
        except ValueError:
            pass
    raise UnreadableDocument(name, f"not valid JSON ({problem})")


def _add_entries(value, depth: int, out: Builder) -> None:
    """One block per entry of `value`; entries that are large containers are split in turn,
    null and empty ones left out."""
    if isinstance(value, dict):
        entries = value.items()
    elif isinstance(value, list):
        entries = ((None, item) for item in value)
    else:
        entries = ((None, value),)
    for key, item in entries:
        if item is None or item == "":  # says nothing
            continue
        if depth < _DEEPEST_HEADING and _worth_splitting(item, value):
            if key is not None:
                out.add("heading", key.strip() or "(empty key)", depth + 1)
            _add_entries(item, depth + 1, out)
        else:
            text = _pretty(item)
            out.add("table_row", text if key is None else f"{key}: {text}")


def _worth_splitting(item, parent) -> bool:
    if not isinstance(item, (dict, list)) or not item:
        return False
    return len(item) > _SPLIT_ABOVE or len(parent) == 1


def _pretty(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)
