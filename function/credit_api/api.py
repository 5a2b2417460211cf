"""The HTTP API: routes, request and response models, OpenAPI examples.

Routes only translate HTTP to :class:`~credit_api.service.DecisionService` calls and back;
errors are raised, never answered here (see :mod:`credit_api.errors`). Answers are
serialised straight to JSON: the response models document the API in OpenAPI, while a
batch of 1000 does not pay for validating what the service just built.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, FastAPI, Header, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool

from credit_api import errors, web
from credit_api.decision_log import open_log
from credit_api.gateway import caller, request_id
from credit_api.limits import BodyLimit
from credit_api.model_store import ModelStore
from credit_api.observability import SERVICE, FlushMetricsOutsideLambda
from credit_api.policy import GRADES
from credit_api.schema import EXAMPLE_APPLICANT, Applicant, describe
from credit_api.service import Call, DecisionService
from credit_api.settings import MAX_BATCH, Settings

DESCRIPTION = """Probability of default, decision (approve, review, decline), score, risk grade and
principal reasons for consumer loan applications. Every decision is recorded before it is
returned; send an `Idempotency-Key` header to make retries safe. Errors share one shape:
`{"error", "message", "request_id", "errors": [{"field", "row", "sent", "allowed", "message"}]}`."""


class ReasonOut(BaseModel):
    input: str = Field(description="the input this reason is about")
    label: str = Field(description="the input's human label")
    message: str = Field(description="plain-language reason, as in an adverse action notice")


class PredictResponse(BaseModel):
    decision_id: str
    model_version: str
    probability_of_default: float = Field(ge=0, le=1)
    decision: Literal["approve", "review", "decline"]
    score: int = Field(description="points: 600 at 50:1 good:bad odds, 20 points to double the odds")
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

    decision_id: str = Field(min_length=1, max_length=64)
    defaulted: StrictBool
    observed_at: AwareDatetime = Field(description="when the outcome was observed, with a time zone")


class DecisionRecord(PredictResponse):
    created_at: str
    request_id: str
    idempotency_key: str | None = None
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
    409: _error("Idempotency-Key reused with a different request"),
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

router = APIRouter()


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
    body = json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=SCORING_ERRORS,
    summary="Score one application",
    tags=["scoring"],
)
def predict(
    applicant: Annotated[Applicant, Body()],  # type: ignore[valid-type]
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    result, replayed = _service(request).predict(
        applicant.model_dump(),  # type: ignore[attr-defined]
        _call(request, idempotency_key),
    )
    return _json(result, request, replayed=replayed)


@router.post(
    "/predict/batch",
    response_model=BatchResponse,
    responses=SCORING_ERRORS,
    summary=f"Score up to {MAX_BATCH} applications in one model run",
    tags=["scoring"],
)
def predict_batch(batch: BatchRequest, request: Request, idempotency_key: IdempotencyKey = None) -> Response:
    applicants = [a.model_dump() for a in batch.applicants]
    results, replayed = _service(request).predict_batch(applicants, _call(request, idempotency_key))
    return _json({"results": results}, request, replayed=replayed)


@router.get("/health", summary="Model loaded, its version and load time", tags=["service"])
def health(request: Request) -> dict[str, Any]:
    service = _service(request)
    model = service.store.current()
    return {
        "status": "ok",
        "model_loaded": True,
        "model_version": model.version,
        "loaded_at": model.loaded_at.isoformat(),
        "source": model.source,
        "decision_log": service.log.kind,
        "service": SERVICE,
    }


@router.get("/model", summary="Model card: metrics, policy, inputs, score scale", tags=["service"])
def model_card(request: Request) -> dict[str, Any]:
    model = _service(request).store.current()
    manifest = model.manifest
    scale = manifest.score_scale
    return {
        "model_version": manifest.model_version,
        "algorithm": manifest.algorithm,
        "created_at": manifest.created_at.isoformat(),
        "loaded_at": model.loaded_at.isoformat(),
        "source": model.source,
        "onnx_sha256": manifest.onnx_sha256,
        "metrics": manifest.metrics,
        "policy": manifest.policy.model_dump(),
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
def decision(decision_id: str, request: Request) -> Response:
    return _json(_service(request).decision(decision_id), request)


@router.post(
    "/outcomes",
    response_model=DecisionRecord,
    responses={
        404: _error("unknown decision id"),
        409: _error("a different outcome is already recorded"),
        422: _error("invalid fields"),
        503: _error("decision log unavailable"),
    },
    summary="Record what became of a loan",
    tags=["decisions"],
)
def outcome(report: OutcomeReport, request: Request) -> Response:
    record = _service(request).record_outcome(report.decision_id, report.defaulted, report.observed_at)
    return _json(record, request)


def create_app(settings: Settings, store: ModelStore | None = None, log: Any = None) -> FastAPI:
    """The ASGI app; ``store`` and ``log`` are injectable so tests need no AWS and no files."""
    app = FastAPI(
        title="Loan default service",
        version="1.0",
        description=DESCRIPTION,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.service = DecisionService(
        store or ModelStore(settings),
        log or open_log(settings.decisions_table, settings.decisions_db, settings.aws_endpoint_url),
    )
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(FlushMetricsOutsideLambda)
    app.include_router(router)
    app.include_router(web.router)
    return app
