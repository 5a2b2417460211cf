"""``/docs``: Swagger UI served by the function itself, from a vendored copy of a pinned package,
under a Content-Security-Policy that admits no other origin."""

from __future__ import annotations

import re

import pytest
from credit_api import web
from swagger_ui_bundle import swagger_ui_path


@pytest.mark.parametrize("name", ["swagger-ui-bundle.js", "swagger-ui.css"])
def test_vendored_swagger_ui_is_the_pinned_packages(name: str) -> None:
    vendored = web.STATIC_DIR / web.SWAGGER_UI / name
    assert vendored.read_bytes() == (swagger_ui_path / name).read_bytes()


def test_docs_page_names_only_this_origins_files(client) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert {url for url in urls if not url.startswith("data:")} == {
        "static/swagger-ui.css",
        "static/swagger-ui-bundle.js",
        "static/docs.js",
    }
    for url in urls:
        if not url.startswith("data:"):
            asset = client.get(f"/{url}")
            assert asset.status_code == 200, url
            assert asset.headers["x-content-type-options"] == "nosniff"


def test_docs_page_forbids_other_origins_and_framing(client) -> None:
    policy = client.get("/docs").headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "http" not in policy


def test_static_serves_only_its_fixed_list(client) -> None:
    for name in ["LICENSE", "README.md", "swagger-ui", "..%2Fweb.py", "docs.html"]:
        assert client.get(f"/static/{name}").status_code == 404, name
