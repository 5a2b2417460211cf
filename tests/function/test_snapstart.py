"""The SnapStart hooks, run in-process as the runtime would: before-snapshot, then after-restore."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from credit_api import snapstart
from credit_api.api import create_app
from credit_api.decision_log import SqliteDecisionLog
from credit_api.lambda_handler import make_handler
from credit_api.model_store import ModelStore, publish
from credit_api.service import random_ids
from credit_api.settings import Settings

from tests.function.conftest import BUCKET, s3_store
from tests.function.test_model_store import model_copy
from tests.support import LambdaContext, load_event, response_json


@pytest.fixture
def hooks() -> Iterator[None]:
    """Each test registers its own store's hooks; none leak into the next test."""
    yield
    snapstart.BEFORE_SNAPSHOT.clear()
    snapstart.AFTER_RESTORE.clear()


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
