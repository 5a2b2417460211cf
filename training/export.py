"""Export a fitted model to ONNX with its manifest, behind a parity gate.

The graph has one input per schema feature, shape ``[N, 1]``: categorical inputs are strings,
numeric inputs float32 (every schema number is an integer well inside float32's exact range, and
scikit-learn's trees compare in float32 too), and one output ``probabilities`` ``[N, 2]`` with
no ZipMap, as ``credit_api.scoring.Scorer`` expects.

Parity gate: the export fails, writing nothing, unless scikit-learn and onnxruntime (through the
function's own ``Scorer``) agree within ``PARITY_TOLERANCE`` on every training row and on
``GENERATED_APPLICANTS`` synthetic applicants that cover every code and both bounds of every
number. The two files are written to temporary names and moved into place with ``os.replace``:
the model first, then the manifest that names its sha256, so a reader never sees a half-written
file and a crash between the two moves leaves a mismatch the loader rejects rather than serves.

Reproducible: the same fitted estimator, seed and package versions give a byte-identical
``model.onnx``. skl2onnx would name the graph with a random uuid4, so the graph gets the fixed
``GRAPH_NAME``, and it lists the opsets in a set's order, which changes with Python's string-hash
seed from one process to the next, so they are sorted by domain. Every other field it writes
(producer, domain, doc strings, node and initializer names) is a constant or a counter, and the
protobuf is serialised deterministically. The model
version is derived from content (:func:`content_version`), never from the clock; the manifest's
``created_at`` is the only clock time, and it is not in the model bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import tempfile
import time
from collections.abc import Mapping
from contextlib import suppress
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
from credit_api import age_rule
from credit_api.manifest import MANIFEST_FILE, MODEL_FILE, AgeApproval, Distribution, Manifest
from credit_api.policy import Policy, ScoreScale, decide_many
from credit_api.schema import CATEGORICAL, FEATURE_NAMES, FEATURES, TARGET, schema_hash
from credit_api.scoring import Scorer
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.base import BaseEstimator

from training import onnx_converters

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
"""Opsets skl2onnx may use at most; onnxruntime 1.32 loads these (the manifest records those used)."""
PARITY_TOLERANCE = 1e-5
GENERATED_APPLICANTS = 10_000
REFERENCE_BINS = 10
"""Deciles for the reference distributions of many-valued numbers and of the score (PSI)."""
FILE_MODE = 0o644
"""mkstemp creates owner-only files; the Lambda runtime's user must be able to read the bundle."""
GRAPH_NAME = "credit_default"
"""The ONNX graph's name; skl2onnx picks a random one otherwise, and the model's sha256 with it."""
VERSION_DIGITS = 12
"""Hex digits of the content hash in a model version, as the registry's ``models/<version>-<sha12>``."""
PACKAGES = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "pandas", "protobuf")


class ParityError(RuntimeError):
    """scikit-learn and onnxruntime disagree: the model is not exported."""


def to_onnx(estimator: BaseEstimator) -> onnx.ModelProto:
    """The fitted estimator as an ONNX graph with the service's input and output contract."""
    onnx_converters.register()
    inputs = [
        (name, StringTensorType([None, 1]) if name in CATEGORICAL else FloatTensorType([None, 1]))
        for name in FEATURE_NAMES
    ]
    model = convert_sklearn(
        estimator,
        name=GRAPH_NAME,
        doc_string="",
        initial_types=inputs,
        target_opset=TARGET_OPSET,
        options={id(estimator): {"zipmap": False}},
    )
    outputs = [o.name for o in model.graph.output]
    if "probabilities" not in outputs:
        raise ValueError(f"converted graph has outputs {outputs}, not 'probabilities'")
    _drop_unused_initializers(model.graph)
    _sort_opsets(model)
    return model


def _sort_opsets(model: onnx.ModelProto) -> None:
    """skl2onnx lists the opsets in the order of a Python set, which changes with the string-hash seed."""
    opsets = sorted(model.opset_import, key=lambda o: o.domain)
    copies = [onnx.helper.make_opsetid(o.domain, o.version) for o in opsets]
    del model.opset_import[:]
    model.opset_import.extend(copies)


def serialise(graph: onnx.ModelProto) -> bytes:
    """The model's bytes, serialised deterministically (map fields in key order)."""
    return graph.SerializeToString(deterministic=True)


def content_version(algorithm: str, onnx_sha256: str, training_data_sha256: str, seed: int) -> str:
    """``<algorithm>-<sha12>``: the hash covers the model bytes, the training data and the seed.

    The same run reproduced gives the same version; another model, other data (even one that
    happens to fit the same model) or another seed gives another. ``algorithm`` is shortened to
    its name (the text before ``:``) in the characters an S3 key and a metric dimension accept.
    """
    name = re.sub(r"[^a-z0-9_]+", "-", algorithm.split(":", 1)[0].lower()).strip("-") or "model"
    content = json.dumps(
        {"onnx_sha256": onnx_sha256, "training_data_sha256": training_data_sha256, "seed": seed},
        sort_keys=True,
    )
    return f"{name}-{hashlib.sha256(content.encode()).hexdigest()[:VERSION_DIGITS]}"


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    """skl2onnx's voting converter leaves an unused constant that onnxruntime warns about at every load."""
    used = {name for node in graph.node for name in node.input}
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:
        graph.initializer.remove(init)


def generated_applicants(n: int = GENERATED_APPLICANTS, *, seed: int) -> pd.DataFrame:
    """``n`` synthetic applicants: every code of every input, both bounds of every number, the rest uniform.

    Codes are dealt round-robin and shuffled, so each appears about equally often; numbers are
    uniform over the schema's bounds with the first two rows pinned to the minimum and maximum.
    """
    if n < max(len(f.codes) for f in FEATURES):
        raise ValueError(f"{n} applicants cannot cover every code")
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for feature in FEATURES:
        if feature.categorical:
            columns[feature.name] = rng.permutation(np.resize(np.array(list(feature.codes), dtype=object), n))
        else:
            values = rng.integers(feature.minimum, feature.maximum, endpoint=True, size=n)
            values[rng.permutation(n)[:2]] = [feature.minimum, feature.maximum]
            columns[feature.name] = values.astype(np.int64)
    return pd.DataFrame(columns)[list(FEATURE_NAMES)]


def parity(estimator: BaseEstimator, scorer: Scorer, inputs: pd.DataFrame) -> float:
    """Largest absolute difference in P(default) between scikit-learn and onnxruntime on ``inputs``."""
    expected = estimator.predict_proba(inputs[list(FEATURE_NAMES)])[:, 1]
    rows = inputs[list(FEATURE_NAMES)].to_dict("records")
    return float(np.max(np.abs(scorer.predict(rows) - expected)))


def check_parity(
    estimator: BaseEstimator,
    model: bytes,
    frame: pd.DataFrame,
    *,
    seed: int,
    generated: int = GENERATED_APPLICANTS,
) -> dict[str, float]:
    """Run the parity gate; raise :class:`ParityError` on a breach, else return the differences."""
    scorer = Scorer.from_bytes(model)
    found = {
        "max_abs_diff_data": parity(estimator, scorer, frame),
        "max_abs_diff_generated": parity(estimator, scorer, generated_applicants(generated, seed=seed)),
        "generated_applicants": float(generated),
        "tolerance": PARITY_TOLERANCE,
    }
    worst = max(found["max_abs_diff_data"], found["max_abs_diff_generated"])
    if not worst <= PARITY_TOLERANCE:
        raise ParityError(
            f"scikit-learn and onnxruntime differ by {worst:.3g} > {PARITY_TOLERANCE:g} "
            f"(data {found['max_abs_diff_data']:.3g}, generated {found['max_abs_diff_generated']:.3g})"
        )
    return found


def age_invariant(model: bytes, frame: pd.DataFrame, *, seed: int, generated: int = 1000) -> bool:
    """Whether the graph gives every row (the data and ``generated`` random applicants) exactly the
    same probability at every age the schema allows: the manifest's ``age_invariant``.

    True for the served treatment (age left out of what the model learns, so a constant column);
    the function then skips Regulation B's age variants, as ``credit_api.age_rule`` explains.
    """
    scorer = Scorer.from_bytes(model)
    inputs = pd.concat([frame[list(FEATURE_NAMES)], generated_applicants(generated, seed=seed)])
    rows = inputs[list(FEATURE_NAMES)].to_dict("records")
    return all(
        age_rule.is_invariant(scorer.run, scorer.feed(rows[start : start + 500]))
        for start in range(0, len(rows), 500)
    )


def frame_sha256(frame: pd.DataFrame) -> str:
    """sha256 of the frame as ``data/credit.csv`` is written: equal to that file's sha256 for it."""
    text = frame.to_csv(index=False, lineterminator="\n")
    return hashlib.sha256(text.encode()).hexdigest()


def _numeric_distribution(values: np.ndarray, edges: np.ndarray) -> Distribution:
    """Shares over ``[edge_i, edge_i+1)``, outer bins open-ended, as ``training.monitor`` bins them."""
    index = np.searchsorted(edges[1:-1], values, side="right")
    counts = np.bincount(index, minlength=len(edges) - 1)
    return Distribution(kind="numeric", bins=[float(e) for e in edges], shares=list(counts / counts.sum()))


def _deciles(values: np.ndarray) -> np.ndarray:
    return np.unique(np.quantile(values, np.linspace(0, 1, REFERENCE_BINS + 1)))


def reference_distributions(
    frame: pd.DataFrame, probabilities: np.ndarray, policy: Policy, scale: ScoreScale
) -> dict[str, Distribution]:
    """Training distributions of every input, of the probability of default and of the score.

    ``probabilities`` are the champion's out-of-fold probabilities (any shape): what the model
    says about applicants it has not seen, which is what live traffic will be compared with
    (in-sample probabilities of a forest are far more extreme). They go through the served
    policy (population correction, score points), so they match the decision records.
    """
    found: dict[str, Distribution] = {}
    for feature in FEATURES:
        column = frame[feature.name]
        if feature.categorical:
            shares = column.value_counts(normalize=True).reindex(list(feature.codes), fill_value=0.0)
            found[feature.name] = Distribution(
                kind="categorical", bins=list(feature.codes), shares=list(shares)
            )
            continue
        values = column.to_numpy(dtype=float)
        distinct = np.unique(values)
        edges = np.append(distinct, distinct[-1] + 1) if distinct.size <= REFERENCE_BINS else _deciles(values)
        found[feature.name] = _numeric_distribution(values, edges)
    raw = np.asarray(probabilities, dtype=float).reshape(-1)
    repeats = raw.size // len(frame)
    decisions = decide_many(
        raw,
        np.tile(frame["amount"].to_numpy(), repeats),
        np.tile(frame["months_loan_duration"].to_numpy(), repeats),
        policy,
        scale,
    )
    corrected = np.array([d.probability_of_default for d in decisions])
    scores = np.array([d.score for d in decisions], dtype=float)
    found["probability_of_default"] = _numeric_distribution(corrected, _deciles(corrected))
    found["score"] = _numeric_distribution(scores, _deciles(scores))
    return found


def package_versions() -> dict[str, str]:
    return {"python": platform.python_version(), **{name: version(name) for name in PACKAGES}}


def _stage(path: Path, content: bytes) -> Path:
    """Write ``content`` to a temporary file beside ``path`` (same filesystem); the caller moves it."""
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(handle, "wb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
    os.chmod(name, FILE_MODE)
    return Path(name)


def export(
    estimator: BaseEstimator,
    frame: pd.DataFrame,
    out_dir: Path,
    *,
    algorithm: str,
    metrics: Mapping[str, float],
    policy: Policy,
    score_scale: ScoreScale,
    reason_reference: Mapping[str, int | str],
    oof_probabilities: np.ndarray,
    seed: int,
    extra: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    age_approval: AgeApproval | None = None,
) -> Manifest:
    """Convert, check parity, and write ``model.onnx`` and ``manifest.json`` into ``out_dir``.

    ``age_approval``: the out-of-fold approval by age band under ``policy``
    (:func:`training.fairness.age_band_approval`), recorded for the retrain's fairness gate.

    Raises :class:`ParityError` (writing nothing) if onnxruntime does not reproduce scikit-learn.
    """
    graph = to_onnx(estimator)
    model = serialise(graph)
    parity_found = check_parity(estimator, model, frame, seed=seed)
    onnx_sha = hashlib.sha256(model).hexdigest()
    data_sha = frame_sha256(frame[[*FEATURE_NAMES, TARGET]])
    created = (now or datetime.now(UTC)).replace(microsecond=0)
    manifest = Manifest(
        model_version=content_version(algorithm, onnx_sha, data_sha, seed),
        created_at=created,
        onnx_sha256=onnx_sha,
        onnx_opset={o.domain or "ai.onnx": int(o.version) for o in graph.opset_import},
        schema_hash=schema_hash(),
        features=list(FEATURE_NAMES),
        algorithm=algorithm,
        metrics=dict(metrics),
        policy=policy,
        score_scale=score_scale,
        reason_reference=dict(reason_reference),
        reference_distributions=reference_distributions(frame, oof_probabilities, policy, score_scale),
        age_invariant=age_invariant(model, frame, seed=seed),
        age_approval=age_approval,
        training_data_sha256=data_sha,
        package_versions=package_versions(),
        extra={"parity": parity_found, "onnx_bytes": len(model), **(extra or {})},
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    staged = []
    try:
        staged.append((_stage(out_dir / MODEL_FILE, model), out_dir / MODEL_FILE))
        text = manifest.model_dump_json(indent=2) + "\n"
        staged.append((_stage(out_dir / MANIFEST_FILE, text.encode()), out_dir / MANIFEST_FILE))
        for temporary, final in staged:
            os.replace(temporary, final)
    finally:
        for temporary, _ in staged:
            with suppress(FileNotFoundError):
                temporary.unlink()
    return manifest


def single_row_latency(model: bytes, row: Mapping[str, Any], *, runs: int = 300) -> dict[str, float]:
    """Milliseconds for one applicant through ``Scorer.run`` (feed prepared), after a warm-up."""
    scorer = Scorer.from_bytes(model)
    feed = scorer.feed([row])
    for _ in range(20):
        scorer.run(feed)
    timings = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        scorer.run(feed)
        timings[i] = time.perf_counter() - start
    return {"p50": float(np.median(timings) * 1000), "p95": float(np.quantile(timings, 0.95) * 1000)}
