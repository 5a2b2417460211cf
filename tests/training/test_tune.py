"""Nested CV: honest (the search sees only outer-training rows), exact, deterministic."""

import numpy as np
import pytest
from credit_api.schema import FEATURE_NAMES, TARGET

import training.tune as tune
from training.data import load
from training.models import build, candidates
from training.tune import fold_seed, nested_cv

SEED = 11


@pytest.fixture(scope="module")
def frame():
    return load()


@pytest.fixture(scope="module")
def quick_run(frame):
    return nested_cv(
        frame, candidates(quick=True), seed=SEED, outer_splits=3, outer_repeats=1, inner_splits=2, n_jobs=1
    )


def _small(names):
    catalogue = candidates(quick=True)
    return {name: catalogue[name] for name in names}


def test_results_do_not_depend_on_the_number_of_workers_or_the_run(frame):
    kwargs = {
        "seed": SEED,
        "outer_splits": 3,
        "outer_repeats": 2,
        "inner_splits": 2,
        "progress": lambda _: None,
    }
    catalogue = _small(["decision_tree", "logistic_regression"])
    first = nested_cv(frame, catalogue, n_jobs=1, **kwargs)
    again = nested_cv(frame, catalogue, n_jobs=1, **kwargs)
    parallel = nested_cv(frame, catalogue, n_jobs=2, **kwargs)
    for name in catalogue:
        assert not np.isnan(first[name].probabilities).any()
        np.testing.assert_array_equal(first[name].probabilities, again[name].probabilities)
        np.testing.assert_array_equal(first[name].probabilities, parallel[name].probabilities)
        assert first[name].params == parallel[name].params


def test_a_different_seed_gives_different_folds(frame):
    kwargs = {
        "outer_splits": 3,
        "outer_repeats": 1,
        "inner_splits": 2,
        "n_jobs": 1,
        "progress": lambda _: None,
    }
    catalogue = _small(["logistic_regression"])
    a = nested_cv(frame, catalogue, seed=1, **kwargs)["logistic_regression"]
    b = nested_cv(frame, catalogue, seed=2, **kwargs)["logistic_regression"]
    assert not all(np.array_equal(x[2], y[2]) for x, y in zip(a.folds, b.folds, strict=True))


def test_each_outer_search_sees_exactly_its_training_rows(frame, monkeypatch):
    """Tag every encoded row with its index; record which rows each search is given."""
    encode = tune.encode

    def tagged(data):
        return {kind: np.column_stack([x, np.arange(len(x))]) for kind, x in encode(data).items()}

    seen: list[set[int]] = []
    search = tune.search

    def spy(candidate, x, y, **kwargs):
        seen.append(set(x[:, -1].astype(int)))
        return search(candidate, x, y, **kwargs)

    monkeypatch.setattr(tune, "encode", tagged)
    monkeypatch.setattr(tune, "search", spy)
    result = nested_cv(
        frame, _small(["decision_tree"]), seed=SEED, outer_splits=4, outer_repeats=2, inner_splits=2, n_jobs=1
    )["decision_tree"]
    everyone = set(range(len(frame)))
    assert len(seen) == len(result.folds) == 8
    for rows, (_, _, test) in zip(seen, result.folds, strict=True):
        assert rows == everyone - set(test.tolist())


def test_every_row_is_predicted_once_per_repeat(quick_run):
    for result in quick_run.values():
        assert not np.isnan(result.probabilities).any()
        tested = np.concatenate([test for _, _, test in result.folds])
        assert sorted(tested.tolist()) == list(range(result.probabilities.shape[1]))


def test_the_ensemble_row_is_what_a_soft_voting_classifier_of_the_tuned_members_predicts(frame, quick_run):
    catalogue = candidates(quick=True)
    result = quick_run["soft_voting"]
    index, repeat, test = result.folds[0]
    members = [quick_run[m].probabilities[repeat, test] for m in catalogue["soft_voting"].members]
    np.testing.assert_allclose(
        result.probabilities[repeat, test], np.mean(members, axis=0), rtol=0, atol=1e-15
    )

    train = np.setdiff1d(np.arange(len(frame)), test)
    voting = build(catalogue["soft_voting"], result.params[0], fold_seed(SEED, index), catalogue)
    voting.fit(frame.iloc[train][list(FEATURE_NAMES)], frame.iloc[train][TARGET])
    refit = voting.predict_proba(frame.iloc[test][list(FEATURE_NAMES)])[:, 1]
    np.testing.assert_allclose(refit, result.probabilities[repeat, test], rtol=0, atol=1e-12)


def test_search_rows_keeps_every_row_within_the_budget_and_each_class_share_above_it() -> None:
    y = np.array([1] * 300 + [0] * 700)
    assert np.array_equal(tune.search_rows(y, None, seed=0), np.arange(1000))
    assert np.array_equal(tune.search_rows(y, 1000, seed=0), np.arange(1000))
    picked = tune.search_rows(y, 100, seed=0)
    assert len(picked) == 100 and len(set(picked)) == 100
    assert int(y[picked].sum()) == 30  # 30% defaults in, 30% defaults out
    assert np.array_equal(picked, tune.search_rows(y, 100, seed=0))  # seeded


def test_a_bounded_search_chooses_on_the_subsample_and_refits_on_every_row() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 3))
    y = (x[:, 0] + rng.normal(scale=0.5, size=600) > 0).astype(int)
    candidate = candidates(quick=True)["decision_tree"]
    rows = tune.search_rows(y, 200, seed=1)
    expected, _, _ = tune.search(candidate, x[rows], y[rows], seed=1, inner_splits=2)
    params, model, _ = tune.bounded_search(candidate, x, y, seed=1, inner_splits=2, max_rows=200)
    assert params == expected
    assert model.tree_.n_node_samples[0] == 600  # the chosen tree was fitted on all 600 rows
