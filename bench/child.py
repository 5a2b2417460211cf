"""One measured process: ``python -m bench.child {cold|warm|shadow|aws} {function|baseline} RESULT_JSON``.

Run by :mod:`bench.run` in a fresh interpreter each time, with stdout (the function's JSON logs
and EMF metrics, written as in Lambda) sent to /dev/null. Results go to ``RESULT_JSON``.
"""

from __future__ import annotations

import csv
import importlib
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ENTRY = {"function": "credit_api.main", "baseline": "bench.baseline"}


class Context:
    function_name = "PredictFunction"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:PredictFunction"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def single_event() -> dict[str, Any]:
    """events/predict.json without its Idempotency-Key (a key would turn repeats into replays)."""
    event = json.loads((ROOT / "events" / "predict.json").read_text())
    for headers in (event["headers"], event["multiValueHeaders"]):
        headers.pop("Idempotency-Key", None)
    return event


def batch_event(n: int = 1000) -> dict[str, Any]:
    """events/predict_batch.json carrying the first ``n`` applicants of data/credit.csv."""
    event = json.loads((ROOT / "events" / "predict_batch.json").read_text())
    with (ROOT / "data" / "credit.csv").open() as f:
        rows = list(csv.DictReader(f))[:n]
    applicants = [
        {k: int(v) if v.lstrip("-").isdigit() else v for k, v in row.items() if k != "default"}
        for row in rows
    ]
    event["body"] = json.dumps({"applicants": applicants})
    return event


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def checked(response: dict[str, Any]) -> dict[str, Any]:
    if response["statusCode"] != 200:
        raise SystemExit(f"benchmark request failed: {response['statusCode']} {response['body'][:300]}")
    return json.loads(response["body"])


def cold(impl: str) -> dict[str, Any]:
    event, context = single_event(), Context()
    started = time.perf_counter()
    module = importlib.import_module(ENTRY[impl])
    imported = time.perf_counter()
    answer = checked(module.handler(event, context))
    done = time.perf_counter()
    return {
        "import_ms": (imported - started) * 1000,
        "first_ms": (done - imported) * 1000,
        "total_ms": (done - started) * 1000,
        "rss_mb": peak_rss_mb(),
        "decision": answer["decision"],
        "sklearn_loaded": "sklearn" in sys.modules,
        "pandas_loaded": "pandas" in sys.modules,
    }


def timed(handler: Any, event: dict[str, Any], context: Context, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = handler(event, context)
        times.append((time.perf_counter() - started) * 1000)
        if response["statusCode"] != 200:
            raise SystemExit(f"benchmark request failed: {response['body'][:300]}")
    return times


def warm(impl: str, singles: int, batches: int) -> dict[str, Any]:
    module = importlib.import_module(ENTRY[impl])
    context, single, batch = Context(), single_event(), batch_event()
    answer = checked(module.handler(single, context))
    timed(module.handler, single, context, max(100, singles // 10))
    single_ms = timed(module.handler, single, context, singles)
    results = checked(module.handler(batch, context))["results"]
    timed(module.handler, batch, context, 2)
    batch_ms = timed(module.handler, batch, context, batches)
    return {
        "breakdown": breakdown(module, batch) if impl == "function" else {},
        "single_ms": single_ms,
        "batch_ms": batch_ms,
        "rss_mb": peak_rss_mb(),
        "single_decision": answer["decision"],
        "single_reasons": len(answer["reasons"]),
        "batch_size": len(results),
        "batch_outcomes": {
            o: sum(r["decision"] == o for r in results) for o in ("approve", "review", "decline")
        },
        "model_version": answer["model_version"],
    }


def breakdown(module: Any, batch: dict[str, Any], runs: int = 10) -> dict[str, float]:
    """Median ms of the batch's model and policy work, apart from the HTTP, records and JSON around it."""
    from credit_api.reasons import notices
    from credit_api.underwriting import assess

    model = module.app.state.service.store.current()
    applicants = json.loads(batch["body"])["applicants"]
    raw = model.scorer.predict(applicants)
    adverse = [i for i, a in enumerate(assess(model, applicants)) if a["decision"] != "approve"]
    rows = [applicants[i] for i in adverse]
    parts = {
        "model_run_ms": lambda: model.scorer.predict(applicants),
        "reasons_ms": lambda: notices(model.scorer, rows, raw[adverse], model.manifest.reason_reference),
        "assess_ms": lambda: assess(model, applicants),
    }
    found = {"adverse_rows": float(len(adverse))}
    for name, part in parts.items():
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            part()
            times.append((time.perf_counter() - started) * 1000)
        found[name] = sorted(times)[runs // 2]
    return found


def shadow_twin(champion: Any) -> Any:
    """A shadow exactly as costly as the champion: its graph with one more metadata entry.

    Other bytes (so another sha256, and the service scores it: it skips a shadow identical to
    the champion), the same nodes, so the measured cost is that of a real challenger of the
    same family.
    """
    import onnx
    from credit_api.manifest import MANIFEST_FILE, MODEL_FILE
    from credit_api.model_store import build, sha256

    model_dir = ROOT / "function" / "model"
    graph = onnx.load_from_string((model_dir / MODEL_FILE).read_bytes())
    graph.metadata_props.add(key="bench", value="shadow twin")
    data = graph.SerializeToString()
    manifest = json.loads((model_dir / MANIFEST_FILE).read_text())
    manifest.update(model_version=f"{champion.version}-shadow", onnx_sha256=sha256(data))
    return build(data, json.dumps(manifest).encode(), source="bench:shadow-twin")


def shadow(singles: int, block: int = 1) -> dict[str, Any]:
    """The single-applicant event with and without a shadow model, interleaved in one process.

    Blocks of ``block`` calls alternate (which goes first alternates too), so load from elsewhere
    on the machine falls on both alike; the shadow's own work (:func:`credit_api.underwriting.shadow_score`)
    is timed apart as well.
    """
    from credit_api.underwriting import shadow_score as score

    module = importlib.import_module(ENTRY["function"])
    store = module.app.state.service.store
    context, single = Context(), single_event()
    checked(module.handler(single, context))
    champion = store.current()
    twin = shadow_twin(champion)
    timed(module.handler, single, context, max(100, singles // 10))
    runs: dict[str, list[float]] = {"plain": [], "shadow": []}
    for round_ in range(max(1, singles // block)):
        order = [("plain", None), ("shadow", twin)]
        for name, model in order if round_ % 2 == 0 else order[::-1]:
            store.shadow = model
            runs[name].extend(timed(module.handler, single, context, block))
    store.shadow = None
    applicant = [json.loads(single["body"])]
    feed = champion.scorer.feed(applicant)
    direct = []
    for _ in range(2000):
        started = time.perf_counter()
        score(twin, champion, feed, applicant)
        direct.append((time.perf_counter() - started) * 1000)
    return {
        "plain_ms": runs["plain"],
        "shadow_ms": runs["shadow"],
        "score_ms": sorted(direct)[len(direct) // 2],
        "shadow_version": twin.version,
    }


def aws() -> dict[str, Any]:
    """What a deployed cold start adds: boto3 and its two clients, then the X-Ray SDK (active tracing)."""
    started = time.perf_counter()
    import boto3

    session = boto3.session.Session()
    session.client("s3")
    session.client("dynamodb")
    clients = time.perf_counter()
    import aws_xray_sdk.core  # noqa: F401

    done = time.perf_counter()
    return {"boto3_clients_ms": (clients - started) * 1000, "xray_ms": (done - clients) * 1000}


def main() -> None:
    mode, impl, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    if mode == "cold":
        result = cold(impl)
    elif mode == "warm":
        result = warm(impl, int(sys.argv[4]), int(sys.argv[5]))
    elif mode == "shadow":
        result = shadow(int(sys.argv[4]))
    else:
        result = aws()
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
