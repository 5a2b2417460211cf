"""Every error the API can return, mapped to its response and its metric in one place.

Bad input is always a 4xx with field-level messages (which field, what was sent, what is
allowed); anything unexpected is a bare 500 with the request id and no stack trace. Each
response increments one EMF counter, so errors show on the dashboard by kind. Logs name the
fields that failed, never the values sent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from credit_api.gateway import request_id
from credit_api.observability import count, logger
from credit_api.schema import BY_NAME, FEATURE_NAMES


class ServiceError(Exception):
    """An error with a defined response. Subclasses set ``status``, ``code`` and ``metric``."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    metric: ClassVar[str] = "InternalErrors"

    def __init__(
        self, message: str, errors: Sequence[dict[str, Any]] = (), headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = list(errors)
        self.headers = dict(headers or {})


class InvalidRequest(ServiceError):
    status, code, metric = 422, "validation_error", "ValidationErrors"


class MalformedJson(ServiceError):
    status, code, metric = 400, "malformed_json", "MalformedRequests"


class BadRequest(ServiceError):
    status, code, metric = 400, "bad_request", "MalformedRequests"


class UnsupportedMediaType(ServiceError):
    status, code, metric = 415, "unsupported_media_type", "MalformedRequests"


class PayloadTooLarge(ServiceError):
    status, code, metric = 413, "payload_too_large", "PayloadTooLarge"


class NotFound(ServiceError):
    status, code, metric = 404, "not_found", "NotFound"


class MethodNotAllowed(ServiceError):
    status, code, metric = 405, "method_not_allowed", "MethodNotAllowed"


class IdempotencyConflict(ServiceError):
    """The same ``Idempotency-Key`` came back with a different request."""

    status, code, metric = 409, "idempotency_key_reused", "IdempotencyConflicts"


class IdempotencyInProgress(ServiceError):
    """The same request with this Idempotency-Key is still being decided: retry after ``Retry-After``."""

    status, code, metric = 409, "idempotency_key_in_progress", "IdempotencyInProgress"


class OutcomeConflict(ServiceError):
    """A different outcome is already recorded for this decision; outcomes are never overwritten."""

    status, code, metric = 409, "outcome_already_recorded", "OutcomeConflicts"


class DecisionLogUnavailable(ServiceError):
    """The decision could not be recorded (or read): no decision is given without a record."""

    status, code, metric = 503, "decision_log_unavailable", "DecisionLogFailures"


class ModelUnavailable(ServiceError):
    status, code, metric = 503, "model_unavailable", "ModelUnavailable"


class ReportInvalid(ServiceError):
    """The monitoring report's pointer, or the report it names, cannot be served; the message says why."""

    status, code, metric = 404, "monitoring_report_invalid", "MonitoringReportInvalid"


class ReportUnavailable(ServiceError):
    """The monitoring report could not be read from S3 (an outage, not a missing report)."""

    status, code, metric = 503, "monitoring_report_unavailable", "MonitoringReportUnavailable"


class InternalError(ServiceError):
    status, code, metric = 500, "internal_error", "InternalErrors"


_SENT_LIMIT = 200
MAX_LISTED_ERRORS = 50
"""Most field errors one answer lists; the message gives the total (a body of 60,000 unknown
fields must not cost seconds to describe)."""


def _text(value: str) -> str:
    """A string that can always be encoded as UTF-8: lone surrogates shown as escapes."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _shown(value: Any) -> Any:
    """What was sent, echoed back to the caller: cut short when large, always renderable as JSON."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        value = _text(value)
        return value[:_SENT_LIMIT] + "…" if len(value) > _SENT_LIMIT else value
    if isinstance(value, dict | list):
        if len(value) > 20 or len(repr(value)) > _SENT_LIMIT:
            return f"<{type(value).__name__} of {len(value)} items>"
        if isinstance(value, dict):
            return {_text(str(k)): _shown(v) for k, v in value.items()}
        return [_shown(v) for v in value]
    return value


def _allowed(name: str) -> Any:
    feature = BY_NAME.get(name)
    if feature is None:
        return None
    if feature.categorical:
        return list(feature.codes)
    return {"type": "integer", "minimum": feature.minimum, "maximum": feature.maximum, "unit": feature.unit}


def _rule(name: str) -> str | None:
    """The schema's rule for an input, in words."""
    feature = BY_NAME.get(name)
    if feature is None:
        return None
    if feature.categorical:
        return "must be one of " + ", ".join(f"{code!r} ({label})" for code, label in feature.codes.items())
    unit = f" ({feature.unit})" if feature.unit else ""
    return f"must be a whole number from {feature.minimum} to {feature.maximum}{unit}"


BATCH_FIELDS = ("applicants", "outcomes")
"""The list fields of the batch bodies (``POST /predict/batch``, ``POST /outcomes/batch``): their
items are the ``row`` of an error, and more than MAX_BATCH of them is a 413."""


def _field_path(loc: Sequence[Any]) -> tuple[str, int | None]:
    """("body", "applicants", 3, "age") -> ("applicants[3].age", 3)."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "path", "query", "header") else loc)
    parts = [part if isinstance(part, int) else _text(str(part)) for part in parts]
    batched = parts[0] in BATCH_FIELDS if parts else False
    row = parts[1] if len(parts) > 1 and batched and isinstance(parts[1], int) else None
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text, row


def field_errors(raw: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic errors as ``{field, row, sent, allowed, message, type}`` for people and the web form."""
    details = []
    for error in raw:
        loc = tuple(error.get("loc", ()))
        field, row = _field_path(loc)
        name = _text(str(loc[-1])) if loc else ""
        kind = error.get("type", "")
        sent = error.get("input")
        if kind == "extra_forbidden":
            # A parser that knows its model names the accepted fields; otherwise a body-level
            # field belongs to an applicant.
            allowed: Any = error.get("allowed") or (list(FEATURE_NAMES) if _is_applicant(loc) else None)
            message = f"{_shown(name)!r} is not an accepted field" + (
                "; the accepted fields are " + ", ".join(allowed) if allowed else ""
            )
        elif kind == "missing":
            allowed, sent = _allowed(name), None
            rule = _rule(name)
            message = f"{field or 'body'} is required" + (f"; it {rule}" if rule else "")
        elif name in BY_NAME and _is_applicant(loc):
            allowed = _allowed(name)
            message = f"{name} {_rule(name)}; got {_shown(sent)!r}"
        else:
            allowed = None
            message = f"{field or 'body'}: {_text(str(error.get('msg', 'invalid value')))}"
        details.append(
            {
                "field": field or "body",
                "row": row,
                "sent": _shown(sent),
                "allowed": allowed,
                "message": message,
                "type": kind,
            }
        )
    return details


def _is_applicant(loc: Sequence[Any]) -> bool:
    """An applicant field: body.<input> for /predict, body.applicants[i].<input> for a batch."""
    return len(loc) == 2 or (len(loc) == 4 and loc[1] == "applicants")


def from_validation(exc: RequestValidationError) -> ServiceError:
    """Classify a FastAPI validation failure: malformed JSON, wrong media type, too big, or invalid."""
    raw = list(exc.errors())
    kinds = {e.get("type") for e in raw}
    if "json_invalid" in kinds:
        error = next(e for e in raw if e.get("type") == "json_invalid")
        where = error.get("ctx", {}).get("error", "invalid JSON")
        return MalformedJson(f"The request body is not valid JSON ({where}).")
    for e in raw:
        loc = tuple(e.get("loc", ()))
        if e.get("type") == "too_long" and len(loc) == 2 and loc[0] == "body" and loc[1] in BATCH_FIELDS:
            return PayloadTooLarge(f"A batch holds at most 1000 {loc[1]}; split the request.")
    body_level = [e for e in raw if tuple(e.get("loc", ())) == ("body",)]
    if body_level and isinstance(body_level[0].get("input"), bytes):
        return UnsupportedMediaType("Send the request body as JSON with Content-Type: application/json.")
    return invalid(raw)


def invalid(raw: Sequence[dict[str, Any]]) -> InvalidRequest:
    """A 422 for pydantic errors: at most :data:`MAX_LISTED_ERRORS` listed, the total in the message."""
    details = field_errors(raw[:MAX_LISTED_ERRORS])
    noun = "field is" if len(raw) == 1 else "fields are"
    listed = f" The first {len(details)} are listed." if len(raw) > len(details) else ""
    return InvalidRequest(f"{len(raw)} {noun} invalid.{listed}", details)


def from_http(exc: StarletteHTTPException) -> ServiceError:
    if exc.status_code == 404:
        return NotFound("No such resource.")
    if exc.status_code == 405:
        # Starlette names the methods the route takes in ``Allow``, as RFC 9110 requires of a 405.
        return MethodNotAllowed("This method is not allowed on this resource.", headers=exc.headers or {})
    if exc.status_code == 413:
        return PayloadTooLarge(str(exc.detail))
    if 400 <= exc.status_code < 500:
        return BadRequest(str(exc.detail))
    return InternalError("Internal error.")


def respond(error: ServiceError, scope: Scope) -> JSONResponse:
    """The one place an error becomes a response (and a metric)."""
    count(error.metric)
    rid = request_id(scope)
    body: dict[str, Any] = {"error": error.code, "message": error.message, "request_id": rid}
    if error.errors:
        body["errors"] = error.errors
    log = logger.warning if error.status >= 500 else logger.info
    log(
        "request failed",
        extra={
            "status": error.status,
            "error": error.code,
            "path": scope.get("path"),
            "fields": logged_fields(error.errors),
        },
    )
    retry = error.status == 503 or isinstance(error, IdempotencyInProgress)
    headers = {"Retry-After": "1"} if retry else {}
    return ErrorResponse(body, status_code=error.status, headers={**headers, **error.headers})


class ErrorResponse(JSONResponse):
    """JSON that always renders: non-ASCII escaped (so a lone surrogate echoed back is valid JSON)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def logged_fields(details: Sequence[dict[str, Any]]) -> list[str]:
    """The failed fields for the log: the schema's own names only, never a name the client chose."""
    known = {*FEATURE_NAMES, "body", *BATCH_FIELDS, "decision_id", "defaulted", "observed_at"}
    names = []
    for detail in details[:MAX_LISTED_ERRORS]:
        leaf = detail["field"].rsplit(".", 1)[-1].split("[", 1)[0]
        names.append(detail["field"] if leaf in known else "<unknown field>")
    return names


# Starlette calls each handler only for the class it was registered for; the checks narrow the
# type without an ``assert``, which ``python -O`` would strip.
async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    error = exc if isinstance(exc, ServiceError) else InternalError("Internal error.")
    return respond(error, request.scope)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    error = (
        from_validation(exc) if isinstance(exc, RequestValidationError) else InternalError("Internal error.")
    )
    return respond(error, request.scope)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    error = from_http(exc) if isinstance(exc, StarletteHTTPException) else InternalError("Internal error.")
    return respond(error, request.scope)


class CatchAll:
    """Turns any unexpected exception into a plain 500: logged with its trace, never sent with it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            logger.exception("unhandled error", extra={"path": scope.get("path")})
            if not started:
                await respond(InternalError("Internal error."), scope)(scope, receive, send)


def install(app: FastAPI) -> None:
    """Register the handlers and the catch-all on ``app``."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(CatchAll)
