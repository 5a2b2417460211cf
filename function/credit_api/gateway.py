"""API Gateway events as ASGI requests: the stage prefix, the request id and the caller.

API Gateway puts the stage in different places: a REST API (payload v1) on its default
endpoint strips it from ``path`` but keeps it in ``requestContext.path``; through a custom
domain mapped without a base path ``path`` itself starts with ``/{stage}``; an HTTP API
(payload v2) on a named stage keeps it in ``rawPath``. Mangum only strips a fixed, configured
prefix and always sets ``root_path`` to "", so these handlers read the stage from the event:
routes match without the prefix, and ``root_path`` carries it so that ``/docs`` (and any
absolute URL the app builds) points back under the stage.
"""

from __future__ import annotations

import uuid
from typing import Any

from mangum.handlers import APIGateway, HTTPGateway

_REQUEST_ID = "credit_api.request_id"


def _split_stage(path: str, stage: str | None) -> tuple[str, str]:
    """(root_path, route path) for a path that may start with ``/{stage}``."""
    if stage and stage != "$default":
        prefix = f"/{stage}"
        if path == prefix or path.startswith(prefix + "/"):
            return prefix, path[len(prefix) :] or "/"
    return "", path


def _with_root(scope: dict[str, Any], root: str, route: str) -> dict[str, Any]:
    # Starlette expects "path" to include "root_path" and strips it when routing.
    scope["root_path"] = root
    scope["path"] = root + route
    return scope


class StageAwareAPIGateway(APIGateway):
    """REST API (payload v1) events, wherever the stage appears."""

    @property
    def scope(self) -> dict[str, Any]:
        scope = super().scope
        context = self.event.get("requestContext") or {}
        root, route = _split_stage(scope["path"], context.get("stage"))
        if not root:
            # Default endpoint: the client asked for requestContext.path = /{stage}{path}.
            client_path = context.get("path") or ""
            if client_path.endswith(route) and len(client_path) > len(route) and route != "/":
                root = client_path[: -len(route)]
            elif route == "/" and client_path.rstrip("/") and client_path.rstrip("/") != "/":
                root = client_path.rstrip("/")
        return _with_root(scope, root, route)


class StageAwareHTTPGateway(HTTPGateway):
    """HTTP API events (payload v2, or v1 through an HTTP API) with a named stage."""

    @property
    def scope(self) -> dict[str, Any]:
        scope = super().scope
        stage = (self.event.get("requestContext") or {}).get("stage")
        root, route = _split_stage(scope["path"], stage)
        return _with_root(scope, root, route)


HANDLERS = [StageAwareHTTPGateway, StageAwareAPIGateway]
"""Mangum ``custom_handlers``, in Mangum's own order (HTTP API before REST API)."""


def request_id(scope: dict[str, Any]) -> str:
    """API Gateway's request id (also the logs' correlation id), else ``X-Request-Id``, else a new one."""
    cached = scope.get(_REQUEST_ID)
    if cached:
        return cached
    event = scope.get("aws.event") or {}
    found = (event.get("requestContext") or {}).get("requestId")
    if not found:
        for name, value in scope.get("headers") or ():
            if name.lower() == b"x-request-id" and value:
                found = value.decode("latin-1")[:128]
                break
    scope[_REQUEST_ID] = found = found or uuid.uuid4().hex
    return found


def caller(scope: dict[str, Any]) -> str:
    """Who is calling: the API key id API Gateway checked (``requestContext.identity.apiKeyId``).

    Decisions and idempotency keys belong to it. Without API Gateway (local runs, the open
    routes) it is "", and everything made locally belongs to "". Headers are never read: a
    client could set them.
    """
    event = scope.get("aws.event") or {}
    identity = (event.get("requestContext") or {}).get("identity") or {}
    return str(identity.get("apiKeyId") or "")
