"""The web router on its own: what it serves, with which headers, and nothing else from disk."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser

import pytest
from credit_api.web import ASSETS, NO_REPORT_FILE, STATIC_DIR, SWAGGER_UI, router
from fastapi import FastAPI
from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    app.include_router(router)
    return TestClient(app)


class _Links(HTMLParser):
    """Every URL the page's markup points at."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("href", "src", "action") and value]


def test_page_is_html_with_a_csp_that_admits_only_its_own_inline_script(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    inline = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    policy = response.headers["content-security-policy"]
    script_src = next(part for part in policy.split(";") if part.strip().startswith("script-src"))
    assert script_src.split() == ["script-src", "'self'", f"'sha256-{digest}'"]
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"


def test_page_uses_only_relative_urls_so_it_works_under_a_stage_path(client):
    page = client.get("/").text
    links = _Links()
    links.feed(page)
    (inline,) = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
    assets = re.findall(r"""\.(?:href|src) = "([^"]+)";""", inline)
    assert sorted(assets) == ["static/app.js", "static/style.css"]
    assert not any("static/" in url for url in links.urls), "assets only after the base is pinned"
    for url in links.urls + assets:
        assert not url.startswith(("/", "http:", "https:", "//")), url
    script = (STATIC_DIR / "app.js").read_text()
    for call in re.findall(r"""call\(\s*["'`]([^"'`]+)""", script):
        assert not call.startswith("/"), call


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_assets_are_served_with_their_type(client, name):
    response = client.get(f"/static/{name}")
    assert response.status_code == 200
    path, media_type = ASSETS[name]
    assert response.headers["content-type"] == media_type
    assert response.content == (STATIC_DIR / path).read_bytes()


@pytest.mark.parametrize(
    "path",
    ["/static/index.html", "/static/missing.js", "/static/..%2Fweb.py", "/static/../web.py", "/static/"],
)
def test_nothing_else_is_served_from_disk(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert "import" not in response.text


def test_every_static_file_is_used():
    """No stale file ships in the Lambda bundle: each one is a page, a listed asset, or the
    vendored Swagger UI's licence and provenance."""
    shipped = {str(p.relative_to(STATIC_DIR)) for p in STATIC_DIR.rglob("*") if p.is_file()}
    pages = {"index.html", "docs.html", NO_REPORT_FILE}
    vendored = {f"{SWAGGER_UI}/LICENSE", f"{SWAGGER_UI}/README.md"}
    assert shipped == pages | vendored | {path for path, _ in ASSETS.values()}
