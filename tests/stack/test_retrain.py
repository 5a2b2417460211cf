"""The retrain against the template's storage in moto: promote or keep, reports, drift, permissions.

Decisions and outcomes are written by the real function handler, so the retrain reads the
records the function really writes. The challenger comes from a stand-in trainer that returns
a known model and known out-of-fold probabilities (``training.train.train`` is tested by the
training tests, and end to end in ``test_scheduled_event_runs_the_real_search``).
"""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from credit_api import registry
from credit_api.manifest import MANIFEST_FILE, MODEL_FILE, AgeApproval, Manifest
from credit_api.schema import FEATURE_NAMES, TARGET
from credit_api.scoring import Scorer

from infra.seed import BUNDLED_MODEL
from infra.template import ROOT, Resolver, function_environment
from tests.stack.aws_calls import allowed, policy_actions, recorded_calls
from tests.stack.emitted import emitted_metrics as emitted
from tests.stack.test_permissions import statements
from tests.support import LambdaContext, emf_records, load_event, metric_names, metric_values
from training import fairness, monitor, retrain
from training.data import load as load_data

NOW = datetime.now(UTC)


CHAMPION_CV_AUC = 0.78


@dataclass
class TrainedModel:
    manifest_path: Path
    oof_probabilities: np.ndarray
    cv_metrics: dict[str, float]


def write_model(
    directory: Path,
    version: str,
    reference_frame: pd.DataFrame | None = None,
    cv_auc: float = CHAMPION_CV_AUC,
    age_approval: AgeApproval | None = None,
) -> Path:
    """The bundled ONNX model as a model built yesterday with a CV AUC, reference distributions,
    and the out-of-fold age-band approval its training recorded (None: an older manifest)."""
    from training.export import reference_distributions

    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(BUNDLED_MODEL / MODEL_FILE, directory / MODEL_FILE)
    manifest = Manifest.model_validate_json((BUNDLED_MODEL / MANIFEST_FILE).read_text())
    update: dict[str, Any] = {
        "model_version": version,
        "created_at": NOW - timedelta(days=1),
        "metrics": {retrain.CV_AUC: cv_auc},
        "age_approval": age_approval,
    }
    if reference_frame is not None:
        scorer = Scorer.from_bytes((directory / MODEL_FILE).read_bytes())
        probabilities = scorer.predict(reference_frame[list(FEATURE_NAMES)].to_dict("records"))
        update["reference_distributions"] = reference_distributions(
            reference_frame, probabilities, manifest.policy, manifest.score_scale
        )
    (directory / MANIFEST_FILE).write_text(manifest.model_copy(update=update).model_dump_json(indent=2))
    (directory / "reports").mkdir(exist_ok=True)
    (directory / "reports" / "models.md").write_text("# challenger search\n")
    return directory / MANIFEST_FILE


YOUNG_MISSED = 0.4
"""The share of defaulters under 25 the "good" stand-in scores like good applicants."""


def trainer(quality: str) -> Any:
    """A stand-in ``train``: out-of-fold probabilities that rank defaults well ("good") or at random
    ("random"), and a CV AUC that is theirs, or a flattering one ("flattering": random, CV 0.99).

    "good" ranks defaults above good applicants except for ``YOUNG_MISSED`` of the defaulters under
    25: a model that ranks every default right approves each age band at its share of good
    applicants, whose ratio in this data (0.59 under 25 against 0.82 at 62+) is under the fairness
    gate's floor ("oracle", kept by the gate). "good" approves the young a little more, as the
    served pipeline does (left out of the inputs, age cannot lower their approval rate).
    """
    calls = []

    def train(frame: pd.DataFrame, *, out_dir: Path, seed: int, quick: bool) -> TrainedModel:
        calls.append(len(frame))
        labels = frame[TARGET].to_numpy(dtype=float)
        noise = np.random.default_rng(seed).uniform(size=len(frame))
        oof = 0.6 * labels + 0.4 * noise if quality in ("good", "oracle") else noise
        if quality == "good":
            missed = np.random.default_rng(seed + 1).uniform(size=len(frame)) < YOUNG_MISSED
            oof = np.where(missed & (labels == 1) & (frame["age"].to_numpy() < 25), 0.4 * noise, oof)
        cv_auc = 0.99 if quality == "flattering" else retrain.auc(labels, oof)
        return TrainedModel(write_model(out_dir, f"challenger-{quality}"), oof, {retrain.CV_AUC: cv_auc})

    train.calls = calls  # type: ignore[attr-defined]
    return train


@pytest.fixture
def deployed(storage: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The stack's storage, a champion with reference distributions, and the function's handler."""
    from credit_api.api import create_app
    from credit_api.main import make_handler
    from credit_api.settings import Settings

    storage["pointer"] = registry.publish(
        storage["s3"],
        storage["names"].bucket,
        write_model(tmp_path / "champion", "champion-1", load_data()).parent,
        by="test",
        reason="the champion the tests start from",
    )
    env = function_environment(storage["resolver"], "PredictFunction")
    storage["handler"] = make_handler(create_app(Settings.from_env(env)))
    storage["settings"] = retrain.RetrainSettings.from_env(
        {"MODEL_BUCKET": storage["names"].bucket, "DECISIONS_TABLE": storage["names"].table}
    )
    return storage


def decide(handler: Any, applicants: list[dict[str, Any]]) -> list[str]:
    event = load_event("predict_batch", body=json.dumps({"applicants": applicants}))
    response = handler(event, LambdaContext())
    assert response["statusCode"] == 200, response["body"][:300]
    return [r["decision_id"] for r in json.loads(response["body"])["results"]]


def report_outcome(handler: Any, decision_id: str, defaulted: bool) -> None:
    body = {"decision_id": decision_id, "defaulted": defaulted, "observed_at": "2026-10-01T00:00:00Z"}
    response = handler(load_event("outcome", body=json.dumps(body)), LambdaContext())
    assert response["statusCode"] == 200, response["body"][:300]


def applicants(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (v if isinstance(v, str) else int(v)) for k, v in row.items()}
        for row in frame[list(FEATURE_NAMES)].to_dict("records")
    ]


def objects(s3: Any, bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def test_the_promotion_rule_at_its_margin() -> None:
    rule = {"has_champion": True, "min_gain": 0.25}
    assert retrain.compare(challenger_cv_auc=0.75, champion_cv_auc=0.5, **rule).promote
    assert not retrain.compare(
        challenger_cv_auc=0.75, champion_cv_auc=0.5, **{**rule, "min_gain": 0.2501}
    ).promote
    tie = retrain.compare(challenger_cv_auc=0.8, champion_cv_auc=0.8, has_champion=True)
    assert not tie.promote and tie.basis == "cross-validation"
    first = retrain.compare(challenger_cv_auc=0.6, champion_cv_auc=None, has_champion=False)
    assert first.promote and first.champion_auc is None and first.reason == "no champion has been published"
    provisional = retrain.compare(challenger_cv_auc=0.6, champion_cv_auc=None, has_champion=True)
    assert provisional.promote and provisional.reason == "the champion has no cross-validated AUC"


def test_enough_fresh_outcomes_decide_instead_of_cross_validation() -> None:
    labels = np.array([0] * 60 + [1] * 40)
    champion = np.random.default_rng(0).uniform(size=100)
    fresh = (labels, labels * 0.5 + 0.25, champion)  # the challenger ranks every fresh outcome right
    judged = retrain.compare(challenger_cv_auc=0.5, champion_cv_auc=0.9, has_champion=True, fresh=fresh)
    assert judged.basis == "100 fresh outcomes" and judged.promote and judged.challenger_auc == 1.0
    assert judged.champion_auc == pytest.approx(retrain.auc(labels, champion))
    few = tuple(a[1:] for a in fresh)  # 99 rows: too few, cross-validation decides
    assert retrain.compare(
        challenger_cv_auc=0.5, champion_cv_auc=0.9, has_champion=True, fresh=few
    ).basis == ("cross-validation")
    one_class = (np.zeros(100), labels * 0.5, champion)
    assert not retrain.enough_fresh(one_class[0])


def test_outcomes_join_their_decisions_inputs_and_bad_records_are_counted() -> None:
    inputs = applicants(load_data().head(2))
    records = [
        {"inputs": inputs[0], "outcome": {"defaulted": True, "observed_at": "2026-01-01"}},
        {"inputs": inputs[1], "outcome": None},
        {"inputs": {**inputs[1], "age": 7}, "outcome": {"defaulted": False}},
        {"inputs": inputs[1], "outcome": {"defaulted": "yes"}},
    ]
    outcomes = retrain.outcome_rows(records)
    assert outcomes.rows == [{**inputs[0], TARGET: 1}]
    assert outcomes.rejected == 1


def record_fresh_outcomes(handler: Any, count: int, seed: int) -> None:
    """``count`` decisions by the function, each with its applicant's real outcome from the data,
    reported after the champion was built."""
    sample = load_data().sample(count, random_state=seed)
    ids = decide(handler, applicants(sample))
    for decision_id, defaulted in zip(ids, sample[TARGET].astype(bool), strict=True):
        report_outcome(handler, decision_id, bool(defaulted))


def test_a_better_challenger_is_published_and_the_pointer_flips(deployed: dict[str, Any]) -> None:
    s3, bucket = deployed["s3"], deployed["names"].bucket
    record_fresh_outcomes(deployed["handler"], 120, seed=1)
    train = trainer("good")
    with recorded_calls() as calls:
        result = retrain.retrain(s3, deployed["dynamodb"], deployed["settings"], trainer=train, now=NOW)

    assert result.verdict == "promoted", result.comparison.reason
    assert result.comparison.basis == "120 fresh outcomes"
    # An older champion manifest records no out-of-fold approval, and 120 fresh outcomes are too few
    # to measure an age-band ratio on: the champion is measured in-sample, and the report says so.
    gate = result.age_gate
    assert gate is not None and gate["basis"] == "in-sample" and gate["challenger_ratio_alike"] is None
    assert "as its manifest records no out-of-fold approval and too few fresh outcomes" in gate["reason"]
    assert result.comparison.challenger_auc >= result.comparison.champion_auc + retrain.MIN_AUC_GAIN
    assert result.champion_version == "champion-1" and result.challenger_version == "challenger-good"
    assert (result.outcomes_used, result.outcomes_rejected) == (120, 0)
    assert train.calls == [len(load_data()) + 120] == [result.training_rows]
    pointer = json.loads(s3.get_object(Bucket=bucket, Key="models/champion.json")["Body"].read())
    assert pointer == result.pointer and pointer["model_version"] == "challenger-good"
    model_keys = {f"{pointer['key']}/{MODEL_FILE}", f"{pointer['key']}/{MANIFEST_FILE}"}
    assert set(objects(s3, bucket, pointer["key"])) == model_keys
    prefix = f"reports/retrain/{result.run_id}"
    expected = {f"{prefix}/retrain.json", f"{prefix}/reports/models.md", f"{prefix}/manifest.json"}
    assert set(objects(s3, bucket, prefix)) == expected
    report = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/retrain.json")["Body"].read())
    assert report["verdict"] == "promoted" and report["pointer"] == pointer
    assert report["drift"]["sample_size"] == 120 and report["drift"]["max_psi"] < monitor.DRIFT_ALERT

    policy = statements(deployed["resolver"], "RetrainFunction")
    resolver = deployed["resolver"]
    denied = [
        c for c in calls if not allowed(policy, c.action(), c.resource(resolver.region, resolver.account_id))
    ]
    assert denied == []
    assert {c.action() for c in calls} == policy_actions(policy)


@pytest.mark.slow
def test_fresh_outcomes_overrule_a_flattering_cross_validation(deployed: dict[str, Any]) -> None:
    record_fresh_outcomes(deployed["handler"], 120, seed=3)
    result = retrain.retrain(
        deployed["s3"], deployed["dynamodb"], deployed["settings"], trainer=trainer("flattering"), now=NOW
    )
    assert result.comparison.basis == "120 fresh outcomes"
    assert result.verdict == "kept", result.comparison.reason


def test_a_challenger_that_does_not_beat_the_champion_changes_nothing(deployed: dict[str, Any]) -> None:
    s3, bucket = deployed["s3"], deployed["names"].bucket
    before = s3.get_object(Bucket=bucket, Key="models/champion.json")["Body"].read()
    models_before = objects(s3, bucket, "models/")
    result = retrain.retrain(
        s3, deployed["dynamodb"], deployed["settings"], trainer=trainer("random"), now=NOW
    )
    assert result.verdict == "kept" and result.pointer is None
    assert result.comparison.basis == "cross-validation"
    assert result.comparison.champion_auc == CHAMPION_CV_AUC
    assert "does not beat" in result.comparison.reason
    assert s3.get_object(Bucket=bucket, Key="models/champion.json")["Body"].read() == before
    assert objects(s3, bucket, "models/") == models_before
    report = json.loads(
        s3.get_object(Bucket=bucket, Key=f"reports/retrain/{result.run_id}/retrain.json")["Body"].read()
    )
    assert report["verdict"] == "kept" and report["drift"]["skipped"]  # no decisions: too few for PSI


def test_the_age_ratio_gate_at_its_floor_and_margin() -> None:
    assert retrain.AGE_RATIO_FLOOR == 0.80 and retrain.AGE_RATIO_MARGIN == 0.02
    judge = retrain.judge_age_ratio
    below, reason = judge(0.799, None)
    assert not below and reason == "the challenger's age-band approval ratio 0.799 is below the floor 0.80"
    assert judge(0.80, None)[0]  # at the floor, and no champion to compare with
    assert judge(0.81, 0.83)[0]  # exactly the margin below the champion
    behind, reason = judge(0.809, 0.83)
    assert not behind and "0.809 is more than 0.02 below the champion's 0.830" in reason
    assert not judge(0.79, 0.79)[0]  # level with the champion, still under the floor
    unmeasured, reason = judge(None, 0.9)
    assert not unmeasured and "cannot be measured" in reason


def champion_approvals(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The champion's (the bundled model's) probabilities on ``frame`` and its approvals, by the
    function's own scorer and policy."""
    from credit_api.policy import decide_many

    manifest = Manifest.model_validate_json((BUNDLED_MODEL / MANIFEST_FILE).read_text())
    scorer = Scorer.from_bytes(
        (BUNDLED_MODEL / MODEL_FILE).read_bytes(), age_invariant=manifest.age_invariant
    )
    probabilities = np.asarray(scorer.predict(frame[list(FEATURE_NAMES)].to_dict("records")))
    decisions = decide_many(probabilities, frame["amount"], frame["months_loan_duration"], manifest.policy)
    return probabilities, np.array([d.decision == "approve" for d in decisions])


def hand_ratio(frame: pd.DataFrame, approved: np.ndarray) -> float:
    ages = frame["age"].to_numpy()
    bands = [(18, 25), (25, 40), (40, 62), (62, 200)]
    rates = [approved[(ages >= low) & (ages < high)].mean() for low, high in bands]
    return min(rates) / max(rates)


def young_declined(declines: int) -> Any:
    """A stand-in ``train`` that claims CV AUC 0.99 and scores as the champion does, except that
    ``declines`` of the applicants under 25 the champion approves get 0.99 (declined)."""

    def train(frame: pd.DataFrame, *, out_dir: Path, seed: int, quick: bool) -> TrainedModel:
        probabilities, approved = champion_approvals(frame)
        young = np.flatnonzero(approved & (frame["age"].to_numpy() < 25))[:declines]
        oof = probabilities.copy()
        oof[young] = 0.99
        version = f"challenger-young-{declines}"
        return TrainedModel(write_model(out_dir, version, cv_auc=0.99), oof, {retrain.CV_AUC: 0.99})

    return train


def run_gate(deployed: dict[str, Any], train: Any) -> tuple[retrain.RetrainResult, dict[str, Any]]:
    s3, bucket = deployed["s3"], deployed["names"].bucket
    result = retrain.retrain(s3, deployed["dynamodb"], deployed["settings"], trainer=train, now=NOW)
    key = f"reports/retrain/{result.run_id}/retrain.json"
    return result, json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_a_challenger_under_the_fairness_floor_is_kept_whatever_its_auc(deployed: dict[str, Any]) -> None:
    """Ranking every default right approves each age band at its share of good applicants:
    here under the floor, so the gate keeps the champion although the AUC rule would promote."""
    s3, bucket = deployed["s3"], deployed["names"].bucket
    before = s3.get_object(Bucket=bucket, Key="models/champion.json")["Body"].read()
    result, report = run_gate(deployed, trainer("oracle"))
    assert result.verdict == "kept" and result.pointer is None
    assert result.comparison.challenger_auc == 1.0 and not result.comparison.promote
    assert "beats champion AUC" in result.comparison.reason
    assert "kept: the challenger's age-band approval ratio" in result.comparison.reason
    assert "is below the floor 0.80" in result.comparison.reason
    gate = result.age_gate
    assert gate is not None and not gate["passed"]
    frame = load_data()
    labels = frame[TARGET].to_numpy()
    # It approves about every good applicant and no defaulter: near the good-share ratio (0.72).
    assert abs(gate["challenger_ratio"] - hand_ratio(frame, labels == 0)) < 0.08
    assert gate["challenger_ratio"] < retrain.AGE_RATIO_FLOOR < gate["champion_ratio"]
    assert gate["champion_ratio"] == pytest.approx(hand_ratio(frame, champion_approvals(frame)[1]))
    assert (
        gate["basis"] == "in-sample" and "as its manifest records no out-of-fold approval" in gate["reason"]
    )
    assert report["verdict"] == "kept" and report["comparison"]["reason"] == result.comparison.reason
    assert report["age_gate"] == gate
    assert s3.get_object(Bucket=bucket, Key="models/champion.json")["Body"].read() == before


def test_a_challenger_within_the_margin_of_the_champions_ratio_is_promoted(deployed: dict[str, Any]) -> None:
    frame = load_data()
    _, approved = champion_approvals(frame)
    young = np.flatnonzero(approved & (frame["age"].to_numpy() < 25))
    fewer = approved.copy()
    fewer[young[:1]] = False
    result, report = run_gate(deployed, young_declined(1))
    gate = result.age_gate
    assert gate is not None
    assert gate["champion_ratio"] == pytest.approx(hand_ratio(frame, approved))
    assert gate["challenger_ratio"] == pytest.approx(hand_ratio(frame, fewer))
    assert 0 < gate["champion_ratio"] - gate["challenger_ratio"] <= retrain.AGE_RATIO_MARGIN
    assert gate["passed"] and result.verdict == "promoted", result.comparison.reason
    assert report["verdict"] == "promoted" and report["age_gate"]["passed"]
    assert result.pointer is not None and result.pointer["model_version"] == "challenger-young-1"


def test_a_challenger_further_below_the_champion_than_the_margin_is_kept(deployed: dict[str, Any]) -> None:
    frame = load_data()
    _, approved = champion_approvals(frame)
    young = np.flatnonzero(approved & (frame["age"].to_numpy() < 25))
    fewer = approved.copy()
    fewer[young[:4]] = False
    result, report = run_gate(deployed, young_declined(4))
    gate = result.age_gate
    assert gate is not None
    assert gate["challenger_ratio"] == pytest.approx(hand_ratio(frame, fewer))
    assert gate["challenger_ratio"] >= retrain.AGE_RATIO_FLOOR  # above the floor: the margin keeps it
    assert gate["champion_ratio"] - gate["challenger_ratio"] > retrain.AGE_RATIO_MARGIN
    assert result.verdict == "kept" and result.pointer is None
    assert f"more than 0.02 below the champion's {gate['champion_ratio']:.3f}" in result.comparison.reason
    assert report["verdict"] == "kept" and report["comparison"]["reason"] == result.comparison.reason


def recorded_champion(deployed: dict[str, Any], tmp_path: Path, young_approved: int) -> AgeApproval:
    """Publish as champion the bundled model with an out-of-fold record unlike its in-sample
    approval: ``young_approved`` more (negative: fewer) of the applicants under 25 approved."""
    frame = load_data()
    probabilities, approved = champion_approvals(frame)
    young = frame["age"].to_numpy() < 25
    chosen = np.flatnonzero(~approved & young) if young_approved > 0 else np.flatnonzero(approved & young)
    oof = probabilities.copy()
    oof[chosen[: abs(young_approved)]] = 0.01 if young_approved > 0 else 0.99
    policy = Manifest.model_validate_json((BUNDLED_MODEL / MANIFEST_FILE).read_text()).policy
    recorded = fairness.age_band_approval(oof, frame, policy)
    directory = write_model(tmp_path / "recorded", "champion-recorded", frame, age_approval=recorded)
    s3, bucket = deployed["s3"], deployed["names"].bucket
    deployed["pointer"] = registry.publish(s3, bucket, directory.parent, by="test", reason="recorded")
    return recorded


def in_sample_ratio() -> float:
    frame = load_data()
    return hand_ratio(frame, champion_approvals(frame)[1])


def test_a_champion_recorded_out_of_fold_below_its_in_sample_ratio_lets_the_challenger_through(
    deployed: dict[str, Any], tmp_path: Path
) -> None:
    """The challenger the margin keeps against the champion in-sample (test above) is promoted
    against the champion's lower out-of-fold record: the verdict follows the out-of-fold ratios."""
    recorded = recorded_champion(deployed, tmp_path, young_approved=-8)
    result, report = run_gate(deployed, young_declined(4))
    gate = result.age_gate
    assert gate is not None and gate["basis"] == "recorded out of fold"
    assert gate["champion_ratio"] == pytest.approx(recorded.ratio)
    assert gate["champion_rates"] == recorded.rates
    assert in_sample_ratio() - gate["challenger_ratio"] > retrain.AGE_RATIO_MARGIN  # in-sample: kept
    assert recorded.ratio - gate["challenger_ratio"] <= retrain.AGE_RATIO_MARGIN
    assert gate["passed"] and result.verdict == "promoted", result.comparison.reason
    assert "measured out of fold, as its manifest records it" in gate["reason"]
    assert report["age_gate"] == gate


def test_a_champion_recorded_out_of_fold_above_its_in_sample_ratio_keeps_the_challenger(
    deployed: dict[str, Any], tmp_path: Path
) -> None:
    """A challenger scoring as the champion does in-sample passes that comparison; against the
    champion's higher out-of-fold record it is more than the margin below, and kept."""
    recorded = recorded_champion(deployed, tmp_path, young_approved=8)
    result, _ = run_gate(deployed, young_declined(0))
    gate = result.age_gate
    assert gate is not None and gate["basis"] == "recorded out of fold"
    assert gate["challenger_ratio"] == pytest.approx(in_sample_ratio())  # in-sample: level, passed
    assert recorded.ratio - gate["challenger_ratio"] > retrain.AGE_RATIO_MARGIN
    assert not gate["passed"] and result.verdict == "kept"
    assert f"below the champion's {recorded.ratio:.3f}" in result.comparison.reason


def test_a_published_policy_unlike_the_manifests_sets_the_record_aside(
    deployed: dict[str, Any], tmp_path: Path
) -> None:
    """The record holds for the manifest's policy only: under another, with no fresh outcomes,
    the champion is scored in-sample under the policy in force, and the report says so."""
    from credit_api import policy_store
    from credit_api.policy import PolicyDocument, policy_version

    recorded = recorded_champion(deployed, tmp_path, young_approved=8)
    manifest = Manifest.model_validate_json((BUNDLED_MODEL / MANIFEST_FILE).read_text())
    changed = manifest.policy.model_copy(update={"review_band": manifest.policy.review_band / 2})
    document = PolicyDocument(
        policy_version=policy_version(changed, manifest.score_scale),
        policy=changed,
        score_scale=manifest.score_scale,
        published_at=NOW,
        by="test",
        reason="a narrower review band",
    )
    policy_store.publish(deployed["s3"], deployed["names"].bucket, document, None)
    result, report = run_gate(deployed, young_declined(0))
    gate = result.age_gate
    assert gate is not None and gate["basis"] == "in-sample" == report["age_gate"]["basis"]
    assert "as the policy in force is not its manifest's and too few fresh outcomes" in gate["reason"]
    frame = load_data()
    probabilities, _ = champion_approvals(frame)
    expected = fairness.age_band_approval(probabilities, frame, changed)
    assert gate["champion_rates"] == expected.rates != recorded.rates


def bundled_champion(**update: Any) -> Any:
    """The bundled model as the function loads it, its manifest changed by ``update``."""
    from credit_api.model_store import build

    manifest = Manifest.model_validate_json((BUNDLED_MODEL / MANIFEST_FILE).read_text())
    text = manifest.model_copy(update=update).model_dump_json()
    return build((BUNDLED_MODEL / MODEL_FILE).read_bytes(), text.encode(), source="test")


def test_enough_fresh_outcomes_measure_an_unrecorded_champion_on_the_same_rows_as_the_challenger() -> None:
    """No record: with ``AGE_FRESH_MIN_ROWS`` fresh outcomes (here the last 1000 of 1200 rows) both
    models are measured on them and the margin compares the two there; with one fewer, in-sample.
    The challenger scores as the champion except that it declines 12 young applicants among the
    first 200 rows: more than the margin below on all rows, level on the fresh ones."""
    base = load_data()
    frame = pd.concat([base.iloc[:200], base], ignore_index=True)
    champion = bundled_champion()
    probabilities, approved = champion_approvals(frame)
    young = np.flatnonzero(approved[:200] & (frame["age"].to_numpy()[:200] < 25))
    oof = probabilities.copy()
    oof[young[:12]] = 0.99
    fresh = list(range(200, 1200))
    assert len(fresh) == retrain.AGE_FRESH_MIN_ROWS
    gate = retrain.age_gate(frame, oof, champion.manifest, champion, retrain.PolicyInForce(), fresh)
    assert gate.basis == "fresh outcomes" and "measured on 1000 fresh outcomes" in gate.reason
    assert gate.champion_ratio == pytest.approx(hand_ratio(base, approved[200:]))
    assert gate.challenger_ratio_alike == pytest.approx(gate.champion_ratio)  # same rows, same scores
    assert retrain.AGE_RATIO_FLOOR <= gate.challenger_ratio < gate.champion_ratio - retrain.AGE_RATIO_MARGIN
    assert gate.passed, gate.reason  # the margin compared the fresh rows, the floor all rows
    fewer = retrain.age_gate(frame, oof, champion.manifest, champion, retrain.PolicyInForce(), fresh[1:])
    assert fewer.basis == "in-sample" and fewer.challenger_ratio_alike is None
    assert fewer.champion_ratio == pytest.approx(hand_ratio(frame, approved))


def test_an_unreadable_published_policy_keeps_the_champion(deployed: dict[str, Any]) -> None:
    """The gate cannot judge without the policy decisions are made under: it fails closed."""
    s3, bucket = deployed["s3"], deployed["names"].bucket
    pointer = {"policy_version": "policy-0", "key": "policies/policy-0.json", "sha256": "0" * 64}
    s3.put_object(Bucket=bucket, Key="models/policy.json", Body=json.dumps(pointer).encode())
    result, _ = run_gate(deployed, young_declined(0))
    assert result.verdict == "kept"
    assert "kept: the published policy cannot be read" in result.comparison.reason


EMIT_METRICS = """
import json, sys
from training import retrain
summary = json.loads(sys.stdin.read())
summary["comparison"] = retrain.Comparison(**summary["comparison"])
retrain.record_metrics(retrain.RetrainResult(**summary))
retrain.metrics.flush_metrics()
"""


def emitted_metrics(result: retrain.RetrainResult, template: dict[str, Any]) -> list[dict[str, Any]]:
    """EMF records ``record_metrics`` prints in a process with the RetrainFunction's template environment."""
    resolver = Resolver(template, names={"ModelBucket": "b", "DecisionsTable": "t"})
    return emitted(EMIT_METRICS, result.summary(), resolver, "RetrainFunction")


@pytest.mark.slow
def test_drifted_traffic_shows_in_the_retrain_drift_metrics(
    deployed: dict[str, Any], template: dict[str, Any]
) -> None:
    frame = load_data().sample(150, random_state=2)
    decide(deployed["handler"], applicants(frame.assign(age=75, months_loan_duration=60)))
    result = retrain.retrain(
        deployed["s3"], deployed["dynamodb"], deployed["settings"], trainer=trainer("random"), now=NOW
    )
    drift = result.drift
    assert {"age", "months_loan_duration"} <= set(drift["alerts"])
    assert drift["psi"]["checking_balance"] < monitor.DRIFT_ALERT  # untouched inputs stay stable

    # the DriftAlarm watches the daily monitor's figure (tests/stack/test_monitoring_run.py); the
    # retrain's own goes under its service, beside its report
    records = emitted_metrics(result, template)
    (record,) = [r for r in records if "DriftPsiMax" in metric_names(r)]
    assert metric_values([record], "DriftPsiMax") == [pytest.approx(drift["max_psi"])]
    assert drift["max_psi"] > monitor.DRIFT_ALERT
    service = template["Resources"]["RetrainFunction"]["Properties"]["Environment"]["Variables"]
    assert record["service"] == service["POWERTOOLS_SERVICE_NAME"]
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == template["Parameters"]["MetricsNamespace"]["Default"]
    assert ["service"] in directive["Dimensions"]
    per_input = {
        r["input"]: metric_values([r], "DriftPsi")[0] for r in records if "DriftPsi" in metric_names(r)
    }
    assert per_input["age"] == pytest.approx(drift["psi"]["age"])
    assert metric_values(records, "RetrainKept") == [1]


def test_no_champion_yet_promotes_the_first_challenger(aws: None, storage: dict[str, Any]) -> None:
    s3, bucket = storage["s3"], storage["names"].bucket
    s3.delete_object(Bucket=bucket, Key="models/champion.json")
    settings = retrain.RetrainSettings(bucket=bucket, table=storage["names"].table)
    result = retrain.retrain(s3, storage["dynamodb"], settings, trainer=trainer("random"), now=NOW)
    assert result.verdict == "promoted" and result.champion_version is None
    assert result.comparison.reason == "no champion has been published"


def test_settings_need_the_bucket_and_the_table() -> None:
    with pytest.raises(ValueError, match="MODEL_BUCKET, DECISIONS_TABLE"):
        retrain.RetrainSettings.from_env({})


def test_dockerfile_command_is_the_handler() -> None:
    text = (ROOT / "training" / "Dockerfile").read_text()
    assert 'CMD ["training.retrain.handler"]' in text
    assert callable(retrain.handler)


@pytest.mark.slow
def test_scheduled_event_runs_the_real_search(
    storage: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``events/retrain.json`` through the handler: ``training.train`` (quick search) against moto."""
    names = storage["names"]
    monkeypatch.setenv("MODEL_BUCKET", names.bucket)
    monkeypatch.setenv("DECISIONS_TABLE", names.table)
    monkeypatch.setenv("RETRAIN_QUICK", "1")
    event = json.loads((ROOT / "events" / "retrain.json").read_text())
    summary = retrain.handler(event, LambdaContext(function_name="RetrainFunction"))
    comparison = summary["comparison"]
    assert (
        summary["training_rows"] == 1000
        and summary["champion_version"] == storage["pointer"]["model_version"]
    )
    challenger = comparison["challenger_auc"]
    assert 0.7 < challenger < 0.9  # a real model on this data, cross-validated
    champion_cv = Manifest.model_validate_json((BUNDLED_MODEL / MANIFEST_FILE).read_text()).metrics.get(
        retrain.CV_AUC
    )
    assert comparison["basis"] == "cross-validation" and comparison["champion_auc"] == champion_cv
    gate = summary["age_gate"]
    assert 0 < gate["challenger_ratio"] <= 1 and 0 < gate["champion_ratio"] <= 1
    promote = (champion_cv is None or challenger >= champion_cv + retrain.MIN_AUC_GAIN) and gate["passed"]
    assert summary["verdict"] == ("promoted" if promote else "kept")
    s3 = storage["s3"]
    keys = objects(s3, names.bucket, f"reports/retrain/{summary['run_id']}/")
    assert any(k.endswith("retrain.json") for k in keys) and any(k.endswith(".md") for k in keys)
    pointer = json.loads(s3.get_object(Bucket=names.bucket, Key="models/champion.json")["Body"].read())
    expected = summary["challenger_version"] if promote else storage["pointer"]["model_version"]
    assert pointer["model_version"] == expected
    out = capsys.readouterr().out
    assert metric_values(emf_records(out), "ChallengerAuc") == [pytest.approx(challenger)]


@pytest.fixture
def champion(storage: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The stack's storage with champion-1 (CV 0.78) promoted over the seeded model: no function."""
    storage["seeded_version"] = storage["pointer"]["model_version"]
    storage["pointer"] = registry.publish(
        storage["s3"],
        storage["names"].bucket,
        write_model(tmp_path / "champion", "champion-1").parent,
        by="test",
        reason="the champion the tests start from",
    )
    storage["settings"] = retrain.RetrainSettings(
        bucket=storage["names"].bucket, table=storage["names"].table
    )
    return storage


def claimed(version: str, cv_auc: float, wait: Any = None) -> Any:
    """A stand-in ``train`` whose challenger claims ``cv_auc`` (manifest and result alike); ``wait``
    runs first, to hold the run after it has read the champion."""

    def train(frame: pd.DataFrame, *, out_dir: Path, seed: int, quick: bool) -> TrainedModel:
        if wait is not None:
            wait()
        oof = np.random.default_rng(seed).uniform(size=len(frame))
        return TrainedModel(write_model(out_dir, version, cv_auc=cv_auc), oof, {retrain.CV_AUC: cv_auc})

    return train


def promotions_have_their_reports(s3: Any, bucket: str) -> list[dict[str, Any]]:
    """The champion verifies and heads the history; every promotion by a run names a report that
    records that very switch. Returns the history."""
    pointer = json.loads(s3.get_object(Bucket=bucket, Key="models/champion.json")["Body"].read())
    registry.verify(s3, bucket, registry.ref_of(pointer))
    entries = registry.history(s3, bucket)
    assert (entries[0]["version"], entries[0]["key"]) == (pointer["model_version"], pointer["key"])
    for entry in entries:
        if entry["action"] == "promote" and entry["by"].startswith("retrain:"):
            report = json.loads(s3.get_object(Bucket=bucket, Key=entry["report_key"])["Body"].read())
            assert report["verdict"] == "promoted" and report["pointer"]["key"] == entry["key"]
            assert report["run_id"] == entry["by"].removeprefix("retrain:")
    return entries


@pytest.mark.parametrize("first", ["worse", "better"])
def test_overlapping_runs_never_overwrite_blindly_and_the_better_challenger_wins(
    champion: dict[str, Any], first: str
) -> None:
    """Both runs read champion-1 (CV 0.78) before either trains; one switches first, the other's
    conditional switch fails, and it re-compares against the new champion."""
    s3, bucket = champion["s3"], champion["names"].bucket
    started = threading.Barrier(2, timeout=60)
    finished = {"better": threading.Event(), "worse": threading.Event()}
    second = "better" if first == "worse" else "worse"

    def hold(name: str) -> Any:
        def wait() -> None:
            started.wait()
            if name == second:
                assert finished[first].wait(60)

        return wait

    trainers = {
        "better": claimed("challenger-better", 0.90, hold("better")),
        "worse": claimed("challenger-worse", 0.80, hold("worse")),
    }
    results: dict[str, retrain.RetrainResult] = {}

    def run(name: str) -> None:
        try:
            results[name] = retrain.retrain(
                s3, champion["dynamodb"], champion["settings"], trainer=trainers[name], now=NOW
            )
        finally:
            finished[name].set()

    threads = [threading.Thread(target=run, args=(name,)) for name in trainers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert set(results) == {"better", "worse"}
    assert results[first].verdict == "promoted" and results[first].champion_changed_to == []
    late = results[second]
    assert late.champion_changed_to == [f"challenger-{first}"]
    assert late.champion_version == f"challenger-{first}"
    if second == "better":  # it beats the new champion too: promoted, conditionally, over it
        assert late.verdict == "promoted" and late.comparison.champion_auc == 0.80
    else:
        assert late.verdict == "superseded" and late.pointer is None
        assert "does not beat champion AUC 0.9000" in late.comparison.reason
    report = json.loads(s3.get_object(Bucket=bucket, Key=late.report_keys[-1])["Body"].read())
    assert report["verdict"] == late.verdict and report["champion_changed_to"] == [f"challenger-{first}"]

    entries = promotions_have_their_reports(s3, bucket)
    assert entries[0]["version"] == "challenger-better"
    chain = [(e["version"], e["previous"]) for e in entries if e["action"] == "promote"]
    expected = (
        [("challenger-better", "challenger-worse"), ("challenger-worse", "champion-1")]
        if first == "worse"
        else [("challenger-better", "champion-1")]
    )
    assert chain[: len(expected) + 1] == [*expected, ("champion-1", champion["seeded_version"])]


class Crash(Exception):
    """Injected: the run died here."""


class CrashingS3:
    """The S3 client, with the ``crash_at``-th ``put_object`` dying before or after it is sent."""

    def __init__(self, s3: Any, crash_at: int | None = None, when: str = "before") -> None:
        self.s3, self.crash_at, self.when, self.keys = s3, crash_at, when, []

    def put_object(self, **kwargs: Any) -> Any:
        self.keys.append(kwargs["Key"])
        if len(self.keys) == self.crash_at and self.when == "before":
            raise Crash(kwargs["Key"])
        response = self.s3.put_object(**kwargs)
        if len(self.keys) == self.crash_at:
            raise Crash(kwargs["Key"])
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self.s3, name)


PROMOTION_WRITES = 7
"""A promoting run's writes: the labelled-decisions snapshot, 2 training reports, model.onnx,
manifest.json, retrain.json, the pointer."""


def test_a_promoting_run_writes_its_report_before_the_pointer(champion: dict[str, Any]) -> None:
    counting = CrashingS3(champion["s3"])
    result = retrain.retrain(
        counting, champion["dynamodb"], champion["settings"], trainer=claimed("challenger", 0.9), now=NOW
    )
    assert result.verdict == "promoted"
    assert len(counting.keys) == PROMOTION_WRITES
    assert counting.keys[-2:] == [f"reports/retrain/{result.run_id}/retrain.json", "models/champion.json"]


@pytest.mark.parametrize(
    ("crash_at", "when"),
    [
        # after the report and after the pointer in make test; every write, both sides, with -m ''
        pytest.param(k, when, marks=[] if k >= PROMOTION_WRITES - 1 and when == "after" else pytest.mark.slow)
        for k in range(1, PROMOTION_WRITES + 1)
        for when in ("before", "after")
    ],
)
def test_a_crash_at_any_write_of_a_run_leaves_champion_and_history_consistent(
    champion: dict[str, Any], crash_at: int, when: str
) -> None:
    s3, bucket = champion["s3"], champion["names"].bucket
    before = [e["version"] for e in registry.history(s3, bucket)]
    crashing = CrashingS3(s3, crash_at, when)
    with pytest.raises(Crash):
        retrain.retrain(
            crashing, champion["dynamodb"], champion["settings"], trainer=claimed("challenger", 0.9), now=NOW
        )
    switched = crash_at == PROMOTION_WRITES and when == "after"
    entries = promotions_have_their_reports(s3, bucket)
    assert [e["version"] for e in entries] == (["challenger", *before] if switched else before)
    again = retrain.retrain(
        s3, champion["dynamodb"], champion["settings"], trainer=claimed("challenger", 0.9), now=NOW
    )
    assert again.verdict == ("kept" if switched else "promoted")  # a rerun completes, or finds it done
    entries = promotions_have_their_reports(s3, bucket)
    assert [e["version"] for e in entries] == ["challenger", *before]
