"""The two conditional S3 writes the registry, the shadow and the policy store are built on.

- :func:`put_once`: immutable objects (model versions, policy documents) are written only if
  absent (``IfNoneMatch="*"``); a retry that finds the object already there gets its bytes
  back to compare, never overwrites it.
- :func:`put_json_if`: pointers (champion, shadow, policy) are switched only if they are still
  what the writer read (``IfMatch`` on its ETag, or ``IfNoneMatch="*"`` when there was none);
  a writer that lost the race gets :class:`ObjectChanged`, and each caller says in its own
  words what changed. :func:`put_if` is the same for any bytes.

Both tell a retried write that finds its own first attempt already stored (the SDK lost the
answer) from another writer's object, by the bytes stored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from credit_api.aws import S3_MISSING_CODES, S3_PRECONDITION_CODES, error_code


class ObjectChanged(Exception):
    """A conditional write lost: the object is no longer the one the writer read."""


def put_once(s3: Any, bucket: str, key: str, body: bytes, content_type: str) -> bytes | None:
    """Write ``key`` only if absent: None when written, else the bytes already stored there."""
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*")
        return None
    except Exception as exc:
        if error_code(exc) not in S3_PRECONDITION_CODES:
            raise
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def put_json_if(s3: Any, bucket: str, key: str, document: Mapping[str, Any], etag: str | None) -> str | None:
    """Write ``document`` as JSON at ``key`` only if its ETag is still ``etag`` (None: only if
    absent); returns the new ETag. Raises :class:`ObjectChanged` when the condition fails,
    including when the object read was deleted meanwhile."""
    body = json.dumps(document, indent=2).encode()
    return put_if(s3, bucket, key, body, etag, ContentType="application/json")


def put_if(s3: Any, bucket: str, key: str, body: bytes, etag: str | None, **options: Any) -> str | None:
    """Write ``body`` at ``key`` only if its ETag is still ``etag`` (None: only if absent).

    The SDK retries a PutObject whose answer it lost, and the first attempt may have landed:
    the retry then fails its condition against this very write. So a failed condition reads
    the object back: the same bytes are this write (its ETag is returned), anything else is
    :class:`ObjectChanged`.
    """
    condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
    try:
        response = s3.put_object(Bucket=bucket, Key=key, Body=body, **options, **condition)
    except Exception as exc:
        lost = S3_PRECONDITION_CODES | (S3_MISSING_CODES if etag else frozenset())
        if error_code(exc) not in lost:
            raise
        stored = _read(s3, bucket, key)
        if stored is None or stored[0] != body:
            raise ObjectChanged(f"s3://{bucket}/{key}") from exc
        return stored[1]
    return response.get("ETag")


def _read(s3: Any, bucket: str, key: str) -> tuple[bytes, str | None] | None:
    """(bytes, ETag) of ``key``, or None when it is not there."""
    try:
        answer = s3.get_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if error_code(exc) in S3_MISSING_CODES:
            return None
        raise
    return answer["Body"].read(), answer.get("ETag")
