"""The training command end to end: a quick run's outputs and determinism, and the full search's targets."""

import hashlib

import numpy as np
import pytest
from credit_api.manifest import MANIFEST_FILE, MODEL_FILE, Manifest
from credit_api.schema import FEATURE_NAMES
from credit_api.scoring import Scorer

from training import comparison, economics, eda, fairness
from training.data import load
from training.export import PARITY_TOLERANCE, content_version
from training.train import train

pytestmark = pytest.mark.slow


def _quick(tmp_path, name):
    return train(load(), out_dir=tmp_path / name, seed=3, quick=True, progress=lambda _: None)


def test_a_quick_run_writes_the_model_the_manifest_and_the_reports(tmp_path):
    frame = load()
    lines: list[str] = []
    result = train(frame, out_dir=tmp_path / "model", seed=3, quick=True, progress=lines.append)
    assert result.manifest_path == tmp_path / "model" / MANIFEST_FILE
    manifest = Manifest.model_validate_json(result.manifest_path.read_text())
    model = (tmp_path / "model" / MODEL_FILE).read_bytes()
    assert manifest.onnx_sha256 == hashlib.sha256(model).hexdigest()
    assert manifest.extra["quick"] is True
    assert result.oof_probabilities.shape == (len(frame),)
    assert result.cv_metrics["roc_auc"] == manifest.metrics["roc_auc"]
    # The fairness gate's record: the out-of-fold approval by age band under the manifest's policy.
    assert manifest.age_approval == fairness.age_band_approval(
        result.oof_probabilities, frame, manifest.policy
    )
    assert sum(manifest.age_approval.rows.values()) == len(frame) and manifest.age_approval.ratio is not None
    served = Scorer.from_bytes(model).predict(frame[list(FEATURE_NAMES)].to_dict("records"))
    fitted = result.estimator.predict_proba(frame[list(FEATURE_NAMES)])[:, 1]
    np.testing.assert_allclose(served, fitted, rtol=0, atol=PARITY_TOLERANCE)
    for report in (eda.REPORT, comparison.REPORT, economics.REPORT_FILE, comparison.ROC_PNG):
        assert (result.reports_dir / report).stat().st_size > 0, report
    assert (result.reports_dir / economics.PREDICTIONS_FILE).stat().st_size > 0
    assert f"Champion: **{result.champion}**" in (result.reports_dir / comparison.REPORT).read_text()
    assert any("outer fold" in line for line in lines) and lines[-1].endswith("done")


def test_the_same_seed_gives_the_same_model(tmp_path):
    """Byte for byte: the same data and seed give the same model.onnx, sha256 and version."""
    first, second = _quick(tmp_path, "a"), _quick(tmp_path, "b")
    assert (tmp_path / "a" / MODEL_FILE).read_bytes() == (tmp_path / "b" / MODEL_FILE).read_bytes()
    assert first.manifest.onnx_sha256 == second.manifest.onnx_sha256
    assert first.manifest.model_version == second.manifest.model_version
    manifest = first.manifest
    assert manifest.model_version == content_version(
        manifest.algorithm, manifest.onnx_sha256, manifest.training_data_sha256, 3
    )
    np.testing.assert_array_equal(first.oof_by_repeat, second.oof_by_repeat)
    rows = load()[list(FEATURE_NAMES)].to_dict("records")
    a = Scorer.from_bytes((tmp_path / "a" / MODEL_FILE).read_bytes()).predict(rows)
    b = Scorer.from_bytes((tmp_path / "b" / MODEL_FILE).read_bytes()).predict(rows)
    np.testing.assert_array_equal(a, b)
    assert first.manifest.metrics == second.manifest.metrics


def test_the_full_search_meets_the_targets(tmp_path):
    result = train(load(), out_dir=tmp_path / "model", progress=lambda _: None)
    assert result.cv_metrics["roc_auc"] >= comparison.TARGET_AUC
    assert result.cv_metrics["accuracy"] >= comparison.TARGET_ACCURACY


def test_the_full_protocol_drops_its_repeats_only_past_the_row_bound() -> None:
    from training.train import PROTOCOLS, REPEATED_UP_TO_ROWS, protocol_for

    assert protocol_for(1000, quick=False) == PROTOCOLS[False]
    assert protocol_for(REPEATED_UP_TO_ROWS, quick=False)["outer_repeats"] == 5
    large = protocol_for(REPEATED_UP_TO_ROWS + 1, quick=False)
    assert large == {**PROTOCOLS[False], "outer_repeats": 1}
    assert protocol_for(10 * REPEATED_UP_TO_ROWS, quick=True) == PROTOCOLS[True]
    assert PROTOCOLS[False]["outer_repeats"] == 5  # the table itself is never changed
