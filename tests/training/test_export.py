"""ONNX export: the service's contract, the parity gate, atomic writes, the HistGradientBoosting trap,
byte-identical output and a version derived from content."""

import hashlib
import json
import os
import pickle
import subprocess
import sys
from datetime import UTC, datetime

import google.protobuf
import numpy as np
import onnx
import pytest
from credit_api.manifest import MANIFEST_FILE, MODEL_FILE, Manifest
from credit_api.schema import (
    BY_NAME,
    CATEGORICAL,
    EXAMPLE_APPLICANT,
    FEATURE_NAMES,
    FEATURES,
    TARGET,
    schema_hash,
)
from credit_api.scoring import Scorer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

import training.export as export_module
from training import config, fairness
from training.calibration import PlattCalibrated, champion_calibration
from training.data import CREDIT_CSV, load, sha256_file
from training.export import (
    GENERATED_APPLICANTS,
    GRAPH_NAME,
    PARITY_TOLERANCE,
    VERSION_DIGITS,
    ParityError,
    check_parity,
    content_version,
    export,
    generated_applicants,
    serialise,
    to_onnx,
)
from training.features import tree_encoder
from training.models import build, candidates

SEED = 5


@pytest.fixture(scope="module")
def frame():
    return load()


def _fitted(name, frame, params=None):
    catalogue = candidates(quick=True)
    defaults = {
        "decision_tree": {"max_depth": 5, "min_samples_leaf": 10},
        "logistic_regression": {"model__C": 0.1},
        "random_forest": {"max_features": "sqrt", "min_samples_leaf": 2},
        "gradient_boosting": {"learning_rate": 0.1, "max_depth": 3, "n_estimators": 40},
    }
    defaults["soft_voting"] = {m: defaults[m] for m in catalogue["soft_voting"].members}
    model = build(catalogue[name], params or defaults[name], SEED, catalogue)
    return model.fit(frame[list(FEATURE_NAMES)], frame[TARGET])


@pytest.fixture(scope="module")
def logistic(frame):
    return _fitted("logistic_regression", frame)


def test_generated_applicants_cover_every_code_and_both_bounds():
    applicants = generated_applicants(seed=SEED)
    assert len(applicants) == GENERATED_APPLICANTS >= 10_000
    assert list(applicants.columns) == list(FEATURE_NAMES)
    for feature in FEATURES:
        column = applicants[feature.name]
        if feature.categorical:
            assert set(column) == set(feature.codes)
        else:
            assert column.min() == feature.minimum and column.max() == feature.maximum


def _assert_service_contract(graph):
    declared = {i.name: i.type.tensor_type.elem_type for i in graph.graph.input}
    string, single = onnx.TensorProto.STRING, onnx.TensorProto.FLOAT
    assert declared == {n: string if n in CATEGORICAL else single for n in FEATURE_NAMES}
    assert "probabilities" in [o.name for o in graph.graph.output]
    assert "ZipMap" not in {node.op_type for node in graph.graph.node}


@pytest.mark.parametrize(
    "name", ["decision_tree", "logistic_regression", "random_forest", "gradient_boosting", "soft_voting"]
)
def test_every_candidate_converts_with_the_service_contract_and_parity(name, frame):
    model = _fitted(name, frame)
    graph = to_onnx(model)
    _assert_service_contract(graph)
    found = check_parity(model, graph.SerializeToString(), frame, seed=SEED)
    assert found["max_abs_diff_data"] <= PARITY_TOLERANCE
    assert found["max_abs_diff_generated"] <= PARITY_TOLERANCE


def _grid_point(candidate, catalogue):
    """The first point of the candidate's search space (a member's for an ensemble), with the
    fewest trees a staged search may stop at: a model the search can return."""
    if candidate.ensemble:
        return {m: _grid_point(catalogue[m], catalogue) for m in candidate.members}
    params = {name: values[0] for name, values in candidate.grid.items()}
    if candidate.search == "staged":
        params[candidate.trees_param] = min(20, candidate.max_trees)
    return params


@pytest.mark.parametrize("name", sorted(candidates(quick=True)))
def test_every_candidate_calibrated_as_training_calibrates_it_exports_with_parity(name, frame, tmp_path):
    """The retrain's latent defect: a calibrated single model (a pipeline) failed to convert
    ("Empty inputs ... OnnxSubEstimator"), and a calibrated tree's certain leaves broke parity."""
    catalogue = candidates(quick=True)
    wrapped = build(catalogue[name], _grid_point(catalogue[name], catalogue), SEED, catalogue)
    model = champion_calibration(wrapped, SEED).fit(frame[list(FEATURE_NAMES)], frame[TARGET])
    assert model.slope_ != 1.0
    graph = to_onnx(model)
    _assert_service_contract(graph)
    found = check_parity(model, serialise(graph), frame, seed=SEED, generated=2000)
    assert found["max_abs_diff_data"] <= PARITY_TOLERANCE
    assert found["max_abs_diff_generated"] <= PARITY_TOLERANCE
    expected = model.predict_proba(frame[list(FEATURE_NAMES)])[:, 1]
    served = Scorer.from_bytes(serialise(graph)).predict(frame[list(FEATURE_NAMES)].to_dict("records"))
    np.testing.assert_allclose(served, expected, rtol=0, atol=PARITY_TOLERANCE)


def test_a_calibrated_model_keeps_parity_on_leaves_that_are_certain(frame):
    """p = 1 is clipped to 1 - CLIP before the logit; in float32 that constant is 1.3% off in
    1 - p, which moved the calibrated probability by about 3e-4. The graph clips in float64."""
    catalogue = candidates(quick=True)
    tree = build(catalogue["decision_tree"], {"max_depth": 8, "min_samples_leaf": 2}, SEED, catalogue)
    model = champion_calibration(tree, SEED).fit(frame[list(FEATURE_NAMES)], frame[TARGET])
    raw = model.estimator_.predict_proba(frame[list(FEATURE_NAMES)])[:, 1]
    assert (raw == 1.0).any() and (raw == 0.0).any(), "the tree must have certain leaves to test them"
    found = check_parity(model, serialise(to_onnx(model)), frame, seed=SEED, generated=2000)
    assert max(found["max_abs_diff_data"], found["max_abs_diff_generated"]) <= PARITY_TOLERANCE


def test_a_calibrated_model_is_converted_to_the_same_bytes_twice(frame):
    catalogue = candidates(quick=True)
    wrapped = build(catalogue["logistic_regression"], {"model__C": 0.1}, SEED, catalogue)
    model = champion_calibration(wrapped, SEED).fit(frame[list(FEATURE_NAMES)], frame[TARGET])
    assert serialise(to_onnx(model)) == serialise(to_onnx(model))
    assert to_onnx(model).graph.name == GRAPH_NAME


@pytest.mark.filterwarnings("ignore:Field onnx.AttributeProto.ints:DeprecationWarning")
def test_hist_gradient_boosting_converts_with_parity(frame):
    """skl2onnx 1.20 writes HistGradientBoosting's missing-value flags as Python booleans into an
    integer attribute; protobuf 7 rejects that ("Field onnx.AttributeProto.ints: Expected an int,
    got a boolean"), protobuf 6 accepts it with the DeprecationWarning filtered here. pyproject.toml
    pins protobuf<7 for this reason. One OpenMP thread: HistGradientBoosting's threads crawl on a
    shared machine."""
    assert int(google.protobuf.__version__.split(".")[0]) < 7, (
        f"protobuf {google.protobuf.__version__}: skl2onnx 1.20 cannot convert HistGradientBoosting with"
        " protobuf 7 ('Expected an int, got a boolean'); keep the pin protobuf<7 in pyproject.toml"
    )
    boosting = HistGradientBoostingClassifier(max_iter=30, random_state=SEED)
    model = Pipeline([("encode", tree_encoder()), ("model", boosting)])
    with threadpool_limits(1):
        model.fit(frame[list(FEATURE_NAMES)], frame[TARGET])
    found = check_parity(model, to_onnx(model).SerializeToString(), frame, seed=SEED)
    assert max(found["max_abs_diff_data"], found["max_abs_diff_generated"]) <= PARITY_TOLERANCE


def _export(model, frame, out_dir, now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), **overrides):
    arguments = {
        "algorithm": "logistic_regression (test)",
        "metrics": {"roc_auc": 0.5},
        "policy": config.DEFAULT_POLICY,
        "score_scale": config.DEFAULT_SCALE,
        "reason_reference": EXAMPLE_APPLICANT,
        "oof_probabilities": np.full((2, len(frame)), 0.3) + np.linspace(0, 0.2, len(frame)),
        "seed": SEED,
        "now": now,
    }
    return export(model, frame, out_dir, **(arguments | overrides))


def test_export_writes_a_model_and_a_manifest_that_describe_each_other(frame, logistic, tmp_path):
    manifest = _export(logistic, frame, tmp_path)
    model = (tmp_path / MODEL_FILE).read_bytes()
    written = Manifest.model_validate_json((tmp_path / MANIFEST_FILE).read_text())
    assert written == manifest
    assert written.onnx_sha256 == hashlib.sha256(model).hexdigest()
    assert written.model_version == content_version(
        "logistic_regression (test)", written.onnx_sha256, written.training_data_sha256, SEED
    )
    assert written.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert written.schema_hash == schema_hash()
    assert written.features == list(FEATURE_NAMES)
    assert written.onnx_opset == {
        o.domain or "ai.onnx": o.version for o in onnx.load_from_string(model).opset_import
    }
    assert written.training_data_sha256 == sha256_file(CREDIT_CSV)
    assert set(written.reference_distributions) == {*FEATURE_NAMES, "score", "probability_of_default"}
    for name, distribution in written.reference_distributions.items():
        assert sum(distribution.shares) == pytest.approx(1.0), name
    assert written.reference_distributions["purpose"].bins == list(BY_NAME["purpose"].codes)
    assert written.extra["parity"]["max_abs_diff_generated"] <= PARITY_TOLERANCE
    assert {"scikit-learn", "skl2onnx", "onnxruntime", "protobuf"} <= set(written.package_versions)
    probabilities = Scorer.from_bytes(model).predict(frame[list(FEATURE_NAMES)].to_dict("records"))
    expected = logistic.predict_proba(frame[list(FEATURE_NAMES)])[:, 1]
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=PARITY_TOLERANCE)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_FILE, MODEL_FILE]
    for name in (MODEL_FILE, MANIFEST_FILE):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, "others (the Lambda runtime) must read it"


def test_the_manifest_records_the_age_approval_it_is_given_and_older_manifests_still_load(
    frame, logistic, tmp_path
):
    oof = np.linspace(0.05, 0.6, len(frame))
    recorded = fairness.age_band_approval(oof, frame, config.DEFAULT_POLICY)
    manifest = _export(logistic, frame, tmp_path, oof_probabilities=oof, age_approval=recorded)
    text = (tmp_path / MANIFEST_FILE).read_text()
    assert Manifest.model_validate_json(text).age_approval == recorded == manifest.age_approval
    assert set(recorded.rows) == {label for label, _ in fairness.AGE_BANDS}
    older = json.loads(text)
    del older["age_approval"]  # a manifest written before the field: loads, with nothing recorded
    assert Manifest.model_validate(older).age_approval is None


def test_a_parity_breach_fails_the_export_and_leaves_the_old_model(frame, logistic, tmp_path, monkeypatch):
    (tmp_path / MODEL_FILE).write_bytes(b"old model")
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({"old": True}))
    tampered = to_onnx(logistic)
    (linear,) = [node for node in tampered.graph.node if node.op_type == "LinearClassifier"]
    (coefficients,) = [a for a in linear.attribute if a.name == "coefficients"]
    coefficients.floats[:] = [w * 1.001 for w in coefficients.floats]
    monkeypatch.setattr(export_module, "to_onnx", lambda _: tampered)
    with pytest.raises(ParityError, match="differ by"):
        _export(logistic, frame, tmp_path)
    assert (tmp_path / MODEL_FILE).read_bytes() == b"old model"
    assert json.loads((tmp_path / MANIFEST_FILE).read_text()) == {"old": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_FILE, MODEL_FILE]


def test_a_failed_write_replaces_nothing_and_leaves_no_temporary_files(
    frame, logistic, tmp_path, monkeypatch
):
    (tmp_path / MODEL_FILE).write_bytes(b"old model")
    (tmp_path / MANIFEST_FILE).write_text("{}")
    stage = export_module._stage
    calls = []

    def failing_second_write(path, content):
        calls.append(path.name)
        if len(calls) == 2:
            raise OSError("disk full")
        return stage(path, content)

    monkeypatch.setattr(export_module, "_stage", failing_second_write)
    with pytest.raises(OSError, match="disk full"):
        _export(logistic, frame, tmp_path)
    assert calls == [MODEL_FILE, MANIFEST_FILE]
    assert (tmp_path / MODEL_FILE).read_bytes() == b"old model"
    assert (tmp_path / MANIFEST_FILE).read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_FILE, MODEL_FILE]


def test_exporting_twice_gives_the_same_bytes_and_version_whatever_the_clock(frame, logistic, tmp_path):
    first = _export(logistic, frame, tmp_path / "a", now=datetime(2026, 1, 2, tzinfo=UTC))
    second = _export(logistic, frame, tmp_path / "b", now=datetime(2027, 6, 7, tzinfo=UTC))
    assert (tmp_path / "a" / MODEL_FILE).read_bytes() == (tmp_path / "b" / MODEL_FILE).read_bytes()
    assert first.onnx_sha256 == second.onnx_sha256
    assert first.model_version == second.model_version
    assert first.created_at != second.created_at
    assert first.model_copy(update={"created_at": second.created_at}) == second


def test_the_graph_has_the_fixed_name_and_no_doc_string(logistic):
    graph = to_onnx(logistic)
    assert graph.graph.name == GRAPH_NAME
    assert graph.doc_string == "" and graph.graph.doc_string == ""


def test_the_version_names_the_algorithm_and_changes_with_the_model_the_data_or_the_seed():
    model, data = "a" * 64, "b" * 64
    version = content_version("calibrated soft_voting: Soft voting", model, data, 7)
    name, digest = version.rsplit("-", 1)
    assert name == "calibrated-soft_voting" and len(digest) == VERSION_DIGITS
    int(digest, 16)
    assert version == content_version("calibrated soft_voting: another label", model, data, 7)
    others = {
        content_version("calibrated soft_voting", "c" * 64, data, 7),
        content_version("calibrated soft_voting", model, "c" * 64, 7),
        content_version("calibrated soft_voting", model, data, 8),
    }
    assert version not in others and len(others) == 3


CONVERT = """
import pickle, sys
from training.export import serialise, to_onnx
with open(sys.argv[1], "rb") as file:
    estimator = pickle.load(file)
sys.stdout.buffer.write(serialise(to_onnx(estimator)))
"""


@pytest.mark.slow
def test_separate_processes_convert_the_same_estimator_to_the_same_bytes(frame, tmp_path):
    """A fresh interpreter each time, with another string-hash seed: catches random names, names
    from memory addresses and set or dict orders that vary between runs. A calibrated ensemble
    exercises every converter the project's champions use (voting, forest, boosting, logistic
    regression, the project's own transformers and Platt scaling)."""
    voting = build(
        candidates(quick=True)["soft_voting"],
        {
            "logistic_regression": {"model__C": 0.1},
            "random_forest": {"max_features": "sqrt", "min_samples_leaf": 3},
            "gradient_boosting": {"learning_rate": 0.1, "max_depth": 2, "n_estimators": 10},
        },
        SEED,
        candidates(quick=True),
    )
    model = PlattCalibrated(voting, cv=StratifiedKFold(2, shuffle=True, random_state=SEED))
    model.fit(frame[list(FEATURE_NAMES)], frame[TARGET])
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps(model))
    outputs = [
        subprocess.run(
            [sys.executable, "-c", CONVERT, str(pickled)],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            check=True,
        ).stdout
        for hash_seed in ("1", "2")
    ]
    assert outputs[0] == outputs[1] == serialise(to_onnx(model))
    assert len(outputs[0]) > 10_000
