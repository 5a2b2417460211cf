"""The credit officers' web page, served by the function itself at ``/``.

One HTML page plus a stylesheet and a script from ``static/``: no build step, nothing
fetched from elsewhere. The API reference at ``/docs`` is Swagger UI, served the same way from
a vendored copy (``static/swagger-ui/``, see its README), under a Content-Security-Policy that
admits only this origin's scripts. The page builds its form from ``GET model`` (the schema travels
in the model card), so this module knows nothing about applicants. Every URL on the page
is relative, and a small inline script pins the document base to the app root, so the
same page works at ``http://127.0.0.1:8000/`` and behind an API Gateway stage
(``/Prod/`` or ``/Prod``). Files are read on first request, not at import, to keep the
Lambda cold start free of them.

``/monitoring`` serves the latest monitoring report (found by :mod:`credit_api.monitoring_page`)
as its generator wrote it, under a stricter policy than the page's: no script at all, styles only
from the report's own ``<style>`` blocks (admitted by their hashes), images only as ``data:``
URIs. With no report yet it answers 404 with a page saying how to make one: the route works, the
report does not exist, and a monitor polling it sees that from the status alone.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response

from credit_api.monitoring_page import NoReport, Report

STATIC_DIR = Path(__file__).parent / "static"
PAGE_FILE = "index.html"
DOCS_FILE = "docs.html"
NO_REPORT_FILE = "no-report.html"
SWAGGER_UI = "swagger-ui"
"""The vendored Swagger UI 5.31.0 (``static/swagger-ui/README.md``)."""
_JS = "text/javascript; charset=utf-8"
_CSS = "text/css; charset=utf-8"
ASSETS: dict[str, tuple[str, str]] = {
    "app.js": ("app.js", _JS),
    "style.css": ("style.css", _CSS),
    "docs.js": ("docs.js", _JS),
    "swagger-ui-bundle.js": (f"{SWAGGER_UI}/swagger-ui-bundle.js", _JS),
    "swagger-ui.css": (f"{SWAGGER_UI}/swagger-ui.css", _CSS),
}
"""The only files served from ``static/`` (URL name: file, media type): a fixed list, so no path
ever reaches the disk unchecked."""

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_STYLE_BLOCK = re.compile(r"<style\b[^>]*>(.*?)</style[\s/>]", re.DOTALL | re.IGNORECASE)
_HTML = "text/html; charset=utf-8"
_ASSET_CACHE = "public, max-age=300"

router = APIRouter(include_in_schema=False)


@cache
def _read(name: str) -> bytes:
    return (STATIC_DIR / name).read_bytes()


@cache
def _page_headers() -> dict[str, str]:
    """Security headers for the page; the CSP admits the inline base script by its hash only."""
    hashes = _hashes(_INLINE_SCRIPT.findall(_read(PAGE_FILE).decode()))
    return _security_headers(f"script-src 'self' {hashes}; style-src 'self'")


def _hashes(blocks: list[str]) -> str:
    """CSP sources for inline blocks: each one's sha256, as the browser computes it."""
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'" for body in blocks
    )


def report_headers(html: bytes) -> dict[str, str]:
    """Security headers for a monitoring report: nothing runs or loads; only its own styles apply."""
    styles = _hashes(_STYLE_BLOCK.findall(html.decode("utf-8", "replace"))) or "'none'"
    return _html_headers(
        f"default-src 'none'; style-src {styles}; img-src data:; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )


def _security_headers(sources: str) -> dict[str, str]:
    """The headers of an HTML page: ``sources`` says where its scripts and styles may come from."""
    return _html_headers(
        f"default-src 'none'; {sources}; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )


def _html_headers(policy: str) -> dict[str, str]:
    """Every HTML answer's headers: its Content-Security-Policy and the same three others."""
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


DOCS_HEADERS = _security_headers("script-src 'self'; style-src 'self' 'unsafe-inline'")
"""Swagger UI runs only this origin's scripts; it sets a few inline styles, which are allowed."""


@router.get("/")
def page() -> Response:
    """The page itself; it fetches the model card and scores through the API."""
    return Response(_read(PAGE_FILE), media_type="text/html; charset=utf-8", headers=_page_headers())


@router.get("/docs")
def docs() -> Response:
    """The API reference (Swagger UI on ``openapi.json``), with nothing loaded from elsewhere."""
    return Response(_read(DOCS_FILE), media_type="text/html; charset=utf-8", headers=DOCS_HEADERS)


@router.get("/static/{name}")
def asset(name: str) -> Response:
    """A stylesheet or script of the page or of ``/docs``."""
    if name not in ASSETS:
        raise HTTPException(status_code=404, detail="Not Found")
    path, media_type = ASSETS[name]
    headers = {"Cache-Control": _ASSET_CACHE, "X-Content-Type-Options": "nosniff"}
    return Response(_read(path), media_type=media_type, headers=headers)


@router.get("/monitoring")
def monitoring(request: Request) -> Response:
    """The latest monitoring report; 404 with instructions when there is none yet."""
    found: Report | NoReport = request.app.state.monitoring.latest()
    if isinstance(found, NoReport):
        page = _read(NO_REPORT_FILE)
        return Response(page, status_code=404, media_type=_HTML, headers=report_headers(page))
    headers = {**report_headers(found.html), "X-Report-Date": found.date, "X-Report-Status": found.status}
    return Response(found.html, media_type=_HTML, headers=headers)
