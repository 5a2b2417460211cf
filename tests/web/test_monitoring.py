"""The monitoring report in headless Chromium: reached from the page's link, shown under its CSP.

Each server here reads its own reports directory (``REPORTS_DIR``), holding a small report in the
generator's contract: styles in ``<style>`` blocks, a PNG as a ``data:`` URI and an inline SVG.
The ``new_page`` fixture fails a test on any console error, so a style or image the policy
refused would fail it; the test also checks that the styles did apply.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route

from tests.web.conftest import STAGE, STAGE_API_KEY, free_port, serve, server_env

pytestmark = pytest.mark.slow

DATE = "2026-12-01"
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
REPORT = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Model monitoring {DATE}</title>
<style>
  body {{ font-family: sans-serif; }}
  h1 {{ color: rgb(164, 35, 27); }}
</style>
<style>
  .status {{ background-color: rgb(227, 244, 233); }}
</style>
</head>
<body>
<h1 id="title">Model monitoring, {DATE}</h1>
<p class="status" id="overall">Overall status: green</p>
<img id="plot" alt="score distribution" src="data:image/png;base64,{PIXEL}" width="40" height="40">
<svg id="bars" width="60" height="20" role="img" aria-label="bars">
  <rect width="30" height="20" fill="#1f4e8c"/>
</svg>
</body>
</html>
"""


def write_report(reports: Path) -> None:
    day = reports / "monitoring" / DATE
    day.mkdir(parents=True)
    (day / "report.html").write_text(REPORT)
    latest = {
        "date": DATE,
        "generated_at": f"{DATE}T06:00:00Z",
        "html": f"monitoring/{DATE}/report.html",
        "json": f"monitoring/{DATE}/report.json",
        "status": "green",
    }
    (reports / "monitoring" / "latest.json").write_text(json.dumps(latest))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """uvicorn (as ``make run``) and the stage stand-in (as deployed), both reading one reports dir."""
    tmp = tmp_path_factory.mktemp("web-monitoring")
    write_report(tmp / "reports")
    app_port, stage_port = free_port(), free_port()
    app_env = {**server_env(tmp / "app.sqlite3"), "REPORTS_DIR": str(tmp / "reports")}
    stage_env = {**server_env(tmp / "stage.sqlite3"), "REPORTS_DIR": str(tmp / "reports")}
    uvicorn = [sys.executable, "-m", "uvicorn", "credit_api.main:app", "--host", "127.0.0.1"]
    uvicorn += ["--port", str(app_port), "--log-level", "warning"]
    gateway = [sys.executable, "-m", "tests.web.stage_gateway", "--port", str(stage_port), "--stage", STAGE]
    gateway += ["--api-key", STAGE_API_KEY]
    app_url, stage_url = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{stage_port}/{STAGE}"
    with (
        serve(uvicorn, app_env, f"{app_url}/health", tmp / "app.log"),
        serve(gateway, stage_env, f"{stage_url}/", tmp / "gateway.log"),
    ):
        yield {"app": app_url, "stage": stage_url}


def follow_the_link(page: Page, start: str) -> None:
    page.goto(start)
    page.wait_for_selector("#score-button:enabled")
    page.click("#monitoring-link")
    page.wait_for_selector("#title")


@pytest.mark.parametrize("where,path", [("app", "/"), ("stage", "/"), ("stage", "")])
def test_the_link_opens_the_report_with_its_styles_and_images(
    served: dict[str, str], new_page: Callable[..., Page], where: str, path: str
) -> None:
    page = new_page()
    follow_the_link(page, served[where] + path)
    assert page.url == f"{served[where]}/monitoring"
    assert page.inner_text("#title") == f"Model monitoring, {DATE}"
    assert page.inner_text("#overall") == "Overall status: green"
    # The styles applied (admitted by their hashes), the data: image decoded, the SVG drew.
    assert page.eval_on_selector("#title", "e => getComputedStyle(e).color") == "rgb(164, 35, 27)"
    assert (
        page.eval_on_selector("#overall", "e => getComputedStyle(e).backgroundColor") == "rgb(227, 244, 233)"
    )
    assert page.eval_on_selector("#plot", "e => e.complete && e.naturalWidth") == 1
    assert page.locator("#bars rect").count() == 1


def test_a_script_slipped_into_a_report_is_refused_by_its_policy(
    served: dict[str, str], browser: Browser
) -> None:
    """The server's real answer with a script and an inline style added to its body: neither runs."""
    context = browser.new_context()
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text) if message.type == "error" else None)

    def tamper(route: Route) -> None:
        answer = route.fetch()
        body = answer.text().replace(
            "</body>",
            '<script>document.title = \'ran\'</script><p id="inline" style="color: red">x</p></body>',
        )
        route.fulfill(response=answer, body=body)

    page.route("**/monitoring", tamper)
    page.goto(served["app"] + "/monitoring")
    page.wait_for_selector("#inline")
    title = page.title()
    colour = page.eval_on_selector("#inline", "e => getComputedStyle(e).color")
    context.close()
    assert title == f"Model monitoring {DATE}"
    assert colour != "rgb(255, 0, 0)"
    assert any("Content Security Policy" in text and "script" in text for text in refused), refused
