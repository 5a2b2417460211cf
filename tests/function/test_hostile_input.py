"""Input that well-meaning clients really send and hostile ones try: always a clear 4xx, never a 500.

Python's ``json.dumps(float("nan"))`` writes ``NaN``; ``1e400`` overflows to infinity; a lone
surrogate (``"\\ud800"``) is legal JSON text but not Unicode. Each is refused the same way on
every route that takes a body, and the error body itself always renders.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from credit_api.schema import EXAMPLE_APPLICANT, NUMERIC

from tests.support import load_event, response_json

BODY_ROUTES = ("/predict", "/predict/batch", "/outcomes")
OUTCOME = {"decision_id": "0b6f7d52-8a3e-4d0f-9a39-2c1f5f0e6a11", "defaulted": False}


def _applicant_with(raw_value: str) -> str:
    """The example applicant as JSON text with ``age`` set to ``raw_value`` (not valid JSON maybe)."""
    return json.dumps({**EXAMPLE_APPLICANT, "age": 12345}).replace("12345", raw_value)


def _body(route: str, raw_value: str) -> str:
    if route == "/predict":
        return _applicant_with(raw_value)
    if route == "/predict/batch":
        return '{"applicants": [' + _applicant_with(raw_value) + "]}"
    return json.dumps({**OUTCOME, "observed_at": 12345}).replace("12345", raw_value)


def _post(client: Any, route: str, content: str) -> Any:
    return client.post(route, content=content, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_numbers_are_malformed_json(client, route: str, raw: str) -> None:
    response = _post(client, route, _body(route, raw))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "malformed_json"
    assert "not valid JSON" in body["message"]


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize("raw", ["NaN", "Infinity", "1e400"])
def test_a_non_finite_number_as_the_whole_body_is_malformed_json(client, route: str, raw: str) -> None:
    response = _post(client, route, raw)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("route", BODY_ROUTES)
def test_lone_surrogates_as_value_or_key_are_refused(client, route: str) -> None:
    as_value = _body(route, '"\\ud800"')
    as_key = (
        _body(route, "1").replace('"checking_balance"', '"\\udc00x"').replace('"decision_id"', '"\\udc00x"')
    )
    for content in (as_value, as_key):
        response = _post(client, route, content)
        assert response.status_code in (400, 422), response.text
        assert response.json()["error"] in ("malformed_json", "validation_error")


def test_whole_numbers_written_as_floats_are_accepted(client) -> None:
    applicant = {**EXAMPLE_APPLICANT, **{name: float(EXAMPLE_APPLICANT[name]) for name in NUMERIC}}
    response = client.post("/predict", json=applicant)
    assert response.status_code == 200, response.text
    stored = client.get(f"/decisions/{response.json()['decision_id']}").json()
    assert all(type(stored["inputs"][name]) is int for name in NUMERIC)
    half = client.post("/predict", json={**EXAMPLE_APPLICANT, "age": 30.5})
    assert half.status_code == 422
    assert half.json()["errors"][0]["field"] == "age"
    text = client.post("/predict", json={**EXAMPLE_APPLICANT, "age": "30"})
    assert text.status_code == 422


@pytest.mark.parametrize(
    "observed_at",
    [
        "0001-01-01T00:00:00+02:00",
        "9999-12-31T23:59:59-01:00",
        "1899-12-31T23:59:59Z",
        "3000-01-01T00:00:00Z",
    ],
)
def test_observed_at_outside_the_published_years_is_invalid(client, observed_at: str) -> None:
    decision_id = client.post("/predict", json=EXAMPLE_APPLICANT).json()["decision_id"]
    response = client.post(
        "/outcomes", json={"decision_id": decision_id, "defaulted": True, "observed_at": observed_at}
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "observed_at"
    assert client.get(f"/decisions/{decision_id}").json()["outcome"] is None


def test_observed_at_years_are_published_and_their_edges_accepted(client) -> None:
    """The pattern in the JSON Schema and the validator agree, so a schema-valid time is stored."""
    schema = client.get("/openapi.json").json()["components"]["schemas"]["OutcomeReport"]
    assert schema["properties"]["observed_at"]["pattern"] == "^(19|2[0-9])[0-9]{2}-"
    for observed_at, stored in [
        ("1900-01-01T00:30:00+01:00", "1899-12-31T23:30:00Z"),
        ("2999-12-31T23:59:59-01:00", "3000-01-01T00:59:59Z"),
    ]:
        decision_id = client.post("/predict", json=EXAMPLE_APPLICANT).json()["decision_id"]
        report = {"decision_id": decision_id, "defaulted": False, "observed_at": observed_at}
        assert client.post("/outcomes", json=report).status_code == 200
        assert client.get(f"/decisions/{decision_id}").json()["outcome"]["observed_at"] == stored


@pytest.mark.parametrize("decision_id", ["%ED%A0%80", "a" * 65, "x%00y", "..%2F..%2Fetc"])
def test_decision_ids_that_cannot_be_ids_are_refused(client, decision_id: str) -> None:
    response = client.get(f"/decisions/{decision_id}")
    assert response.status_code in (404, 422), response.text
    report = {**OUTCOME, "decision_id": "\\ud800", "observed_at": "2026-01-01T00:00:00Z"}
    sent = _post(client, "/outcomes", json.dumps(report).replace("\\\\ud800", "\\ud800"))
    assert sent.status_code in (400, 422), sent.text


def test_sixty_thousand_unknown_fields_list_fifty_and_count_all(client) -> None:
    applicant = {**EXAMPLE_APPLICANT, **{f"f{i}": 1 for i in range(60_000)}}
    response = _post(client, "/predict", json.dumps(applicant))
    assert response.status_code in (413, 422)
    if response.status_code == 422:
        body = response.json()
        assert len(body["errors"]) == 50
        assert body["message"].startswith("60000 fields are invalid")


def test_unknown_field_names_never_reach_the_log(client, capsys) -> None:
    secret = "customer-4711-john-doe"
    response = client.post("/predict", json={**EXAMPLE_APPLICANT, secret: 1})
    assert response.status_code == 422
    assert secret in response.text  # the caller is told which field
    assert secret not in capsys.readouterr().out


def test_method_not_allowed_names_the_allowed_methods(client) -> None:
    response = client.get("/predict")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_outcomes_documents_its_client_errors(client) -> None:
    responses = client.get("/openapi.json").json()["paths"]["/outcomes"]["post"]["responses"]
    assert {"400", "413", "415", "422"} <= set(responses)


def test_nan_through_the_lambda_handler_is_a_400(invoke) -> None:
    event = load_event("predict")
    event["body"] = event["body"].replace('"amount": 9000', '"amount": NaN', 1)
    assert "NaN" in event["body"]
    response = invoke(event)
    assert response["statusCode"] == 400
    assert response_json(response)["error"] == "malformed_json"
