"""One Idempotency-Key under concurrent requests, and decisions that belong to their caller."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from credit_api.api import create_app
from credit_api.decision_log import DynamoDecisionLog
from credit_api.main import make_handler
from credit_api.schema import EXAMPLE_APPLICANT
from fastapi.testclient import TestClient

from tests.function.conftest import IDEMPOTENCY, TABLE
from tests.support import LambdaContext, for_decision, load_event, response_json

OTHER = {**EXAMPLE_APPLICANT, "amount": 1234}


class OneCallAtATime:
    """A boto3 client whose calls run one at a time, interleaved freely between threads.

    DynamoDB applies each conditional write atomically; moto's in-process backend does not
    under threads (two ``attribute_not_exists`` puts can both pass). Serialising single calls
    gives moto DynamoDB's atomicity while every race between calls stays possible.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return call


def _race(client: TestClient, path: str, bodies: list[Any], key: str) -> list[Any]:
    def send(body: Any) -> Any:
        return client.post(path, json=body, headers={"Idempotency-Key": key})

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(send, bodies))


def _check(responses: list[Any], log: Any, bodies: list[Any], batch: bool) -> None:
    fresh = [r for r in responses if r.status_code == 200 and "idempotent-replayed" not in r.headers]
    assert len(fresh) == 1, [r.status_code for r in responses]
    for response, body in zip(responses, bodies, strict=True):
        assert response.status_code in (200, 409), response.text
        if response.status_code != 200:
            continue
        results = response.json()["results"] if batch else [response.json()]
        sent = body["applicants"] if batch else [body]
        stored = log.get_many([r["decision_id"] for r in results])
        assert [stored[r["decision_id"]]["inputs"] for r in results] == sent  # never an overwrite


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", "dynamodb"])
@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("same", [True, False])
def test_one_fresh_answer_per_key_under_concurrency(request, settings, store, batch, same) -> None:
    if store == "dynamodb":
        log = DynamoDecisionLog(
            TABLE, client=OneCallAtATime(request.getfixturevalue("dynamodb")), idempotency_table=IDEMPOTENCY
        )
    else:
        log = request.getfixturevalue("sqlite_log")
    client = TestClient(create_app(settings, log=log))
    path = "/predict/batch" if batch else "/predict"
    for trial in range(10):
        applicants = [EXAMPLE_APPLICANT if same or i % 2 else OTHER for i in range(6)]
        bodies = [{"applicants": [a] * 3} if batch else a for a in applicants]
        _check(_race(client, path, bodies, f"k-{trial}"), log, bodies, batch)


def _as(event: dict[str, Any], key_id: str) -> dict[str, Any]:
    event["requestContext"]["identity"]["apiKeyId"] = key_id
    return event


def test_a_decision_belongs_to_its_callers_key_and_the_risk_team(settings, sqlite_log) -> None:
    from dataclasses import replace

    app = create_app(replace(settings, risk_api_key_ids=frozenset({"risk"})), log=sqlite_log)
    handler = make_handler(app)

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        return handler(event, LambdaContext())

    made = {k: response_json(invoke(_as(load_event("predict"), k)))["decision_id"] for k in ("a", "b")}
    assert made["a"] != made["b"]  # the same Idempotency-Key under two keys: two decisions
    for owner, other in (("a", "b"), ("b", "a")):
        read = invoke(_as(for_decision(load_event("decision"), made[owner]), other))
        unknown = invoke(_as(for_decision(load_event("decision"), "no-such-id"), other))
        assert read["statusCode"] == 404 and response_json(read)["error"] == "not_found"
        assert response_json(read)["message"] == response_json(unknown)["message"].replace(
            "no-such-id", made[owner]
        )
        assert invoke(_as(for_decision(load_event("outcome"), made[owner]), other))["statusCode"] == 404
        assert sqlite_log.get(made[owner])["outcome"] is None
        assert (
            response_json(invoke(_as(for_decision(load_event("decision"), made[owner]), owner)))["caller"]
            == owner
        )
    assert invoke(_as(for_decision(load_event("decision"), made["a"]), "risk"))["statusCode"] == 200
    assert invoke(_as(for_decision(load_event("outcome"), made["b"]), "risk"))["statusCode"] == 200
    assert invoke(_as(for_decision(load_event("outcome"), made["a"]), "a"))["statusCode"] == 200
