"""Cross-origin access: none unless OFFGRID_CORS_ORIGINS names the origin (or is "*").

A browser sends `Origin` with every cross-origin request, including the "simple" ones it does
not preflight (a form POST), so a request from a page of another origin is refused outright,
not only left unreadable: no web page can make this server work for it unless allowed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .errors import Forbidden
from .http import Request, Response

ALLOWED_HEADERS = "Authorization, Content-Type"
EXPOSED_HEADERS = ", ".join(["Retry-After"] + [
    f"x-ratelimit-{what}-{kind}" for kind in ("requests", "tokens")
    for what in ("limit", "remaining", "reset")])
PREFLIGHT_MAX_AGE = 600


class Cors:
    def __init__(self, origins: str):
        self.origins = {origin.strip().rstrip("/") for origin in origins.split(",")
                        if origin.strip()}

    def headers_for(self, request: Request, same_origin_only: bool = False) -> dict[str, str]:
        """The CORS headers of the answer; 403 for a foreign origin that is not allowed, and
        for any foreign origin at all where `same_origin_only` (endpoints that run tools or
        start processes)."""
        origin = request.headers.get("Origin")
        if origin is None or _same_origin(origin, request):
            return {}
        if same_origin_only:
            raise Forbidden(f"This endpoint runs tools or starts programs, so web pages of other"
                            f" origins ({origin}) may not call it, whatever cors_origins allows",
                            code="origin_not_allowed")
        if "*" not in self.origins and origin not in self.origins:
            raise Forbidden(f"Requests from web pages at {origin} are not allowed; add the "
                            "origin to OFFGRID_CORS_ORIGINS to allow them",
                            code="origin_not_allowed")
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                "Access-Control-Expose-Headers": EXPOSED_HEADERS}

    @staticmethod
    def preflight(methods: list[str], cors_headers: dict[str, str]) -> Response:
        """The answer to OPTIONS: which methods the path takes, and for an allowed origin, what
        its browser may send."""
        headers = {"Allow": ", ".join([*methods, "OPTIONS"]), **cors_headers}
        if cors_headers:
            headers.update({"Access-Control-Allow-Methods": ", ".join(methods),
                            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                            "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE)})
        return Response(None, 200, headers)


def _same_origin(origin: str, request: Request) -> bool:
    # App.handle has checked Host against the HostPolicy first: without that, a page on a
    # rebound DNS name would send its own name in both and pass as same-origin.
    host = request.headers.get("Host")
    return host is not None and urlsplit(origin).netloc == host
