"""One process of the deployed cold-start benchmark: ``python3.12 -I -S -B bench/deployed_child.py
MODE EVENT_JSON OUT_JSON REQUESTS CODE_DIR...``.

Standard library only, like ``infra/invoke_built.py``: run in isolated mode the only other
importable code is ``CODE_DIR`` (the built bundle, ``.aws-sam/build/PredictFunction``), so what is
timed is what Lambda would load. The environment (the template's, pointed at a moto server) is
the caller's. Modes:

- ``cold``: ``import credit_api.main`` then one request, as a cold start without SnapStart.
- ``phases``: the same cold start taken apart (imports, init, AWS clients, the champion's fetch
  from S3, its verification, the onnxruntime session, the store's own load), then the SnapStart
  hooks as Lambda runs them (before-snapshot, then after-restore and a request, ``RESTORES``
  times: the first of those requests is the process's first through the handler, as in a
  restored snapshot) and ``REQUESTS`` warm requests.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAIN_IMPORTS = ("credit_api.api", "credit_api.lambda_handler", "credit_api.settings", "credit_api.snapstart")
"""What ``credit_api.main`` imports: importing these first leaves only its body to run."""
RESTORES = 5
"""After-restore hooks run in turn, each followed by one request (each renews the clients)."""


class Context:
    function_name = "PredictFunction"
    function_version = "1"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:PredictFunction:live"
    aws_request_id = "bench-deployed"

    def get_remaining_time_in_millis(self) -> int:
        return 15_000


def _ms(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    return (time.perf_counter() - started) * 1000, result


def _request(handler: Any, event: dict[str, Any]) -> float:
    elapsed, response = _ms(lambda: handler(event, Context()))
    if response["statusCode"] != 200:
        raise SystemExit(f"request failed: {response['statusCode']} {response['body'][:300]}")
    return elapsed


def cold(event: dict[str, Any]) -> dict[str, Any]:
    import_ms, main = _ms(lambda: importlib.import_module("credit_api.main"))
    first_ms = _request(main.handler, event)
    return {"import_ms": import_ms, "first_ms": first_ms, "total_ms": import_ms + first_ms}


def _fetch(s3: Any, bucket: str) -> tuple[bytes, bytes, dict[str, str]]:
    """The champion's pointer, model and manifest from S3, as the store reads them."""
    from credit_api.model_store import read_pointer

    pointer = read_pointer(s3, bucket)
    prefix = pointer["key"].rstrip("/")
    model = s3.get_object(Bucket=bucket, Key=f"{prefix}/model.onnx")["Body"].read()
    manifest = s3.get_object(Bucket=bucket, Key=f"{prefix}/manifest.json")["Body"].read()
    return model, manifest, pointer


def _verify(model: bytes, manifest: bytes, pointer: dict[str, str]) -> None:
    """The store's checks on the bytes (sha256 against the pointer and manifest, the schema hash)."""
    from credit_api.manifest import Manifest
    from credit_api.model_store import sha256
    from credit_api.schema import schema_hash

    parsed = Manifest.model_validate_json(manifest)
    digest = sha256(model)
    if not digest == pointer["sha256"] == parsed.onnx_sha256 or parsed.schema_hash != schema_hash():
        raise SystemExit("the champion does not verify")


def phases(event: dict[str, Any], requests: int, restores: int = RESTORES) -> dict[str, Any]:
    found: dict[str, Any] = {}
    found["imports_ms"], _ = _ms(lambda: [importlib.import_module(m) for m in MAIN_IMPORTS])
    found["init_ms"], main = _ms(lambda: importlib.import_module("credit_api.main"))
    from credit_api import aws, snapstart
    from credit_api.scoring import Scorer

    service = main.app.state.service
    settings = service.store.settings
    found["clients_ms"], s3 = _ms(
        lambda: (aws.client("s3", settings.aws_endpoint_url, settings.aws), service.log.client)[0]
    )
    found["fetch_ms"], (model, manifest, pointer) = _ms(lambda: _fetch(s3, settings.model_bucket))
    found["verify_ms"], _ = _ms(lambda: _verify(model, manifest, pointer))
    found["session_ms"], _ = _ms(lambda: Scorer.from_bytes(model))
    found["store_load_ms"], _ = _ms(lambda: (service.store.current(), service.store.settle(10.0)))
    found["model_version"] = service.store.champion_version
    found["before_snapshot_ms"], _ = _ms(snapstart.run_before_snapshot)
    found["after_restore_ms"], found["first_after_restore_ms"] = [], []
    for _ in range(restores):  # the first: this process's first request through the handler
        found["after_restore_ms"].append(_ms(snapstart.run_after_restore)[0])
        found["first_after_restore_ms"].append(_request(main.handler, event))
    found["warm_ms"] = [_request(main.handler, event) for _ in range(requests)]
    return found


def main(argv: list[str]) -> int:
    mode, event_path, out_path, requests, *code_dirs = argv
    sys.path[:0] = code_dirs
    event = json.loads(Path(event_path).read_text())
    result = cold(event) if mode == "cold" else phases(event, int(requests))
    Path(out_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
