"""A local stand-in for API Gateway (REST API, payload v1) in front of the real Lambda handler.

The browser tests use it to load the page as it is deployed: under a stage path
(``/Prod`` and ``/Prod/``), every request turned into a real-shaped v1 event and passed to
``credit_api.main.handler``. Like API Gateway it answers 403 "Missing Authentication Token"
outside the stage (so an absolute URL on the page fails), and 403 "Forbidden" when a
route needs an API key and the request has the wrong one. The page and its static files
are open, as they must be for a browser to load them.

Run: ``python -m tests.web.stage_gateway --port N --stage Prod --api-key KEY``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from infra.template import load as load_template

ROOT = Path(__file__).resolve().parents[2]


def _open_paths() -> frozenset[str]:
    """The routes the template serves without an API key (``ApiKeyRequired: false``)."""
    events = load_template(ROOT / "template.yaml")["Resources"]["PredictFunction"]["Properties"]["Events"]
    return frozenset(
        event["Properties"]["Path"]
        for event in events.values()
        if event["Properties"].get("Auth", {}).get("ApiKeyRequired") is False
    )


OPEN_PATHS = _open_paths()
"""Routes served without an API key: the page, its assets, the docs, health and the model card."""


class LambdaContext:
    """The attributes of the Lambda context that Powertools and Mangum read."""

    function_name = "credit-api"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:credit-api"
    memory_limit_in_mb = 512
    log_group_name = "/aws/lambda/credit-api"
    log_stream_name = "local"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 29_000


def is_open(route: str) -> bool:
    return route in OPEN_PATHS or (route.startswith("/static/") and "/static/{name}" in OPEN_PATHS)


def event_for(method: str, target: str, headers: dict[str, str], body: bytes, stage: str) -> dict[str, Any]:
    """The v1 event API Gateway sends for a request to ``/{stage}{route}`` on its default endpoint."""
    parts = urlsplit(target)
    route = parts.path[len(stage) + 1 :] or "/"
    query = parse_qs(parts.query, keep_blank_values=True)
    return {
        "resource": "/" if route == "/" else "/{proxy+}",
        "path": route,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": None if route == "/" else {"proxy": route.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/" if route == "/" else "/{proxy+}",
            "httpMethod": method,
            "path": parts.path,
            "stage": stage,
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
            "accountId": "123456789012",
            "apiId": "localgw",
            "protocol": "HTTP/1.1",
            "domainName": headers.get("Host", "127.0.0.1"),
            "identity": {"sourceIp": "127.0.0.1", "apiKeyId": "local-key-id" if not is_open(route) else None},
        },
        "body": body.decode("utf-8") if body else None,
        "isBase64Encoded": False,
    }


def make_handler(lambda_handler: Any, stage: str, api_key: str | None) -> type[BaseHTTPRequestHandler]:
    prefix = f"/{stage}"
    # One Lambda execution environment: one thread with its own event loop, one request at a time.
    instance = ThreadPoolExecutor(1, initializer=lambda: asyncio.set_event_loop(asyncio.new_event_loop()))

    class Gateway(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and
        # the client's delayed ACK add about 40 ms to every keep-alive response.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests read responses, not the access log."""

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _refuse(self, message: str) -> None:
            body = json.dumps({"message": message}).encode()
            self._send(
                403, {"Content-Type": "application/json", "x-amzn-ErrorType": "ForbiddenException"}, body
            )

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path
            if path != prefix and not path.startswith(prefix + "/"):
                self._refuse("Missing Authentication Token")
                return
            route = path[len(prefix) :] or "/"
            if api_key and not is_open(route) and self.headers.get("x-api-key") != api_key:
                self._refuse("Forbidden")
                return
            headers = {name: value for name, value in self.headers.items()}
            event = event_for(self.command, self.path, headers, body, stage)
            response = instance.submit(lambda_handler, event, LambdaContext()).result()
            out_headers = dict(response.get("headers") or {})
            for name, values in (response.get("multiValueHeaders") or {}).items():
                out_headers[name] = ", ".join(values)
            text = response.get("body") or ""
            payload = base64.b64decode(text) if response.get("isBase64Encoded") else text.encode()
            self._send(response["statusCode"], out_headers, payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

    return Gateway


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stage", default="Prod")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--handler", default="credit_api.main:handler")
    args = parser.parse_args()
    module, _, name = args.handler.partition(":")
    lambda_handler = getattr(importlib.import_module(module), name)
    server = ThreadingHTTPServer(
        ("127.0.0.1", args.port), make_handler(lambda_handler, args.stage, args.api_key)
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
