"""The shadow comparison on live traffic (swap set, AUC on the same loans), the retrain report, the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from credit_api import registry, shadow
from credit_api.decision_log import SqliteDecisionLog
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from tests.function.conftest import BUNDLED
from tests.shadow_support import challenger_dir
from training import cli_models, retrain
from training.cli_models import app

BUCKET = "shadow-compare-test"


def record(
    i: int,
    champion: tuple[str, float],
    shadow_: tuple[str, float] | None,
    defaulted: bool | None = None,
    version: str = "challenger-1",
    day: int = 2,
) -> dict[str, Any]:
    """A decision record as the service writes it, reduced to what the comparison reads."""
    return {
        "decision_id": f"d{i}",
        "created_at": f"2026-11-{day:02d}T00:00:{i:02d}.000Z",
        "model_version": "champion-1",
        "decision": champion[0],
        "probability_of_default": champion[1],
        "shadow": None
        if shadow_ is None
        else {"model_version": version, "decision": shadow_[0], "probability_of_default": shadow_[1]},
        "outcome": None
        if defaulted is None
        else {"defaulted": defaulted, "observed_at": "2026-11-30T00:00:00Z", "recorded_at": "x"},
    }


HAND_MADE = [
    record(0, ("approve", 0.10), ("approve", 0.12), defaulted=False),
    record(1, ("approve", 0.20), ("decline", 0.70), defaulted=True),
    record(2, ("approve", 0.15), ("decline", 0.60), defaulted=False),
    record(3, ("decline", 0.80), ("approve", 0.05), defaulted=False),
    record(4, ("decline", 0.90), ("decline", 0.95), defaulted=True),
    record(5, ("review", 0.40), ("decline", 0.65)),
    record(6, ("review", 0.45), ("review", 0.45)),
    record(7, ("approve", 0.10), None, defaulted=True),  # no shadow ran: not compared
    record(
        8, ("approve", 0.10), ("decline", 0.99), defaulted=True, version="challenger-0", day=1
    ),  # the shadow before
]


def test_the_swap_set_counts_both_ways_and_lists_the_rows() -> None:
    found = shadow.compare(HAND_MADE)
    assert found["shadow_version"] == "challenger-1"  # the latest record's shadow
    assert found["n"] == 7 and found["agree"] == 3
    assert found["swaps"] == {"champion_approves_shadow_declines": 2, "champion_declines_shadow_approves": 1}
    assert [s["decision_id"] for s in found["swap_rows"]] == ["d1", "d2", "d3"]
    assert found["swap_rows"][0] == {
        "decision_id": "d1",
        "created_at": "2026-11-02T00:00:01.000Z",
        "champion_version": "champion-1",
        "champion_decision": "approve",
        "champion_probability": 0.20,
        "shadow_decision": "decline",
        "shadow_probability": 0.70,
    }
    assert found["decisions"]["review"] == {"approve": 0, "review": 1, "decline": 1}
    assert sum(sum(row.values()) for row in found["decisions"].values()) == 7
    assert found["champion_versions"] == {"champion-1": 7}


def test_auc_of_both_on_the_same_loans_matches_scikit_learn() -> None:
    found = shadow.compare(HAND_MADE)
    labelled = [r for r in HAND_MADE[:5]]
    labels = [int(r["outcome"]["defaulted"]) for r in labelled]
    assert found["auc"]["n"] == 5 and found["auc"]["defaults"] == 2
    assert found["auc"]["champion"] == pytest.approx(
        roc_auc_score(labels, [r["probability_of_default"] for r in labelled])
    )
    assert found["auc"]["shadow"] == pytest.approx(
        roc_auc_score(labels, [r["shadow"]["probability_of_default"] for r in labelled])
    )
    assert found["auc"]["champion"] != found["auc"]["shadow"]


def test_roc_auc_handles_ties_and_needs_both_classes() -> None:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 500)
    scores = np.round(rng.uniform(size=500), 1)  # many ties
    assert shadow.roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    assert shadow.roc_auc([1, 1], [0.2, 0.3]) is None
    assert shadow.compare(HAND_MADE[5:7])["auc"] == {"n": 0, "defaults": 0, "champion": None, "shadow": None}


def test_an_older_shadow_is_compared_when_named() -> None:
    found = shadow.compare(HAND_MADE, "challenger-0")
    assert found["n"] == 1 and found["swaps"]["champion_approves_shadow_declines"] == 1
    assert shadow.compare([record(0, ("approve", 0.1), None)])["n"] == 0


# ---------------------------------------------------------------- with a bucket


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


@pytest.fixture
def challenger(s3: Any, tmp_path: Path) -> dict[str, str]:
    registry.publish(s3, BUCKET, BUNDLED, by="test", reason="first champion")
    ref, _ = registry.store_dir(s3, BUCKET, challenger_dir(tmp_path, "challenger-1"))
    return ref


def test_the_retrain_report_carries_the_comparison_while_a_shadow_runs(s3: Any, challenger: dict) -> None:
    assert retrain.shadow_comparison(s3, BUCKET, HAND_MADE) is None
    shadow.set_shadow(s3, BUCKET, challenger, by="t", reason="r")
    found = retrain.shadow_comparison(s3, BUCKET, HAND_MADE)
    assert found["shadow_version"] == "challenger-1" and found["shadow_key"] == challenger["key"]
    assert found["swaps"] == shadow.compare(HAND_MADE)["swaps"]
    unreadable = retrain.shadow_comparison(s3, "no-such-bucket", HAND_MADE)
    assert unreadable == {"error": "shadow comparison unavailable: NoSuchBucket"}


def test_the_cli_sets_shows_compares_and_clears(
    s3: Any, challenger: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_models, "_s3", lambda: s3)  # one client for all commands (each costs ~0.5 s)
    runner = CliRunner()
    base = ["shadow"]
    done = runner.invoke(app, [*base, "set", "challenger-1", "--bucket", BUCKET, "--reason", "try it"])
    assert done.exit_code == 0, done.output
    assert "shadow: challenger-1" in done.output
    shown = runner.invoke(app, [*base, "show", "--bucket", BUCKET])
    assert "shadow: challenger-1" in shown.output and "try it" in shown.output
    refused = runner.invoke(app, [*base, "set", "no-such-version", "--bucket", BUCKET])
    assert refused.exit_code == 1 and "refused" in refused.output

    db = tmp_path / "decisions.sqlite3"
    log = SqliteDecisionLog(db)
    log.put_many([{**r, "outcome": None} for r in HAND_MADE])
    for r in HAND_MADE:
        if r["outcome"] is not None:
            log.record_outcome(r["decision_id"], r["outcome"])
    log.close()
    compared = runner.invoke(app, [*base, "compare", "--db", str(db)])
    assert compared.exit_code == 0, compared.output
    assert "7 decisions scored by both" in compared.output
    assert "champion approves, shadow declines 2; champion declines, shadow approves 1" in compared.output
    assert "AUC on the same 5 loans (2 defaults)" in compared.output
    as_json = runner.invoke(app, [*base, "compare", "--db", str(db), "--json", "--version", "challenger-0"])
    assert '"n": 1' in as_json.output
    missing = runner.invoke(app, [*base, "compare", "--db", str(tmp_path / "none.sqlite3")])
    assert missing.exit_code == 2 and "no decision log" in missing.output

    cleared = runner.invoke(app, [*base, "clear", "--bucket", BUCKET, "--reason", "enough"])
    assert cleared.exit_code == 0 and "shadow cleared" in cleared.output
    shown = runner.invoke(app, [*base, "show", "--bucket", BUCKET, "--json"])
    assert '"shadow": null' in shown.output and '"action": "clear"' in shown.output


def test_records_a_comparison_cannot_use_are_left_out() -> None:
    broken = [
        {**record(20, ("approve", 0.1), ("decline", 0.9)), "shadow": {"model_version": "challenger-1"}},
        {**record(21, ("approve", 0.1), ("decline", 0.9)), "shadow": "declined"},
        {**record(22, ("approve", 0.1), ("decline", 0.9)), "probability_of_default": None},
    ]
    assert shadow.compare([*HAND_MADE, *broken])["n"] == shadow.compare(HAND_MADE)["n"] == 7
