"""The SnapStart hooks, run in-process as the runtime would: before-snapshot, then after-restore."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from credit_api import aws, snapstart
from credit_api.api import create_app
from credit_api.decision_log import DynamoDecisionLog, SqliteDecisionLog
from credit_api.lambda_handler import make_handler
from credit_api.model_store import ModelStore, publish
from credit_api.service import random_ids
from credit_api.settings import Settings

from tests.function.conftest import BUCKET, IDEMPOTENCY, TABLE, s3_store
from tests.function.test_model_store import model_copy
from tests.support import LambdaContext, load_event, log_records, response_json


@pytest.fixture
def hooks() -> Iterator[None]:
    """Each test registers its own store's hooks; none leak into the next test, nor do clients."""
    aws.reset_clients()
    yield
    snapstart.BEFORE_SNAPSHOT.clear()
    snapstart.AFTER_RESTORE.clear()
    aws.reset_clients()


def _decisions(path: Path) -> int:
    """Decisions in the log's database (none while the log has not created its table yet)."""
    with sqlite3.connect(path) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def test_snapshot_warms_the_model_without_a_decision_and_restore_picks_up_a_new_champion(
    s3: Any, settings: Settings, sqlite_log: SqliteDecisionLog, tmp_path: Path, hooks: None
) -> None:
    publish(s3, BUCKET, model_copy(tmp_path, "v1", version="champion-1"))
    store = s3_store(settings, s3)
    app = create_app(settings, store=store, log=sqlite_log)
    snapstart.install(store)

    snapstart.run_before_snapshot()
    assert store.champion_version == "champion-1"  # loaded before the snapshot
    assert _decisions(settings.decisions_db) == 0  # the warm-up inference is not a decision

    publish(s3, BUCKET, model_copy(tmp_path, "v2", version="champion-2"))  # while the snapshot waits
    snapstart.run_after_restore()
    assert store.champion_version == "champion-2"

    response = make_handler(app)(load_event("predict"), LambdaContext())
    assert response["statusCode"] == 200
    assert response_json(response)["model_version"] == "champion-2"
    assert _decisions(settings.decisions_db) == 1


def test_restore_without_a_changed_champion_keeps_the_loaded_model(
    s3: Any, settings: Settings, tmp_path: Path, hooks: None
) -> None:
    publish(s3, BUCKET, model_copy(tmp_path, "v1", version="champion-1"))
    store = s3_store(settings, s3, model_refresh_seconds=3600)
    snapstart.install(store)
    snapstart.run_before_snapshot()
    before = store.current()
    snapstart.run_after_restore()
    assert store.current() is before


def test_ids_after_restore_differ_from_the_snapshots(settings: Settings, hooks: None) -> None:
    snapstart.install(ModelStore(settings))
    snapstart.run_before_snapshot()
    taken = set(random_ids(100))
    snapstart.run_after_restore()
    assert taken.isdisjoint(random_ids(100))


def _calls(client: Any) -> list[str]:
    """The operations ``client`` sends from now on (botocore's ``before-call`` event)."""
    seen: list[str] = []
    client.meta.events.register("before-call", lambda model, **_: seen.append(model.name))
    return seen


def _deployed_app(s3: Any, settings: Settings, tmp_path: Path) -> Any:
    """The deployed configuration: S3 champion and DynamoDB log, each through ``aws.client``."""
    publish(s3, BUCKET, model_copy(tmp_path, "v1", version="champion-1"))
    deployed = replace(settings, model_bucket=BUCKET, decisions_table=TABLE, idempotency_table=IDEMPOTENCY)
    return create_app(deployed)


def test_restore_renews_every_aws_client_and_requests_use_only_the_new_ones(
    s3: Any, dynamodb: Any, settings: Settings, tmp_path: Path, hooks: None
) -> None:
    app = _deployed_app(s3, settings, tmp_path)
    service = app.state.service
    snapstart.install(service.store, service.log)

    snapstart.run_before_snapshot()
    old_s3, old_dynamodb = service.store._client(), service.log.client
    old_s3_calls, old_dynamodb_calls = _calls(old_s3), _calls(old_dynamodb)

    snapstart.run_after_restore()
    new_s3, new_dynamodb = service.store._client(), service.log.client
    assert new_s3 is not old_s3 and new_dynamodb is not old_dynamodb
    assert new_s3 is aws.client("s3", None, service.store.settings.aws)
    new_calls = _calls(new_dynamodb)
    response = make_handler(app)(load_event("predict"), LambdaContext())
    assert response["statusCode"] == 200
    assert "PutItem" in new_calls
    assert old_s3_calls == old_dynamodb_calls == [], "a client from the snapshot was used after the restore"


def test_restore_resolves_credentials_again(
    s3: Any, dynamodb: Any, settings: Settings, tmp_path: Path, hooks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restored environment gets its own credentials; a client from the snapshot keeps the old."""
    app = _deployed_app(s3, settings, tmp_path)
    snapstart.install(app.state.service.store, app.state.service.log)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "snapshot-key")
    snapstart.run_before_snapshot()
    before = app.state.service.log.client
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "restored-key")
    snapstart.run_after_restore()
    after = app.state.service.log.client
    assert before._request_signer._credentials.access_key == "snapshot-key"
    assert after._request_signer._credentials.access_key == "restored-key"


def test_reset_clients_forgets_and_closes_every_client(hooks: None) -> None:
    first = aws.client("dynamodb", "http://127.0.0.1:9")
    assert aws.client("dynamodb", "http://127.0.0.1:9") is first
    closed: list[bool] = []
    first.close = lambda: closed.append(True)
    assert aws.reset_clients() == 1
    assert closed == [True]
    assert aws.client("dynamodb", "http://127.0.0.1:9") is not first
    assert aws.reset_clients() == 1 and aws.reset_clients() == 0


def test_restore_writes_one_log_line_with_what_it_renewed(
    s3: Any, dynamodb: Any, settings: Settings, tmp_path: Path, hooks: None, stdout: Any
) -> None:
    app = _deployed_app(s3, settings, tmp_path)
    snapstart.install(app.state.service.store, app.state.service.log)
    snapstart.run_before_snapshot()
    snapstart.run_after_restore()
    (line,) = [r for r in log_records(stdout()) if r["message"] == snapstart.RESTORE_MESSAGE]
    assert line["clients_renewed"] == 2
    assert line["model_version"] == "champion-1"
    assert line["restore_hook_ms"] >= 0


def test_restore_opens_the_decision_logs_connection_with_one_read_and_no_write(
    s3: Any, dynamodb: Any, settings: Settings, tmp_path: Path, hooks: None
) -> None:
    publish(s3, BUCKET, model_copy(tmp_path, "v1", version="champion-1"))
    log = DynamoDecisionLog(TABLE, client=dynamodb, idempotency_table=IDEMPOTENCY)
    snapstart.install(s3_store(settings, s3), log)
    snapstart.run_before_snapshot()
    calls = _calls(dynamodb)
    snapstart.run_after_restore()
    assert calls == ["GetItem"]
    assert dynamodb.scan(TableName=TABLE)["Count"] == 0


def test_an_unreachable_decision_log_at_restore_is_logged_and_does_not_stop_the_restore(
    s3: Any, settings: Settings, tmp_path: Path, hooks: None, stdout: Any
) -> None:
    publish(s3, BUCKET, model_copy(tmp_path, "v1", version="champion-1"))
    log = DynamoDecisionLog(TABLE, endpoint_url="http://127.0.0.1:9")  # nothing listens there
    snapstart.install(s3_store(settings, s3), log)
    snapstart.run_before_snapshot()
    snapstart.run_after_restore()
    records = log_records(stdout())
    assert [r for r in records if r["message"] == "snapstart warm-up read failed"]
    (line,) = [r for r in records if r["message"] == snapstart.RESTORE_MESSAGE]
    assert line["restore_hook_ms"] < 5000


def test_the_warm_up_goes_through_the_handler_once_records_nothing_and_leaves_the_cold_start_to_count(
    settings: Settings, sqlite_log: SqliteDecisionLog, hooks: None, stdout: Any
) -> None:
    from aws_lambda_powertools.metrics.provider import cold_start

    app = create_app(settings, log=sqlite_log)
    calls: list[tuple[dict[str, Any], Any]] = []
    real = make_handler(app)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append((event, context))
        response = real(event, context)
        assert response["statusCode"] == 200, response["body"]
        return response

    snapstart.install(app.state.service.store, app.state.service.log, handler)
    snapstart.run_before_snapshot()
    assert [event["path"] for event, _ in calls] == ["/health"]
    assert _decisions(settings.decisions_db) == 0
    assert cold_start.is_cold_start  # the restored environment's first request is the cold start

    snapstart.run_after_restore()
    stdout()  # the warm-up's own lines
    response = real(load_event("predict"), LambdaContext())
    assert response["statusCode"] == 200
    assert _decisions(settings.decisions_db) == 1
    (line,) = [r for r in log_records(stdout()) if r.get("message") == "decision"]
    assert line["cold_start"] is True
