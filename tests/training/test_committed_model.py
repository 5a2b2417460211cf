"""The model committed under function/model/: its manifest matches it, the schema and the data."""

import hashlib

import numpy as np
import onnx
import pytest
from credit_api.manifest import MANIFEST_FILE, MODEL_FILE, Manifest
from credit_api.schema import CATEGORICAL, EXAMPLE_APPLICANT, FEATURE_NAMES, TARGET, schema_hash
from credit_api.scoring import Scorer

from training.data import CREDIT_CSV, load, sha256_file
from training.export import PARITY_TOLERANCE
from training.reference import favourable_reference
from training.train import MODEL_DIR

METRICS = ("roc_auc", "gini", "ks", "accuracy", "accuracy_at_cost_cutoff", "brier", "expected_cost")


@pytest.fixture(scope="module")
def model() -> bytes:
    return (MODEL_DIR / MODEL_FILE).read_bytes()


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return Manifest.model_validate_json((MODEL_DIR / MANIFEST_FILE).read_text(encoding="utf-8"))


def test_manifest_names_this_model_and_this_schema(model, manifest):
    assert manifest.onnx_sha256 == hashlib.sha256(model).hexdigest()
    assert manifest.schema_hash == schema_hash()
    assert manifest.features == list(FEATURE_NAMES)
    graph = onnx.load_from_string(model)
    assert manifest.onnx_opset == {o.domain or "ai.onnx": o.version for o in graph.opset_import}
    assert [i.name for i in graph.graph.input] == list(FEATURE_NAMES)
    string, single = onnx.TensorProto.STRING, onnx.TensorProto.FLOAT
    assert [i.type.tensor_type.elem_type for i in graph.graph.input] == [
        string if name in CATEGORICAL else single for name in FEATURE_NAMES
    ]
    assert "probabilities" in [o.name for o in graph.graph.output]
    assert "ZipMap" not in {node.op_type for node in graph.graph.node}


def test_it_is_the_real_champion_trained_on_the_committed_data(manifest):
    assert manifest.model_version != "bootstrap-0"
    assert manifest.extra["quick"] is False
    assert manifest.training_data_sha256 == sha256_file(CREDIT_CSV)
    for name in METRICS:
        assert np.isfinite(manifest.metrics[name]) and np.isfinite(manifest.metrics[f"{name}_std"]), name
    parity = manifest.extra["parity"]
    assert parity["generated_applicants"] >= 10_000
    assert max(parity["max_abs_diff_data"], parity["max_abs_diff_generated"]) <= PARITY_TOLERANCE


def test_reference_values_and_distributions_are_the_datas(manifest):
    assert manifest.reason_reference == favourable_reference(load())
    assert set(manifest.reference_distributions) == {*FEATURE_NAMES, "score", "probability_of_default"}


def test_the_function_can_load_and_run_it(model):
    scorer = Scorer.from_bytes(model)
    frame = load()
    probabilities = scorer.predict(frame[list(FEATURE_NAMES)].to_dict("records"))
    assert probabilities.shape == (len(frame),)
    assert np.all((probabilities > 0) & (probabilities < 1))
    # the bad loans are ranked above the good ones far more often than not
    bad, good = probabilities[frame[TARGET] == 1], probabilities[frame[TARGET] == 0]
    assert np.mean(bad[:, None] > good[None, :]) > 0.75
    assert 0 < scorer.predict([EXAMPLE_APPLICANT])[0] < 1
