"""bench/portfolio.py: the worker measured on real batches, and the projections' arithmetic."""

from __future__ import annotations

import pytest

from bench import portfolio


def test_the_projection_is_the_measured_batch_time_over_waves_of_max_concurrency() -> None:
    result = portfolio.measure(batches=3)
    assert (result["batch_size"], result["max_concurrency"]) == (1000, 40)
    # 10,000,000 rows / 1000 a batch = 10,000 batches; 40 at a time = 250 waves.
    assert result["projected_waves"] == 250
    assert result["projected_minutes"] == pytest.approx(250 * result["batch_ms_p50"] / 60_000)
    assert result["rows_per_second"] == pytest.approx(1000 / (result["batch_ms_p50"] / 1000))
    assert result["assembled_rows"] == 20_000
    rate = 20_000 / (result["assemble_ms"] / 1000)
    assert result["projected_assemble_minutes"] == pytest.approx(10_000_000 / rate / 60)
    text = portfolio.section(result)
    assert "**projection**: 10 million rows at MaxConcurrency 40 | 250 waves" in text
    assert f"{result['rows_per_second']:,.0f}" in text
