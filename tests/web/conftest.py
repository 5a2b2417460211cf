"""Browser-test fixtures: the real app in a subprocess, Debian's chromium driven by Playwright.

Servers listen on free loopback ports with a temporary SQLite decision log; every page a test
opens is screenshotted to ``artifacts/screenshots/`` when the test ends, and a JavaScript error
or a refused script/style (CSP) on any page fails the test.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"

from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
STAGE = "Prod"
STAGE_API_KEY = "web-test-key-0123456789"
_UNSET = ("MODEL_BUCKET", "DECISIONS_TABLE", "AWS_ENDPOINT_URL", "MODEL_DIR", "MODEL_REFRESH_SECONDS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(db: Path) -> dict[str, str]:
    """The local configuration of ``make run``, with its own decision log."""
    env = {k: v for k, v in os.environ.items() if k not in _UNSET}
    env.update(
        DECISIONS_DB=str(db),
        POWERTOOLS_SERVICE_NAME="credit-api",
        POWERTOOLS_METRICS_NAMESPACE="CreditApiWebTests",
        POWERTOOLS_TRACE_DISABLED="true",
        AWS_DEFAULT_REGION="eu-west-1",
        LOG_LEVEL="WARNING",
    )
    return env


@contextmanager
def serve(command: list[str], env: dict[str, str], health: str, log: Path) -> Iterator[None]:
    """Run a server until the block ends; ready once ``health`` answers 200."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(health, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not up after 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``credit_api.main:app`` under uvicorn, as ``make run`` serves it."""
    tmp = tmp_path_factory.mktemp("web-app")
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "credit_api.main:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "warning"]
    url = f"http://127.0.0.1:{port}"
    with serve(command, server_env(tmp / "decisions.sqlite3"), f"{url}/health", tmp / "server.log"):
        yield url


@pytest.fixture(scope="session")
def stage_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Lambda handler behind a local API Gateway stand-in at ``/Prod``, API key required."""
    tmp = tmp_path_factory.mktemp("web-stage")
    port = free_port()
    command = [sys.executable, "-m", "tests.web.stage_gateway", "--port", str(port), "--stage", STAGE]
    command += ["--api-key", STAGE_API_KEY]
    url = f"http://127.0.0.1:{port}/{STAGE}"
    with serve(command, server_env(tmp / "decisions.sqlite3"), f"{url}/", tmp / "gateway.log"):
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (Debian's chromium package)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def new_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Callable[..., Page]]:
    """Open pages (each in a fresh browser context: its own session storage); screenshot them at the end."""
    opened: list[tuple[Page, list[str]]] = []

    def open_page(viewport: dict[str, int] = DESKTOP) -> Page:
        context = browser.new_context(viewport=viewport, accept_downloads=True)
        context.set_default_timeout(10_000)
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"JavaScript error: {error}"))

        def console(message: ConsoleMessage) -> None:
            # A refused request is the API's answer (422, 403...) and the test checks it; a CSP
            # refusal or a script error is a fault of the page.
            if message.type == "error" and not message.text.startswith("Failed to load resource"):
                problems.append(f"console: {message.text}")

        page.on("console", console)
        opened.append((page, problems))
        return page

    yield open_page

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    found: list[str] = []
    for index, (page, problems) in enumerate(opened):
        suffix = f"-{index + 1}" if len(opened) > 1 else ""
        name = re.sub(r"[^\w.-]+", "-", request.node.name).strip("-")
        page.screenshot(path=SCREENSHOTS / f"{name}{suffix}.png", full_page=True)
        found += problems
        page.context.close()
    assert not found, "the page reported errors:\n" + "\n".join(found)
