"""SnapStart hooks: warm everything before the snapshot, renew per-environment state after restore.

Lambda snapshots the initialised function once per published version and resumes copies of
it, so whatever ran during init is shared by every restored environment. Before the snapshot
the model and policy are loaded and one inference runs (scored only, never recorded as a
decision); after restore the champion pointer is re-read (it may have changed since the
snapshot), the random generators are reseeded and Powertools' metric state is cleared.

The Lambda Python runtime provides ``snapshot_restore_py``; elsewhere (tests, uvicorn, the
benchmark) it is absent and the hooks are kept here only, run by :func:`run_before_snapshot`
and :func:`run_after_restore`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from credit_api.model_store import ModelStore
from credit_api.observability import metrics
from credit_api.schema import EXAMPLE_APPLICANT

Hook = Callable[[], None]

BEFORE_SNAPSHOT: list[Hook] = []
AFTER_RESTORE: list[Hook] = []


def _runtime_registrars() -> tuple[Callable[[Hook], Any], Callable[[Hook], Any]] | None:
    """The runtime's decorators, or None outside Lambda (the module exists only there)."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return None
    return register_before_snapshot, register_after_restore


def warm(store: ModelStore) -> None:
    """Load the model and policy and score the example applicant once, writing nothing."""
    store.current()
    store.settle(store.settings.champion_wait_seconds)
    model, _policy = store.served()
    model.scorer.score_rows([EXAMPLE_APPLICANT])


def renew(store: ModelStore) -> None:
    """Per-environment state after a restore: fresh seeds, empty metrics, the pointer re-read."""
    random.seed()
    metrics.clear_metrics()
    store.recheck()
    store.current()
    store.settle(store.settings.champion_wait_seconds)


def install(store: ModelStore) -> None:
    """Register the hooks for ``store`` here and, inside Lambda, with the runtime."""
    before: Hook = lambda: warm(store)  # noqa: E731
    after: Hook = lambda: renew(store)  # noqa: E731
    BEFORE_SNAPSHOT.append(before)
    AFTER_RESTORE.append(after)
    registrars = _runtime_registrars()
    if registrars is not None:
        registrars[0](before)
        registrars[1](after)


def run_before_snapshot() -> None:
    """Run the before-snapshot hooks in registration order (what the runtime does locally)."""
    for hook in BEFORE_SNAPSHOT:
        hook()


def run_after_restore() -> None:
    """Run the after-restore hooks in registration order."""
    for hook in AFTER_RESTORE:
        hook()
