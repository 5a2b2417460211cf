"""Invoke a built Lambda artifact as the Lambda runtime would, without Docker.

    python3.12 -I -S -B infra/invoke_built.py BUILD_DIR HANDLER EVENT_JSON OUT_JSON [RUNTIME_DIR]

Run it with the runtime's Python in isolated mode without ``site`` (``-I -S``; ``-B`` leaves the
bundle unchanged, as Lambda's read-only ``/var/task`` does): then the only
importable code is the standard library and ``BUILD_DIR`` (e.g. ``.aws-sam/build/PredictFunction``),
so an invocation that works proves the bundle carries everything the handler needs. The Lambda
runtime itself adds ``/var/runtime`` (boto3) after the bundle; ``RUNTIME_DIR`` stands in for it
when the bundle relies on the runtime's boto3. The
environment is the caller's to set, as ``sam local invoke`` sets it from the template and
``--env-vars``. Standard library only: this file cannot import anything from the project.

``OUT_JSON`` receives the handler's response, the import and invocation times, the peak RSS, and any module
loaded from outside the bundle and the standard library (there should be none).
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import sysconfig
import time
import uuid
from pathlib import Path
from typing import Any


class LambdaContext:
    """The attributes of the runtime's context object that handlers and Powertools read."""

    def __init__(self, deadline: float) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "function")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{self.function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/[$LATEST]{uuid.uuid4().hex}"
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def foreign_modules(code_dirs: list[Path]) -> list[str]:
    """Loaded modules whose file is neither in the bundle (or runtime dir) nor in the standard library."""
    allowed = [d.resolve() for d in code_dirs] + [
        Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "platstdlib")
    ]
    foreign = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if (
            name not in ("__main__", "__mp_main__")  # this script, under either name
            and file
            and not any(Path(file).resolve().is_relative_to(root) for root in allowed)
        ):
            foreign.append(f"{name}: {file}")
    return sorted(foreign)


def invoke(code_dirs: list[Path], handler_name: str, event: Any) -> dict[str, Any]:
    """Import the handler from ``code_dirs`` (the bundle first), invoke it once with ``event``."""
    sys.path[:0] = [str(d) for d in code_dirs]
    timeout = float(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "3"))
    started = time.monotonic()
    module_name, _, function_name = handler_name.rpartition(".")
    handler = getattr(importlib.import_module(module_name), function_name)
    imported = time.monotonic()
    response = handler(event, LambdaContext(deadline=imported + timeout))
    finished = time.monotonic()
    return {
        "response": response,
        "import_ms": round((imported - started) * 1000, 1),
        "invoke_ms": round((finished - imported) * 1000, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "foreign_modules": foreign_modules(code_dirs),
        "top_level_modules": sorted({name.partition(".")[0] for name in sys.modules}),
    }


def main(argv: list[str]) -> int:
    if len(argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    build_dir, handler_name, event_path, out_path, *runtime_dir = argv
    event = json.loads(Path(event_path).read_text())
    result = invoke([Path(build_dir), *map(Path, runtime_dir)], handler_name, event)
    Path(out_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
