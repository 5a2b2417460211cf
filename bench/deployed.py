"""The cold start in the deployed configuration: the built bundle against "AWS" on loopback.

``bench/run.py``'s cold start is the local configuration (bundled model, SQLite, no AWS client).
Deployed, the function imports boto3, makes S3 and DynamoDB clients, fetches the champion from
S3 and verifies it, and writes each decision to DynamoDB. Here a moto server
(:func:`infra.local_stack.running`: the template's bucket and tables, the bundled model published
as champion) stands in for AWS, and each measurement is a fresh ``python3.12 -I -S -B`` process
whose only code is ``.aws-sam/build/PredictFunction`` (:mod:`bench.deployed_child`), with
``PredictFunction``'s environment from the template. Reported:

- the cold start as Lambda without SnapStart runs it (median of ``cold_runs`` processes);
- the same taken apart in one process: imports, init, clients, fetch, verify, onnxruntime
  session, the store's load as served;
- SnapStart: the hooks' times, the first request after them next to the warm p50 (target: at
  most twice). One process runs init, before-snapshot, then after-restore and one request five
  times (each restore renews the clients). The first is judged: a restored environment's first
  request is its process's first through the handler (the snapshot holds only the init and the
  before-snapshot hook), as the first here is; the median of the five is shown beside it.
  What a real restore adds (the snapshot's pages read back on first touch) is not here: Lambda reports it as
  ``Restore Duration``.

Without a built bundle (``sam build PredictFunction``) the code in ``function/`` runs with this
interpreter instead, and the section says so.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import subprocess  # nosec B404
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra import local_stack

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / ".aws-sam" / "build" / "PredictFunction"
CHILD = ROOT / "bench" / "deployed_child.py"
PYTHON_312 = "3.12.1"
"""pyenv's interpreter for the bundle: the template's ``Runtime: python3.12``."""
TARGET_RATIO = 2.0
"""The first request after the SnapStart hooks may take at most this many warm p50s."""
PARTS = (
    ("imports_ms", "imports (`credit_api.main`'s modules)"),
    ("init_ms", "init: settings, app, handler, hooks registered"),
    ("clients_ms", "S3 and DynamoDB clients (botocore imported here)"),
    ("fetch_ms", "champion fetch from S3: pointer, model.onnx, manifest.json"),
    ("verify_ms", "verify: sha256 against pointer and manifest, manifest schema"),
    ("session_ms", "onnxruntime session of the champion"),
    ("store_load_ms", "the store's own load as served (fetch + verify + session + probe)"),
)


@dataclass(frozen=True)
class Target:
    """How the function's code is run: the interpreter's command and the code's directories."""

    command: tuple[str, ...]
    code_dirs: tuple[Path, ...]
    label: str
    env: tuple[tuple[str, str], ...] = ()


def bundle_target(build_dir: Path = BUILD_DIR) -> Target:
    """The built bundle under Python 3.12, isolated: only the bundle and the standard library."""
    return Target(
        ("python3.12", "-I", "-S", "-B"),
        (build_dir,),
        f"built bundle `{build_dir.relative_to(ROOT) if build_dir.is_relative_to(ROOT) else build_dir}`,"
        " python3.12 -I -S",
        (("PYENV_VERSION", PYTHON_312),),
    )


def source_target() -> Target:
    """``function/`` under this interpreter with its site-packages (no bundle built)."""
    version = ".".join(map(str, sys.version_info[:2]))
    return Target((sys.executable, "-I", "-B"), (ROOT / "function",), f"`function/` source, Python {version}")


def without_bytecode(target: Target, directory: Path) -> Target:
    """``target`` with its code copied to ``directory`` and every ``__pycache__`` left out.

    The built bundle ships its bytecode (``function/Makefile``) and ``/var/task`` is read-only;
    without it every cold start compiles each module it imports, as with SAM's pip builder. This
    copy measures what the bytecode saves.
    """
    dirs = []
    for index, source in enumerate(target.code_dirs):
        copy = directory / f"code-{index}"
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
        dirs.append(copy)
    return Target(target.command, tuple(dirs), f"{target.label}, bytecode removed", target.env)


def default_target() -> Target:
    return bundle_target() if (BUILD_DIR / "credit_api").is_dir() else source_target()


def _event(path: Path) -> Path:
    """events/predict.json without its Idempotency-Key (a key would turn repeats into replays)."""
    event = json.loads((ROOT / "events" / "predict.json").read_text())
    for headers in (event["headers"], event["multiValueHeaders"]):
        headers.pop("Idempotency-Key", None)
    path.write_text(json.dumps(event))
    return path


def _child_env(stack: local_stack.LocalStack, target: Target) -> dict[str, str]:
    keep = ("PATH", "HOME", "PYENV_ROOT", "LANG")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(stack.environment)
    env.update(dict(target.env))
    env.update(
        POWERTOOLS_TRACE_DISABLED="1",
        POWERTOOLS_METRICS_NAMESPACE="LoanDefault",
        AWS_LAMBDA_FUNCTION_NAME="PredictFunction",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def _run(target: Target, mode: str, event: Path, env: dict[str, str], requests: int = 0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="credit-deployed-") as tmp:
        out = Path(tmp) / "result.json"
        args = [str(CHILD), mode, str(event), str(out), str(requests), *map(str, target.code_dirs)]
        subprocess.run(  # nosec B603: a fixed interpreter on our own script
            [*target.command, *args],
            cwd=tmp,
            env={**env, "DECISIONS_DB": str(Path(tmp) / "decisions.sqlite3")},
            stdout=subprocess.DEVNULL,
            check=True,
            timeout=300,
        )
        return json.loads(out.read_text())


def measure(target: Target | None = None, *, cold_runs: int = 5, requests: int = 300) -> dict[str, Any]:
    """Run the children against a fresh moto server; their raw results and the target's label."""
    target = target or default_target()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request
    with local_stack.running(port=0) as stack, tempfile.TemporaryDirectory(prefix="credit-deployed-") as tmp:
        env = _child_env(stack, target)
        event = _event(Path(tmp) / "event.json")
        _run(target, "cold", event, env)  # untimed: files in the page cache
        cold = [_run(target, "cold", event, env) for _ in range(cold_runs)]
        phases = _run(target, "phases", event, env, requests)
    return {"target": target.label, "cold": cold, "phases": phases}


def summary(result: dict[str, Any]) -> dict[str, float]:
    """The numbers the section reports (medians of the cold runs; p50 of the warm requests)."""
    phases = result["phases"]
    warm_p50 = statistics.median(phases["warm_ms"])
    found = {f"cold_{k}": statistics.median(r[k] for r in result["cold"]) for k in result["cold"][0]}
    found.update({k: float(phases[k]) for k, _ in PARTS})
    found.update(
        before_snapshot_ms=phases["before_snapshot_ms"],
        after_restore_ms=statistics.median(phases["after_restore_ms"]),
        first_request_ms=phases["first_after_restore_ms"][0],
        first_after_restore_ms=statistics.median(phases["first_after_restore_ms"]),
        warm_p50_ms=warm_p50,
        ratio=phases["first_after_restore_ms"][0] / warm_p50,
    )
    return found


def section(result: dict[str, Any], no_bytecode: dict[str, Any] | None = None) -> str:
    """The Markdown section for ``BENCHMARKS.md``; ``no_bytecode``: the same run without the pycs."""
    s = summary(result)
    met = "met" if s["ratio"] <= TARGET_RATIO else "**missed**"
    restores = len(result["phases"]["after_restore_ms"])
    runs = len(result["cold"])
    lines = [
        "## Deployed configuration: cold start and SnapStart",
        "",
        f"Written by `bench/deployed.py` (`credit bench`): {result['target']}, against a moto server on"
        " loopback with the template's bucket and tables and the bundled model published as champion;"
        " `PredictFunction`'s environment from the template; tracing off. Loopback has no network"
        " latency, so real S3 and DynamoDB add their round trips (and TLS handshakes) to the fetch and"
        " the first request.",
        "",
        "| measure | ms |",
        "| --- | --- |",
        f"| cold start without SnapStart: `import credit_api.main` + first request (median of {runs}) |"
        f" {s['cold_total_ms']:.0f} |",
        f"| - of which import (init) | {s['cold_import_ms']:.0f} |",
        f"| - of which first request (clients, champion load, decision) | {s['cold_first_ms']:.0f} |",
        *_bytecode_rows(no_bytecode),
        "",
        "The same cold start taken apart, one step at a time in one process:",
        "",
        "| step | ms |",
        "| --- | --- |",
        *(f"| {label} | {s[key]:.1f} |" for key, label in PARTS),
        "",
        "SnapStart (the hooks of `credit_api.snapstart`, in the same process after the steps above):",
        "",
        "| measure | target | ms | status |",
        "| --- | --- | --- | --- |",
        f"| before-snapshot hook (model and policy loaded, clients made, one inference) | | "
        f"{s['before_snapshot_ms']:.1f} | |",
        f"| after-restore hook (clients re-made, seeds, pointer re-read, DynamoDB connection opened),"
        f" median of {restores} | | {s['after_restore_ms']:.1f} | |",
        f"| first request after the hooks: the process's first through the handler, right after the"
        f" first restore | <= {TARGET_RATIO:g}x warm p50 | {s['first_request_ms']:.1f} ({s['ratio']:.1f}x)"
        f" | {met} |",
        f"| request after the hooks, median of {restores} restores | | {s['first_after_restore_ms']:.1f} | |",
        f"| warm request, p50 of {len(result['phases']['warm_ms'])} | | {s['warm_p50_ms']:.1f} | |",
        "",
    ]
    return "\n".join(lines)


def _bytecode_rows(result: dict[str, Any] | None) -> list[str]:
    if result is None:
        return []
    s = summary(result)
    return [
        f"| the same bundle without its bytecode (as SAM's pip builder ships it), median |"
        f" {s['cold_total_ms']:.0f} |",
        f"| - of which import (init) | {s['cold_import_ms']:.0f} |",
    ]


def report(cold_runs: int = 5, requests: int = 300) -> str:
    """Measure and return the section: what ``bench/run.py`` appends to ``BENCHMARKS.md``."""
    target = default_target()
    result = measure(target, cold_runs=cold_runs, requests=requests)
    with tempfile.TemporaryDirectory(prefix="credit-deployed-nopyc-") as tmp:
        no_bytecode = measure(without_bytecode(target, Path(tmp)), cold_runs=cold_runs, requests=requests)
    return section(result, no_bytecode)


if __name__ == "__main__":
    print(report())
