"""Principal reasons for an adverse decision, as a Regulation B adverse action notice needs.

For each applicant and each input, the reason's weight is the fall in the model's probability of
default when that input alone is set to its favourable reference value (``manifest.reason_reference``,
derived from the training data by ``training/reference.py``). Inputs whose change lowers the
probability by at least ``MIN_FALL`` are reasons, largest first, at most ``MAX_REASONS``. Every
(row, input) pair that could be cited (value not already the reference, age not protected) is
scored in ONE onnxruntime run, the feed built once with numpy: one session call per request
whatever the number of rows, and about a third fewer variants than every row x input.

Age is never cited for an applicant aged ``AGE_PROTECTED_FROM`` or over: Regulation B
(12 CFR 1002.6(b)(2)) forbids giving an elderly applicant a negative factor for age. For a model
verified not to depend on age (``Scorer.age_invariant``) age is no candidate at all: its
variant could never lower the probability, so scoring it would only cost a row per applicant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from credit_api.age_rule import AGE, AGE_PROTECTED_FROM
from credit_api.schema import BY_NAME, FEATURE_NAMES
from credit_api.scoring import Scorer

MAX_REASONS = 4
MIN_FALL = 0.005
"""A reason must lower the probability of default by at least half a percentage point."""


class Reason(BaseModel):
    """One principal reason: which input, its label, the notice text and its weight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: str
    label: str
    message: str
    probability_fall: float = Field(
        description="fall in probability of default if this input alone had its favourable value"
    )


_CODED: dict[str, dict[str, str]] = {
    "checking_balance": {
        "lt_0": "Balance of checking account is below 0 DM (overdrawn)",
        "0_to_200": "Balance of checking account is below 200 DM",
        "ge_200": "Checking account status (200 DM or more, or salary account) scores below other statuses",
        "none": "No checking account at this bank",
    },
    "credit_history": {
        "critical": "Critical account, or credits outstanding at other banks",
        "repaid": "Existing credits are still being repaid",
        "delayed": "Delays in paying off credit in the past",
        "none_or_all_repaid": "Limited credit experience: no credits taken, or all paid back",
        "all_repaid_this_bank": "Credit history limited to credits at this bank",
    },
    "purpose": {
        "car_new": "Purpose of the loan (new car) carries higher risk",
        "car_used": "Purpose of the loan (used car) carries higher risk",
        "furniture": "Purpose of the loan (furniture or equipment) carries higher risk",
        "radio_tv": "Purpose of the loan (radio or television) carries higher risk",
        "appliances": "Purpose of the loan (domestic appliances) carries higher risk",
        "repairs": "Purpose of the loan (repairs) carries higher risk",
        "education": "Purpose of the loan (education) carries higher risk",
        "retraining": "Purpose of the loan (retraining) carries higher risk",
        "business": "Purpose of the loan (business) carries higher risk",
        "other": "Purpose of the loan (other) carries higher risk",
    },
    "savings_balance": {
        "lt_100": "Savings are below 100 DM",
        "100_to_500": "Savings are below 500 DM",
        "500_to_1000": "Savings are below 1000 DM",
        "ge_1000": "Level of savings (1000 DM or more) scores below other levels",
        "unknown": "No savings account, or savings unknown",
    },
    "employment_duration": {
        "unemployed": "Currently unemployed",
        "lt_1": "Employed in present job for less than 1 year",
        "1_to_4": "Employed in present job for less than 4 years",
        "4_to_7": "Length of present employment (4 to 7 years) scores below other lengths",
        "ge_7": "Length of present employment (7 years or more) scores below other lengths",
    },
    "other_credit": {
        "none": "Having no other instalment plans scores below other situations",
        "bank": "Instalment plans at another bank",
        "store": "Instalment plans at stores",
    },
    "housing": {
        "own": "Owning a home scores below other housing situations",
        "rent": "Rents home",
        "free": "Lives rent-free, without own housing",
    },
    "job": {
        "unemployed_nonresident": "Occupation: unemployed, or unskilled non-resident",
        "unskilled": "Occupation: unskilled",
        "skilled": "Occupation (skilled employee or official) scores below other occupations",
        "management": "Occupation (management, self-employed or similar) scores below other occupations",
    },
    "phone": {
        "no": "No telephone registered in the applicant's name",
        "yes": "Having a telephone registered scores below not having one",
    },
}
"""Notice text per coded input and applicant's code. Neutral codes say so instead of blaming."""

_NUMERIC: dict[str, tuple[str, str]] = {
    "months_loan_duration": ("Loan term of {v} months is long", "Loan term of {v} months is short"),
    "amount": ("Loan amount of {v} DM is high", "Loan amount of {v} DM is low"),
    "percent_of_income": (
        "Instalments are a high share of disposable income (band {v} of 4)",
        "Instalments are a low share of disposable income (band {v} of 4)",
    ),
    "years_at_residence": (
        "Time at present address (band {v} of 4) scores below shorter stays",
        "Short time at present address (band {v} of 4)",
    ),
    "age": ("Age of applicant ({v})", "Age of applicant ({v})"),
    "existing_loans_count": (
        "Number of existing credits at this bank ({v})",
        "Limited credit experience at this bank ({v} credit, including this one)",
    ),
    "dependents": (
        "Provides maintenance for three or more people",
        "Providing maintenance for up to two people scores below three or more",
    ),
}
"""Notice text per numeric input: (value above the favourable one, value below it)."""


def message(name: str, value: Any, reference: Any) -> str:
    """The notice text for input ``name`` at the applicant's ``value`` (reference gives the direction)."""
    if name in _CODED:
        return _CODED[name][str(value)]
    above, below = _NUMERIC[name]
    return (above if float(value) > float(reference) else below).format(v=int(value))


def principal_reasons(
    scorer: Scorer,
    rows: Sequence[Mapping[str, Any]],
    probabilities: np.ndarray | Sequence[float] | None,
    reference: Mapping[str, int | str],
) -> list[list[Reason]]:
    """At most ``MAX_REASONS`` reasons per row, largest fall in probability of default first.

    ``probabilities`` are the model's outputs for ``rows`` (``scorer.score``, before any
    population correction); pass None to have them computed in the same batched run.
    """
    names, falls, top = _ranked(scorer, rows, probabilities, reference)
    return [
        [Reason(**_notice(names[j], row, reference), probability_fall=float(falls[j, i])) for j in chosen]
        for i, (row, chosen) in enumerate(zip(rows, top, strict=True))
    ]


def notices(
    scorer: Scorer,
    rows: Sequence[Mapping[str, Any]],
    probabilities: np.ndarray | Sequence[float] | None,
    reference: Mapping[str, int | str],
) -> list[list[dict[str, str]]]:
    """:func:`principal_reasons` as the API answers and records them: input, label and message.

    Plain dicts, because a validated object per reason cost more than ranking them on a batch.
    """
    names, _, top = _ranked(scorer, rows, probabilities, reference)
    return [
        [_notice(names[j], row, reference) for j in chosen] for row, chosen in zip(rows, top, strict=True)
    ]


def _notice(name: str, row: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, str]:
    """One reason as the notice states it: the input, its label and the text for the row's value."""
    return {"input": name, "label": BY_NAME[name].label, "message": message(name, row[name], reference[name])}


def _ranked(
    scorer: Scorer,
    rows: Sequence[Mapping[str, Any]],
    probabilities: np.ndarray | Sequence[float] | None,
    reference: Mapping[str, int | str],
) -> tuple[list[str], np.ndarray, list[list[int]]]:
    """(input names, [input, row] falls, per row the indices of its reasons in order)."""
    n = len(rows)
    if probabilities is not None and len(probabilities) != n:
        raise ValueError(f"{len(probabilities)} probabilities for {n} rows")
    names = [
        name
        for name in FEATURE_NAMES
        if name in reference and not (scorer.age_invariant and name == AGE)  # age could never fall
    ]
    if n == 0:
        return names, np.empty((len(names), 0)), []
    base = scorer.feed(rows)
    citable = _citable(base, names, reference)
    inputs, row_of = np.nonzero(citable)  # only pairs that could be cited are scored
    falls = np.full(citable.shape, -np.inf)
    if inputs.size:
        with_base = probabilities is None
        scored = scorer.score(_variant_feed(base, names, reference, inputs, row_of, n if with_base else 0))
        if with_base:
            current, scored = scored[:n], scored[n:]
        else:
            current = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        falls[inputs, row_of] = current[row_of] - scored
    return names, falls, _top(falls)


def _top(falls: np.ndarray) -> list[list[int]]:
    """Per row, its eligible inputs (fall >= MIN_FALL), largest fall first, ties in schema order."""
    eligible = np.where(falls >= MIN_FALL, falls, -np.inf)
    order = np.argsort(-eligible, axis=0, kind="stable")[:MAX_REASONS]  # stable: schema order on ties
    keep = np.take_along_axis(eligible, order, axis=0) > -np.inf
    return [column[kept].tolist() for column, kept in zip(order.T, keep.T, strict=True)]


def _variant_feed(
    base: Mapping[str, np.ndarray],
    names: Sequence[str],
    reference: Mapping[str, Any],
    inputs: np.ndarray,
    row_of: np.ndarray,
    n_base: int,
) -> dict[str, np.ndarray]:
    """One variant per (input, row) pair: row ``row_of[k]`` with input ``names[inputs[k]]`` at its reference.

    The first ``n_base`` rows are the unchanged rows (0 or all of them), so that one run also gives
    the current probabilities when the caller has none.
    """
    take = np.concatenate([np.arange(n_base), row_of])
    feed: dict[str, np.ndarray] = {}
    for name, column in base.items():
        variant = column[take]
        if name in names:
            if variant.dtype.kind == "U":
                variant = variant.astype(
                    np.promote_types(variant.dtype, np.array(str(reference[name])).dtype)
                )
            variant[n_base:][inputs == names.index(name)] = reference[name]
        feed[name] = variant
    return feed


def _citable(
    base: Mapping[str, np.ndarray], names: Sequence[str], reference: Mapping[str, Any]
) -> np.ndarray:
    """[input, row] mask: False where the row already has the reference value, and for protected age."""
    mask = np.empty((len(names), next(iter(base.values())).shape[0]), dtype=bool)
    for j, name in enumerate(names):
        column = base[name].reshape(-1)
        ref = str(reference[name]) if column.dtype.kind == "U" else float(reference[name])
        mask[j] = column != ref
        if name == "age":
            mask[j] &= column < AGE_PROTECTED_FROM
    return mask
