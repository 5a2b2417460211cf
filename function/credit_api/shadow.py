"""The shadow challenger: a verified version scored on every request while the champion answers.

**The pointer.** ``models/shadow.json`` names the shadow with the champion pointer's reference
fields and carries its change record::

    {"model_version", "key", "sha256", "manifest_sha256", "published_at",
     "change": {"action": "shadow" | "clear", "by", "reason", "previous_version"}}

A cleared shadow is a document too, with ``model_version``, ``key`` and ``sha256`` null: a
delete marker could not say who cleared it or why. Setting and clearing are one conditional
``PutObject`` each (``IfMatch`` on the ETag read, ``IfNoneMatch="*"`` for the first one), so
two operators cannot overwrite each other's change blindly (:class:`ShadowChanged`), and a
shadow is set only to a version :func:`credit_api.registry.verify` accepts. The bucket is
versioned: the shadow's history is the pointer's object versions
(:func:`history`, read by :func:`credit_api.registry.history`).

**Scoring** (:func:`credit_api.underwriting.shadow_score`, kept there so the serving path
never imports this module's writes) is one more onnxruntime run on the input tensors the champion was
fed (the same arrays when both graphs declare the same input types, as every export does),
then the policy's own functions (:func:`credit_api.policy.correct_to_population`,
:func:`credit_api.policy.decisions_for`) for its probability and decision: no second validation, no
reasons, no score. The shadow is judged under the policy it would decide under if promoted:
the published policy when one is in force, else its own manifest's. Its result goes into the
decision record only (``"shadow"``), never into the answer, and a failure in it never fails
the request (the service counts it).

**The comparison** (:func:`compare`) reads decision records carrying a ``shadow`` field: the
swap set (approved by one and declined by the other, both ways, with the rows), the full
decision cross-table, and, on the loans whose outcome is known, the ROC AUC of both on the same
loans. numpy only, so monitoring, the CLI and the retrain report use the same function.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from credit_api import aws, registry, s3_writes
from credit_api.aws import error_code
from credit_api.model_store import SHADOW_KEY

ACTIONS = ("shadow", "clear")
DECISIONS = ("approve", "review", "decline")
SWAP_ROWS_LIMIT = 1000
"""Swap rows listed in a comparison (the counts are always complete)."""


class ShadowChanged(registry.RegistryError):
    """The shadow pointer changed since the caller read it: read it again and decide again."""

    status = 409


# ---------------------------------------------------------------- the pointer


def read(s3: Any, bucket: str) -> registry.Champion:
    """The shadow pointer and its ETag in one read; ``pointer`` is None when absent or cleared.

    The result has the champion's shape (:class:`credit_api.registry.Champion`): the document,
    the ETag a conditional write must match, and why an unreadable document was refused.
    """
    try:
        response = s3.get_object(Bucket=bucket, Key=SHADOW_KEY)
    except Exception as exc:
        if error_code(exc) in aws.S3_MISSING_CODES:
            return registry.Champion(None, None)
        raise
    etag = response["ETag"]
    try:
        document = json.loads(response["Body"].read())
    except ValueError:
        return registry.Champion(None, etag, invalid=f"s3://{bucket}/{SHADOW_KEY} is not JSON")
    if not isinstance(document, dict):
        return registry.Champion(None, etag, invalid=f"s3://{bucket}/{SHADOW_KEY} is not a JSON object")
    if document.get("model_version") is None and document.get("key") is None:
        return registry.Champion(None, etag)  # cleared
    if not all(isinstance(document.get(k), str) and document[k] for k in registry.REF_FIELDS):
        return registry.Champion(
            None, etag, invalid=f"s3://{bucket}/{SHADOW_KEY} lacks model_version, key or sha256"
        )
    return registry.Champion(document, etag)


def _write(s3: Any, bucket: str, document: Mapping[str, Any], current: registry.Champion) -> None:
    try:
        s3_writes.put_json_if(s3, bucket, SHADOW_KEY, document, current.etag)
    except s3_writes.ObjectChanged as exc:
        raise ShadowChanged(
            f"the shadow is no longer {current.version!r}: another command changed it; look again"
        ) from exc


def _reason(action: str, reason: str) -> str:
    if not reason or not reason.strip():
        raise registry.RegistryError(f"a {action} needs a reason (it goes into the history)")
    return reason.strip()


def set_shadow(
    s3: Any,
    bucket: str,
    ref: Mapping[str, str],
    *,
    by: str,
    reason: str,
    current: registry.Champion | None = None,
) -> dict[str, Any]:
    """Shadow a stored version, after verifying it; conditional on ``current`` (default: now).

    The champion itself is refused (it would compare a model with itself); setting the version
    already shadowed writes nothing (unless ``current`` is stale: :class:`ShadowChanged`).
    """
    reason = _reason("shadow", reason)
    registry.verify(s3, bucket, ref)
    champion = registry.read_champion(s3, bucket)
    if champion.pointer is not None and champion.pointer["key"] == ref["key"]:
        raise registry.RegistryError(f"{ref['model_version']!r} is the champion: shadow a challenger")
    current = current if current is not None else read(s3, bucket)
    if current.pointer is not None and current.pointer["key"] == ref["key"]:
        if read(s3, bucket).etag != current.etag:  # a stale view: it is no longer shadowed
            raise ShadowChanged(f"the shadow is no longer {current.version!r}: another command changed it")
        return current.pointer
    document = {
        **registry.ref_of(ref),
        "published_at": registry.now_iso(),
        "change": {"action": "shadow", "by": by, "reason": reason, "previous_version": current.version},
    }
    _write(s3, bucket, document, current)
    return document


def clear(
    s3: Any, bucket: str, *, by: str, reason: str, current: registry.Champion | None = None
) -> dict[str, Any] | None:
    """Stop shadowing (a cleared document, conditional on ``current``); None when none was set."""
    reason = _reason("clear", reason)
    current = current if current is not None else read(s3, bucket)
    if current.pointer is None and current.invalid is None:
        return None
    document = {
        "model_version": None,
        "key": None,
        "sha256": None,
        "published_at": registry.now_iso(),
        "change": {"action": "clear", "by": by, "reason": reason, "previous_version": current.version},
    }
    _write(s3, bucket, document, current)
    return document


def history(s3: Any, bucket: str) -> list[dict[str, Any]]:
    """Every change of shadow, newest first (the pointer's object versions, as the champion's)."""
    return registry.history(s3, bucket, key=SHADOW_KEY)


# ---------------------------------------------------------------- the comparison


def live_comparison(s3: Any, bucket: str, records: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """:func:`compare` for the shadow set now (None when none is), with its pointer's change record."""
    current = read(s3, bucket)
    if current.pointer is None:
        return None
    return {
        **compare(records, current.pointer["model_version"]),
        "shadow_key": current.pointer["key"],
        "shadow_since": current.pointer.get("published_at"),
    }


def report_comparison(s3: Any, bucket: str, records: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """:func:`live_comparison` for a report (the retrain's, the monitor's): a failure to read the
    shadow is returned as ``{"error": ...}``, not raised. The comparison informs a report; it is
    never a reason to skip one."""
    try:
        return live_comparison(s3, bucket, records)
    except Exception as exc:
        return {"error": f"shadow comparison unavailable: {error_code(exc)}"}


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """ROC AUC (Mann-Whitney, ties as half): None without both classes."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2  # average rank, 1-based
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _shadowed(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The record's shadow score when it is one the comparison can use (and the champion's too)."""
    shadow = record.get("shadow")
    if (
        isinstance(shadow, Mapping)
        and shadow.get("decision") in DECISIONS
        and isinstance(shadow.get("probability_of_default"), int | float)
        and record.get("decision") in DECISIONS
        and isinstance(record.get("probability_of_default"), int | float)
    ):
        return shadow
    return None


def latest_shadow_version(records: Iterable[Mapping[str, Any]]) -> str | None:
    """The shadow version of the most recent record that has one."""
    newest: tuple[str, str] | None = None
    for record in records:
        shadow = _shadowed(record)
        if shadow is not None:
            created = str(record.get("created_at") or "")
            if newest is None or created >= newest[0]:
                newest = (created, str(shadow.get("model_version")))
    return newest[1] if newest else None


def compare(records: Iterable[Mapping[str, Any]], shadow_version: str | None = None) -> dict[str, Any]:
    """Champion against shadow on the decisions both scored (default: the latest shadow's).

    ``swaps`` counts applicants approved by one and declined by the other, each way, and
    ``swap_rows`` lists them (at most ``SWAP_ROWS_LIMIT``); ``decisions`` is the whole
    champion x shadow cross-table (so review moves are visible too). ``auc`` is on the loans
    with an outcome: both models on the same loans, with ``n`` and the defaults among them.
    """
    records = list(records)
    version = shadow_version or latest_shadow_version(records)
    pairs = [(r, s) for r in records if (s := _shadowed(r)) is not None and s.get("model_version") == version]
    table: Counter[tuple[str, str]] = Counter((r["decision"], s["decision"]) for r, s in pairs)
    swaps = [
        {
            "decision_id": r.get("decision_id"),
            "created_at": r.get("created_at"),
            "champion_version": r.get("model_version"),
            "champion_decision": r["decision"],
            "champion_probability": r.get("probability_of_default"),
            "shadow_decision": s["decision"],
            "shadow_probability": s.get("probability_of_default"),
        }
        for r, s in pairs
        if {r["decision"], s["decision"]} == {"approve", "decline"}
    ]
    labelled = [
        (int(r["outcome"]["defaulted"]), r["probability_of_default"], s["probability_of_default"])
        for r, s in pairs
        if isinstance(r.get("outcome"), Mapping) and isinstance(r["outcome"].get("defaulted"), bool)
    ]
    labels = [y for y, _, _ in labelled]
    return {
        "shadow_version": version,
        "champion_versions": dict(Counter(r.get("model_version") for r, _ in pairs)),
        "n": len(pairs),
        "agree": sum(n for (a, b), n in table.items() if a == b),
        "decisions": {a: {b: table[(a, b)] for b in DECISIONS} for a in DECISIONS},
        "swaps": {
            "champion_approves_shadow_declines": table[("approve", "decline")],
            "champion_declines_shadow_approves": table[("decline", "approve")],
        },
        "swap_rows": swaps[:SWAP_ROWS_LIMIT],
        "auc": {
            "n": len(labelled),
            "defaults": sum(labels),
            "champion": roc_auc(labels, [c for _, c, _ in labelled]),
            "shadow": roc_auc(labels, [s for _, _, s in labelled]),
        },
    }
