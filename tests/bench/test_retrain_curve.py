"""bench/retrain_curve.py: the rows it trains on, one measured size, and its section of BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

import pytest
from credit_api.schema import BY_NAME, CATEGORICAL, NUMERIC, TARGET

from bench import retrain_curve
from training.data import CREDIT_CSV, load, validate


def test_synthetic_rows_pass_the_schema_and_are_not_copies() -> None:
    frame = retrain_curve.synthetic_frame(3000, seed=1)
    base = load(CREDIT_CSV)
    assert len(frame) == 3000
    validate(frame)  # what training validates
    assert list(frame.columns) == list(base.columns) and (frame.dtypes == base.dtypes).all()
    for name in NUMERIC:
        assert frame[name].between(BY_NAME[name].minimum, BY_NAME[name].maximum).all()
    assert set(frame[TARGET]) == {0, 1}
    assert all(set(frame[name]) <= set(base[name]) for name in CATEGORICAL)
    rows = frame[list(NUMERIC)].astype(str).agg("|".join, axis=1)
    originals = set(base[list(NUMERIC)].astype(str).agg("|".join, axis=1))
    assert rows.isin(originals).mean() < 0.5  # the noise moved most rows off the originals
    assert retrain_curve.synthetic_frame(50, seed=1).equals(retrain_curve.synthetic_frame(50, seed=1))


@pytest.mark.slow
def test_one_small_size_is_measured_in_its_own_process() -> None:
    result = retrain_curve.run_child(300, quick=True, timeout=600)
    assert result["rows"] == 300 and result["quick"] is True
    assert result["seconds"] > 0
    # a tiny frame may never lift the peak above what the imports and the frame reached
    assert result["tree_peak_rss_mb"] >= result["peak_rss_mb"] >= result["base_rss_mb"] > 0
    assert retrain_curve.verdict(result) == "fits"


def test_the_section_replaces_only_itself(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## Load\n\nload table\n")
    measured = {"rows": 1000, "quick": True, "search_rows": 10000, "seconds": 12.0, "peak_rss_mb": 400.0}
    measured |= {"base_rss_mb": 260.0, "tree_peak_rss_mb": 800.0, "champion": "logistic", "cv_auc": 0.77}
    timed_out = {"rows": 100_000, "quick": False, "timed_out_after_s": 1500}
    retrain_curve.write_section(retrain_curve.section([measured, timed_out]), path)
    retrain_curve.write_section(retrain_curve.section([measured]), path)
    text = path.read_text()
    assert text.count(retrain_curve.SECTION) == 1 and "## Load\n\nload table" in text
    assert "| 1,000 | quick | 12.0 | 400 | 260 | 800 | logistic | 0.770 |  | fits |" in text
    assert "100,000" not in text  # the second write replaced the first
    assert "not finished in 1500 s" in retrain_curve.table([timed_out])


def test_the_projection_scales_the_full_time_by_the_quick_growth() -> None:
    runs = [
        {"rows": 10_000, "quick": False, "seconds": 800.0},
        {"rows": 10_000, "quick": True, "seconds": 50.0},
        {"rows": 100_000, "quick": True, "seconds": 200.0},
    ]
    (line,) = retrain_curve.projections(runs)
    assert line.startswith("- **Projection, not a measurement:**") and "about 3200 s" in line


def test_a_size_over_its_time_is_reported_and_stopped() -> None:
    result = retrain_curve.run_child(300, quick=True, timeout=1)
    assert result == {"rows": 300, "quick": True, "timed_out_after_s": 1}
    assert retrain_curve.verdict(result) == "not finished in 1 s"


def test_credit_bench_keeps_the_retrain_section_it_does_not_measure(tmp_path) -> None:
    from bench import run

    path = tmp_path / "BENCHMARKS.md"
    section = f"{retrain_curve.SECTION}\n\n| rows |\n|---:|\n| 1,000 |\n"
    path.write_text(f"# Benchmarks\n\nold table\n\n{section}\n## Portfolio scoring (one worker)\n\nx\n")
    kept = run.kept_section(path)
    assert kept == section
    path.write_text("# Benchmarks\n\nnew table\n")
    retrain_curve.write_section(kept, path)
    assert path.read_text() == f"# Benchmarks\n\nnew table\n\n{section}"
    assert run.kept_section(tmp_path / "absent.md") is None


def test_one_fold_worker_is_asked_of_the_child_and_named_in_the_table(monkeypatch) -> None:
    commands: list[list[str]] = []

    class Child:
        pid = 0

        def __init__(self, command: list[str], **_: object) -> None:
            commands.append(command)
            Path(command[command.index("--child") + 2]).write_text('{"rows": 5, "n_jobs": 1}')

        def wait(self, timeout: float) -> int:
            return 0

    monkeypatch.setattr(retrain_curve.subprocess, "Popen", Child)
    assert retrain_curve.run_child(5, quick=False, timeout=1, n_jobs=1) == {"rows": 5, "n_jobs": 1}
    assert commands[0][-2:] == ["--jobs", "1"]
    measured = {"rows": 100_000, "quick": False, "n_jobs": 1, "seconds": 800.0, "peak_rss_mb": 1.0}
    measured |= {"base_rss_mb": 1.0, "tree_peak_rss_mb": 1.0, "champion": "logistic", "cv_auc": 0.7}
    assert "| 100,000 | full, one fold worker, as in Lambda | 800.0 |" in retrain_curve.table([measured])
    assert "| full |" in retrain_curve.table([measured | {"n_jobs": 2}])
