"""The latest monitoring report, found through its pointer, for ``GET /monitoring``.

The report generator (``credit monitor``, and its step of the scheduled run) writes each report
and then, last, the pointer that names it::

    bucket:  reports/monitoring/<YYYY-MM-DD>/report.html (and report.json)
             reports/monitoring/latest.json = {"date", "generated_at", "status",
                                               "html": "<key of the html>", "json": "<key>"}
    locally: <reports dir>/monitoring/latest.json, its keys relative to <reports dir>

With ``MODEL_BUCKET`` set the bucket is read, otherwise ``REPORTS_DIR`` (default ``reports``,
the repository's own when the app is run from it, as ``make run`` does).

The pointer is never followed blindly: its ``html`` must be a key under ``reports/monitoring/``
(locally ``monitoring/``) made of plain path segments and ending in ``/report.html``, so no
pointer can make the function serve another object of the bucket or a file outside the reports
directory. What can go wrong, and what the page answers:

- no pointer yet: :class:`NoReport`, a page telling the operator how to make one (404);
- a pointer that is not JSON, lacks ``html``, or names a key outside the reports, or a report
  that is missing or larger than :data:`MAX_REPORT_BYTES`:
  :class:`~credit_api.errors.ReportInvalid` (404, the message says which);
- S3 failing (timeouts, throttling, the request's deadline):
  :class:`~credit_api.errors.ReportUnavailable` (503, with ``Retry-After``).

Nothing is read at import or at a cold start; the first request reads, and S3 answers are kept
for ``MODEL_REFRESH_SECONDS`` (a report is written once a day), local files are read each time.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from credit_api import aws
from credit_api.aws import error_code
from credit_api.errors import ReportInvalid, ReportUnavailable
from credit_api.observability import logger
from credit_api.settings import Settings

BUCKET_PREFIX = "reports/"
"""Where the reports live in the bucket; a local pointer's keys are relative to the reports dir."""
POINTER = "monitoring/latest.json"
REPORT_KEY = re.compile(r"monitoring/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*/)+report\.html")
"""A report's key below the reports root: plain segments (none starting with a dot, so never
``..``), then ``report.html``."""
STATUSES = frozenset({"green", "amber", "red", "insufficient"})
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_REPORT_BYTES = 5 * 1024 * 1024
"""Largest report served: a Lambda answer holds at most 6 MB (the plots are inline data: URIs)."""
S3_ABSENT = aws.S3_MISSING_CODES | {"AccessDenied", "403"}
"""What S3 answers for a missing pointer: 404 with ``s3:ListBucket``, 403 without (the function's
role may read ``reports/monitoring/*`` but not list the bucket)."""


@dataclass(frozen=True)
class Report:
    """The latest report's page and what its pointer says about it."""

    html: bytes
    key: str
    date: str
    """``YYYY-MM-DD``, or empty when the pointer gives none."""
    status: str
    """green, amber, red or insufficient; ``unknown`` when the pointer gives none of these."""


@dataclass(frozen=True)
class NoReport:
    """No report has been written yet (no pointer)."""

    where: str


def report_key(pointer: Any, root: str) -> str:
    """The ``html`` key a pointer names, under ``root`` (``reports/`` or ``""``), else ReportInvalid."""
    if not isinstance(pointer, dict):
        raise ReportInvalid(f"{POINTER} is not a JSON object.")
    key = pointer.get("html")
    if not isinstance(key, str) or not key:
        raise ReportInvalid(f"{POINTER} names no html report.")
    if not key.startswith(root) or not REPORT_KEY.fullmatch(key[len(root) :]):
        raise ReportInvalid(
            f"{POINTER} names {key[:200]!r}, which is not a report under {root}monitoring/ (…/report.html)."
        )
    return key


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ReportInvalid(f"{POINTER} is not valid JSON.") from None


def _report(html: bytes, key: str, pointer: dict[str, Any]) -> Report:
    """The report, with the pointer's date and status kept only when well formed (they become headers)."""
    if len(html) > MAX_REPORT_BYTES:
        raise ReportInvalid(f"{key} is larger than the {MAX_REPORT_BYTES} bytes a page may hold.")
    date, status = pointer.get("date"), pointer.get("status")
    return Report(
        html=html,
        key=key,
        date=date if isinstance(date, str) and DATE.fullmatch(date) else "",
        status=status if isinstance(status, str) and status in STATUSES else "unknown",
    )


class LocalReports:
    """Reports in a directory (``REPORTS_DIR``), read on every request."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def latest(self) -> Report | NoReport:
        root = self.directory.resolve()
        try:
            raw = (root / POINTER).read_bytes()
        except FileNotFoundError:
            return NoReport(str(self.directory / POINTER))
        except OSError as exc:
            raise ReportInvalid(f"{POINTER} cannot be read ({exc.strerror}).") from None
        pointer = _parse(raw)
        # A pointer copied from the bucket names keys with its ``reports/`` prefix.
        named = pointer.get("html") if isinstance(pointer, dict) else None
        key = report_key(pointer, BUCKET_PREFIX if str(named).startswith(BUCKET_PREFIX) else "")
        relative = key.removeprefix(BUCKET_PREFIX)
        path = (root / relative).resolve()
        if not path.is_relative_to(root):  # a symlink out of the reports directory
            raise ReportInvalid(f"{POINTER} names {relative!r}, which leaves the reports directory.")
        try:
            with path.open("rb") as report:
                html = report.read(MAX_REPORT_BYTES + 1)
        except OSError:
            raise ReportInvalid(f"{POINTER} names {relative!r}, which does not exist.") from None
        return _report(html, relative, pointer)


class BucketReports:
    """Reports in the model bucket; an answer (a report, or none yet) is kept for ``ttl`` seconds."""

    def __init__(
        self,
        bucket: str,
        client: Callable[[], Any],
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bucket = bucket
        self.client = client
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._kept: tuple[float, Report | NoReport] | None = None

    def latest(self) -> Report | NoReport:
        with self._lock:
            kept = self._kept
        if kept is not None and self.clock() - kept[0] < self.ttl:
            return kept[1]
        found = self._read()
        with self._lock:
            self._kept = (self.clock(), found)
        return found

    def _get(self, key: str) -> bytes | None:
        """The object's bytes (at most one more than a page may hold), None when it is absent."""
        try:
            return self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read(MAX_REPORT_BYTES + 1)
        except Exception as exc:  # botocore's ClientError, connection errors and the deadline alike
            code = error_code(exc)
            if code in S3_ABSENT:
                return None
            logger.warning("monitoring report read failed", extra={"key": key, "error": code})
            raise ReportUnavailable(f"The monitoring report could not be read from S3 ({code}).") from exc

    def _read(self) -> Report | NoReport:
        pointer_key = BUCKET_PREFIX + POINTER
        raw = self._get(pointer_key)
        if raw is None:
            return NoReport(f"s3://{self.bucket}/{pointer_key}")
        pointer = _parse(raw)
        key = report_key(pointer, BUCKET_PREFIX)
        html = self._get(key)
        if html is None:
            raise ReportInvalid(f"{POINTER} names {key!r}, which does not exist.")
        return _report(html, key, pointer)


def reports_for(settings: Settings, s3: Any = None) -> LocalReports | BucketReports:
    """The bucket's reports when ``MODEL_BUCKET`` is set, else the local directory's.

    ``s3`` is injectable for tests; otherwise the client is made on the first read.
    """
    if not settings.model_bucket:
        return LocalReports(settings.reports_dir)

    def client() -> Any:
        return s3 if s3 is not None else aws.client("s3", settings.aws_endpoint_url, settings.aws)

    return BucketReports(settings.model_bucket, client, settings.model_refresh_seconds)
