"""Every decision is recorded before it is answered; retries with an Idempotency-Key are safe."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Any

import pytest
from credit_api.api import create_app
from credit_api.decision_log import DynamoDecisionLog
from credit_api.lambda_handler import make_handler
from credit_api.schema import EXAMPLE_APPLICANT
from credit_api.service import random_ids
from fastapi.testclient import TestClient

from tests.function.conftest import IDEMPOTENCY, TABLE
from tests.support import LambdaContext, load_event, response_json

RISKY = json.loads(load_event("predict")["body"])


def scan(dynamodb: Any) -> list[dict[str, Any]]:
    return dynamodb.scan(TableName=TABLE)["Items"]


@pytest.fixture
def dynamo_app(settings, dynamodb: Any) -> Any:
    return create_app(
        replace(settings, decisions_table=TABLE),
        log=DynamoDecisionLog(TABLE, client=dynamodb, idempotency_table=IDEMPOTENCY),
    )


def test_decision_ids_are_distinct_random_uuids() -> None:
    ids = random_ids(2000)
    assert len(set(ids)) == 2000
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)
    assert random_ids(0) == []


def test_decision_is_in_dynamodb_before_the_answer(dynamo_app: Any, dynamodb: Any) -> None:
    handler = make_handler(dynamo_app)
    event = load_event("predict_stage")
    answer = response_json(handler(event, LambdaContext()))
    (item,) = scan(dynamodb)
    assert item["decision_id"]["S"] == answer["decision_id"]
    assert item["request_id"]["S"] == event["requestContext"]["requestId"]
    assert item["decision"]["S"] == answer["decision"]
    assert float(item["probability_of_default"]["N"]) == answer["probability_of_default"]
    assert set(item["inputs"]["M"]) == set(json.loads(event["body"]))


def test_batch_is_written_in_batches(dynamo_app: Any, dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = dynamodb.batch_write_item

    def counting(**kwargs: Any) -> Any:
        calls.append(len(kwargs["RequestItems"][TABLE]))
        return original(**kwargs)

    monkeypatch.setattr(dynamodb, "batch_write_item", counting)
    monkeypatch.setattr(dynamodb, "put_item", lambda **kw: pytest.fail("batch wrote one by one"))
    response = TestClient(dynamo_app).post("/predict/batch", json={"applicants": [EXAMPLE_APPLICANT] * 60})
    assert response.status_code == 200
    assert sorted(calls) == [10, 25, 25]
    assert len(scan(dynamodb)) == 60


class FailingDynamo:
    """A DynamoDB client whose every call fails the way boto3 does when the service is down."""

    def __getattr__(self, name: str) -> Any:
        from botocore.exceptions import ClientError

        def fail(**kwargs: Any) -> None:
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "down"}}, name)

        return fail


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
def test_dynamodb_failure_gives_503_and_no_decision(settings, path: str, stdout) -> None:
    app = create_app(
        replace(settings, decisions_table=TABLE), log=DynamoDecisionLog(TABLE, client=FailingDynamo())
    )
    body = EXAMPLE_APPLICANT if path == "/predict" else {"applicants": [EXAMPLE_APPLICANT]}
    event = load_event("predict", path=path, resource=path, body=json.dumps(body))
    del event["headers"]["Idempotency-Key"], event["multiValueHeaders"]["Idempotency-Key"]
    response = make_handler(app)(event, LambdaContext())
    assert response["statusCode"] == 503
    answer = response_json(response)
    assert answer["error"] == "decision_log_unavailable"
    assert "decision" not in answer and "results" not in answer and "probability_of_default" not in answer
    assert response["headers"]["retry-after"] == "1"
    assert '"DecisionLogFailures"' in stdout()


def test_dynamodb_failure_on_read_is_503(settings) -> None:
    app = create_app(
        replace(settings, decisions_table=TABLE), log=DynamoDecisionLog(TABLE, client=FailingDynamo())
    )
    response = TestClient(app).get("/decisions/abc")
    assert response.status_code == 503


def test_sqlite_failure_gives_503(settings, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    client = TestClient(create_app(replace(settings, decisions_db=blocker / "x" / "d.sqlite3")))
    response = client.post("/predict", json=EXAMPLE_APPLICANT)
    assert response.status_code == 503
    assert "decision_id" not in response.json()


@pytest.mark.parametrize("store", ["sqlite", "dynamodb"])
def test_idempotent_retry_returns_the_same_decision_and_one_record(request, settings, store: str) -> None:
    if store == "dynamodb":
        dynamodb = request.getfixturevalue("dynamodb")
        app = create_app(
            settings, log=DynamoDecisionLog(TABLE, client=dynamodb, idempotency_table=IDEMPOTENCY)
        )
        count = lambda: len(scan(dynamodb))  # noqa: E731
    else:
        log = request.getfixturevalue("sqlite_log")
        app = create_app(settings, log=log)
        count = lambda: log._db().execute("SELECT COUNT(*) FROM decisions").fetchone()[0]  # noqa: E731
    client = TestClient(app)
    headers = {"Idempotency-Key": "order-42"}
    first = client.post("/predict", json=RISKY, headers=headers)
    second = client.post("/predict", json=RISKY, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert count() == 1

    other = client.post("/predict", json=RISKY, headers={"Idempotency-Key": "order-43"})
    assert other.json()["decision_id"] != first.json()["decision_id"]
    assert count() == 2
    plain = [client.post("/predict", json=RISKY).json()["decision_id"] for _ in range(2)]
    assert len(set(plain)) == 2  # without a key every call is a new decision
    assert count() == 4


def test_same_key_with_a_different_request_is_a_conflict(client, sqlite_log) -> None:
    headers = {"Idempotency-Key": "order-7"}
    first = client.post("/predict", json=RISKY, headers=headers)
    conflict = client.post("/predict", json={**RISKY, "amount": 1000}, headers=headers)
    assert conflict.status_code == 409
    assert conflict.json()["error"] == "idempotency_key_reused"
    assert sqlite_log.get(first.json()["decision_id"])["inputs"] == RISKY


def test_idempotent_batch_retry(client, sqlite_log) -> None:
    applicants = [RISKY, EXAMPLE_APPLICANT, {**EXAMPLE_APPLICANT, "age": 70}]
    headers = {"Idempotency-Key": "batch-1"}
    first = client.post("/predict/batch", json={"applicants": applicants}, headers=headers)
    second = client.post("/predict/batch", json={"applicants": applicants}, headers=headers)
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert sqlite_log._db().execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 3
    shorter = client.post("/predict/batch", json={"applicants": applicants[:2]}, headers=headers)
    assert shorter.status_code == 409


def test_batch_retry_after_a_partial_write_completes_it(settings, sqlite_log, monkeypatch) -> None:
    """A batch that failed part-way (503) is decided afresh by its retry; nothing is overwritten."""
    app = create_app(settings, log=sqlite_log)
    client = TestClient(app)
    applicants = [RISKY, EXAMPLE_APPLICANT, {**EXAMPLE_APPLICANT, "age": 70}]
    headers = {"Idempotency-Key": "batch-partial"}
    real_put_many = sqlite_log.put_many

    def half_then_fail(records: list[dict[str, Any]]) -> None:
        real_put_many(records[:1])
        from credit_api.errors import DecisionLogUnavailable

        raise DecisionLogUnavailable("write failed part-way")

    monkeypatch.setattr(sqlite_log, "put_many", half_then_fail)
    assert client.post("/predict/batch", json={"applicants": applicants}, headers=headers).status_code == 503
    monkeypatch.setattr(sqlite_log, "put_many", real_put_many)
    retry = client.post("/predict/batch", json={"applicants": applicants}, headers=headers)
    assert retry.status_code == 200
    ids = [r["decision_id"] for r in retry.json()["results"]]
    stored = sqlite_log.get_many(ids)
    assert [stored[i]["inputs"] for i in ids] == applicants
    # The failed attempt's one record stays (never answered, never overwritten): 1 + 3.
    assert sqlite_log._db().execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 4
    replay = client.post("/predict/batch", json={"applicants": applicants}, headers=headers)
    assert replay.json() == retry.json() and replay.headers["idempotent-replayed"] == "true"


def test_a_key_claimed_by_a_request_still_running_is_409_with_retry_after(settings, sqlite_log) -> None:
    """The claim, not the ids, decides: a duplicate while the first is in progress gets no decision."""
    from credit_api.service import Call, new_claim, request_hash

    client = TestClient(create_app(settings, log=sqlite_log))
    call = Call(request_id="r1", idempotency_key="race")
    assert sqlite_log.claim(new_claim(call, "predict", request_hash([RISKY]), ["x"])) is None
    busy = client.post("/predict", json=RISKY, headers={"Idempotency-Key": "race"})
    assert busy.status_code == 409 and busy.headers["retry-after"] == "1"
    assert busy.json()["error"] == "idempotency_key_in_progress"
    other = client.post("/predict", json={**RISKY, "amount": 1000}, headers={"Idempotency-Key": "race"})
    assert other.json()["error"] == "idempotency_key_reused"
    assert sqlite_log._db().execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 0
