"""The credit officers' web page, served by the function itself at ``/``.

One HTML page plus a stylesheet and a script from ``static/``: no build step, nothing
fetched from elsewhere. The page builds its form from ``GET model`` (the schema travels
in the model card), so this module knows nothing about applicants. Every URL on the page
is relative, and a small inline script pins the document base to the app root, so the
same page works at ``http://127.0.0.1:8000/`` and behind an API Gateway stage
(``/Prod/`` or ``/Prod``). Files are read on first request, not at import, to keep the
Lambda cold start free of them.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, Response

STATIC_DIR = Path(__file__).parent / "static"
PAGE_FILE = "index.html"
ASSETS: dict[str, str] = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
"""The only files served from ``static/``: a fixed list, so no path ever reaches the disk unchecked."""

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_ASSET_CACHE = "public, max-age=300"

router = APIRouter(include_in_schema=False)


@cache
def _read(name: str) -> bytes:
    return (STATIC_DIR / name).read_bytes()


@cache
def _page_headers() -> dict[str, str]:
    """Security headers for the page; the CSP admits the inline base script by its hash only."""
    page = _read(PAGE_FILE).decode()
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
        for body in _INLINE_SCRIPT.findall(page)
    )
    policy = (
        "default-src 'none'; "
        f"script-src 'self' {hashes}; "
        "style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


@router.get("/")
def page() -> Response:
    """The page itself; it fetches the model card and scores through the API."""
    return Response(_read(PAGE_FILE), media_type="text/html; charset=utf-8", headers=_page_headers())


@router.get("/static/{name}")
def asset(name: str) -> Response:
    """A stylesheet or script of the page."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(status_code=404, detail="Not Found")
    headers = {"Cache-Control": _ASSET_CACHE, "X-Content-Type-Options": "nosniff"}
    return Response(_read(name), media_type=media_type, headers=headers)
