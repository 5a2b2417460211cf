"""The scorer: the native onnxruntime run it uses equals the checked public one, row for row."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from credit_api.manifest import MODEL_FILE
from credit_api.schema import FEATURE_NAMES
from credit_api.scoring import Scorer
from credit_api.settings import BUNDLED_MODEL_DIR

from tests.economics.test_reasons import CountingSession

DATA = Path(__file__).resolve().parents[2] / "data" / "credit.csv"


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.from_bytes((BUNDLED_MODEL_DIR / MODEL_FILE).read_bytes())


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    with DATA.open() as f:
        return [
            {k: int(v) if v.lstrip("-").isdigit() else v for k, v in r.items()} for r in csv.DictReader(f)
        ]


def test_native_run_equals_the_public_run_on_every_data_row(scorer: Scorer, rows: list[dict]) -> None:
    feed = scorer.feed(rows)
    (public,) = scorer.session.run(["probabilities"], feed)
    assert np.array_equal(scorer.run(feed), np.asarray(public, dtype=np.float64)[:, 1])
    one = scorer.feed(rows[:1])
    assert scorer.run(one)[0] == scorer.run(feed)[0]


def test_a_session_without_a_native_object_is_run_through_its_own_run(
    scorer: Scorer, rows: list[dict]
) -> None:
    double = CountingSession(scorer.session)  # only the public run(), as tests elsewhere wrap sessions
    wrapped = Scorer(double)
    feed = scorer.feed(rows[:20])
    assert np.array_equal(wrapped.run(feed), scorer.run(feed))
    assert double.runs == 1


def test_a_missing_input_still_fails_on_the_native_path(scorer: Scorer, rows: list[dict]) -> None:
    feed = scorer.feed(rows[:1])
    feed.pop(FEATURE_NAMES[-1])
    with pytest.raises(Exception, match=FEATURE_NAMES[-1]):
        scorer.run(feed)
