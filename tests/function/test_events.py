"""The Lambda handler with the real-shaped API Gateway events kept in ``events/``."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urljoin

import pytest
from credit_api.schema import FEATURE_NAMES
from credit_api.settings import BUNDLED_MODEL_DIR

from tests.support import (
    EVENT_DECISION_ID,
    ROOT,
    LambdaContext,
    event_names,
    for_decision,
    load_event,
    log_records,
    response_json,
)

EXPECTED_STATUS = {
    "predict": 200,
    "predict_stage": 200,
    "predict_http_api": 200,
    "predict_batch": 200,
    "predict_bad_request": 422,
    "health": 200,
    "model": 200,
    "openapi": 200,
    "docs": 200,
    "page": 200,
    "static": 200,
    "decision": 200,  # about the decision predict.json was given (ids are random)
    "outcome": 200,
    "outcome_batch": 200,  # a status per item: the first one's decision is predict.json's
}
OWNED_ELSEWHERE = {"retrain", "rollback"}  # the RetrainFunction's and the OpsFunction's events
OWNED_ELSEWHERE |= {  # the file flows' (tests/function/test_portfolio.py, tests/stack/test_portfolio_flow.py)
    "portfolio_file_created",
    "portfolio_batch",
    "portfolio_assemble",
    "outcome_file_created",
    "outcome_file_batch",
    "outcome_file_assemble",
}


def body_of(event: dict[str, Any]) -> Any:
    return json.loads(event["body"])


def check_answer(answer: dict[str, Any], model_version: str) -> None:
    assert set(answer) == {
        "decision_id",
        "model_version",
        "policy_version",
        "probability_of_default",
        "decision",
        "score",
        "risk_grade",
        "reasons",
    }
    assert answer["model_version"] == model_version
    assert answer["policy_version"].startswith("policy-")
    assert 0.0 <= answer["probability_of_default"] <= 1.0
    assert answer["decision"] in {"approve", "review", "decline"}
    assert isinstance(answer["score"], int)
    assert len(answer["reasons"]) <= 4
    if answer["decision"] == "approve":
        assert answer["reasons"] == []
    for reason in answer["reasons"]:
        assert set(reason) == {"input", "label", "message"}
        assert reason["input"] in FEATURE_NAMES and reason["message"]


@pytest.fixture(scope="module")
def bundled_version() -> str:
    return json.loads((BUNDLED_MODEL_DIR / "manifest.json").read_text())["model_version"]


def test_every_event_file_has_an_expectation() -> None:
    assert set(event_names()) - OWNED_ELSEWHERE == set(EXPECTED_STATUS)


def test_events_through_the_deployed_entry_point_in_order(bundled_version: str) -> None:
    """``credit_api.main.handler`` itself, each event in turn, as ``sam local invoke`` would."""
    from credit_api.main import handler

    decision_id = "unset"
    for name in EXPECTED_STATUS:
        response = handler(for_decision(load_event(name), decision_id), LambdaContext())
        if name == "predict":
            decision_id = response_json(response)["decision_id"]
        assert response["statusCode"] == EXPECTED_STATUS[name], (name, response["body"][:300])
        assert "Traceback" not in response["body"]


def test_predict_v1_answers_and_fixes_the_decision_id(invoke, bundled_version: str) -> None:
    response = invoke(load_event("predict"))
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"] == "application/json"
    answer = response_json(response)
    check_answer(answer, bundled_version)
    again = response_json(invoke(load_event("predict")))
    assert again == answer  # its Idempotency-Key replays the decision, with the same random id


def test_decision_then_outcome_events_read_and_update_the_record(invoke) -> None:
    assert invoke(load_event("decision"))["statusCode"] == 404  # nothing recorded yet
    answer = response_json(invoke(load_event("predict")))
    decision, outcome = (for_decision(load_event(n), answer["decision_id"]) for n in ("decision", "outcome"))

    record = response_json(invoke(decision))
    assert record["decision_id"] == answer["decision_id"]
    assert record["inputs"] == body_of(load_event("predict"))
    assert record["request_id"] == load_event("predict")["requestContext"]["requestId"]
    assert record["probability_of_default"] == answer["probability_of_default"]
    assert record["outcome"] is None

    updated = response_json(invoke(outcome))
    sent = body_of(outcome)
    assert updated["outcome"]["defaulted"] is sent["defaulted"]
    assert updated["outcome"]["observed_at"] == sent["observed_at"]
    assert response_json(invoke(decision))["outcome"] == updated["outcome"]


@pytest.mark.parametrize("name", ["predict_stage", "predict_http_api"])
def test_stage_prefixed_paths_reach_the_route(invoke, name: str, bundled_version: str) -> None:
    event = load_event(name)
    path = event.get("path") or event["rawPath"]
    assert path.startswith("/Prod/")
    response = invoke(event)
    assert response["statusCode"] == 200, response["body"]
    check_answer(response_json(response), bundled_version)


def test_http_api_default_stage_without_prefix(invoke, bundled_version: str) -> None:
    event = load_event("predict_http_api", rawPath="/predict")
    event["requestContext"] = {**event["requestContext"], "stage": "$default"}
    event["requestContext"]["http"] = {**event["requestContext"]["http"], "path": "/predict"}
    response = invoke(event)
    assert response["statusCode"] == 200
    check_answer(response_json(response), bundled_version)


def test_http_api_response_is_v2_shaped(invoke) -> None:
    response = invoke(load_event("predict_http_api"))
    assert "multiValueHeaders" not in response
    assert response["isBase64Encoded"] is False


def test_docs_under_the_stage_load_everything_from_the_stage(invoke) -> None:
    """Every URL of /docs is relative, so under /Prod it resolves to /Prod/..., which the
    function serves; the OpenAPI document it names is the staged one."""
    event = load_event("docs")
    response = invoke(event)
    assert response["statusCode"] == 200
    assert "script-src 'self';" in response["headers"]["content-security-policy"]
    urls = re.findall(r'(?:src|href)="([^"]+)"', response["body"])
    assets = [url for url in urls if not url.startswith("data:")]
    assert len(assets) == 3
    for url in assets:
        path = urljoin(event["requestContext"]["path"], url)
        assert path.startswith("/Prod/static/"), path
        name = path.rsplit("/", 1)[1]
        asset = invoke(
            load_event(
                "static",
                path=f"/static/{name}",
                pathParameters={"name": name},
                requestContext={**event["requestContext"], "path": path, "resourcePath": "/static/{name}"},
            )
        )
        assert asset["statusCode"] == 200, name
        if name == "docs.js":
            assert 'url: "openapi.json"' in asset["body"]
    context = {**event["requestContext"], "path": "/Prod/openapi.json", "resourcePath": "/openapi.json"}
    openapi = invoke(
        load_event("docs", path="/openapi.json", resource="/openapi.json", requestContext=context)
    )
    assert openapi["statusCode"] == 200
    assert json.loads(openapi["body"])["servers"] == [{"url": "/Prod"}]


def test_web_page_and_its_assets_are_served_under_the_stage(invoke) -> None:
    response = invoke(load_event("page"))
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"].startswith("text/html")
    asset = invoke(load_event("static"))
    assert asset["statusCode"] == 200
    assert asset["headers"]["content-type"].startswith("text/javascript")


def test_batch_answers_in_request_order(invoke, bundled_version: str) -> None:
    event = load_event("predict_batch")
    applicants = body_of(event)["applicants"]
    results = response_json(invoke(event))["results"]
    assert len(results) == len(applicants)
    for applicant, result in zip(applicants, results, strict=True):
        check_answer(result, bundled_version)
        single = load_event("predict_stage", body=json.dumps(applicant))
        alone = response_json(invoke(single))
        assert alone["probability_of_default"] == result["probability_of_default"]
        assert alone["decision"] == result["decision"]
        assert alone["reasons"] == result["reasons"]
    assert len({r["decision_id"] for r in results}) == len(results)


def test_bad_request_event_names_each_field(invoke) -> None:
    response = invoke(load_event("predict_bad_request"))
    assert response["statusCode"] == 422
    body = response_json(response)
    by_field = {e["field"]: e for e in body["errors"]}
    sent = body_of(load_event("predict_bad_request"))
    assert set(by_field) == {"age", "checking_balance", "income"}
    assert by_field["age"]["sent"] == sent["age"]
    assert by_field["age"]["allowed"]["minimum"] == 18
    assert by_field["checking_balance"]["sent"] == sent["checking_balance"]
    assert "lt_0" in by_field["checking_balance"]["allowed"]
    assert "age" in by_field["income"]["allowed"]  # the accepted inputs are listed
    assert body["request_id"] == load_event("predict_bad_request")["requestContext"]["requestId"]


def test_health_and_model_card(invoke, bundled_version: str) -> None:
    health = response_json(invoke(load_event("health")))
    assert health["model_loaded"] is True and health["model_version"] == bundled_version
    card = response_json(invoke(load_event("model")))
    assert card["model_version"] == bundled_version
    assert [i["name"] for i in card["inputs"]] == list(FEATURE_NAMES)
    assert {"policy", "score_scale", "metrics"} <= set(card)


def test_openapi_lists_every_route_with_examples(invoke) -> None:
    spec = response_json(invoke(load_event("openapi")))
    assert {
        "/predict",
        "/predict/batch",
        "/health",
        "/model",
        "/decisions/{decision_id}",
        "/outcomes",
    } <= set(spec["paths"])
    applicant = spec["components"]["schemas"]["Applicant"]
    assert applicant["examples"] and applicant["additionalProperties"] is False


def test_logs_carry_the_request_id_and_no_applicant_inputs(invoke, stdout) -> None:
    event = load_event("predict")
    invoke(event)
    invoke(load_event("predict_bad_request"))
    logs = log_records(stdout())
    assert logs
    assert any(r.get("correlation_id") == event["requestContext"]["requestId"] for r in logs)
    assert all(r.get("function_name") == "PredictFunction" for r in logs)
    sent = {**body_of(event), **body_of(load_event("predict_bad_request"))}
    text = json.dumps(logs)
    for name, value in sent.items():
        if name in FEATURE_NAMES:
            assert f'"{name}":' not in text
        if isinstance(value, str) and len(value) > 3:
            assert f'"{value}"' not in text, name


@pytest.mark.parametrize("name", ["decision", "outcome"])
def test_placeholder_decision_events_answer_not_found_as_documented(invoke, name: str) -> None:
    """events/README.md: as shipped, the two events name an id no log holds."""
    response = invoke(load_event(name))
    assert response["statusCode"] == 404
    assert response_json(response)["error"] == "not_found"
    assert EVENT_DECISION_ID in (ROOT / "events" / "README.md").read_text()
