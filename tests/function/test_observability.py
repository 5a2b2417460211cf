"""EMF metrics and the handler's Powertools wiring, read from what the function prints."""

from __future__ import annotations

import json

from credit_api.schema import EXAMPLE_APPLICANT

from tests.support import dimensions, emf_records, load_event, metric_values


def test_cold_start_model_load_latency_and_outcomes(invoke, stdout) -> None:
    first = json.loads(invoke(load_event("predict"))["body"])
    invoke(load_event("predict_stage"))
    records = emf_records(stdout())

    assert metric_values(records, "ColdStart") == [1.0]  # the first invocation only
    (load_ms,) = metric_values(records, "ModelLoadTimeMs")
    assert load_ms > 0
    latencies = metric_values(records, "PredictionLatencyMs")
    assert len(latencies) == 2 and all(v > 0 for v in latencies)
    outcome_metric = f"{first['decision'].capitalize()}Decisions"
    assert sum(metric_values(records, outcome_metric)) >= 1

    scored = [r for r in records if "PredictionLatencyMs" in r]
    assert all(r["model_version"] == first["model_version"] for r in scored)
    assert all("model_version" in dimensions(r) for r in scored)
    assert all(r["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "LoanDefault" for r in records)


def test_batch_counts_each_outcome(invoke, stdout) -> None:
    event = load_event("predict_batch")
    results = json.loads(invoke(event)["body"])["results"]
    records = emf_records(stdout())
    for outcome in ("approve", "review", "decline"):
        expected = sum(r["decision"] == outcome for r in results)
        assert sum(metric_values(records, f"{outcome.capitalize()}Decisions")) == expected
    assert len(metric_values(records, "BatchLatencyMs")) == 1


def test_each_error_kind_is_counted(invoke, stdout) -> None:
    invoke(load_event("predict_bad_request"))
    invoke(load_event("predict", body="{oops"))
    invoke(load_event("decision", path="/decisions/unknown", pathParameters={"decision_id": "unknown"}))
    records = emf_records(stdout())
    assert metric_values(records, "ValidationErrors") == [1.0]
    assert metric_values(records, "MalformedRequests") == [1.0]
    assert metric_values(records, "NotFound") == [1.0]


def test_uvicorn_requests_flush_their_metrics_too(client, stdout) -> None:
    """Outside Lambda there is no log_metrics decorator: each request publishes its own record."""
    client.post("/predict", json=EXAMPLE_APPLICANT)
    records = emf_records(stdout())
    assert metric_values(records, "PredictionLatencyMs")
    assert not metric_values(records, "ColdStart")
