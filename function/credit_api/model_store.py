"""Where the served model comes from, and how a new champion replaces it without a gap.

Two sources: the model bundled with the function (``function/model/``), or, when
``MODEL_BUCKET`` is set, the champion named by the S3 pointer ``models/champion.json``::

    {"model_version": "...", "key": "models/<version>-<sha12>", "sha256": "<of model.onnx>",
     "published_at": "..."}

``key`` is a prefix holding ``model.onnx`` and ``manifest.json``; the registry
(:mod:`credit_api.registry`) writes both and then the pointer, so a reader never sees a
pointer to a half-written version (the pointer may carry more: ``manifest_sha256``, checked
when present, and the registry's change record and lineage, which serving ignores). A model is
served only after its bytes match the pointer's and the manifest's sha256, the manifest's
schema hash matches this code's schema, and one row scores to a probability. A pointer
that is not a JSON object with those three strings is refused like a bad model.

No request waits on S3 longer than a bounded time:

- **Cold start** with a bucket: a background thread loads the champion; the first request
  waits for it at most ``Settings.champion_wait_seconds`` (2.5 s, and never past the
  request's AWS deadline), then serves the bundled model (about 0.3 s to load) and counts
  ``ModelFallbackToBundled``. The background load goes on; the champion is swapped in when
  it arrives. Without a bucket the bundled model loads in the request.
- **Refresh**, at most every ``MODEL_REFRESH_SECONDS`` (sooner, every 30 s, after a
  failure): the request that finds it due starts a background load and is answered with the
  current model at once. A model that fails any check is never served: the current one
  stays, and the failure is logged and counted (``ModelRefreshFailures``).

Lambda freezes a container between invocations, background thread included; a frozen load
simply resumes (or fails on its dead socket) at the next invocation. The thread only
produces a result: metrics, logs and the swap itself are applied by the next request
(between requests, so the EMF record being flushed is never touched from another thread),
and a load running longer than ``STALE_LOAD_SECONDS`` is abandoned (its result dropped) so a
stuck socket cannot stop refreshes. Requests take one reference to the current model and
keep it to the end, so a swap drops none. ``/health`` reports what is served and why
(:meth:`ModelStore.status`).

The decision policy is published apart from the model (``credit_api.policy_store``) and read
by the same background load: :meth:`ModelStore.served` gives a request the model and the
policy together. A policy that fails its checks is never served: the one in force stays, and
the failure is counted (``PolicyRefreshFailures``) and shown by ``/health``. With no policy
published, the served model's manifest policy applies.

**The shadow challenger** (:mod:`credit_api.shadow`) is named by ``models/shadow.json`` and
loaded by the same background thread right after the champion (whose result, and a cold
start waiting for it, never waits for the shadow), with the same checks. It never
decides which model serves: a shadow pointer or model that fails a check leaves the champion
untouched and the current shadow (if any) running, and is logged, counted
(``ShadowLoadFailures``) and shown in ``/health``; a cleared or deleted pointer stops it.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from credit_api import age_rule, aws, policy_store
from credit_api.aws import error_code
from credit_api.errors import ModelUnavailable
from credit_api.manifest import MANIFEST_FILE, MODEL_FILE, Manifest
from credit_api.observability import count, logger, metrics, milliseconds
from credit_api.policy_store import PolicyFetch, ServedPolicy
from credit_api.schema import EXAMPLE_APPLICANT, FEATURE_NAMES, schema_hash
from credit_api.scoring import Scorer
from credit_api.settings import Settings

POINTER_KEY = "models/champion.json"
SHADOW_KEY = "models/shadow.json"
RETRY_WITHOUT_MODEL_SECONDS = 5.0
"""With no model at all, how soon to try loading again (a short outage, not one per refresh interval)."""
RETRY_AFTER_FAILURE_SECONDS = 30.0
"""After a failed S3 load (the champion missing, or a bad new one), how soon to try again."""
STALE_LOAD_SECONDS = 60.0
"""A background load still running after this long is abandoned, and a new one may start."""


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


def _age_invariant_on_reference(scorer: Scorer, manifest: Manifest) -> bool:
    """The manifest's ``age_invariant`` claim re-checked on its two reference rows at every age.

    The export proved it on every training row; this catches a manifest paired with the wrong
    graph (one run of 2 x 83 rows, a fraction of a millisecond) before the age rule is skipped.
    """
    rows = [EXAMPLE_APPLICANT, {**EXAMPLE_APPLICANT, **manifest.reason_reference}]
    return age_rule.is_invariant(scorer.run, scorer.feed(rows))


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
        scorer = Scorer.from_bytes(model_bytes, age_invariant=manifest.age_invariant)
        (probability,) = scorer.predict([EXAMPLE_APPLICANT])
        claim_fails = manifest.age_invariant and not _age_invariant_on_reference(scorer, manifest)
    except Exception as exc:  # onnxruntime raises several unrelated types for a bad graph
        raise ModelLoadError(f"model does not run: {exc.__class__.__name__}") from exc
    if not (math.isfinite(probability) and 0.0 <= probability <= 1.0):
        raise ModelLoadError(f"model returned {probability!r} for the example applicant")
    if claim_fails:
        raise ModelLoadError("manifest says age_invariant but the model's output changes with age")
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
        raise ModelLoadError(f"cannot read s3://{bucket}/{key}: {error_code(exc)}") from exc


def read_pointer(s3: Any, bucket: str) -> dict[str, str]:
    return parse_pointer(_get(s3, bucket, POINTER_KEY), bucket)


def parse_pointer(raw: bytes, bucket: str) -> dict[str, str]:
    """The pointer document; refused unless it names a version (``model_version``, ``key``, ``sha256``)."""
    try:
        pointer = json.loads(raw)
        if not isinstance(pointer, dict):
            raise ValueError(f"pointer is a JSON {type(pointer).__name__}, not an object")
        if not all(
            isinstance(pointer.get(k), str) and pointer[k] for k in ("model_version", "key", "sha256")
        ):
            raise ValueError("pointer lacks model_version, key or sha256")
    except (ValueError, RecursionError) as exc:
        raise ModelLoadError(f"invalid pointer s3://{bucket}/{POINTER_KEY}: {exc}") from exc
    return pointer


def parse_shadow(raw: bytes, bucket: str) -> dict[str, str] | None:
    """The shadow pointer document; None when cleared (``model_version`` and ``key`` null)."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ModelLoadError(f"invalid shadow pointer s3://{bucket}/{SHADOW_KEY}: not JSON") from exc
    if isinstance(document, dict) and document.get("model_version") is None and document.get("key") is None:
        return None
    if not isinstance(document, dict) or not all(
        isinstance(document.get(k), str) and document[k] for k in ("model_version", "key", "sha256")
    ):
        raise ModelLoadError(
            f"invalid shadow pointer s3://{bucket}/{SHADOW_KEY}: no model_version, key, sha256"
        )
    return document


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
    expected_manifest = pointer.get("manifest_sha256")  # a manifest edited after its promotion
    if expected_manifest and sha256(manifest_bytes) != expected_manifest:
        raise ModelLoadError(f"manifest.json sha256 does not match the pointer's {expected_manifest[:12]}")
    return replace(model, load_ms=(time.perf_counter() - started) * 1000)


def publish(s3_client: Any, bucket: str, model_dir: Path | str) -> dict[str, Any]:
    """Store ``model_dir`` as a verified version and make it champion: :func:`credit_api.registry.publish`.

    Kept here for the seed and older callers; the registry is the one writer of ``models/``
    (imported on call, so the serving path never loads the code that writes).
    """
    from credit_api.registry import publish as registry_publish

    return registry_publish(s3_client, bucket, model_dir)


def _identity(pointer: dict[str, str]) -> tuple[str, str, str]:
    return (pointer["model_version"], pointer["key"], pointer["sha256"])


@dataclass(frozen=True)
class _ShadowAttempt:
    """What the background load found of the shadow: a new model, no change, none set, or an error."""

    model: LoadedModel | None = None
    pointer: dict[str, str] | None = None
    error: str | None = None
    cleared: bool = False


@dataclass(frozen=True)
class _Attempt:
    """What one background load of the S3 champion found, for a request thread to apply."""

    model: LoadedModel | None = None
    pointer: dict[str, str] | None = None
    error: ModelLoadError | None = None
    policy: PolicyFetch | None = None
    finished_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class ModelStore:
    """The model being served: bundled, or the S3 champion loaded and refreshed in the background.

    ``s3`` is any object with boto3's ``get_object``; when omitted and a bucket is set, a
    boto3 client is made on first use. ``clock`` is injectable for refresh tests.
    """

    def __init__(self, settings: Settings, s3: Any = None, clock: Any = time.monotonic) -> None:
        self.settings = settings
        self._s3 = s3
        self._clock = clock
        self._model: LoadedModel | None = None
        self._pointer: tuple[str, str, str] | None = None
        self._next_check = 0.0
        self._next_bundled = 0.0
        self._lock = threading.Lock()  # guards the fields below; never held across I/O
        self._bundled_lock = threading.Lock()
        self._generation = 0
        self._loading: threading.Event | None = None
        self._loading_since = 0.0
        self._pending: _Attempt | None = None
        self.last_error: str | None = None
        self.last_refresh_at: datetime | None = None
        self.champion_version: str | None = None
        self._policy: ServedPolicy | None = None
        """The published policy in force; None: the served model's manifest policy."""
        self._policy_pointer: tuple[str, str, str] | None = None
        self.policy_error: str | None = None
        self._manifest_policies: tuple[LoadedModel, ServedPolicy] | None = None
        self.shadow: LoadedModel | None = None
        """The shadow challenger scored beside the champion (set only by :meth:`_apply`)."""
        self._shadow_pointer: tuple[str, str, str] | None = None
        self._shadow_loading: threading.Event | None = None
        self._pending_shadow: _ShadowAttempt | None = None
        self.shadow_error: str | None = None

    def _client(self) -> Any:
        """The injected client, else the shared one (not kept: a SnapStart restore renews it)."""
        if self._s3 is not None:
            return self._s3
        return aws.client("s3", self.settings.aws_endpoint_url, self.settings.aws)

    def current(self) -> LoadedModel:
        """The model to use for this request; starts a load or refresh when due, never waits on one long."""
        self._apply()
        model = self._model
        if model is None:
            return self._cold_start()
        if self.settings.model_bucket and self._clock() >= self._next_check:
            self._start_load()
        return model

    def recheck(self) -> None:
        """Make the next request re-read the champion pointer (after a SnapStart restore the
        snapshot's refresh deadline is stale: the champion may have changed since)."""
        with self._lock:
            self._next_check = 0.0

    def served(self) -> tuple[LoadedModel, ServedPolicy]:
        """The model and the policy for this request, each one reference kept to its end."""
        model = self.current()
        return model, self._policy or self._manifest_policy(model)

    def _manifest_policy(self, model: LoadedModel) -> ServedPolicy:
        """The model's own policy, derived once per model (its version is a hash: ~25 us)."""
        cached = self._manifest_policies
        if cached is None or cached[0] is not model:
            cached = (model, ServedPolicy.of_manifest(model.manifest))
            self._manifest_policies = cached
        return cached[1]

    def settle(self, timeout: float = 30.0) -> None:
        """Wait for a background load to finish and apply it (tests, and a clean shutdown)."""
        with self._lock:
            loading, shadow_loading = self._loading, self._shadow_loading
        for event in (loading, shadow_loading):
            if event is not None:
                event.wait(timeout)
        self._apply()

    def status(self) -> dict[str, Any]:
        """What ``/health`` reports: the model served, where from, and the champion's state."""
        model = self.current()
        bucket = self.settings.model_bucket
        serving_champion = model.source.startswith("s3://")
        with self._lock:
            refreshing = self._loading is not None
        degraded = bool(bucket) and (
            not serving_champion or self.last_error is not None or self.policy_error is not None
        )
        policy = self._policy or self._manifest_policy(model)
        return {
            "status": "degraded" if degraded else "ok",
            "model_version": model.version,
            "loaded_at": model.loaded_at.isoformat(),
            "source": model.source,
            "serving": "champion" if serving_champion else "bundled",
            "champion_version": self.champion_version,
            "last_refresh_at": self.last_refresh_at.isoformat() if self.last_refresh_at else None,
            "last_refresh_error": self.last_error,
            "refreshing": refreshing,
            "policy_version": policy.version,
            "policy_source": policy.source,
            "last_policy_error": self.policy_error,
            "shadow_version": self.shadow.version if self.shadow else None,
            "shadow_source": self.shadow.source if self.shadow else None,
            "shadow_error": self.shadow_error,
        }

    def _cold_start(self) -> LoadedModel:
        if self.settings.model_bucket:
            wait = self.settings.champion_wait_seconds
            left = aws.remaining()
            self._start_load().wait(wait if left is None else max(0.0, min(wait, left)))
            self._apply()
            if self._model is not None:
                return self._model
            if self.last_error is None:
                self.last_error = f"the S3 champion did not load within {wait:g} s"
        with self._bundled_lock:
            if self._model is None and self._clock() >= self._next_bundled:
                self._load_bundled()
        if self._model is None:
            raise ModelUnavailable("No model is loaded; try again shortly.")
        return self._model

    def _load_bundled(self) -> None:
        try:
            model = load_bundled(self.settings.model_dir)
        except ModelLoadError as exc:
            self._failed("ModelLoadFailures", exc)
            self._next_bundled = self._clock() + RETRY_WITHOUT_MODEL_SECONDS
            return
        s3_error = self.last_error
        self._serve(model)
        if self.settings.model_bucket:
            self.last_error = s3_error
            logger.warning(
                "serving the bundled model until the S3 champion loads", extra={"reason": s3_error}
            )
            count("ModelFallbackToBundled")

    def _start_load(self) -> threading.Event:
        """The running background load, or a new one (also when the running one is stale)."""
        with self._lock:
            now = self._clock()
            if self._loading is not None and now - self._loading_since < STALE_LOAD_SECONDS:
                return self._loading
            self._generation += 1
            self._loading, self._loading_since = threading.Event(), now
            self._shadow_loading = threading.Event()
            self._next_check = now + self.settings.model_refresh_seconds
            started = (self._generation, self._loading, self._shadow_loading)
        threading.Thread(target=self._load, args=started, name="model-load", daemon=True).start()
        return started[1]

    def _load(self, generation: int, done: threading.Event, shadow_done: threading.Event) -> None:
        """In the background thread: read the pointer and the model, then the shadow's; keep the
        results for a request."""
        try:
            attempt = self._fetch()
        except Exception as exc:  # a bug must not leave the store waiting forever
            attempt = _Attempt(error=ModelLoadError(f"model load crashed: {exc.__class__.__name__}"))
        with self._lock:
            if generation == self._generation:
                self._pending, self._loading = attempt, None
        done.set()
        shadow = self._fetch_shadow()
        with self._lock:
            if generation == self._generation:
                self._pending_shadow = shadow
        shadow_done.set()

    def _fetch_shadow(self) -> _ShadowAttempt:
        """The shadow pointer and, when it names a new version, its model, verified as the champion is."""
        bucket = self.settings.model_bucket or ""
        try:
            try:
                raw = self._client().get_object(Bucket=bucket, Key=SHADOW_KEY)["Body"].read()
            except Exception as exc:
                if error_code(exc) in aws.S3_MISSING_CODES:
                    return _ShadowAttempt(cleared=True)
                raise ModelLoadError(f"cannot read s3://{bucket}/{SHADOW_KEY}: {error_code(exc)}") from exc
            pointer = parse_shadow(raw, bucket)
            if pointer is None:
                return _ShadowAttempt(cleared=True)
            if _identity(pointer) == self._shadow_pointer:
                return _ShadowAttempt(pointer=pointer)
            return _ShadowAttempt(model=load_from_s3(self._client(), bucket, pointer), pointer=pointer)
        except ModelLoadError as exc:
            return _ShadowAttempt(error=f"shadow: {exc}")
        except Exception as exc:  # nothing about the shadow may stop the champion's refresh
            return _ShadowAttempt(error=f"shadow load crashed: {exc.__class__.__name__}")

    def _fetch(self) -> _Attempt:
        """The model and the policy, read side by side: the policy's two small GETs never delay
        the champion at a cold start (the attempt is applied only when both are done)."""
        s3, bucket, known = self._client(), self.settings.model_bucket or "", self._policy_pointer
        found: list[PolicyFetch] = []
        reader = threading.Thread(
            target=lambda: found.append(policy_store.fetch(s3, bucket, known)),
            name="policy-load",
            daemon=True,
        )
        reader.start()
        attempt = self._fetch_model()
        reader.join()
        policy = found[0] if found else PolicyFetch(error=policy_store.PolicyLoadError("policy load crashed"))
        return replace(attempt, policy=policy)

    def _fetch_model(self) -> _Attempt:
        bucket = self.settings.model_bucket or ""  # only called with a bucket configured
        try:
            pointer = read_pointer(self._client(), bucket)
        except ModelLoadError as exc:
            return _Attempt(error=exc)
        if _identity(pointer) == self._pointer:
            return _Attempt(pointer=pointer)
        try:
            return _Attempt(model=load_from_s3(self._client(), bucket, pointer), pointer=pointer)
        except ModelLoadError as exc:
            return _Attempt(pointer=pointer, error=exc)

    def _apply(self) -> None:
        """In a request thread: apply a finished background load (swap, or count its failure)."""
        with self._lock:
            attempt, self._pending = self._pending, None
            shadow, self._pending_shadow = self._pending_shadow, None
        if shadow is not None:
            self._apply_shadow(shadow)
        if attempt is None:
            return
        self.last_refresh_at = attempt.finished_at
        if attempt.pointer is not None:
            self.champion_version = attempt.pointer["model_version"]
        if attempt.error is not None:
            metric = "ModelLoadFailures" if self._model is None else "ModelRefreshFailures"
            self._failed(metric, attempt.error)
            retry = min(self.settings.model_refresh_seconds, RETRY_AFTER_FAILURE_SECONDS)
            self._next_check = self._clock() + retry
        elif attempt.model is not None:
            self._serve(attempt.model, pointer=attempt.pointer, replacing=self._model)
        else:
            self.last_error = None
        if attempt.policy is not None:
            self._apply_policy(attempt.policy)

    def _apply_policy(self, fetched: PolicyFetch) -> None:
        """Swap in a new published policy, fall back to the manifest's, or keep the one in force."""
        if fetched.error is not None:
            self.policy_error = str(fetched.error)
            count("PolicyRefreshFailures")
            logger.error("policy not loaded", extra={"reason": self.policy_error})
            retry = min(self.settings.model_refresh_seconds, RETRY_AFTER_FAILURE_SECONDS)
            self._next_check = min(self._next_check, self._clock() + retry)
            return
        self.policy_error = None
        if fetched.unchanged:
            return
        replaced = self._policy.version if self._policy else None
        self._policy = fetched.served
        self._policy_pointer = fetched.pointer.identity if fetched.pointer else None
        if fetched.served is not None:
            count("PolicySwaps")
            logger.info(
                "policy loaded",
                extra={
                    "policy_version": fetched.served.version,
                    "source": fetched.served.source,
                    "replaced": replaced,
                },
            )
        elif replaced is not None:
            logger.warning(
                "policy pointer gone: serving the model's manifest policy", extra={"replaced": replaced}
            )

    def _apply_shadow(self, found: _ShadowAttempt) -> None:
        """Swap, stop or keep the shadow; a failure is counted and the current shadow kept."""
        if found.error is not None:
            self.shadow_error = found.error
            count("ShadowLoadFailures")
            logger.error("shadow model not loaded", extra={"reason": found.error})
            return
        self.shadow_error = None
        if found.cleared and self.shadow is not None:
            logger.info("shadow stopped", extra={"shadow_version": self.shadow.version})
            self.shadow, self._shadow_pointer = None, None
        elif found.model is not None and found.pointer is not None:
            self.shadow, self._shadow_pointer = found.model, _identity(found.pointer)
            logger.info(
                "shadow model loaded",
                extra={"shadow_version": found.model.version, "source": found.model.source},
            )

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
