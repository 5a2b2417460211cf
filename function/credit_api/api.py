"""The HTTP API: routes, request and response models, OpenAPI examples.

Routes only translate HTTP to :class:`~credit_api.service.DecisionService` calls and back;
errors are raised, never answered here (see :mod:`credit_api.errors`). Answers are
serialised straight to JSON: the response models document the API in OpenAPI, while a
batch of 1000 does not pay for validating what the service just built.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, FastAPI, Header, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool

from credit_api import errors, web
from credit_api.aws import RequestDeadline
from credit_api.decision_log import open_log
from credit_api.errors import MalformedJson, UnsupportedMediaType
from credit_api.gateway import caller, request_id
from credit_api.limits import BodyLimit
from credit_api.model_store import ModelStore
from credit_api.monitoring_page import reports_for
from credit_api.observability import SERVICE, OutsideLambda
from credit_api.policy import GRADES
from credit_api.schema import EXAMPLE_APPLICANT, Applicant, describe, fields
from credit_api.service import Call, DecisionService, ReportedOutcome
from credit_api.settings import MAX_BATCH, Settings

DESCRIPTION = """Probability of default, decision (approve, review, decline), score, risk grade and
principal reasons for consumer loan applications. Every decision is recorded before it is
returned; send an `Idempotency-Key` header to make retries safe. Errors share one shape:
`{"error", "message", "request_id", "errors": [{"field", "row", "sent", "allowed", "message"}]}`."""


DECISION_ID_PATTERN = r"^[A-Za-z0-9-]{1,64}$"
"""Decision ids are UUIDs; anything else is refused before it reaches a store."""
OBSERVED_YEARS = (1900, 2999)
OBSERVED_YEAR_PATTERN = r"^(19|2[0-9])[0-9]{2}-"
"""``observed_at``'s year, as the published JSON Schema states it (a pattern on the string)."""


class ReasonOut(BaseModel):
    input: str = Field(description="the input this reason is about")
    label: str = Field(description="the input's human label")
    message: str = Field(description="plain-language reason, as in an adverse action notice")


class PredictResponse(BaseModel):
    decision_id: str
    model_version: str
    policy_version: str | None = Field(
        None,
        description="the decision policy it was decided under (policy-<sha12>); null only for"
        " decisions recorded before policies were versioned",
    )
    probability_of_default: float = Field(ge=0, le=1)
    decision: Literal["approve", "review", "decline"]
    score: int = Field(
        description="points on the model card's scale (600 at 50:1 good:bad odds, +20 per doubling)"
    )
    risk_grade: str = Field(description=f"one of {', '.join(GRADES)}; A is the safest")
    reasons: list[ReasonOut] = Field(description="at most 4, for review and decline only; empty for approve")


class BatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"applicants": [EXAMPLE_APPLICANT]}]}
    )

    applicants: list[Applicant] = Field(min_length=1, max_length=MAX_BATCH)  # type: ignore[valid-type]


class BatchResponse(BaseModel):
    results: list[PredictResponse] = Field(description="one per applicant, in request order")


class Outcome(BaseModel):
    defaulted: bool
    observed_at: str
    recorded_at: str


class OutcomeReport(BaseModel):
    """What became of a loan, for monitoring and retraining."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "decision_id": "0b6f7d52-8a3e-4d0f-9a39-2c1f5f0e6a11",
                    "defaulted": False,
                    "observed_at": "2026-11-30T12:00:00Z",
                }
            ]
        },
    )

    decision_id: str = Field(pattern=DECISION_ID_PATTERN, description="as returned by /predict")
    defaulted: StrictBool
    observed_at: AwareDatetime = Field(
        description="when the outcome was observed, with a time zone; years 1900 to 2999",
        json_schema_extra={"pattern": OBSERVED_YEAR_PATTERN},
    )

    @field_validator("observed_at")
    @classmethod
    def _plausible_year(cls, value: datetime) -> datetime:
        """Stored in UTC. Years 1900-2999 (as written, so the published pattern says the same)
        cover every real loan, and their UTC equivalent always exists, unlike 0001 or 9999's."""
        first, last = OBSERVED_YEARS
        if not first <= value.year <= last:
            raise ValueError(f"must be a date and time in the years {first} to {last}")
        return value.astimezone(UTC)


OUTCOME_STATUSES = ("recorded", "unchanged", "conflict", "not_found", "invalid", "duplicate")


class OutcomeBatchRequest(BaseModel):
    """Up to 1000 outcomes (MAX_BATCH), each the body of ``POST /outcomes``, each judged on its own."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"outcomes": OutcomeReport.model_config["json_schema_extra"]["examples"]}]
        },  # type: ignore[index]
    )

    outcomes: list[Annotated[OutcomeReport | Any, Field(union_mode="left_to_right")]] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="each the body of POST /outcomes; an item that is not is reported `invalid`, not fatal",
    )


class OutcomeItemResult(BaseModel):
    index: int = Field(description="the item's position in `outcomes`, from 0")
    decision_id: str | None = Field(description="as sent; null when the item has no valid decision_id")
    status: Literal["recorded", "unchanged", "conflict", "not_found", "invalid", "duplicate"] = Field(
        description="recorded: stored now; unchanged: this outcome was already stored; conflict: a"
        " different outcome is stored (never overwritten); not_found: no decision with this id is"
        " yours; invalid: see `errors`; duplicate: the id came earlier in this request (see"
        " `first_index`), only that one is applied"
    )
    outcome: Outcome | None = Field(None, description="the stored outcome (recorded, unchanged, conflict)")
    first_index: int | None = Field(None, description="for a duplicate: the index of the item applied")
    errors: list[FieldError] = Field(default_factory=list, description="for an invalid item: why")


class OutcomeBatchResponse(BaseModel):
    results: list[OutcomeItemResult] = Field(description="one per item, in request order")
    counts: dict[str, int] = Field(description="items by status, every status listed")


class DecisionRecord(PredictResponse):
    created_at: str
    request_id: str
    idempotency_key: str | None = None
    request_hash: str | None = Field(None, description="sha256 of the request, kept with an Idempotency-Key")
    caller: str = Field(
        "", description="the API key id that made the decision (yours, or the risk team reads it)"
    )
    expires_at: int | None = Field(
        None,
        description="epoch seconds when the record may be deleted: created_at plus the retention (800 days)",
    )
    inputs: dict[str, int | str]
    expected_profit: float
    outcome: Outcome | None = None


class FieldError(BaseModel):
    field: str = Field(description="the field, e.g. `age` or `applicants[3].age`")
    row: int | None = Field(description="batch row, for batch requests")
    sent: Any = Field(description="the value sent (cut short when long)")
    allowed: Any = Field(description="the allowed codes, the numeric bounds, or the accepted fields")
    message: str
    type: str


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable code, e.g. validation_error")
    message: str
    request_id: str
    errors: list[FieldError] = Field(default_factory=list)


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


SCORING_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("malformed JSON"),
    409: _error("Idempotency-Key reused with a different request, or that request is still in progress"),
    413: _error("body over 1 MB, or more than 1000 applicants"),
    415: _error("body is not JSON"),
    422: _error("invalid fields: which field, what was sent, what is allowed"),
    503: _error("no model loaded, or the decision could not be recorded (no decision was made)"),
}

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="any unique string per logical request; a retry with it returns the same decision",
    ),
]

# A body without Content-Type is read as JSON (API Gateway test consoles send none); one that
# declares another type gets a 415.
router = APIRouter(strict_content_type=False)
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


async def parse_json(request: Request, model: type[M]) -> M:
    """The request body validated as ``model``: the one JSON parsing rule of every route.

    The fast path validates straight from bytes (pydantic's Rust JSON parser): about half the
    time of FastAPI's ``json.loads`` then validate on a batch of 1000. Only a body that fails
    it pays for a second look (:func:`strict_json`): JSON that Python's parser would bend
    (``NaN``, ``Infinity``, ``1e400``, lone surrogates) is a 400, and whole numbers written as
    floats (``4.0``, which JSON Schema's ``integer`` allows) are accepted as integers. Errors
    come out as FastAPI's would (``RequestValidationError`` with ``body`` locations), so
    :mod:`credit_api.errors` maps both; an unknown top-level field also carries the accepted ones.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType("Send the request body as JSON with Content-Type: application/json.")
    body = await request.body()
    if not body:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        first = exc
    data = strict_json(body, first)
    try:
        return model.model_validate(whole_numbers(data))
    except ValidationError as exc:
        errors = []
        for error in exc.errors(include_url=False):
            if error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
                error = {**error, "allowed": list(model.model_fields)}
            errors.append({**error, "loc": ("body", *error["loc"])})
        raise RequestValidationError(errors) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is too large to be a number")
    return value


def strict_json(body: bytes, failure: ValidationError) -> Any:
    """``body`` parsed by the JSON standard (RFC 8259), or :class:`MalformedJson` saying why not."""
    if any(e["type"] == "json_invalid" for e in failure.errors(include_url=False)):
        where = next(e for e in failure.errors() if e["type"] == "json_invalid").get("ctx", {}).get("error")
        raise MalformedJson(f"The request body is not valid JSON ({where or 'invalid JSON'}).")
    return standard_json(body)


def standard_json(body: bytes) -> Any:
    """``body`` parsed as RFC 8259 JSON (no ``NaN``, no ``1e400``, no lone surrogates), or
    :class:`MalformedJson`: for bodies pydantic's parser read leniently (into ``Any``)."""
    try:
        data = json.loads(body, parse_constant=_no_constant, parse_float=_finite)
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeError:
        raise MalformedJson("The request body is not valid JSON (a lone surrogate in a string).") from None
    except ValueError as exc:
        raise MalformedJson(f"The request body is not valid JSON ({exc}).") from None
    return data


def whole_numbers(data: Any) -> Any:
    """``data`` with every float that is a whole number (``4.0``) as an int; other values unchanged."""
    if isinstance(data, float) and data.is_integer():
        return int(data)
    if isinstance(data, dict):
        return {k: whole_numbers(v) for k, v in data.items()}
    if isinstance(data, list):
        return [whole_numbers(v) for v in data]
    return data


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a body that :func:`parse_json` reads: a reference to the model's schema.

    FastAPI documents only the bodies it parses itself, so :func:`with_body_schemas` adds these.
    """
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def _service(request: Request) -> DecisionService:
    return request.app.state.service


def _call(request: Request, idempotency_key: str | None) -> Call:
    return Call(
        request_id=request_id(request.scope), idempotency_key=idempotency_key, caller=caller(request.scope)
    )


def _json(content: Any, request: Request, status_code: int = 200, replayed: bool = False) -> Response:
    headers = {"X-Request-Id": request_id(request.scope)}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(to_json(content), status_code=status_code, media_type="application/json", headers=headers)


async def _run(request: Request, work: Callable[..., T], *args: Any) -> T:
    """Run blocking work (model, decision log) for a route.

    Through Mangum, inline: a Lambda container serves one request at a time, and the hop to a
    worker thread would cost more than scoring (about 2 ms of a 1.5 ms budget). Under uvicorn,
    in the thread pool, so one slow request does not hold up the others.
    """
    if "aws.event" in request.scope:
        return work(*args)
    return await run_in_threadpool(work, *args)


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=SCORING_ERRORS,
    openapi_extra=json_body(Applicant),
    summary="Score one application",
    tags=["scoring"],
)
async def predict(request: Request, idempotency_key: IdempotencyKey = None) -> Response:
    applicant = await parse_json(request, Applicant)
    result, replayed = await _run(
        request,
        _service(request).predict,
        fields(applicant),
        _call(request, idempotency_key),
    )
    return _json(result, request, replayed=replayed)


@router.post(
    "/predict/batch",
    response_model=BatchResponse,
    responses=SCORING_ERRORS,
    openapi_extra=json_body(BatchRequest),
    summary=f"Score up to {MAX_BATCH} applications in one model run",
    tags=["scoring"],
)
async def predict_batch(request: Request, idempotency_key: IdempotencyKey = None) -> Response:
    batch = await parse_json(request, BatchRequest)
    applicants = [fields(a) for a in batch.applicants]
    results, replayed = await _run(
        request, _service(request).predict_batch, applicants, _call(request, idempotency_key)
    )
    return _json({"results": results}, request, replayed=replayed)


@router.get("/health", summary="Model served, where from, and the champion's refresh state", tags=["service"])
async def health(request: Request) -> dict[str, Any]:
    """200 while a model is served; ``status`` is ``degraded`` when it is not the S3 champion
    or the last refresh failed (the alarmable metrics: ModelFallbackToBundled, ModelRefreshFailures)."""
    service = _service(request)
    model = await _run(request, service.store.status)
    return {**model, "model_loaded": True, "decision_log": service.log.kind, "service": SERVICE}


@router.get(
    "/model", summary="Model card: metrics, the policy in force, inputs, score scale", tags=["service"]
)
async def model_card(request: Request) -> dict[str, Any]:
    model, policy = await _run(request, _service(request).store.served)
    manifest = model.manifest
    scale = policy.score_scale
    return {
        "model_version": manifest.model_version,
        "algorithm": manifest.algorithm,
        "created_at": manifest.created_at.isoformat(),
        "loaded_at": model.loaded_at.isoformat(),
        "source": model.source,
        "onnx_sha256": manifest.onnx_sha256,
        "metrics": manifest.metrics,
        "policy": policy.policy.model_dump(),
        "policy_version": policy.version,
        "policy_source": policy.source,
        "score_scale": {
            **scale.model_dump(),
            "description": (
                f"{scale.base_score:g} points at {scale.base_odds:g}:1 good:bad odds; "
                f"{scale.points_to_double_odds:g} more points each time the odds double"
            ),
            "grades": {
                grade: f"score >= {scale.base_score - i * scale.points_to_double_odds:g}"
                if i < len(GRADES) - 1
                else f"score < {scale.base_score - (i - 1) * scale.points_to_double_odds:g}"
                for i, grade in enumerate(GRADES)
            },
        },
        "inputs": describe(),
        "schema_hash": manifest.schema_hash,
        "training_data_sha256": manifest.training_data_sha256,
        "max_batch": MAX_BATCH,
    }


@router.get(
    "/decisions/{decision_id}",
    response_model=DecisionRecord,
    responses={404: _error("unknown decision id"), 503: _error("decision log unavailable")},
    summary="The stored record of one decision",
    tags=["decisions"],
)
async def decision(
    decision_id: Annotated[str, Path(pattern=DECISION_ID_PATTERN)], request: Request
) -> Response:
    service = _service(request)
    return _json(await _run(request, service.decision, decision_id, caller(request.scope)), request)


@router.post(
    "/outcomes",
    response_model=DecisionRecord,
    responses={
        400: _error("malformed JSON"),
        404: _error("unknown decision id"),
        409: _error("a different outcome is already recorded"),
        413: _error("body over 1 MB"),
        415: _error("body is not JSON"),
        422: _error("invalid fields"),
        503: _error("decision log unavailable"),
    },
    summary="Record what became of a loan",
    tags=["decisions"],
    openapi_extra=json_body(OutcomeReport),
)
async def outcome(request: Request) -> Response:
    report = await parse_json(request, OutcomeReport)
    service = _service(request)
    record = await _run(
        request,
        service.record_outcome,
        report.decision_id,
        report.defaulted,
        report.observed_at,
        caller(request.scope),
    )
    return _json(record, request)


@router.post(
    "/outcomes/batch",
    response_model=OutcomeBatchResponse,
    responses={
        400: _error("malformed JSON"),
        413: _error(f"body over 1 MB, or more than {MAX_BATCH} outcomes"),
        415: _error("body is not JSON"),
        422: _error("not a list of 1 or more outcomes (a bad item is reported in its result instead)"),
        503: _error(
            "decision log unavailable: send the same request again (outcomes already recorded"
            " come back unchanged)"
        ),
    },
    summary=f"Record what became of up to {MAX_BATCH} loans",
    tags=["decisions"],
    openapi_extra=json_body(OutcomeBatchRequest),
)
async def outcome_batch(request: Request) -> Response:
    """200 with a status per item whatever the items say; 503 only when the store failed, and
    then the whole request is safe to resend (see :meth:`DecisionService.record_outcomes`)."""
    batch = await parse_json(request, OutcomeBatchRequest)
    if not all(isinstance(item, OutcomeReport) for item in batch.outcomes):
        standard_json(await request.body())  # an item read as Any may hold NaN or 1e400
    results, reports = outcome_items(batch.outcomes)
    positions = [i for i, result in enumerate(results) if result is None]
    statuses = await _run(request, _service(request).record_outcomes, reports, caller(request.scope))
    for i, status in zip(positions, statuses, strict=True):
        results[i] = {**status, "index": i, "decision_id": reports[positions.index(i)].decision_id}
    counts = dict.fromkeys(OUTCOME_STATUSES, 0)
    for result in results:
        counts[result["status"]] += 1  # type: ignore[index]
    return _json({"results": results, "counts": counts}, request)


def outcome_items(items: list[Any]) -> tuple[list[dict[str, Any] | None], list[ReportedOutcome]]:
    """The results of invalid and duplicate items (None where a report is to be recorded), and
    the reports to record, in order. Items the body's validation left raw are invalid: validated
    again on their own (as :func:`parse_json` would) for their errors."""
    results: list[dict[str, Any] | None] = []
    reports: list[ReportedOutcome] = []
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        try:
            report = (
                item if isinstance(item, OutcomeReport) else OutcomeReport.model_validate(whole_numbers(item))
            )
        except ValidationError as exc:
            results.append(_invalid_item(i, item, exc))
            continue
        if report.decision_id in first:
            results.append(
                {
                    "index": i,
                    "decision_id": report.decision_id,
                    "status": "duplicate",
                    "first_index": first[report.decision_id],
                }
            )
            continue
        first[report.decision_id] = i
        results.append(None)
        reports.append(ReportedOutcome(report.decision_id, report.defaulted, report.observed_at))
    return results, reports


def _invalid_item(index: int, item: Any, exc: ValidationError) -> dict[str, Any]:
    raw = []
    for error in exc.errors(include_url=False):
        if error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
            error = {**error, "allowed": list(OutcomeReport.model_fields)}
        raw.append({**error, "loc": ("body", "outcomes", index, *error["loc"])})
    sent = item.get("decision_id") if isinstance(item, dict) else None
    valid_id = isinstance(sent, str) and re.fullmatch(DECISION_ID_PATTERN, sent) is not None
    return {
        "index": index,
        "decision_id": sent if valid_id else None,
        "status": "invalid",
        "errors": errors.field_errors(raw[: errors.MAX_LISTED_ERRORS]),
    }


def with_body_schemas(app: FastAPI, models: tuple[type[BaseModel], ...]) -> None:
    """Make ``app``'s OpenAPI carry the schemas of the bodies :func:`json_body` refers to."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = FastAPI.openapi(app)
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings, store: ModelStore | None = None, log: Any = None) -> FastAPI:
    """The ASGI app; ``store`` and ``log`` are injectable so tests need no AWS and no files."""
    app = FastAPI(
        title="Loan default service",
        version="1.0",
        description=DESCRIPTION,
        docs_url=None,  # served by web.docs, from the function itself
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.service = DecisionService(
        store or ModelStore(settings),
        log
        or open_log(
            settings.decisions_table,
            settings.decisions_db,
            settings.aws_endpoint_url,
            settings.idempotency_table,
        ),
        readers=settings.risk_api_key_ids,
    )
    app.state.monitoring = reports_for(settings)
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(OutsideLambda)
    app.add_middleware(RequestDeadline, bounds=settings.aws)
    app.include_router(router)
    app.include_router(web.router)
    with_body_schemas(app, (Applicant, BatchRequest, OutcomeReport, OutcomeBatchRequest))
    return app
