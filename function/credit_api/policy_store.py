"""The decision policy in the model bucket: published apart from the model, verified before use.

Layout, beside the champion's pointer (``models/champion.json``)::

    policies/<policy_version>.json   the document (credit_api.policy.PolicyDocument), immutable
    models/policy.json               the pointer: which document is served

    {"policy_version": "policy-<sha12>", "key": "policies/<version>.json",
     "sha256": "<of the document's bytes>", "published_at", "by", "reason",
     "previous": "<the version it replaced>" | null}

A document is written once, with ``IfNoneMatch="*"``: the same numbers always derive the same
version, so publishing them again (a policy rolled back to) reuses the stored document. The
pointer is switched with a conditional write on the ETag the publisher read (``IfMatch``, or
``IfNoneMatch="*"`` when there was none): of two publishers who read the same pointer, one wins
and the other gets :class:`PolicyConflict`, and must look at the new policy before trying again.
The bucket is versioned, so the pointer's object versions are the history of the served policy,
with who, when and why in each.

Without a pointer the function serves the policy in the champion's manifest (the bundled
model's, locally), as before policies were published apart. The function's role may read
``models/*`` but not list the bucket, so S3 answers a missing pointer with 403, not 404: a 403
counts as "no pointer" only while no published policy is in force (a first deployment); once
one is, a 403 is a failure and the policy in force stays. A pointer or document that fails
any check (JSON, schema, the policy's own validation, the sha256, the version derived from the
content) raises :class:`PolicyLoadError` and is never served.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from credit_api import aws, s3_writes
from credit_api.aws import error_code
from credit_api.manifest import Manifest
from credit_api.policy import Policy, PolicyDocument, ScoreScale, policy_version

POLICY_POINTER_KEY = "models/policy.json"
POLICIES_PREFIX = "policies/"
POINTER_FIELDS = ("policy_version", "key", "sha256")
DENIED = ("AccessDenied", "403")


class PolicyLoadError(Exception):
    """A policy that must not be served; the message says which check failed."""


class PolicyConflict(Exception):
    """The policy pointer changed between reading it and switching it: nothing was published."""


@dataclass(frozen=True)
class ServedPolicy:
    """The policy a decision is made under, and where it came from (for records and ``/health``)."""

    policy: Policy
    score_scale: ScoreScale
    version: str
    source: str

    @classmethod
    def of_manifest(cls, manifest: Manifest) -> ServedPolicy:
        """The policy frozen in a model's manifest: what is served while no policy is published."""
        return cls(
            policy=manifest.policy,
            score_scale=manifest.score_scale,
            version=policy_version(manifest.policy, manifest.score_scale),
            source=f"manifest:{manifest.model_version}",
        )

    @property
    def published(self) -> bool:
        """Published apart from any model (so it applies to whichever model is champion)."""
        return not self.source.startswith("manifest:")

    @classmethod
    def of_document(cls, document: PolicyDocument, source: str) -> ServedPolicy:
        return cls(document.policy, document.score_scale, document.policy_version, source)


@dataclass(frozen=True)
class Pointer:
    """The policy pointer as read, with the ETag a conditional switch needs."""

    data: dict[str, Any]
    etag: str

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.data["policy_version"], self.data["key"], self.data["sha256"])


@dataclass(frozen=True)
class PolicyFetch:
    """What one background read of the policy found: absent, unchanged, a new document, or an error."""

    pointer: Pointer | None = None
    served: ServedPolicy | None = None
    error: PolicyLoadError | None = None
    unchanged: bool = False


def document_key(version: str) -> str:
    return f"{POLICIES_PREFIX}{version}.json"


def encode(document: PolicyDocument) -> bytes:
    """The stored bytes of a document: sorted keys, so equal documents have equal bytes."""
    return json.dumps(document.model_dump(mode="json"), indent=2, sort_keys=True).encode() + b"\n"


def parse_document(raw: bytes | str, source: str = "the policy document") -> PolicyDocument:
    """A validated document, or :class:`PolicyLoadError` naming each field that failed.

    Strict: a number sent as a string, or ``true`` for a count, is refused rather than converted.
    """
    try:
        return PolicyDocument.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'document'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise PolicyLoadError(f"{source} is not a valid policy: {problems}") from exc


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def read_pointer(s3: Any, bucket: str, *, denied_is_absent: bool = False) -> Pointer | None:
    """The policy pointer, or None when no policy is published; PolicyLoadError for a bad one.

    ``denied_is_absent``: take a 403 for a missing pointer (a reader without ``s3:ListBucket``).
    """
    try:
        answer = s3.get_object(Bucket=bucket, Key=POLICY_POINTER_KEY)
        raw = answer["Body"].read()
    except Exception as exc:  # botocore's ClientError, connection and credential errors alike
        if error_code(exc) in aws.S3_MISSING_CODES or (denied_is_absent and error_code(exc) in DENIED):
            return None
        raise PolicyLoadError(f"cannot read s3://{bucket}/{POLICY_POINTER_KEY}: {error_code(exc)}") from exc
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError(f"pointer is a JSON {type(data).__name__}, not an object")
        if not all(isinstance(data.get(k), str) and data[k] for k in POINTER_FIELDS):
            raise ValueError("pointer lacks policy_version, key or sha256")
    except (ValueError, RecursionError) as exc:
        raise PolicyLoadError(f"invalid policy pointer s3://{bucket}/{POLICY_POINTER_KEY}: {exc}") from exc
    return Pointer(data=data, etag=answer.get("ETag", ""))


def load_document(s3: Any, bucket: str, pointer: Pointer) -> PolicyDocument:
    """The document the pointer names, after its bytes, schema and version all check out."""
    key = pointer.data["key"]
    try:
        raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        raise PolicyLoadError(f"cannot read s3://{bucket}/{key}: {error_code(exc)}") from exc
    digest = hashlib.sha256(raw).hexdigest()
    if digest != pointer.data["sha256"]:
        raise PolicyLoadError(f"{key} sha256 {digest[:12]} does not match the pointer's")
    document = parse_document(raw, f"s3://{bucket}/{key}")
    if document.policy_version != pointer.data["policy_version"]:
        raise PolicyLoadError(
            f"pointer names {pointer.data['policy_version']!r}, document is {document.policy_version!r}"
        )
    return document


def fetch(s3: Any, bucket: str, known: tuple[str, str, str] | None) -> PolicyFetch:
    """For the model store's background load: the policy to serve next, never raising."""
    try:
        pointer = read_pointer(s3, bucket, denied_is_absent=known is None)
        if pointer is None:
            return PolicyFetch()
        if pointer.identity == known:
            return PolicyFetch(pointer=pointer, unchanged=True)
        document = load_document(s3, bucket, pointer)
    except PolicyLoadError as exc:
        return PolicyFetch(error=exc)
    source = f"s3://{bucket}/{pointer.data['key']}"
    return PolicyFetch(pointer=pointer, served=ServedPolicy.of_document(document, source))


def current(s3: Any, bucket: str | None, manifest: Manifest) -> tuple[ServedPolicy, Pointer | None]:
    """The policy in force (the published one, else the manifest's) and the pointer to switch from."""
    if not bucket:
        return ServedPolicy.of_manifest(manifest), None
    pointer = read_pointer(s3, bucket)
    if pointer is None:
        return ServedPolicy.of_manifest(manifest), None
    document = load_document(s3, bucket, pointer)
    return ServedPolicy.of_document(document, f"s3://{bucket}/{pointer.data['key']}"), pointer


def _store_document(s3: Any, bucket: str, document: PolicyDocument) -> bytes:
    """Write the document once; an existing one for the same version is reused after checking it."""
    key, body = document_key(document.policy_version), encode(document)
    stored = s3_writes.put_once(s3, bucket, key, body, "application/json")
    if stored is None:
        return body
    existing = parse_document(stored, f"s3://{bucket}/{key}")
    if existing.policy_version != document.policy_version:
        raise PolicyLoadError(f"s3://{bucket}/{key} holds {existing.policy_version!r}")
    return stored


def publish(s3: Any, bucket: str, document: PolicyDocument, expected: Pointer | None) -> dict[str, Any]:
    """Store ``document`` and switch the pointer to it, if the pointer is still ``expected``.

    ``expected`` is the pointer the caller read (None: there was none) and looked at before
    deciding. Raises :class:`PolicyConflict` when someone else switched it meanwhile. Returns the
    pointer written.
    """
    body = _store_document(s3, bucket, document)
    pointer = {
        "policy_version": document.policy_version,
        "key": document_key(document.policy_version),
        "sha256": hashlib.sha256(body).hexdigest(),
        "published_at": _now(),
        "by": document.by,
        "reason": document.reason,
        "previous": expected.data["policy_version"] if expected else None,
    }
    try:
        s3_writes.put_json_if(s3, bucket, POLICY_POINTER_KEY, pointer, expected.etag if expected else None)
    except s3_writes.ObjectChanged as exc:
        raise PolicyConflict(
            "the policy was changed by someone else since it was read; nothing was published."
            " Look at the policy now in force (credit policy show) and try again."
        ) from exc
    return pointer


def history(s3: Any, bucket: str) -> list[dict[str, Any]]:
    """Every policy pointer ever written, newest first (the bucket's object versions)."""
    entries: list[dict[str, Any]] = []
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=POLICY_POINTER_KEY):
        for version in page.get("Versions", []):
            if version["Key"] != POLICY_POINTER_KEY:
                continue
            raw = s3.get_object(Bucket=bucket, Key=POLICY_POINTER_KEY, VersionId=version["VersionId"])
            entries.append({**json.loads(raw["Body"].read()), "modified": version["LastModified"]})
    return sorted(entries, key=lambda entry: entry["modified"], reverse=True)
