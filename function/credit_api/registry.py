"""The model registry in the model bucket: immutable verified versions, the champion, its history.

Layout (the only module that writes under ``models/``)::

    models/<version>-<sha12>/model.onnx      immutable, written once (IfNoneMatch="*")
    models/<version>-<sha12>/manifest.json
    models/champion.json                     the pointer the function serves, and its change record

A version is verified exactly as the function verifies it (:func:`credit_api.model_store.build`:
sha256 against the manifest, the schema hash, it scores a row) *before* anything is written,
and again before any switch to it. Storing a version that already exists with the same bytes
is a no-op (a retried run); different bytes under the same name are refused.

**The change record lives in the pointer.** Each switch of the champion is one conditional
``PutObject`` of ``models/champion.json`` whose document carries the switch and why::

    {"model_version", "key", "sha256", "manifest_sha256", "published_at",
     "change": {"action": "promote" | "rollback", "by", "reason", "previous_version",
                "metrics", "comparison", "report_key"},
     "lineage": [{"model_version", "key", "sha256", "manifest_sha256"}, ...]}

The bucket is versioned, so the history is the pointer's own object versions, newest first
(:func:`history`). One write is the switch and its record together, so no crash can leave a
champion without its record or a record without its switch; a separate ledger would need a
second write and a recovery rule. The switch is conditional on the pointer's ETag the caller
started from (``IfMatch``, or ``IfNoneMatch="*"`` for the first champion): a caller whose
champion changed meanwhile gets :class:`ChampionChanged` and must look again, never
overwrites blindly.

**Rollback reads the lineage, not the history.** ``lineage`` is the stack of champions the
current one replaced (oldest first, at most ``LINEAGE_LIMIT``): a promotion pushes the old
champion, a rollback to a version in the stack pops down to it. So "roll back" twice walks
back two promotions instead of toggling between the last two models, and it does not depend
on old pointer versions being kept.

**Retention.** ``template.yaml``'s lifecycle rules expire old versions under ``data/`` and
``reports/`` only: nothing under ``models/`` expires, so :func:`history` reaches back to the
first champion (the audit trail SR 11-7 asks for). Stored versions are current objects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from credit_api import aws, s3_writes
from credit_api.aws import error_code
from credit_api.manifest import MANIFEST_FILE, MODEL_FILE
from credit_api.model_store import (
    POINTER_KEY,
    LoadedModel,
    ModelLoadError,
    build,
    load_from_s3,
    parse_pointer,
    sha256,
)

MODELS_PREFIX = "models/"
LINEAGE_LIMIT = 50
"""Earlier champions kept in the pointer for rollback (each is ~150 bytes)."""
ACTIONS = ("promote", "rollback")
_VERSION_DIR = re.compile(r"^(?P<version>.+)-(?P<sha12>[0-9a-f]{12})$")


class RegistryError(Exception):
    """A registry operation refused; ``status`` is the HTTP-like class of the refusal."""

    status = 400


class NotFound(RegistryError):
    status = 404


class VersionConflict(RegistryError):
    """A version name already holds different bytes: versions are immutable."""

    status = 409


class ChampionChanged(RegistryError):
    """The champion changed since the caller read it: read it again and decide again."""

    status = 409


class Unverified(RegistryError):
    """A model that fails the function's checks (tampered, truncated, another schema)."""

    status = 422


@dataclass(frozen=True)
class Champion:
    """The pointer as read, with the ETag a conditional switch must match (both ``None``: no champion).

    A pointer that is not a valid document has ``pointer=None`` and says why in ``invalid``;
    it can be replaced (conditionally on its ETag), never rolled back from.
    """

    pointer: dict[str, Any] | None
    etag: str | None
    invalid: str | None = None

    @property
    def version(self) -> str | None:
        return self.pointer["model_version"] if self.pointer else None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


REF_FIELDS = ("model_version", "key", "sha256")


def ref_of(document: Mapping[str, Any]) -> dict[str, str]:
    """The fields that name a stored version and fix its bytes (the function checks them all)."""
    ref = {k: document[k] for k in REF_FIELDS}
    if isinstance(document.get("manifest_sha256"), str):
        ref["manifest_sha256"] = document["manifest_sha256"]
    return ref


def version_key(model_version: str, sha256: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", model_version)
    return f"{MODELS_PREFIX}{safe}-{sha256[:12]}"


# ---------------------------------------------------------------- versions


def _put_once(s3: Any, bucket: str, key: str, body: bytes, content_type: str) -> None:
    """Write ``key`` only if absent; an existing identical object is fine, a different one is not."""
    existing = s3_writes.put_once(s3, bucket, key, body, content_type)
    if existing is not None and existing != body:
        raise VersionConflict(f"s3://{bucket}/{key} already holds different bytes; versions are immutable")


def store(
    s3: Any, bucket: str, model_bytes: bytes, manifest_bytes: bytes
) -> tuple[dict[str, str], LoadedModel]:
    """Verify, then store a version (model first, manifest last: a version without its manifest
    is never loadable, and a retry completes it). Returns its ref and the verified model."""
    try:
        model = build(model_bytes, manifest_bytes, source="upload")
    except ModelLoadError as exc:
        raise Unverified(f"refused before any write: {exc}") from exc
    key = version_key(model.version, model.sha256)
    _put_once(s3, bucket, f"{key}/{MODEL_FILE}", model_bytes, "application/octet-stream")
    _put_once(s3, bucket, f"{key}/{MANIFEST_FILE}", manifest_bytes, "application/json")
    ref = {"model_version": model.version, "key": key, "sha256": model.sha256}
    return {**ref, "manifest_sha256": sha256(manifest_bytes)}, model


def store_dir(s3: Any, bucket: str, model_dir: Path | str) -> tuple[dict[str, str], LoadedModel]:
    model_dir = Path(model_dir)
    try:
        model_bytes = (model_dir / MODEL_FILE).read_bytes()
        manifest_bytes = (model_dir / MANIFEST_FILE).read_bytes()
    except OSError as exc:
        raise NotFound(f"no model in {model_dir}: {exc.strerror}") from exc
    return store(s3, bucket, model_bytes, manifest_bytes)


def verify(s3: Any, bucket: str, ref: Mapping[str, str]) -> LoadedModel:
    """Load a stored version as the function would, and check its name's sha12 as well."""
    match = _VERSION_DIR.match(ref["key"].removeprefix(MODELS_PREFIX))
    if match is None or not ref["sha256"].startswith(match["sha12"]):
        raise Unverified(f"{ref['key']} is not named after the sha256 {ref['sha256'][:12]}")
    try:
        return load_from_s3(s3, bucket, dict(ref))
    except ModelLoadError as exc:
        raise Unverified(f"{ref['key']} fails verification: {exc}") from exc


def list_versions(s3: Any, bucket: str) -> list[dict[str, str]]:
    """Every stored version (its ref, read from its manifest), sorted by key."""
    found = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=MODELS_PREFIX, Delimiter="/"):
        for prefix in page.get("CommonPrefixes", []):
            key = prefix["Prefix"].rstrip("/")
            try:
                raw = s3.get_object(Bucket=bucket, Key=f"{key}/{MANIFEST_FILE}")["Body"].read()
            except Exception as exc:
                if error_code(exc) in aws.S3_MISSING_CODES:
                    continue  # an interrupted store: the model without its manifest
                raise
            manifest = json.loads(raw)
            found.append(
                {
                    "model_version": manifest["model_version"],
                    "key": key,
                    "sha256": manifest["onnx_sha256"],
                    "manifest_sha256": sha256(raw),
                }
            )
    return found


# ---------------------------------------------------------------- the champion


def read_champion(s3: Any, bucket: str) -> Champion:
    """The pointer and its ETag in one read (a HEAD then a GET could see two different pointers)."""
    try:
        response = s3.get_object(Bucket=bucket, Key=POINTER_KEY)
    except Exception as exc:
        if error_code(exc) in aws.S3_MISSING_CODES:
            return Champion(None, None)
        raise
    try:
        return Champion(parse_pointer(response["Body"].read(), bucket), response["ETag"])
    except ModelLoadError as exc:
        return Champion(None, response["ETag"], invalid=str(exc))


def plan(
    ref: Mapping[str, str],
    current: Champion,
    *,
    action: str,
    by: str,
    reason: str,
    metrics: Mapping[str, Any] | None = None,
    comparison: Mapping[str, Any] | None = None,
    report_key: str | None = None,
    lineage: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The pointer document a switch from ``current`` to ``ref`` writes (no I/O).

    ``lineage`` defaults to a promotion's: the current champion pushed on its own lineage.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if lineage is None:
        lineage = _lineage(current.pointer)
        if current.pointer is not None:
            lineage = [*lineage, ref_of(current.pointer)]
    return {
        **ref_of(ref),
        "published_at": now_iso(),
        "change": {
            "action": action,
            "by": by,
            "reason": reason,
            "previous_version": current.version,
            "metrics": dict(metrics) if metrics else None,
            "comparison": dict(comparison) if comparison else None,
            "report_key": report_key,
        },
        "lineage": lineage[-LINEAGE_LIMIT:],
    }


def _lineage(pointer: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """The pointer's lineage; entries that do not name a version are dropped (older pointers have none)."""
    lineage = pointer.get("lineage") if pointer else None
    if not isinstance(lineage, list):
        return []
    return [
        ref_of(r)
        for r in lineage
        if isinstance(r, dict) and all(isinstance(r.get(k), str) for k in REF_FIELDS)
    ]


def switch(s3: Any, bucket: str, pointer: Mapping[str, Any], current: Champion) -> Champion:
    """Write ``pointer`` only if the champion is still ``current``; returns the new champion."""
    try:
        etag = s3_writes.put_json_if(s3, bucket, POINTER_KEY, pointer, current.etag)
    except s3_writes.ObjectChanged as exc:
        raise ChampionChanged(
            f"the champion is no longer {current.version!r}: another run or command switched it"
        ) from exc
    return Champion(dict(pointer), etag)


def promote(
    s3: Any,
    bucket: str,
    ref: Mapping[str, str],
    *,
    by: str,
    reason: str,
    current: Champion | None = None,
    comparison: Mapping[str, Any] | None = None,
    report_key: str | None = None,
) -> dict[str, Any]:
    """Make a stored version champion, after verifying it; conditional on ``current`` (default: now)."""
    model = verify(s3, bucket, ref)
    current = current if current is not None else read_champion(s3, bucket)
    if current.pointer is not None and current.pointer["key"] == ref["key"]:
        return current.pointer
    pointer = plan(
        ref,
        current,
        action="promote",
        by=by,
        reason=reason,
        metrics=model.manifest.metrics,
        comparison=comparison,
        report_key=report_key,
    )
    switch(s3, bucket, pointer, current)
    return pointer


def publish(
    s3: Any,
    bucket: str,
    model_dir: Path | str,
    *,
    by: str = "credit_api.registry.publish",
    reason: str = "published from a model directory",
) -> dict[str, Any]:
    """Store ``model_dir`` as a version and make it champion (the seed and ``credit models promote``)."""
    ref, _ = store_dir(s3, bucket, model_dir)
    return promote(s3, bucket, ref, by=by, reason=reason)


def resolve(s3: Any, bucket: str, name: str, champion: Champion | None = None) -> dict[str, str]:
    """A stored version named by its model version, its directory or its key.

    Champions of the lineage are matched first (their sha256 is the one recorded when they
    served); otherwise the stored versions. A model version stored twice with different
    bytes is ambiguous: name its directory.
    """
    wanted = name.strip().rstrip("/")
    candidates = _lineage(champion.pointer if champion else None)
    if champion and champion.pointer:
        candidates.append(ref_of(champion.pointer))

    def matches(ref: Mapping[str, str]) -> bool:
        return wanted in (ref["model_version"], ref["key"], ref["key"].removeprefix(MODELS_PREFIX))

    found = {r["key"]: r for r in candidates if matches(r)}
    if not found:
        found = {r["key"]: r for r in list_versions(s3, bucket) if matches(r)}
    if not found:
        raise NotFound(f"no stored model version is named {name!r}")
    if len(found) > 1:
        raise RegistryError(
            f"{name!r} names {len(found)} stored versions ({', '.join(sorted(found))}): name one"
        )
    return next(iter(found.values()))


def rollback(s3: Any, bucket: str, to: str | None = None, *, by: str, reason: str) -> dict[str, Any]:
    """Switch back to the previous champion (the top of the lineage) or to version ``to``.

    The target is verified before the switch; the switch is conditional on the champion read
    at the start. Rolling back to the version already served writes nothing.
    """
    if not reason or not reason.strip():
        raise RegistryError("a rollback needs a reason (it goes into the history)")
    current = read_champion(s3, bucket)
    if current.pointer is None:
        raise NotFound(current.invalid or "there is no champion to roll back: promote one")
    lineage = _lineage(current.pointer)
    if to is None:
        if not lineage:
            raise RegistryError(f"{current.version!r} replaced no earlier champion: name a version with --to")
        target = lineage[-1]
    else:
        target = resolve(s3, bucket, to, current)
    if target["key"] == current.pointer["key"]:
        return current.pointer
    model = verify(s3, bucket, target)
    keys = [r["key"] for r in lineage]
    below = (
        lineage[: keys.index(target["key"])] if target["key"] in keys else [*lineage, ref_of(current.pointer)]
    )
    pointer = plan(
        target,
        current,
        action="rollback",
        by=by,
        reason=reason.strip(),
        metrics=model.manifest.metrics,
        lineage=below,
    )
    switch(s3, bucket, pointer, current)
    return pointer


# ---------------------------------------------------------------- history


def history(s3: Any, bucket: str, limit: int | None = None, key: str = POINTER_KEY) -> list[dict[str, Any]]:
    """Every change of champion (or the ``limit`` newest), newest first: the pointer's object
    versions, each read back (S3 lists them newest first, so reading stops at ``limit``).

    ``key`` names another pointer of the same shape (the shadow's: :func:`credit_api.shadow.history`).
    """
    versions: list[dict[str, Any]] = []
    markers: list[dict[str, Any]] = []
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=key):
        for version in page.get("Versions", []):
            if version["Key"] == key and (limit is None or len(versions) < limit):
                body = s3.get_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])
                versions.append(_entry(body["Body"].read(), version))
        markers.extend(_deleted(m) for m in page.get("DeleteMarkers", []) if m["Key"] == key)
    # S3 lists a key's versions newest first, to the second; the stable sort keeps that order
    # within a second, and the latest (version or delete marker) goes first.
    entries = sorted([*versions, *markers], key=lambda e: (e["recorded_at"], e["latest"]), reverse=True)
    for entry in entries:
        del entry["latest"]
    return entries[:limit]


def _deleted(marker: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "when": marker["LastModified"].isoformat(),
        "action": "deleted",
        "version": None,
        "key": None,
        "sha256": None,
        "previous": None,
        "by": None,
        "reason": "the pointer was deleted (no champion: the function serves its bundled model)",
        "metrics": None,
        "comparison": None,
        "report_key": None,
        "s3_version_id": marker["VersionId"],
        "recorded_at": marker["LastModified"].isoformat(),
        "latest": marker["IsLatest"],
    }


def _entry(body: bytes, version: Mapping[str, Any]) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        document = {}
    document = document if isinstance(document, dict) else {}
    change = document.get("change") if isinstance(document.get("change"), dict) else {}
    return {
        "when": document.get("published_at") or version["LastModified"].isoformat(),
        "action": change.get("action", "unrecorded"),
        "version": document.get("model_version"),
        "key": document.get("key"),
        "sha256": document.get("sha256"),
        "previous": change.get("previous_version"),
        "by": change.get("by"),
        "reason": change.get("reason"),
        "metrics": change.get("metrics"),
        "comparison": change.get("comparison"),
        "report_key": change.get("report_key"),
        "s3_version_id": version["VersionId"],
        "recorded_at": version["LastModified"].isoformat(),
        "latest": version["IsLatest"],
    }
