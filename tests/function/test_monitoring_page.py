"""``GET /monitoring``: the latest report through its pointer, from a directory or the bucket.

Real requests through the app (TestClient) and the Lambda handler; S3 is moto, or a closed
port for an outage. Reports are small hand-written pages in the generator's contract.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from credit_api.api import create_app
from credit_api.aws import Bounds
from credit_api.monitoring_page import MAX_REPORT_BYTES, BucketReports, reports_for
from credit_api.settings import Settings
from fastapi.testclient import TestClient

from tests.function.conftest import BUCKET
from tests.support import load_event

DATE = "2026-12-01"
STYLE = "body { color: #123; } .status-red { background: #fde6e4; }"
SECOND_STYLE = "\n  table { border-collapse: collapse; }\n"
REPORT = (
    '<!doctype html><html><head><meta charset="utf-8"><title>Monitoring 2026-12-01</title>'
    f'<style>{STYLE}</style><style media="print">{SECOND_STYLE}</style></head>'
    '<body><h1>Model monitoring</h1><p class="status-red">Overall: red</p>'
    '<img alt="scores" src="data:image/png;base64,iVBORw0KGgo="></body></html>'
)


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def pointer(html: Any, **fields: Any) -> dict[str, Any]:
    return {
        "date": DATE,
        "generated_at": f"{DATE}T06:00:00Z",
        "html": html,
        "json": f"monitoring/{DATE}/report.json",
        "status": "red",
        **fields,
    }


def write_local(reports: Path, html: str = REPORT, latest: Any = None) -> None:
    day = reports / "monitoring" / DATE
    day.mkdir(parents=True, exist_ok=True)
    (day / "report.html").write_text(html)
    document = pointer(f"monitoring/{DATE}/report.html") if latest is None else latest
    raw = document if isinstance(document, str) else json.dumps(document)
    (reports / "monitoring" / "latest.json").write_text(raw)


def put_bucket(s3: Any, html: str = REPORT, latest: Any = None) -> None:
    s3.put_object(Bucket=BUCKET, Key=f"reports/monitoring/{DATE}/report.html", Body=html.encode())
    document = pointer(f"reports/monitoring/{DATE}/report.html") if latest is None else latest
    raw = document if isinstance(document, str) else json.dumps(document)
    s3.put_object(Bucket=BUCKET, Key="reports/monitoring/latest.json", Body=raw.encode())


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    return tmp_path / "reports"


@pytest.fixture
def local_client(settings: Settings, sqlite_log: Any, reports: Path) -> TestClient:
    app = create_app(replace(settings, reports_dir=reports), log=sqlite_log)
    return TestClient(app, raise_server_exceptions=False)


class Recording:
    """An S3 client that notes the keys it is asked for."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3
        self.keys: list[str] = []

    def get_object(self, **kwargs: Any) -> Any:
        self.keys.append(kwargs["Key"])
        return self.s3.get_object(**kwargs)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bucket_client(settings: Settings, sqlite_log: Any, reports: BucketReports) -> TestClient:
    app = create_app(replace(settings, reports_dir=Path("/nonexistent")), log=sqlite_log)
    app.state.monitoring = reports
    return TestClient(app, raise_server_exceptions=False)


def test_the_latest_local_report_is_served_under_a_csp_admitting_only_its_styles(
    local_client: TestClient, reports: Path
) -> None:
    write_local(reports)
    response = local_client.get("/monitoring")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == REPORT
    policy = response.headers["content-security-policy"]
    assert policy == (
        f"default-src 'none'; style-src {csp_hash(STYLE)} {csp_hash(SECOND_STYLE)}; img-src data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    assert "script-src" not in policy and "'unsafe-inline'" not in policy
    assert response.headers["x-report-date"] == DATE
    assert response.headers["x-report-status"] == "red"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_report_without_styles_gets_style_src_none(local_client: TestClient, reports: Path) -> None:
    write_local(reports, html="<!doctype html><title>r</title><p>plain</p>")
    response = local_client.get("/monitoring")
    assert response.status_code == 200
    assert "style-src 'none';" in response.headers["content-security-policy"]


def test_no_report_yet_is_a_404_page_saying_how_to_make_one(local_client: TestClient) -> None:
    response = local_client.get("/monitoring")
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "No monitoring report yet" in response.text
    assert "credit monitor" in response.text
    assert "<script" not in response.text
    (style,) = response.text.split("<style>")[1].split("</style>")[:1]
    assert f"style-src {csp_hash(style)};" in response.headers["content-security-policy"]


def test_a_pointer_copied_from_the_bucket_finds_the_local_report(
    local_client: TestClient, reports: Path
) -> None:
    write_local(reports, latest=pointer(f"reports/monitoring/{DATE}/report.html"))
    response = local_client.get("/monitoring")
    assert response.status_code == 200
    assert response.text == REPORT


def test_a_new_local_report_is_served_at_once(local_client: TestClient, reports: Path) -> None:
    write_local(reports)
    assert local_client.get("/monitoring").text == REPORT
    write_local(reports, html=REPORT.replace("Overall: red", "Overall: green"))
    assert "Overall: green" in local_client.get("/monitoring").text


BAD_POINTERS = {
    "not JSON": "{not json",
    "a list": json.dumps([f"monitoring/{DATE}/report.html"]),
    "no html": pointer(None),
    "html not a string": pointer(["monitoring/x/report.html"]),
    "another file": pointer("../models/champion.json"),
    "parent segments": pointer(f"monitoring/{DATE}/../../../secret/report.html"),
    "dot segment": pointer("monitoring/./report.html"),
    "absolute path": pointer("/etc/monitoring/x/report.html"),
    "backslashes": pointer("monitoring\\..\\..\\x\\report.html"),
    "no day folder": pointer("monitoring/report.html"),
    "not the html": pointer(f"monitoring/{DATE}/report.json"),
    "encoded traversal": pointer("monitoring/%2e%2e/%2e%2e/report.html"),
    "null byte": pointer(f"monitoring/{DATE}\x00/report.html"),
}


@pytest.mark.parametrize("latest", BAD_POINTERS.values(), ids=BAD_POINTERS.keys())
def test_a_bad_local_pointer_is_a_clear_404_never_a_file_outside(
    local_client: TestClient, reports: Path, latest: Any
) -> None:
    write_local(reports, latest=latest)
    secret = reports.parent / "secret"
    secret.mkdir()
    (secret / "report.html").write_text("<p>SECRET-FILE</p>")
    response = local_client.get("/monitoring")
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "monitoring_report_invalid"
    assert "latest.json" in body["message"]
    assert "SECRET-FILE" not in response.text


def test_a_symlink_out_of_the_reports_directory_is_refused(
    local_client: TestClient, reports: Path, tmp_path: Path
) -> None:
    write_local(reports)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "report.html").write_text("<p>outside</p>")
    (reports / "monitoring" / "linked").symlink_to(outside)
    write_local(reports, latest=pointer("monitoring/linked/report.html"))
    response = local_client.get("/monitoring")
    assert response.status_code == 404
    assert "leaves the reports directory" in response.json()["message"]


def test_a_pointer_to_a_missing_local_report_is_a_404(local_client: TestClient, reports: Path) -> None:
    write_local(reports, latest=pointer("monitoring/2026-11-30/report.html"))
    response = local_client.get("/monitoring")
    assert response.status_code == 404
    assert "monitoring/2026-11-30/report.html" in response.json()["message"]


def test_a_report_too_large_for_a_lambda_answer_is_refused(local_client: TestClient, reports: Path) -> None:
    write_local(reports, html="<p>" + "x" * MAX_REPORT_BYTES + "</p>")
    response = local_client.get("/monitoring")
    assert response.status_code == 404
    assert "larger than" in response.json()["message"]


def test_pointer_fields_that_could_not_be_headers_are_not_echoed(
    local_client: TestClient, reports: Path
) -> None:
    write_local(
        reports,
        latest=pointer(
            f"monitoring/{DATE}/report.html", date="2026\r\nSet-Cookie: x=1", status="red\r\nX: 1"
        ),
    )
    response = local_client.get("/monitoring")
    assert response.status_code == 200
    assert response.headers["x-report-date"] == ""
    assert response.headers["x-report-status"] == "unknown"
    assert "set-cookie" not in response.headers


def test_the_bucket_report_is_served_and_the_pointer_reread_only_after_the_refresh_interval(
    s3: Any, settings: Settings, sqlite_log: Any
) -> None:
    put_bucket(s3)
    recording, clock = Recording(s3), Clock()
    client = bucket_client(settings, sqlite_log, BucketReports(BUCKET, lambda: recording, 300.0, clock))
    assert recording.keys == []  # nothing is read before the first request
    response = client.get("/monitoring")
    assert response.status_code == 200
    assert response.text == REPORT
    assert recording.keys == ["reports/monitoring/latest.json", f"reports/monitoring/{DATE}/report.html"]
    put_bucket(
        s3,
        html=REPORT.replace("Overall: red", "Overall: amber"),
        latest=pointer(f"reports/monitoring/{DATE}/report.html", status="amber"),
    )
    clock.now += 299
    assert client.get("/monitoring").text == REPORT
    assert len(recording.keys) == 2
    clock.now += 2
    response = client.get("/monitoring")
    assert "Overall: amber" in response.text
    assert response.headers["x-report-status"] == "amber"


def test_no_pointer_in_the_bucket_is_the_no_report_page(s3: Any, settings: Settings, sqlite_log: Any) -> None:
    client = bucket_client(settings, sqlite_log, reports_for(replace(settings, model_bucket=BUCKET), s3=s3))
    response = client.get("/monitoring")
    assert response.status_code == 404
    assert "No monitoring report yet" in response.text


S3_BAD_POINTERS = {
    "another object": pointer("models/champion.json"),
    "traversal": pointer("reports/monitoring/../../models/champion.json"),
    "not under reports": pointer(f"monitoring/{DATE}/report.html"),
    "a lookalike prefix": pointer(f"reports/monitoring-old/{DATE}/report.html"),
    "not JSON": "<html>",
}


@pytest.mark.parametrize("latest", S3_BAD_POINTERS.values(), ids=S3_BAD_POINTERS.keys())
def test_a_bad_bucket_pointer_is_a_404_and_nothing_else_is_read(
    s3: Any, settings: Settings, sqlite_log: Any, latest: Any
) -> None:
    put_bucket(s3, latest=latest)
    recording = Recording(s3)
    client = bucket_client(settings, sqlite_log, BucketReports(BUCKET, lambda: recording, 0.0))
    response = client.get("/monitoring")
    assert response.status_code == 404
    assert response.json()["error"] == "monitoring_report_invalid"
    assert recording.keys == ["reports/monitoring/latest.json"]


def test_a_bucket_pointer_to_a_missing_report_is_a_404(s3: Any, settings: Settings, sqlite_log: Any) -> None:
    put_bucket(s3, latest=pointer("reports/monitoring/2026-11-30/report.html"))
    client = bucket_client(settings, sqlite_log, BucketReports(BUCKET, lambda: s3, 0.0))
    response = client.get("/monitoring")
    assert response.status_code == 404
    assert "does not exist" in response.json()["message"]


def test_an_s3_outage_is_a_503_with_retry_after(settings: Settings, sqlite_log: Any) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    quick = Bounds(connect_timeout=0.2, read_timeout=0.2, max_attempts=1)
    outage = replace(settings, model_bucket=BUCKET, aws_endpoint_url=f"http://127.0.0.1:{port}", aws=quick)
    client = bucket_client(settings, sqlite_log, reports_for(outage))
    response = client.get("/monitoring")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"] == "monitoring_report_unavailable"


def test_the_page_under_an_api_gateway_stage_through_the_lambda_handler(
    invoke: Any, app: Any, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    write_local(reports)
    app.state.monitoring = reports_for(Settings(reports_dir=reports))
    event = load_event("page", path="/Prod/monitoring", resource="/{proxy+}")
    event["requestContext"] = {**event["requestContext"], "path": "/Prod/monitoring", "stage": "Prod"}
    response = invoke(event)
    assert response["statusCode"] == 200, response["body"][:300]
    assert response["body"] == REPORT
    headers = response.get("multiValueHeaders") or {k: [v] for k, v in response["headers"].items()}
    assert any(name.lower() == "content-security-policy" for name in headers)


def test_the_scoring_page_links_to_the_monitoring_page_relatively(client: TestClient) -> None:
    page = client.get("/").text
    assert 'href="monitoring"' in page


def test_local_reports_default_to_the_working_directorys_reports_folder() -> None:
    assert Settings.from_env({}).reports_dir == Path("reports")
    assert Settings.from_env({"REPORTS_DIR": "/srv/reports"}).reports_dir == Path("/srv/reports")
