"""The chat web page: the static files in offgrid/ui/, read as package data with
importlib.resources (so they serve the same from offgrid.pyz), and `/` as the page for a
browser. Only the files the package holds are served: a name is looked up, never joined to a
path."""

from __future__ import annotations

import functools
import hashlib
from importlib import resources

from ..errors import NotFound
from ..http import Request, Response

TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


@functools.cache
def files() -> dict[str, tuple[str, str, str]]:
    """File name -> (content type, text, ETag), for every servable file, read once."""
    found = {}
    for entry in (resources.files("offgrid") / "ui").iterdir():
        kind = TYPES.get(entry.name[entry.name.rfind("."):]) if "." in entry.name else None
        if kind and entry.is_file():
            text = entry.read_text(encoding="utf-8")
            tag = '"' + hashlib.sha256(text.encode()).hexdigest()[:16] + '"'
            found[entry.name] = (kind, text, tag)
    return found


def page(app, request: Request) -> Response:
    return asset(app, request, "index.html")


def asset(app, request: Request, name: str) -> Response:
    if name not in files():
        raise NotFound(f"The web page has no file {name!r}", code="unknown_url")
    kind, text, tag = files()[name]
    # Revalidated each time (names carry no version), answered 304 when unchanged.
    headers = {"Cache-Control": "no-cache", "ETag": tag}
    if request.headers.get("If-None-Match") == tag:
        return Response(None, 304, headers)
    return Response(text, headers=headers, content_type=kind)


def wants_page(request: Request) -> bool:
    """A browser navigating asks for HTML; API clients ask for JSON or anything."""
    return "text/html" in request.headers.get("Accept", "")
