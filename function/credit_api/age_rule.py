"""Regulation B's age rule, enforced on every probability the function computes.

12 CFR 1002.6(b)(2)(ii) lets an empirically derived credit scoring system use age only if an
applicant aged 62 or over is never scored less favourably for age than a younger one. Measured on
the trained ensemble (issue #11), 6 of the 38 applicants aged 62+ in the data got a slightly higher
probability of default at their own age than at some younger age (at most 0.002), so the rule is
not a property of the model and is enforced here instead:

- for each row aged ``AGE_PROTECTED_FROM`` or over, the same row is also scored at every younger
  age the schema allows (``YOUNGEST`` to its own age minus one), in the SAME onnxruntime run as the
  rows themselves;
- the row's probability of default is the lowest of them (:func:`collapse`).

So a protected applicant's probability is never above what any younger age would give, and
since decision, score and grade are monotone in the probability, none of them is worse either.
It also holds among protected ages: the minimum over ``[YOUNGEST, a]`` can only fall as ``a`` grows.
Every age is tried rather than only the model's split points, because the ensemble's logistic
member is smooth in age: the rule must not depend on what kind of model is served.

Cost: an applicant aged ``a >= 62`` adds ``a - 18`` rows to the run (44 at 62, 82 at 100), so a
single request's model run costs several times the model alone, still under a millisecond, and a
batch costs more by about the share of its rows aged 62+ times fifty; younger applicants cost
nothing extra. ``reports/fairness.md`` has the p50 and p95 measured by ``make train``.

**A model that does not depend on age** (the served treatment leaves age out, issue #11) meets
the rule by construction, and the expansion would only cost time. Such a model's manifest says
``age_invariant: true``, which the export writes only after :func:`is_invariant` held on every
training row at every age the schema allows, and which the function checks again at load on
its reference rows (``credit_api.model_store.build`` refuses a model whose claim fails). With
it, :meth:`credit_api.scoring.Scorer.score` is the model run alone, and age is never a reason
candidate at all. Without it (any model that may use age), the rule is enforced as above.

Reason codes go through the same run (``credit_api.reasons`` calls
:meth:`credit_api.scoring.Scorer.score`), so each variant used for a reason also obeys the rule,
and age itself is never cited for a protected applicant.

numpy only: ``training/`` uses the same two functions on data frames, so the rule measured in
training is the rule served.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from credit_api.schema import BY_NAME

AGE = "age"
AGE_PROTECTED_FROM = 62
"""Regulation B's elderly applicant: aged 62 or over (12 CFR 1002.2(o))."""
YOUNGEST = int(BY_NAME[AGE].minimum)
"""The youngest age the schema accepts: no applicant can be compared with a younger one."""
OLDEST = int(BY_NAME[AGE].maximum)


def variants(ages: np.ndarray, protected_from: int = AGE_PROTECTED_FROM) -> tuple[np.ndarray, np.ndarray]:
    """(owner row, age) of every extra row to score: each protected row at every younger age.

    ``ages`` are the rows' ages (integers, as the schema requires). Rows below ``protected_from``
    get no variants. Returned in row order, youngest age first.
    """
    own = np.asarray(ages).reshape(-1).astype(np.int64)
    protected = np.flatnonzero(own >= protected_from)
    counts = np.maximum(own[protected] - YOUNGEST, 0)
    owner = np.repeat(protected, counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    age = YOUNGEST + np.arange(owner.size) - starts
    return owner, age


def collapse(probabilities: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """Each of the first ``n`` rows' probability lowered to the least of its variants' (rows ``n:``)."""
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if p.shape[0] != n + owner.shape[0]:
        raise ValueError(f"{p.shape[0]} probabilities for {n} rows and {owner.shape[0]} variants")
    if owner.shape[0] == 0:  # the common case; minimum.at costs ~10 us even with nothing to do
        return p
    lowest = p[:n].copy()
    np.minimum.at(lowest, owner, p[n:])
    return lowest


def expand_feed(feed: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """(feed with the variants appended, their owners, rows before them) for an ONNX feed.

    The feed is column-wise, one ``[N, 1]`` array per input (``Scorer.feed``). A feed with no
    protected row is returned as it is, with no copy.
    """
    ages = feed[AGE].reshape(-1)
    n = ages.shape[0]
    if n == 0 or ages.max() < AGE_PROTECTED_FROM:  # the common case: nothing to add, nothing to copy
        return dict(feed), np.empty(0, dtype=np.int64), n
    owner, age = variants(ages)
    expanded = {name: np.concatenate([column, column[owner]]) for name, column in feed.items()}
    expanded[AGE][n:, 0] = age
    return expanded, owner, n


Run = Callable[[Mapping[str, np.ndarray]], np.ndarray]


def is_invariant(run: Run, feed: Mapping[str, np.ndarray]) -> bool:
    """Whether ``run`` (a model's raw probabilities for a feed) gives each row of ``feed`` exactly
    the same probability at every age from ``YOUNGEST`` to ``OLDEST``: one run of rows x ages.

    Exact equality, not a tolerance: a model that leaves age out (a constant column at fit time,
    so no split and a zero weight) returns bit-identical outputs; any dependence, however small,
    means the rule must be enforced instead.
    """
    n = next(iter(feed.values())).shape[0]
    ages = np.arange(YOUNGEST, OLDEST + 1)
    take = np.repeat(np.arange(n), ages.size)
    grid = {name: column[take] for name, column in feed.items()}
    grid[AGE] = np.tile(ages, n).reshape(-1, 1).astype(feed[AGE].dtype)
    p = np.asarray(run(grid), dtype=np.float64).reshape(n, ages.size)
    return bool(np.all(p == p[:, :1]))
