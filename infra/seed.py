"""Seed a model bucket: ``data/credit.csv`` under ``data/`` and a model directory as champion.

    credit seed --bucket <ModelBucketName output> [--model-dir function/model]

Run once after the first ``sam deploy`` (the retrain reads ``data/`` and compares against the
champion), with the deploying user's AWS credentials. The local stack seeds moto the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.template import ROOT

DATA_CSV = ROOT / "data" / "credit.csv"
DATA_KEY = "data/credit.csv"
BUNDLED_MODEL = ROOT / "function" / "model"


def seed(s3: Any, bucket: str, model_dir: Path = BUNDLED_MODEL, data_csv: Path = DATA_CSV) -> dict[str, str]:
    """Upload the training data, then publish ``model_dir`` as champion; returns the pointer."""
    from credit_api.model_store import publish

    s3.put_object(Bucket=bucket, Key=DATA_KEY, Body=data_csv.read_bytes(), ContentType="text/csv")
    return publish(s3, bucket, model_dir)
