"""Where the served model comes from, and how a new champion replaces it without a gap.

Two sources: the model bundled with the function (``function/model/``), or, when
``MODEL_BUCKET`` is set, the champion named by the S3 pointer ``models/champion.json``::

    {"model_version": "...", "key": "models/<version>-<sha12>", "sha256": "<of model.onnx>",
     "published_at": "..."}

``key`` is a prefix holding ``model.onnx`` and ``manifest.json``; :func:`publish` writes both
and then the pointer, so a reader never sees a pointer to a half-written version. A model is
served only after its bytes match the pointer's and the manifest's sha256, the manifest's
schema hash matches this code's schema, and one row scores to a probability. The store
re-reads the pointer at most every ``MODEL_REFRESH_SECONDS``; a new model that fails any check
is never served: the current one stays, and the failure is logged and counted. Requests take
one reference to the current model and keep it to the end, so a swap drops none.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from credit_api.errors import ModelUnavailable
from credit_api.manifest import MANIFEST_FILE, MODEL_FILE, Manifest
from credit_api.observability import count, logger, metrics, milliseconds
from credit_api.schema import EXAMPLE_APPLICANT, FEATURE_NAMES, schema_hash
from credit_api.scoring import Scorer
from credit_api.settings import Settings

POINTER_KEY = "models/champion.json"
RETRY_WITHOUT_MODEL_SECONDS = 5.0
"""With no model at all, how soon to try loading again (a short outage, not one per refresh interval)."""


class ModelLoadError(Exception):
    """A model that must not be served; the message says which check failed."""


@dataclass(frozen=True)
class LoadedModel:
    scorer: Scorer
    manifest: Manifest
    sha256: str
    source: str
    loaded_at: datetime
    load_ms: float

    @property
    def version(self) -> str:
        return self.manifest.model_version


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build(
    model_bytes: bytes, manifest_bytes: bytes, *, source: str, expected_sha256: str | None = None
) -> LoadedModel:
    """Verify a model and its manifest and open it; raises :class:`ModelLoadError` on any mismatch."""
    started = time.perf_counter()
    digest = sha256(model_bytes)
    if expected_sha256 is not None and digest != expected_sha256:
        raise ModelLoadError(
            f"model.onnx sha256 {digest[:12]} does not match the pointer's {expected_sha256[:12]}"
        )
    try:
        manifest = Manifest.model_validate_json(manifest_bytes)
    except ValueError as exc:
        raise ModelLoadError(f"invalid manifest: {exc.__class__.__name__}") from exc
    if manifest.onnx_sha256 != digest:
        raise ModelLoadError(f"model.onnx sha256 {digest[:12]} does not match the manifest's")
    if manifest.schema_hash != schema_hash():
        raise ModelLoadError("manifest schema_hash does not match this function's applicant schema")
    if tuple(manifest.features) != FEATURE_NAMES:
        raise ModelLoadError("manifest features differ from the schema's inputs")
    try:
        scorer = Scorer.from_bytes(model_bytes)
        (probability,) = scorer.predict([EXAMPLE_APPLICANT])
    except Exception as exc:  # onnxruntime raises several unrelated types for a bad graph
        raise ModelLoadError(f"model does not run: {exc.__class__.__name__}") from exc
    if not (math.isfinite(probability) and 0.0 <= probability <= 1.0):
        raise ModelLoadError(f"model returned {probability!r} for the example applicant")
    return LoadedModel(
        scorer=scorer,
        manifest=manifest,
        sha256=digest,
        source=source,
        loaded_at=datetime.now(UTC),
        load_ms=(time.perf_counter() - started) * 1000,
    )


def load_bundled(model_dir: Path) -> LoadedModel:
    started = time.perf_counter()
    try:
        model_bytes = (model_dir / MODEL_FILE).read_bytes()
        manifest_bytes = (model_dir / MANIFEST_FILE).read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"no bundled model in {model_dir}: {exc.strerror}") from exc
    model = build(model_bytes, manifest_bytes, source=f"bundled:{model_dir.name}")
    return replace(model, load_ms=(time.perf_counter() - started) * 1000)


def _get(s3: Any, bucket: str, key: str) -> bytes:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:  # botocore's ClientError, connection and credential errors alike
        raise ModelLoadError(f"cannot read s3://{bucket}/{key}: {_describe(exc)}") from exc


def _describe(exc: Exception) -> str:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code or exc.__class__.__name__


def read_pointer(s3: Any, bucket: str) -> dict[str, str]:
    raw = _get(s3, bucket, POINTER_KEY)
    try:
        pointer = json.loads(raw)
        if not all(
            isinstance(pointer.get(k), str) and pointer[k] for k in ("model_version", "key", "sha256")
        ):
            raise ValueError("pointer lacks model_version, key or sha256")
    except ValueError as exc:
        raise ModelLoadError(f"invalid pointer s3://{bucket}/{POINTER_KEY}: {exc}") from exc
    return pointer


def load_from_s3(s3: Any, bucket: str, pointer: dict[str, str]) -> LoadedModel:
    started = time.perf_counter()
    prefix = pointer["key"].rstrip("/")
    model_bytes = _get(s3, bucket, f"{prefix}/{MODEL_FILE}")
    manifest_bytes = _get(s3, bucket, f"{prefix}/{MANIFEST_FILE}")
    model = build(
        model_bytes, manifest_bytes, source=f"s3://{bucket}/{prefix}", expected_sha256=pointer["sha256"]
    )
    if model.version != pointer["model_version"]:
        raise ModelLoadError(f"pointer names {pointer['model_version']!r}, manifest says {model.version!r}")
    return replace(model, load_ms=(time.perf_counter() - started) * 1000)


def publish(s3_client: Any, bucket: str, model_dir: Path | str) -> dict[str, str]:
    """Upload ``model_dir`` as a new version, then point ``models/champion.json`` at it.

    The version is checked as the function will check it (sha256, schema hash, it runs) before
    anything is written, so a broken model is never promoted. Returns the pointer written.
    """
    model_dir = Path(model_dir)
    model_bytes = (model_dir / MODEL_FILE).read_bytes()
    manifest_bytes = (model_dir / MANIFEST_FILE).read_bytes()
    model = build(model_bytes, manifest_bytes, source=str(model_dir))
    safe_version = re.sub(r"[^A-Za-z0-9._-]+", "-", model.version)
    prefix = f"models/{safe_version}-{model.sha256[:12]}"
    s3_client.put_object(Bucket=bucket, Key=f"{prefix}/{MODEL_FILE}", Body=model_bytes)
    s3_client.put_object(
        Bucket=bucket, Key=f"{prefix}/{MANIFEST_FILE}", Body=manifest_bytes, ContentType="application/json"
    )
    pointer = {
        "model_version": model.version,
        "key": prefix,
        "sha256": model.sha256,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    s3_client.put_object(
        Bucket=bucket,
        Key=POINTER_KEY,
        Body=json.dumps(pointer, indent=2).encode(),
        ContentType="application/json",
    )
    return pointer


def _identity(pointer: dict[str, str]) -> tuple[str, str, str]:
    return (pointer["model_version"], pointer["key"], pointer["sha256"])


class ModelStore:
    """The model being served, loaded on first use and refreshed from the S3 pointer.

    ``s3`` is any object with boto3's ``get_object``; when omitted and a bucket is set, a
    boto3 client is made on first use. ``clock`` is injectable for refresh tests.
    """

    def __init__(self, settings: Settings, s3: Any = None, clock: Any = time.monotonic) -> None:
        self.settings = settings
        self._s3 = s3
        self._clock = clock
        self._model: LoadedModel | None = None
        self._next_check = 0.0
        self._pointer: tuple[str, str, str] | None = None
        self._lock = threading.Lock()
        self.last_error: str | None = None

    def _client(self) -> Any:
        if self._s3 is None:
            from credit_api.aws import client

            self._s3 = client("s3", self.settings.aws_endpoint_url)
        return self._s3

    def current(self) -> LoadedModel:
        """The model to use for this request; loads or refreshes it when due."""
        model = self._model
        if model is not None and self._clock() < self._next_check:
            return model
        if model is None:
            with self._lock:
                if self._model is None and self._clock() >= self._next_check:
                    self._initial_load()
            if self._model is None:
                raise ModelUnavailable("No model is loaded; try again shortly.")
            return self._model
        if self._lock.acquire(blocking=False):
            try:
                if self._clock() >= self._next_check:
                    self._refresh(model)
            finally:
                self._lock.release()
        return self._model or model

    def _initial_load(self) -> None:
        bucket = self.settings.model_bucket
        s3_error = None
        if bucket:
            try:
                pointer = read_pointer(self._client(), bucket)
                self._serve(load_from_s3(self._client(), bucket, pointer), pointer=pointer)
                return
            except ModelLoadError as exc:
                self._failed("ModelLoadFailures", exc)
                s3_error = self.last_error
        try:
            self._serve(load_bundled(self.settings.model_dir))
            if bucket:
                self.last_error = s3_error
                logger.warning("serving the bundled model until the S3 champion loads")
                count("ModelFallbackToBundled")
        except ModelLoadError as exc:
            self._failed("ModelLoadFailures", exc)
            self._next_check = self._clock() + RETRY_WITHOUT_MODEL_SECONDS

    def _refresh(self, current: LoadedModel) -> None:
        self._next_check = self._clock() + self.settings.model_refresh_seconds
        bucket = self.settings.model_bucket
        if not bucket:
            return
        try:
            pointer = read_pointer(self._client(), bucket)
            if _identity(pointer) == self._pointer:
                return
            self._serve(load_from_s3(self._client(), bucket, pointer), pointer=pointer, replacing=current)
        except ModelLoadError as exc:
            self._failed("ModelRefreshFailures", exc)

    def _serve(
        self, model: LoadedModel, pointer: dict[str, str] | None = None, replacing: LoadedModel | None = None
    ) -> None:
        self._model = model
        self._pointer = _identity(pointer) if pointer else None
        self._next_check = self._clock() + self.settings.model_refresh_seconds
        self.last_error = None
        metrics.dimension_set.pop("model_version", None)  # a swap replaces it (Powertools warns otherwise)
        metrics.set_default_dimensions(model_version=model.version)
        milliseconds("ModelLoadTimeMs", model.load_ms)
        if replacing is not None:
            count("ModelSwaps")
        logger.info(
            "model loaded",
            extra={
                "model_version": model.version,
                "source": model.source,
                "load_ms": round(model.load_ms, 1),
                "replaced": replacing.version if replacing else None,
            },
        )

    def _failed(self, metric: str, exc: ModelLoadError) -> None:
        self.last_error = str(exc)
        count(metric)
        logger.error("model not loaded", extra={"reason": str(exc), "metric": metric})
