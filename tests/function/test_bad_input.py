"""Every kind of bad input gets a clear 4xx, never a 500 and never a stack trace."""

from __future__ import annotations

import json
from typing import Any

import pytest
from credit_api.schema import BY_NAME, EXAMPLE_APPLICANT, FEATURE_NAMES

from tests.support import load_event, response_json


def assert_clean(body: dict[str, Any], code: str) -> None:
    assert body["error"] == code
    assert body["message"] and body["request_id"]
    assert "Traceback" not in json.dumps(body)


def errors_by_field(response: Any) -> dict[str, dict[str, Any]]:
    body = response.json()
    assert_clean(body, "validation_error")
    return {e["field"]: e for e in body["errors"]}


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("age", 17, {"type": "integer", "minimum": 18, "maximum": 100, "unit": "years"}),
        ("amount", 20001, {"type": "integer", "minimum": 250, "maximum": 20000, "unit": "DM"}),
        ("months_loan_duration", 24.5, {"type": "integer", "minimum": 4, "maximum": 72, "unit": "months"}),
        ("months_loan_duration", "24", {"type": "integer", "minimum": 4, "maximum": 72, "unit": "months"}),
        ("dependents", True, {"type": "integer", "minimum": 1, "maximum": 2, "unit": "band"}),
        ("purpose", "holiday", list(BY_NAME["purpose"].codes)),
        ("phone", None, ["yes", "no"]),
    ],
)
def test_invalid_value_names_field_sent_and_allowed(client, name: str, value: Any, allowed: Any) -> None:
    response = client.post("/predict", json={**EXAMPLE_APPLICANT, name: value})
    assert response.status_code == 422
    error = errors_by_field(response)[name]
    assert error["sent"] == value
    assert error["allowed"] == allowed
    assert name in error["message"]


def test_missing_field(client) -> None:
    applicant = {k: v for k, v in EXAMPLE_APPLICANT.items() if k != "housing"}
    response = client.post("/predict", json=applicant)
    assert response.status_code == 422
    error = errors_by_field(response)["housing"]
    assert error["type"] == "missing" and "required" in error["message"]
    assert error["allowed"] == list(BY_NAME["housing"].codes)


def test_unknown_field_is_rejected_not_ignored(client) -> None:
    response = client.post("/predict", json={**EXAMPLE_APPLICANT, "salary": 4000})
    assert response.status_code == 422
    error = errors_by_field(response)["salary"]
    assert error["type"] == "extra_forbidden"
    assert error["allowed"] == list(FEATURE_NAMES)


def test_every_error_is_reported_at_once(client) -> None:
    response = client.post("/predict", json={**EXAMPLE_APPLICANT, "age": 5, "job": "pilot", "x": 1})
    assert set(errors_by_field(response)) == {"age", "job", "x"}


SCORING_ROUTES = ["/predict", "/predict/batch"]


@pytest.mark.parametrize("path", SCORING_ROUTES)
@pytest.mark.parametrize("body", [b"{", b'{"age": 30,}', b"\xff\xfe", b"[1, 2"])
def test_malformed_json_is_a_400(client, path: str, body: bytes) -> None:
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert_clean(response.json(), "malformed_json")


@pytest.mark.parametrize("path", SCORING_ROUTES)
@pytest.mark.parametrize("body", [b"[]", b'"text"', b"42", b"null"])
def test_json_that_is_not_an_object_is_a_422(client, path: str, body: bytes) -> None:
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert errors_by_field(response)["body"]["sent"] == json.loads(body)


@pytest.mark.parametrize("path", SCORING_ROUTES)
def test_empty_body_is_a_422(client, path: str) -> None:
    response = client.post(path, content=b"", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert errors_by_field(response)["body"]["type"] == "missing"


@pytest.mark.parametrize("path", SCORING_ROUTES)
def test_form_encoded_body_is_a_415(client, path: str) -> None:
    response = client.post(path, data={"age": "30"})
    assert response.status_code == 415
    assert_clean(response.json(), "unsupported_media_type")


@pytest.mark.parametrize("path", SCORING_ROUTES)
def test_json_without_content_type_is_read_as_json(invoke, path: str) -> None:
    """API Gateway test consoles often send no Content-Type: a JSON body is still read as JSON."""
    body = EXAMPLE_APPLICANT if path == "/predict" else {"applicants": [EXAMPLE_APPLICANT]}
    event = load_event("predict_batch", path=path, resource=path, body=json.dumps(body))
    for headers in (event["headers"], event["multiValueHeaders"]):
        del headers["Content-Type"]
    response = invoke(event)
    assert response["statusCode"] == 200, response["body"]


def test_body_over_one_megabyte_is_a_413(client) -> None:
    padding = "x" * (1024 * 1024)
    response = client.post("/predict", json={**EXAMPLE_APPLICANT, "padding": padding})
    assert response.status_code == 413
    assert_clean(response.json(), "payload_too_large")


def test_body_over_one_megabyte_without_content_length_is_a_413(invoke) -> None:
    """API Gateway events often carry no Content-Length: the limit counts the bytes themselves."""
    body = json.dumps({"applicants": [EXAMPLE_APPLICANT] * 3000})
    assert len(body) > 1024 * 1024
    event = load_event("predict_batch", body=body)
    assert not {k.lower() for k in event["headers"]} & {"content-length"}
    response = invoke(event)
    assert response["statusCode"] == 413
    assert_clean(response_json(response), "payload_too_large")


def test_batch_over_1000_is_a_413(client) -> None:
    response = client.post("/predict/batch", json={"applicants": [EXAMPLE_APPLICANT] * 1001})
    assert response.status_code == 413
    assert_clean(response.json(), "payload_too_large")


def test_batch_of_exactly_1000_is_scored(client) -> None:
    response = client.post("/predict/batch", json={"applicants": [EXAMPLE_APPLICANT] * 1000})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 1000


def test_empty_batch_is_a_422(client) -> None:
    response = client.post("/predict/batch", json={"applicants": []})
    assert response.status_code == 422
    assert errors_by_field(response)["applicants"]["type"] == "too_short"


def test_batch_row_errors_carry_the_row(client) -> None:
    applicants = [EXAMPLE_APPLICANT, {**EXAMPLE_APPLICANT, "age": 150}, {**EXAMPLE_APPLICANT, "foo": 1}]
    response = client.post("/predict/batch", json={"applicants": applicants})
    assert response.status_code == 422
    errors = errors_by_field(response)
    assert errors["applicants[1].age"]["row"] == 1
    assert errors["applicants[1].age"]["sent"] == 150
    assert errors["applicants[1].age"]["allowed"]["maximum"] == 100
    assert errors["applicants[2].foo"]["row"] == 2


def test_batch_with_unknown_top_level_field(client) -> None:
    response = client.post("/predict/batch", json={"applicants": [EXAMPLE_APPLICANT], "mode": "fast"})
    assert response.status_code == 422
    assert errors_by_field(response)["mode"]["allowed"] == ["applicants"]


def test_long_values_are_cut_short_in_the_echo(client) -> None:
    response = client.post("/predict", json={**EXAMPLE_APPLICANT, "purpose": "y" * 5000})
    sent = errors_by_field(response)["purpose"]["sent"]
    assert len(sent) < 300


def test_unknown_route_and_wrong_method(client) -> None:
    missing = client.get("/nothing-here")
    assert missing.status_code == 404
    assert_clean(missing.json(), "not_found")
    wrong = client.get("/predict")
    assert wrong.status_code == 405
    assert_clean(wrong.json(), "method_not_allowed")


def test_unknown_decision_is_a_404(client) -> None:
    response = client.get("/decisions/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert_clean(response.json(), "not_found")


@pytest.mark.parametrize(
    ("report", "field"),
    [
        ({"decision_id": "d", "defaulted": "yes", "observed_at": "2027-01-01T00:00:00Z"}, "defaulted"),
        ({"decision_id": "d", "defaulted": True, "observed_at": "2027-01-01T00:00:00"}, "observed_at"),
        ({"decision_id": "d", "defaulted": True, "observed_at": "soon"}, "observed_at"),
        ({"defaulted": True, "observed_at": "2027-01-01T00:00:00Z"}, "decision_id"),
        ({"decision_id": "d", "defaulted": True, "observed_at": "2027-01-01T00:00:00Z", "x": 1}, "x"),
    ],
)
def test_invalid_outcome_reports(client, report: dict[str, Any], field: str) -> None:
    response = client.post("/outcomes", json=report)
    assert response.status_code == 422
    error = errors_by_field(response)[field]
    if error["type"] == "extra_forbidden":
        assert error["allowed"] == ["decision_id", "defaulted", "observed_at"]


def test_outcome_for_unknown_decision_is_a_404(client) -> None:
    report = {"decision_id": "no-such-decision", "defaulted": False, "observed_at": "2027-01-01T00:00:00Z"}
    response = client.post("/outcomes", json=report)
    assert response.status_code == 404
    assert_clean(response.json(), "not_found")


def test_unexpected_failure_is_a_bare_500(app, client, monkeypatch) -> None:
    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.state.service, "predict", explode)
    response = client.post("/predict", json=EXAMPLE_APPLICANT)
    assert response.status_code == 500
    body = response.json()
    assert_clean(body, "internal_error")
    assert "secret internals" not in response.text
