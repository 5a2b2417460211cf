"""The ops function (``OpsFunction``, handler ``credit_api.ops.handler``): roll back, read the history.

Invoked directly (console, ``aws lambda invoke``, ``sam local invoke -e events/rollback.json``)::

    {"action": "rollback", "reason": "why", "to": "<optional version>", "by": "<optional who>"}
    {"action": "history", "limit": 20}

It is the same code as the function (``CodeUri: function/``), with the same settings and the
same bounds on every AWS call (:mod:`credit_api.aws`); the work is :mod:`credit_api.registry`'s.
A bad event or a refused operation is answered, not raised: ``{"status": 4xx, "error": ...}``
(a raised error would only say "Unhandled" to whoever invoked it). The history's ``by`` is the
caller's ``by`` (when given) and this invocation's request id, so the change is traceable to
its CloudTrail ``Invoke`` record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from credit_api import aws, registry
from credit_api.observability import logger
from credit_api.settings import Settings

HISTORY_LIMIT = 100
MAX_TEXT = 500
"""Longest ``reason``, ``to`` or ``by`` accepted (they are stored in the pointer document)."""


class BadEvent(ValueError):
    """The event is not one this function understands."""


def _text(event: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = event.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadEvent(f"{name!r} must be a non-empty string")
    if len(value) > MAX_TEXT:
        raise BadEvent(f"{name!r} is longer than {MAX_TEXT} characters")
    return value.strip()


def _limit(event: Mapping[str, Any]) -> int:
    value = event.get("limit", HISTORY_LIMIT)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= HISTORY_LIMIT:
        raise BadEvent(f"'limit' must be an integer from 1 to {HISTORY_LIMIT}")
    return value


def run(event: Any, s3: Any, bucket: str, request_id: str) -> dict[str, Any]:
    """One ops event against ``bucket``; the answer as the handler returns it."""
    if not isinstance(event, Mapping):
        raise BadEvent("the event must be a JSON object")
    action = event.get("action")
    if action == "history":
        entries = registry.history(s3, bucket, limit=_limit(event))
        return {"status": 200, "action": "history", "entries": entries}
    if action == "rollback":
        reason = _text(event, "reason", required=True) or ""
        who = _text(event, "by")
        by = f"{who} via OpsFunction {request_id}" if who else f"OpsFunction {request_id}"
        pointer = registry.rollback(s3, bucket, _text(event, "to"), by=by, reason=reason)
        logger.info("champion rolled back", extra={"model_version": pointer["model_version"], "by": by})
        return {"status": 200, "action": "rollback", "champion": pointer}
    raise BadEvent("'action' must be 'rollback' or 'history'")


def _refusal(status: int, error: str) -> dict[str, Any]:
    logger.warning("ops event refused", extra={"status": status, "error": error})
    return {"status": status, "error": error}


@logger.inject_lambda_context(clear_state=True)
def handler(event: Any, context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    if not settings.model_bucket:
        return _refusal(500, "MODEL_BUCKET is not set: the ops function has no registry")
    s3 = aws.client("s3", settings.aws_endpoint_url, settings.aws)
    try:
        return run(event, s3, settings.model_bucket, getattr(context, "aws_request_id", "local"))
    except BadEvent as exc:
        return _refusal(400, str(exc))
    except registry.RegistryError as exc:
        return _refusal(exc.status, str(exc))
