"""S3 and DynamoDB failing under the function: a fault proxy between its boto3 clients and moto.

One moto server on 127.0.0.1 holds the template's own bucket and table (``infra.resources``)
with a champion published under its own version name, so a test can tell the champion from
the bundled model. Each test puts a :class:`~tests.faultproxy.FaultProxy` in front of S3 and
another in front of DynamoDB, drives the Lambda handler with the events in ``events/`` at
a cold start, on the warm path and at a model refresh, and checks for every route: the
status, that it came within the request's bound, and the table (read past the proxy):
every decision answered is recorded, and a failed request recorded nothing.

Timeouts are small here (``BOUNDS``); the production values' arithmetic is checked against
the template at the end.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from credit_api import aws
from credit_api.api import create_app
from credit_api.decision_log import DynamoDecisionLog
from credit_api.lambda_handler import make_handler
from credit_api.manifest import MANIFEST_FILE
from credit_api.model_store import ModelStore, publish
from credit_api.schema import EXAMPLE_APPLICANT
from credit_api.settings import Settings

from infra.resources import Names, create_storage
from infra.template import Resolver, load
from tests.faultproxy import FaultProxy
from tests.function.conftest import BUNDLED
from tests.support import LambdaContext, load_event

REGION = "eu-west-1"
CHAMPION = "champion-faults"
BOUNDS = aws.Bounds(connect_timeout=0.5, read_timeout=0.5, max_attempts=2, request_seconds=2.0)
SLACK = 3.0
"""Added to every time bound: the machine is shared and noisy; the bounds are about hangs of 20 s+."""
BOUND = aws.worst_case_seconds(BOUNDS) + 0.5 + SLACK  # + the champion wait at a cold start
LOG_ROUTES = ("predict", "predict_batch", "decision", "outcome")
OPEN_ROUTES = ("health", "model", "page")
FAULTS = [
    ("refuse", 0.0),
    ("reset", 0.0),
    pytest.param("hang", 0.0, marks=pytest.mark.slow),
    pytest.param("slow", 1.0, marks=pytest.mark.slow),
]
"""``slow`` at 1 s a chunk is slower than the 0.5 s read timeout: a fault, not a slow success
(except for the refresh test's 5 s S3 read timeout, where it is a slow refresh that succeeds)."""


@dataclass
class Stack:
    port: int
    names: Names
    s3: Any
    dynamodb: Any

    def ids(self) -> set[str]:
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=self.names.table, ProjectionExpression="decision_id", ConsistentRead=True
        )
        return {item["decision_id"]["S"] for page in pages for item in page["Items"]}

    def recorded(self, decision_id: str) -> bool:
        key = {"decision_id": {"S": decision_id}}
        return "Item" in self.dynamodb.get_item(TableName=self.names.table, Key=key, ConsistentRead=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        _, port = server.get_host_and_port()
        session = boto3.session.Session(region_name=REGION)
        url = f"http://127.0.0.1:{port}"
        s3, dynamodb = session.client("s3", endpoint_url=url), session.client("dynamodb", endpoint_url=url)
        names = Names.for_stack("faults")
        create_storage(Resolver(load(), names=names.as_refs(), region=REGION), s3, dynamodb, names)
        champion = tmp_path_factory.mktemp("champion") / "model"
        shutil.copytree(BUNDLED, champion)
        manifest = json.loads((champion / MANIFEST_FILE).read_text())
        (champion / MANIFEST_FILE).write_text(json.dumps({**manifest, "model_version": CHAMPION}))
        publish(s3, names.bucket, champion)
        yield Stack(port, names, s3, dynamodb)
    finally:
        server.stop()


@dataclass
class Function:
    """The function under test: its handler, store and the two proxies in front of its AWS."""

    s3: FaultProxy
    dynamodb: FaultProxy
    store: ModelStore
    handler: Callable[[dict[str, Any], Any], dict[str, Any]]

    def call(self, name: str, **changes: Any) -> tuple[dict[str, Any], float]:
        return self.send(event(name, **changes))

    def send(self, sent: dict[str, Any]) -> tuple[dict[str, Any], float]:
        started = time.monotonic()
        response = self.handler(sent, LambdaContext())
        return response, time.monotonic() - started


@pytest.fixture
def function(stack: Stack, tmp_path: Path) -> Iterator[Callable[..., Function]]:
    made: list[Function] = []

    def make(refresh_seconds: float = 300.0, s3_bounds: aws.Bounds = BOUNDS) -> Function:
        s3_proxy, dynamodb_proxy = FaultProxy(stack.port), FaultProxy(stack.port)
        settings = Settings(
            model_bucket=stack.names.bucket,
            decisions_table=stack.names.table,
            model_refresh_seconds=refresh_seconds,
            decisions_db=tmp_path / "unused.sqlite3",
            aws=BOUNDS,
            champion_wait_seconds=0.5,
        )
        store = ModelStore(settings, s3=aws.client("s3", s3_proxy.url, s3_bounds))
        log = DynamoDecisionLog(
            stack.names.table,
            client=aws.client("dynamodb", dynamodb_proxy.url, BOUNDS),
            idempotency_table=stack.names.idempotency_table,
        )
        made.append(Function(s3_proxy, dynamodb_proxy, store, make_handler(create_app(settings, store, log))))
        return made[-1]

    yield make
    for f in made:
        f.s3.stop()
        f.dynamodb.stop()
        f.store.settle(timeout=15)


def event(name: str, decision_id: str = "00000000-0000-4000-8000-000000000000") -> dict[str, Any]:
    """``events/<name>.json``, with a fresh Idempotency-Key and the decision id to read or amend."""
    e = load_event(name)
    if name in ("predict", "predict_batch"):
        key = f"faults-{uuid.uuid4()}"
        e["headers"]["Idempotency-Key"] = key
        e["multiValueHeaders"]["Idempotency-Key"] = [key]
    elif name == "decision":
        e["path"] = f"/decisions/{decision_id}"
        e["requestContext"]["path"] = f"/Prod/decisions/{decision_id}"
        e["pathParameters"] = {"decision_id": decision_id}
    elif name == "outcome":
        e["body"] = json.dumps({**json.loads(e["body"]), "decision_id": decision_id})
    return e


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def answered_ids(name: str, response: dict[str, Any]) -> list[str]:
    if response["statusCode"] != 200:
        return []
    if name == "predict":
        return [body(response)["decision_id"]]
    if name == "predict_batch":
        return [r["decision_id"] for r in body(response)["results"]]
    return []


def check_unavailable(response: dict[str, Any], elapsed: float) -> None:
    assert response["statusCode"] == 503, response["body"]
    headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
    assert headers.get("retry-after") == "1"
    assert body(response)["error"] == "decision_log_unavailable"
    assert "decision_id" not in body(response)
    assert elapsed < BOUND


@pytest.mark.parametrize(("mode", "delay"), FAULTS)
@pytest.mark.parametrize("phase", ["cold", "warm"])
def test_dynamodb_down_is_a_503_on_every_log_route_and_nothing_is_written(
    function: Callable[..., Function],
    stack: Stack,
    phase: str,
    mode: Any,
    delay: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A claim whose request lost its answer is taken over by a retry once stale (30 s in
    # production); a short window lets this test make that retry.
    monkeypatch.setattr("credit_api.service.IDEMPOTENCY_STALE_SECONDS", 0.5)
    f = function()
    decision_id = "00000000-0000-4000-8000-000000000000"
    if phase == "warm":
        response, _ = f.call("predict")
        decision_id = body(response)["decision_id"]
        assert response["statusCode"] == 200 and stack.recorded(decision_id)
    f.dynamodb.set(mode, delay)
    before = stack.ids()
    sent = {name: event(name, decision_id=decision_id) for name in LOG_ROUTES}
    for name in LOG_ROUTES:
        response, elapsed = f.send(sent[name])
        check_unavailable(response, elapsed)
    for name in OPEN_ROUTES:
        response, elapsed = f.call(name)
        assert response["statusCode"] == 200 and elapsed < BOUND
    health = body(f.call("health")[0])
    assert health["model_version"] == CHAMPION and health["decision_log"] == "dynamodb"
    f.dynamodb.set("pass")
    if mode != "slow":
        assert stack.ids() == before  # nothing reached the table
    time.sleep(0.6)
    # A write whose answer was lost (slow) may have landed: the client's retry with its
    # Idempotency-Key gets exactly those records back, so no record is left without an answer.
    answered: set[str] = set()
    for name in ("predict", "predict_batch"):
        response, _ = f.send(sent[name])
        assert response["statusCode"] == 200
        answered |= set(answered_ids(name, response))
    assert stack.ids() - before == answered


def test_a_batch_of_1000_on_a_hanging_table_stops_at_the_deadline(
    function: Callable[..., Function], stack: Stack
) -> None:
    """40 BatchWriteItem chunks over 8 threads: the deadline stops them all, not 5 waves of timeouts."""
    f = function()
    assert f.call("health")[0]["statusCode"] == 200
    f.dynamodb.set("hang")
    before = stack.ids()
    batch = load_event("predict_batch")
    batch["body"] = json.dumps({"applicants": [EXAMPLE_APPLICANT] * 1000})
    started = time.monotonic()
    response = f.handler(batch, LambdaContext())
    check_unavailable(response, time.monotonic() - started)
    f.dynamodb.set("pass")
    extra = stack.ids() - before
    assert not extra, f"{len(extra)} records written for a batch answered 503"


def test_a_slow_table_within_the_timeouts_still_answers_and_records(
    function: Callable[..., Function], stack: Stack
) -> None:
    f = function()
    f.dynamodb.set("slow", 0.05)
    for name in ("predict", "predict_batch"):
        response, elapsed = f.call(name)
        assert response["statusCode"] == 200 and elapsed < BOUND
        assert all(stack.recorded(i) for i in answered_ids(name, response))


@pytest.mark.parametrize(("mode", "delay"), FAULTS)
def test_s3_down_at_cold_start_serves_the_bundled_model_on_every_route(
    function: Callable[..., Function], stack: Stack, mode: Any, delay: float
) -> None:
    bundled = json.loads((BUNDLED / MANIFEST_FILE).read_text())["model_version"]
    f = function()
    f.s3.set(mode, delay)
    answered: list[str] = []
    for name in ("health", *LOG_ROUTES[:2], "model", "page"):
        response, elapsed = f.call(name)
        assert response["statusCode"] == 200, (name, response["body"])
        assert elapsed < BOUND
        answered += answered_ids(name, response)
    decision_id = answered[0]
    for name in ("decision", "outcome"):
        response, elapsed = f.call(name, decision_id=decision_id)
        assert response["statusCode"] == 200 and elapsed < BOUND
    assert body(f.call("predict")[0])["model_version"] == bundled
    health = body(f.call("health")[0])
    assert health["status"] == "degraded" and health["serving"] == "bundled"
    assert health["model_version"] == bundled and health["last_refresh_error"]
    assert all(stack.recorded(i) for i in answered)

    f.s3.set("pass")  # S3 back: the champion is swapped in by the store's own retries
    f.store.settle()
    f.store._next_check = 0.0  # its retry is 30 s away; not worth waiting for here
    f.call("health")
    f.store.settle()
    health = body(f.call("health")[0])
    assert health["serving"] == "champion" and health["model_version"] == CHAMPION
    assert body(f.call("predict")[0])["model_version"] == CHAMPION


@pytest.mark.parametrize(("mode", "delay"), FAULTS)
def test_s3_down_at_refresh_keeps_the_current_model_and_no_request_waits(
    function: Callable[..., Function], stack: Stack, mode: Any, delay: float
) -> None:
    # A refresh on every request, and S3 timeouts long enough that a request waiting on one would show.
    slow_s3 = replace(BOUNDS, read_timeout=5.0, request_seconds=10.0)
    f = function(refresh_seconds=0.0, s3_bounds=slow_s3)
    assert body(f.call("predict")[0])["model_version"] == CHAMPION
    f.store.settle()
    f.s3.set(mode, delay)
    answered: list[str] = []
    for name in ("predict", "health", "predict_batch", "model", "page"):
        response, elapsed = f.call(name)
        assert response["statusCode"] == 200 and elapsed < BOUND
        answered += answered_ids(name, response)
        if name == "predict":
            assert body(response)["model_version"] == CHAMPION
            if mode in ("hang", "slow"):  # answered while the refresh it started still waits on S3
                assert f.store.status()["refreshing"] is True
    for name in ("decision", "outcome"):
        response, _ = f.call(name, decision_id=answered[0])
        assert response["statusCode"] == 200
    f.store.settle()
    health = body(f.call("health")[0])
    assert health["model_version"] == CHAMPION and health["serving"] == "champion"
    if mode != "slow":
        assert health["last_refresh_error"] and health["status"] == "degraded"
    assert all(stack.recorded(i) for i in answered)


def test_production_bounds_fit_the_function_timeout() -> None:
    """The aws module's arithmetic, with production's numbers, against the template's Timeout."""
    template = load()
    timeout = template["Resources"]["PredictFunction"]["Properties"]["Timeout"]
    assert float(timeout) == aws.FUNCTION_TIMEOUT_SECONDS
    production = Settings().aws
    assert aws.worst_case_seconds(production) <= aws.FUNCTION_TIMEOUT_SECONDS - 2
    assert Settings().champion_wait_seconds < production.request_seconds
    client = aws.client("dynamodb", "http://127.0.0.1:9", production)
    config = client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (
        production.connect_timeout,
        production.read_timeout,
    )
    assert config.retries["total_max_attempts"] == production.max_attempts


def test_lambda_remaining_time_shortens_the_deadline() -> None:
    middleware = aws.RequestDeadline(None, aws.Bounds())
    long_context, short_context = LambdaContext(), LambdaContext()
    short_context.get_remaining_time_in_millis = lambda: 8_000  # type: ignore[method-assign]
    assert middleware.budget({"aws.context": long_context}) == aws.Bounds().request_seconds
    assert middleware.budget({"aws.context": short_context}) == pytest.approx(8 - 3 - 1 - 2)
    assert middleware.budget({}) == aws.Bounds().request_seconds


def test_a_refused_endpoint_is_tried_twice_and_classified(stack: Stack) -> None:
    proxy = FaultProxy(stack.port)
    try:
        proxy.set("reset")
        client = aws.client("dynamodb", proxy.url, BOUNDS)
        with pytest.raises(Exception) as caught:
            client.describe_table(TableName=stack.names.table)
        assert proxy.connections == BOUNDS.max_attempts
        assert aws.error_code(caught.value) in {"ConnectionClosedError", "EndpointConnectionError"}
        proxy.set("refuse")
        with pytest.raises(Exception) as caught, aws.deadline(0.0):
            client.describe_table(TableName=stack.names.table)
        assert aws.error_code(caught.value) == "DeadlineExceeded"
    finally:
        proxy.stop()


def test_error_code_classifies_client_errors_and_connection_errors_alike() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

    conditional = ClientError({"Error": {"Code": "ConditionalCheckFailedException"}}, "PutItem")
    assert aws.error_code(conditional) == "ConditionalCheckFailedException"
    assert aws.is_conditional_failure(conditional)
    refused = EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
    assert aws.error_code(refused) == "EndpointConnectionError" and not aws.is_conditional_failure(refused)
    assert aws.error_code(ReadTimeoutError(endpoint_url="x")) == "ReadTimeoutError"
    assert aws.error_code(ClientError({}, "GetItem")) == "ClientError"
    assert aws.error_code(ValueError("no response")) == "ValueError"

    def cancelled(*codes: str) -> ClientError:
        reasons = [{"Code": c} for c in codes]
        error = {"Error": {"Code": "TransactionCanceledException"}, "CancellationReasons": reasons}
        return ClientError(error, "TransactWriteItems")  # type: ignore[arg-type]

    assert aws.is_conditional_failure(cancelled("None", "ConditionalCheckFailed"))
    assert not aws.is_conditional_failure(cancelled("ConditionalCheckFailed", "ThrottlingError"))


# A write that lands but whose answer is lost: the SDK retries it, and the retry of a
# conditional write fails its condition on the request's own item. The function must know
# its own write from another request's (before, a lost claim answer was a 409 "in progress"
# for the request that held the key, and a lost record answer a 503 with the record written).


@pytest.mark.parametrize("keyed", [True, False], ids=["claim answer lost", "record answer lost"])
def test_a_lost_answer_to_the_first_write_is_not_taken_for_another_request(
    function: Callable[..., Function], stack: Stack, keyed: bool
) -> None:
    f = function()
    f.call("health")
    f.dynamodb.set("lose")  # the predict's first DynamoDB write: the claim, or without a key the record
    sent = event("predict")
    if not keyed:
        del sent["headers"]["Idempotency-Key"], sent["multiValueHeaders"]["Idempotency-Key"]
    response, _ = f.send(sent)
    assert f.dynamodb.mode == "pass", "the proxy lost no answer: the test did not test"
    assert response["statusCode"] == 200, response["body"]
    decision_id = body(response)["decision_id"]
    assert stack.recorded(decision_id)
    if keyed:  # the claim is complete: the client's retry gets the same decision back
        again, _ = f.send(sent)
        assert again["statusCode"] == 200 and body(again)["decision_id"] == decision_id


def test_claim_and_take_over_know_their_own_landed_write_from_a_rival(stack: Stack) -> None:
    from credit_api.service import Call, new_claim

    proxy = FaultProxy(stack.port)
    log = DynamoDecisionLog(
        stack.names.table,
        client=aws.client("dynamodb", proxy.url, BOUNDS),
        idempotency_table=stack.names.idempotency_table,
    )
    try:
        call = Call(request_id="lost-answers", idempotency_key=str(uuid.uuid4()), caller="key-a")
        mine = new_claim(call, "/predict", "digest", ["decision-1"])
        proxy.set("lose")
        assert log.claim(mine) is None
        rival = {**mine, "token": "rival"}
        assert log.claim(rival)["token"] == mine["token"]  # a real rival still finds the key taken
        retry = {**mine, "token": "retry"}
        proxy.set("lose")
        assert log.take_over(mine, retry) is True
        assert log.take_over(mine, rival) is False  # the stale token is gone: the rival loses
        proxy.set("lose")
        log.complete(retry)
        assert proxy.mode == "pass"
        assert log.claim(rival)["status"] == "complete"
    finally:
        proxy.stop()


def test_a_conditional_s3_write_knows_its_own_landed_write_from_a_rival(stack: Stack) -> None:
    from credit_api.s3_writes import ObjectChanged, put_json_if

    proxy = FaultProxy(stack.port)
    s3 = aws.client("s3", proxy.url, BOUNDS)
    key = f"tests/lost-answer-{uuid.uuid4()}.json"
    try:
        proxy.set("lose")
        etag = put_json_if(s3, stack.names.bucket, key, {"champion": "a"}, None)
        assert proxy.mode == "pass" and proxy.connections >= 2
        assert etag == stack.s3.head_object(Bucket=stack.names.bucket, Key=key)["ETag"]
        with pytest.raises(ObjectChanged):  # another writer who read "absent" loses, as before
            put_json_if(s3, stack.names.bucket, key, {"champion": "b"}, None)
        proxy.set("lose")
        second = put_json_if(s3, stack.names.bucket, key, {"champion": "c"}, etag)
        assert second != etag
        with pytest.raises(ObjectChanged):  # the ETag it replaced no longer matches
            put_json_if(s3, stack.names.bucket, key, {"champion": "d"}, etag)
        stored = stack.s3.get_object(Bucket=stack.names.bucket, Key=key)["Body"].read()
        assert json.loads(stored) == {"champion": "c"}
    finally:
        proxy.stop()
