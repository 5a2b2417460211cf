"""The same API built the obvious way: a joblib-loaded scikit-learn pipeline, a DataFrame per request.

Everything else is the function's own code (routes, validation, policy, reasons, decision log,
Powertools, Mangum), so the benchmark isolates the serving stack: scikit-learn + pandas +
pickle versus onnxruntime + numpy. The pipeline path comes from ``BASELINE_PIPELINE``.

The shared modules import onnxruntime at the top for the ONNX scorer, which this build never
uses; an obvious build would not ship it, so a placeholder module stands in for it here and
the baseline's cold start is not charged for an import it would not make.
"""

from __future__ import annotations

import os
import sys
import time
import types
import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

sys.modules.setdefault("onnxruntime", types.ModuleType("onnxruntime"))

from credit_api import age_rule  # noqa: E402
from credit_api.api import create_app  # noqa: E402
from credit_api.lambda_handler import make_handler  # noqa: E402
from credit_api.manifest import MANIFEST_FILE, Manifest  # noqa: E402
from credit_api.model_store import LoadedModel  # noqa: E402
from credit_api.policy_store import ServedPolicy  # noqa: E402
from credit_api.schema import FEATURE_NAMES  # noqa: E402
from credit_api.settings import Settings  # noqa: E402


class PandasScorer:
    """The Scorer interface over a scikit-learn pipeline: columns become a DataFrame each call."""

    def __init__(self, pipeline: Any, *, age_invariant: bool = False) -> None:
        self.pipeline = pipeline
        self.age_invariant = age_invariant
        """As :class:`credit_api.scoring.Scorer`: the manifest's verified claim, read by the reasons."""

    def feed(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        return {name: np.array([row[name] for row in rows]).reshape(-1, 1) for name in FEATURE_NAMES}

    def run(self, feed: Mapping[str, np.ndarray]) -> np.ndarray:
        frame = pd.DataFrame({name: feed[name].reshape(-1) for name in FEATURE_NAMES})
        return self.pipeline.predict_proba(frame)[:, 1]

    def predict(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self.run(self.feed(rows))

    def score(self, feed: Mapping[str, np.ndarray]) -> np.ndarray:
        """As served, with Regulation B's age rule, exactly as :meth:`credit_api.scoring.Scorer.score`."""
        if self.age_invariant:
            return self.run(feed)
        expanded, owner, n = age_rule.expand_feed(feed)
        return age_rule.collapse(self.run(expanded), owner, n)


class JoblibStore:
    """Loads the pickle on first use, as the function loads its model."""

    shadow: LoadedModel | None = None
    """The obvious build runs no shadow challenger."""

    def __init__(self, pipeline_path: Path, model_dir: Path) -> None:
        self.pipeline_path = pipeline_path
        self.model_dir = model_dir
        self._model: LoadedModel | None = None

    def current(self) -> LoadedModel:
        if self._model is None:
            started = time.perf_counter()
            manifest = Manifest.model_validate_json((self.model_dir / MANIFEST_FILE).read_text())
            scorer = PandasScorer(joblib.load(self.pipeline_path), age_invariant=manifest.age_invariant)
            self._model = LoadedModel(
                scorer=scorer,  # type: ignore[arg-type]
                manifest=manifest,
                sha256="",
                source=f"joblib:{self.pipeline_path.name}",
                loaded_at=datetime.now(UTC),
                load_ms=(time.perf_counter() - started) * 1000,
            )
        return self._model

    def served(self) -> tuple[LoadedModel, ServedPolicy]:
        """The model and its manifest's policy (the obvious build publishes no policy apart)."""
        model = self.current()
        return model, ServedPolicy.of_manifest(model.manifest)


warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

settings = Settings.from_env()
app = create_app(settings, store=JoblibStore(Path(os.environ["BASELINE_PIPELINE"]), settings.model_dir))  # type: ignore[arg-type]
handler = make_handler(app)
