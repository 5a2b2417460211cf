"""``/docs`` in a real browser: Swagger UI renders the API from the function's own files, at the
app root and under an API Gateway stage, with no request to any other origin and no CSP refusal
(the ``new_page`` fixture fails the test on either a script error or a refused resource)."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("where", ["app", "stage"])
def test_api_reference_renders_with_nothing_from_elsewhere(where, app_url, stage_url, new_page) -> None:
    base = app_url if where == "app" else stage_url
    page = new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{base}/docs")
    page.wait_for_selector(".opblock-summary-path")
    shown = {path.strip("\u200b") for path in page.locator(".opblock-summary-path").all_inner_texts()}
    documented = set(httpx.get(f"{base}/openapi.json").json()["paths"])
    assert shown == documented
    assert requested, "the page loaded its assets"
    outside = [url for url in requested if not (url.startswith(base) or url.startswith("data:"))]
    assert not outside, f"requests outside {base}: {outside}"
