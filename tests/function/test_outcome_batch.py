"""POST /outcomes/batch: a status per item, the rules of POST /outcomes, and a safe retry after an outage."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError
from credit_api.api import OUTCOME_STATUSES, create_app
from credit_api.decision_log import DynamoDecisionLog
from credit_api.lambda_handler import make_handler
from credit_api.schema import EXAMPLE_APPLICANT
from credit_api.settings import MAX_BATCH, Settings
from fastapi.testclient import TestClient

from tests.function.conftest import IDEMPOTENCY, TABLE
from tests.support import LambdaContext, for_decision, load_event, response_json

OBSERVED = "2027-06-30T00:00:00Z"


def decide(client: TestClient, n: int) -> list[str]:
    response = client.post("/predict/batch", json={"applicants": [EXAMPLE_APPLICANT] * n})
    assert response.status_code == 200, response.text
    return [r["decision_id"] for r in response.json()["results"]]


def report(decision_id: Any, defaulted: Any = True, observed_at: Any = OBSERVED) -> dict[str, Any]:
    return {"decision_id": decision_id, "defaulted": defaulted, "observed_at": observed_at}


def post(client: TestClient, outcomes: list[Any]) -> Any:
    return client.post("/outcomes/batch", json={"outcomes": outcomes})


def test_each_item_gets_its_status_in_request_order(client: TestClient) -> None:
    ids = decide(client, 4)
    assert client.post("/outcomes", json=report(ids[1], defaulted=False)).status_code == 200
    assert client.post("/outcomes", json=report(ids[2], defaulted=False)).status_code == 200
    sent = [
        report(ids[0]),  # recorded
        report(ids[1], defaulted=False),  # the same again: unchanged
        report(ids[2], defaulted=True),  # a different one: conflict
        report("7c9e6679-7425-40de-944b-e07fc1f90ae7"),  # not_found
        report(ids[3], defaulted="yes", observed_at="2027-06-30"),  # invalid, two fields
        report(ids[0], defaulted=False),  # duplicate of item 0: not applied
        7,  # not an object: invalid
    ]
    response = post(client, sent)
    assert response.status_code == 200, response.text
    body = response.json()
    results = body["results"]
    assert [r["index"] for r in results] == list(range(len(sent)))
    assert [r["status"] for r in results] == [
        "recorded",
        "unchanged",
        "conflict",
        "not_found",
        "invalid",
        "duplicate",
        "invalid",
    ]
    assert [r["decision_id"] for r in results] == [*ids[:3], sent[3]["decision_id"], ids[3], ids[0], None]
    assert results[0]["outcome"]["defaulted"] is True and results[0]["outcome"]["observed_at"] == OBSERVED
    assert results[2]["outcome"]["defaulted"] is False  # what is stored, never overwritten
    assert {e["field"] for e in results[4]["errors"]} == {"outcomes[4].defaulted", "outcomes[4].observed_at"}
    assert all(e["row"] == 4 for e in results[4]["errors"])
    assert results[5]["first_index"] == 0
    assert results[6]["errors"][0]["field"] == "outcomes[6]"
    assert body["counts"] == {
        "recorded": 1,
        "unchanged": 1,
        "conflict": 1,
        "not_found": 1,
        "invalid": 2,
        "duplicate": 1,
    }
    assert client.get(f"/decisions/{ids[0]}").json()["outcome"]["defaulted"] is True  # not the duplicate's
    assert client.get(f"/decisions/{ids[2]}").json()["outcome"]["defaulted"] is False
    assert client.get(f"/decisions/{ids[3]}").json()["outcome"] is None

    again = post(client, sent).json()
    assert [r["status"] for r in again["results"]][:3] == ["unchanged", "unchanged", "conflict"]


def test_an_extra_field_in_an_item_names_the_accepted_ones(client: TestClient) -> None:
    (decision_id,) = decide(client, 1)
    (result,) = post(client, [{**report(decision_id), "note": "x"}]).json()["results"]
    assert result["status"] == "invalid" and result["decision_id"] == decision_id
    (error,) = result["errors"]
    assert error["field"] == "outcomes[0].note"
    assert error["allowed"] == ["decision_id", "defaulted", "observed_at"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ({"outcomes": []}, "application/json", 422, "validation_error"),
        ({"outcomes": [report("a")] * (MAX_BATCH + 1)}, "application/json", 413, "payload_too_large"),
        ({"outcomes": {"decision_id": "a"}}, "application/json", 422, "validation_error"),
        ({}, "application/json", 422, "validation_error"),
        ({"outcomes": [report("a")], "extra": 1}, "application/json", 422, "validation_error"),
        ('{"outcomes": [', "application/json", 400, "malformed_json"),
        ('{"outcomes": [NaN]}', "application/json", 400, "malformed_json"),  # an item read as Any
        ('{"outcomes": [{"decision_id": 1e400}]}', "application/json", 400, "malformed_json"),
        ('{"outcomes": [{"decision_id": "\\ud800"}]}', "application/json", 400, "malformed_json"),
        ("outcomes=1", "text/plain", 415, "unsupported_media_type"),
    ],
)
def test_a_bad_body_is_a_clear_4xx(
    client: TestClient, body: Any, content_type: str, status: int, code: str
) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    response = client.post("/outcomes/batch", content=content, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["error"] == code and answer["request_id"]
    if answer["error"] == "validation_error" and "extra" in content:
        (error,) = answer["errors"]
        assert error["allowed"] == ["outcomes"]


def test_a_full_batch_is_accepted(client: TestClient) -> None:
    ids = decide(client, MAX_BATCH)
    body = post(client, [report(i, defaulted=n % 7 == 0) for n, i in enumerate(ids)]).json()
    assert body["counts"]["recorded"] == MAX_BATCH
    assert [r["decision_id"] for r in body["results"]] == ids


def _lambda_app(tmp_path: Any) -> Any:
    settings = Settings(decisions_db=tmp_path / "d.sqlite3", risk_api_key_ids=frozenset({"risk-team"}))
    return make_handler(create_app(settings))


def _as(event: dict[str, Any], key_id: str) -> dict[str, Any]:
    identity = {**event["requestContext"]["identity"], "apiKeyId": key_id}
    return {**event, "requestContext": {**event["requestContext"], "identity": identity}}


def test_only_the_deciding_key_or_the_risk_team_records_an_outcome(tmp_path: Any) -> None:
    handler = _lambda_app(tmp_path)
    made = response_json(handler(_as(load_event("predict"), "lender-a"), LambdaContext()))
    event = for_decision(load_event("outcome_batch"), made["decision_id"])

    other = response_json(handler(_as(event, "lender-b"), LambdaContext()))
    assert [r["status"] for r in other["results"]] == ["not_found", "not_found"]  # as for an unknown id

    risk = response_json(handler(_as(event, "risk-team"), LambdaContext()))
    assert [r["status"] for r in risk["results"]] == ["recorded", "not_found"]
    own = response_json(handler(_as(event, "lender-a"), LambdaContext()))
    assert [r["status"] for r in own["results"]] == ["unchanged", "not_found"]


def test_the_event_file_records_the_first_item_once_its_id_is_real(invoke) -> None:
    made = response_json(invoke(load_event("predict")))
    response = invoke(for_decision(load_event("outcome_batch"), made["decision_id"]))
    assert response["statusCode"] == 200
    body = response_json(response)
    assert [r["status"] for r in body["results"]] == ["recorded", "not_found"]
    sent = json.loads(load_event("outcome_batch")["body"])["outcomes"][0]
    assert body["results"][0]["outcome"]["defaulted"] is sent["defaulted"]


def test_openapi_defines_the_batch_once(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    route = spec["paths"]["/outcomes/batch"]["post"]
    ok = route["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/OutcomeBatchResponse"}
    request = route["requestBody"]["content"]["application/json"]["schema"]
    assert request == {"$ref": "#/components/schemas/OutcomeBatchRequest"}
    schemas = spec["components"]["schemas"]
    items = schemas["OutcomeBatchRequest"]["properties"]["outcomes"]
    assert items["maxItems"] == MAX_BATCH and items["minItems"] == 1
    assert {"$ref": "#/components/schemas/OutcomeReport"} in items["items"]["anyOf"]
    status = schemas["OutcomeItemResult"]["properties"]["status"]
    assert tuple(status["enum"]) == OUTCOME_STATUSES


class FailingUpdates:
    """A DynamoDB client whose UpdateItem fails once ``after`` calls have gone through."""

    def __init__(self, client: Any, after: int) -> None:
        self._client = client
        self.after = after
        self.updates = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_item(self, **params: Any) -> Any:
        with self._lock:
            self.updates += 1
            failing = self.updates > self.after
        if failing:
            error = {"Error": {"Code": "InternalServerError", "Message": "injected"}}
            raise ClientError(error, "UpdateItem")
        return self._client.update_item(**params)


def test_an_outage_mid_batch_is_a_503_and_the_resend_completes_it(dynamodb: Any, tmp_path: Any) -> None:
    """Under moto: 60 decisions, the store fails after 20 updates; the answer is a 503 that says
    how many went through, and the same request again records the rest, the first ones unchanged."""
    failing = FailingUpdates(dynamodb, after=20)
    log = DynamoDecisionLog(TABLE, client=failing, idempotency_table=IDEMPOTENCY)
    client = TestClient(create_app(Settings(decisions_db=tmp_path / "unused"), log=log))
    ids = decide(client, 60)
    sent = [report(i, defaulted=n % 2 == 0) for n, i in enumerate(ids)]

    response = post(client, sent)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["error"] == "decision_log_unavailable"
    stored = log.get_many(ids)
    recorded = sum(1 for r in stored.values() if r["outcome"] is not None)
    assert recorded == 20  # no write in flight once answered
    assert f"after {recorded} of the 60" in response.json()["message"]

    failing.after = 10**6
    body = post(client, sent).json()
    assert body["counts"]["unchanged"] == recorded
    assert body["counts"]["recorded"] == 60 - recorded
    stored = log.get_many(ids)
    assert [stored[i]["outcome"]["defaulted"] for i in ids] == [n % 2 == 0 for n in range(60)]


def test_a_store_outage_before_any_write_is_a_503(client: TestClient, app: Any, monkeypatch) -> None:
    from credit_api.errors import DecisionLogUnavailable

    (decision_id,) = decide(client, 1)

    def down(ids: Any) -> Any:
        raise DecisionLogUnavailable("down")

    monkeypatch.setattr(app.state.service.log, "get_many", down)
    response = post(client, [report(decision_id)])
    assert response.status_code == 503 and response.json()["error"] == "decision_log_unavailable"
