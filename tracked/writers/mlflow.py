"""The MLflow writer: the only module that sends run data to MLflow's tracking API.

It uses `MlflowClient` with explicit run ids, never MLflow's fluent "active run" state, so runs
in different threads and nested runs cannot leak into each other, and no MLflow run is ever left
active in the user's process.

A training run never waits long on a store that is down or hangs (issue #7): every call to an
HTTP store goes through `_call`, which gives MLflow's HTTP layer tracked's own limits for that
call only (no retries inside MLflow, 5 s without an answer is a failure: `_HTTP_LIMITS`), retries
a request that could not even connect for at most `RETRY_BUDGET` seconds, and after a store
proved unreachable makes every later call of the same writer fail at once (`down`). The user's
own MLflow calls keep MLflow's settings: nothing is written to `os.environ`.
"""

from __future__ import annotations

import contextvars
import functools
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tracked.capture.keys import sanitize_key
from tracked.config import Settings
from tracked.errors import StoreUnavailableError, TrackingError
from tracked.problems import store_error
from tracked.record import Artifact, DatasetInput, MetricPoint, RunRecord

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["MlflowWriter", "client_for"]

MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
_PROBE_TIMEOUT = 3.0

# What MLflow's HTTP layer uses for tracked's calls, whatever MLFLOW_HTTP_REQUEST_* say (their
# defaults retry an unreachable server for minutes, with a 120 s timeout per attempt).
_HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": 0,  # `_call` retries, and only what was never sent
    "MLFLOW_HTTP_REQUEST_TIMEOUT": 5,  # seconds to connect, and without a byte of the answer
}
RETRY_BUDGET = 3.0  # seconds one call may spend retrying a server that refuses connections
_RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0)
_bounded: contextvars.ContextVar[bool] = contextvars.ContextVar("tracked_http", default=False)
_bound_lock = threading.Lock()
_bound_installed = False

T = TypeVar("T")


@functools.lru_cache(maxsize=32)
def client_for(tracking_uri: str, registry_uri: str) -> MlflowClient:
    """One MlflowClient per store pair, reused: building one re-reads the store's schema."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)


_experiments: dict[tuple[str, str], str] = {}
_experiments_lock = threading.Lock()
_sqlite_open: set[tuple[str, str]] = set()
_sqlite_open_lock = threading.Lock()


def _open_sqlite_store(tracking_uri: str, registry_uri: str) -> None:
    """Open a SQLite store once per process, one process at a time (issue #7).

    MLflow creates and migrates a fresh database's schema on first contact, without a lock: two
    processes doing it at once leave it half-migrated ("table _alembic_tmp_... already exists")
    and unusable for good. The lock file is tracked's own: MLflow's `_safe_initialize_tables`
    takes `db_init_lock-<md5>` with a second flock inside this one, which on the same file would
    block this very process forever.
    """
    if (tracking_uri, registry_uri) in _sqlite_open or not tracking_uri.startswith("sqlite:"):
        return
    import hashlib

    digest = hashlib.md5(tracking_uri.encode(), usedforsecurity=False).hexdigest()
    with (
        _sqlite_open_lock,
        open(Path(tempfile.gettempdir(), f"tracked-sqlite-open-{digest}"), "w") as fh,
    ):
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no flock; MLflow's own behaviour
            fcntl = None  # type: ignore[assignment]
        if fcntl is not None:
            fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        client = client_for(tracking_uri, registry_uri)
        client.search_experiments(max_results=1)  # the tracking store: creates the schema
        if registry_uri.startswith("sqlite:"):
            client.search_registered_models(max_results=1)
    _sqlite_open.add((tracking_uri, registry_uri))


class MlflowWriter:
    """Writes one run to an MLflow tracking store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.uri = settings.tracking_uri
        self.artifact_uri: str | None = None  # the run's artifact root, once created
        # The first "unreachable" failure: later calls raise it at once instead of waiting again.
        self.down: StoreUnavailableError | None = None
        self._http = urllib.parse.urlsplit(self.uri).scheme in ("http", "https")

    @property
    def client(self) -> MlflowClient:
        """The store's client; for an HTTP store every method call on it runs under tracked's
        limits, so what registration and promotion do with it is bounded too."""
        client = client_for(self.settings.tracking_uri, self.settings.registry_uri)
        if not self._http:
            return client
        _bound_mlflow_http()
        return _BoundedClient(client)  # type: ignore[return-value]

    def start(self, record: RunRecord) -> str:
        """Create the run with the tags and params known at its start; return its id."""
        self._probe()

        def create() -> str:
            experiment_id = self._experiment_id(record.experiment)
            tags = dict(record.tags)
            if record.parent_run_id:
                tags["mlflow.parentRunId"] = record.parent_run_id
            run = self.client.create_run(
                experiment_id, start_time=record.start_time, tags=tags, run_name=record.name
            )
            self.artifact_uri = run.info.artifact_uri
            return str(run.info.run_id)

        run_id = self._call(create)
        self.log_params(run_id, record.params)
        self.log_inputs(run_id, record.inputs)
        return run_id

    def find_run(self, record: RunRecord) -> str | None:
        """The run already created for `record` (by its `tracked.run_uuid` tag), or None.

        A store that failed in the middle of a run holds a partial run; replaying the spooled
        run completes that one instead of creating a second. Sets `artifact_uri` when found.
        """
        self._probe()

        def find() -> str | None:
            from mlflow.entities import ViewType

            experiment = self.client.get_experiment_by_name(record.experiment)
            if experiment is None:
                return None
            runs = self.client.search_runs(
                [experiment.experiment_id],
                filter_string=f"tags.`tracked.run_uuid` = '{record.run_uuid}'",
                run_view_type=ViewType.ACTIVE_ONLY,
                max_results=10,
                order_by=["attributes.start_time ASC"],
            )
            if not runs:
                return None
            self.artifact_uri = runs[0].info.artifact_uri
            return str(runs[0].info.run_id)

        return self._call(find)

    def complete(self, run_id: str, record: RunRecord) -> int:
        """Bring a partial run up to `record`: the params, dataset inputs and metric points it
        lacks, and every tag. Points already stored (same key, step, timestamp and value) are
        not sent again. Returns how many points were sent."""

        def logged() -> tuple[dict[str, str], set[tuple[str, str]]]:
            run = self.client.get_run(run_id)
            inputs = run.inputs.dataset_inputs if run.inputs is not None else []
            return dict(run.data.params), {(d.dataset.name, d.dataset.digest) for d in inputs}

        params, inputs = self._call(logged)
        self.log_params(run_id, {k: v for k, v in record.params.items() if k not in params})
        self.set_tags(run_id, record.tags)
        self.log_inputs(
            run_id, [i for i in record.inputs if (i.name, _mlflow_digest(i)) not in inputs]
        )
        by_key: dict[str, list[MetricPoint]] = {}
        for point in record.metrics:
            by_key.setdefault(point.key, []).append(point)
        missing = []
        for key, points in by_key.items():
            history = self._call(lambda k=key: self.client.get_metric_history(run_id, k))
            stored = {(m.step, m.timestamp, _same_value(m.value)) for m in history}
            missing += [
                p for p in points if (p.step, p.timestamp, _same_value(p.value)) not in stored
            ]
        self.log_metrics(run_id, missing)
        return len(missing)

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` (which talks to this store through `client`) with the writer's bounded
        retry; any failure becomes a StoreUnavailableError naming the store."""
        return self._call(fn)

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        """Dataset inputs with tracked's full-content digest, so the MLflow UI shows them."""
        if not inputs:
            return
        from mlflow.entities import Dataset, InputTag
        from mlflow.entities import DatasetInput as MlflowDatasetInput

        entries = []
        for data in inputs:
            if data.source:
                source_type, source = "local", json.dumps({"uri": data.source})
            else:
                source_type, source = "code", json.dumps({"tags": {"tracked.input": data.name}})
            profile = {"tracked.digest": data.digest, "kind": data.kind, "nbytes": data.nbytes}
            if data.shape is not None:
                profile["shape"] = list(data.shape)
            dataset = Dataset(
                name=data.name,
                digest=_mlflow_digest(data),
                source_type=source_type,
                source=source,
                schema=_schema_json(data),
                profile=json.dumps(profile),
            )
            entries.append(
                MlflowDatasetInput(dataset, [InputTag("mlflow.data.context", data.context)])
            )
        self._call(lambda: self.client.log_inputs(run_id, datasets=entries))

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for chunk in _chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
            self._call(lambda c=chunk: self.client.log_batch(run_id, params=c, synchronous=True))

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, v) for k, v in tags.items()]
        for chunk in _chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
            self._call(lambda c=chunk: self.client.log_batch(run_id, tags=c, synchronous=True))

    def log_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        from mlflow.entities import Metric

        items = [Metric(p.key, p.value, p.timestamp, p.step) for p in points]
        for chunk in _chunks(items, MAX_METRICS_PER_BATCH):
            self._call(lambda c=chunk: self.client.log_batch(run_id, metrics=c, synchronous=True))

    def log_artifacts(self, run_id: str, artifacts: Iterable[Artifact]) -> None:
        """Upload all artifacts in one call: files are laid out in a temp dir first."""
        artifacts = list(artifacts)
        if not artifacts:
            return
        with tempfile.TemporaryDirectory(prefix="tracked-artifacts-") as tmp:
            for artifact in artifacts:
                target = Path(tmp, *artifact.path.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                if artifact.content is not None:
                    target.write_bytes(artifact.content)
                elif artifact.local_path and os.path.isdir(artifact.local_path):
                    shutil.copytree(artifact.local_path, target, dirs_exist_ok=True)
                elif artifact.local_path:
                    shutil.copyfile(artifact.local_path, target)
            self._call(lambda: self.client.log_artifacts(run_id, tmp))

    def end(self, run_id: str, status: str, end_time: int) -> None:
        self._call(lambda: self.client.set_terminated(run_id, status=status, end_time=end_time))

    # -- internals ------------------------------------------------------------------------------

    def _call(self, fn: Any) -> Any:
        if self.down is not None:
            raise self.down
        if not self._http:
            try:
                _open_sqlite_store(self.settings.tracking_uri, self.settings.registry_uri)
                return fn()
            except TrackingError:
                raise
            except Exception as exc:
                raise store_error(self.uri, exc) from exc
        _bound_mlflow_http()
        deadline = time.monotonic() + RETRY_BUDGET
        token = _bounded.set(True)
        try:
            for delay in (*_RETRY_DELAYS, None):
                try:
                    return fn()
                except TrackingError:
                    raise
                except Exception as exc:
                    failure = _failure_kind(exc)
                    if failure == "refused" and delay and time.monotonic() + delay < deadline:
                        time.sleep(delay)
                        continue
                    error = store_error(self.uri, exc)
                    if failure is not None:
                        self.down = error
                    raise error from exc
            raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
        finally:
            _bounded.reset(token)

    def _probe(self) -> None:
        """Fail in seconds, not minutes, when an HTTP tracking server does not answer.

        MLflow's own client retries an unreachable server with backoff for minutes; a training
        run must not wait on that before it even starts.
        """
        parsed = urllib.parse.urlsplit(self.uri)
        if parsed.scheme not in ("http", "https"):
            return
        netloc = parsed.hostname or ""
        if parsed.port:
            netloc += f":{parsed.port}"
        health = urllib.parse.urlunsplit(
            (parsed.scheme, netloc, parsed.path.rstrip("/") + "/health", "", "")
        )
        try:
            with urllib.request.urlopen(health, timeout=_PROBE_TIMEOUT):
                pass
        except urllib.error.HTTPError:
            return  # it answered: auth and other errors surface on the real call, with context
        except Exception as exc:
            self.down = StoreUnavailableError(self.uri, f"server not reachable ({exc})")
            raise self.down from None

    def _experiment_id(self, name: str) -> str:
        key = (self.uri, name)
        with _experiments_lock:
            if key in _experiments:
                return _experiments[key]
        from mlflow.exceptions import MlflowException

        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None and experiment.lifecycle_stage == "deleted":
            self.client.restore_experiment(experiment.experiment_id)
        if experiment is None:
            try:
                experiment_id = self.client.create_experiment(
                    name, artifact_location=self._artifact_location(name)
                )
            except MlflowException:
                # Another process created it between our look-up and create: use theirs.
                experiment = self.client.get_experiment_by_name(name)
                if experiment is None:
                    raise
                experiment_id = experiment.experiment_id
        else:
            experiment_id = experiment.experiment_id
        with _experiments_lock:
            _experiments[key] = experiment_id
        return experiment_id

    def _artifact_location(self, experiment: str) -> str | None:
        """Keep an embedded store's artifacts beside its database, not in the working dir."""
        if self.settings.artifact_location:
            return self.settings.artifact_location.rstrip("/") + "/" + sanitize_key(experiment)
        parsed = urllib.parse.urlsplit(self.uri)
        if parsed.scheme != "sqlite":
            return None
        db_path = Path(self.uri[len("sqlite:///") :]).resolve()
        root = db_path.parent / "mlartifacts" / sanitize_key(experiment).replace("/", "_")
        return root.as_uri()


def _bound_mlflow_http() -> None:
    """Let MLflow's HTTP settings answer `_HTTP_LIMITS` inside a writer's calls, and only there.

    MLflow reads MLFLOW_HTTP_REQUEST_* through `_EnvironmentVariable.get()` on every request.
    Each of those objects' `get` is wrapped once: in a context where `_call` set `_bounded` (its
    own thread, for the duration of the call) it returns tracked's limit; everywhere else, for
    the user's own MLflow calls in any thread, it returns what MLflow would have.
    """
    global _bound_installed
    with _bound_lock:
        if _bound_installed:
            return
        import mlflow.environment_variables as variables

        for name, limit in _HTTP_LIMITS.items():
            variable = getattr(variables, name)
            original = variable.get

            def get(original: Callable[[], Any] = original, limit: int = limit) -> Any:
                return limit if _bounded.get() else original()

            variable.get = get
        _bound_installed = True


class _BoundedClient:
    """An MlflowClient whose method calls run under `_HTTP_LIMITS` (no retry loop, no `down`:
    that is `_call`'s), for code that is handed `writer.client`."""

    def __init__(self, client: MlflowClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._client, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            token = _bounded.set(True)
            try:
                return value(*args, **kwargs)
            finally:
                _bounded.reset(token)

        return bounded


def _mlflow_digest(data: DatasetInput) -> str:
    """The digest MLflow stores for a dataset: it allows 36 characters."""
    return data.digest.rsplit(":", 1)[-1][:32]


def _same_value(value: float) -> float | str:
    """A metric value as a set member: NaN equals NaN here."""
    return "nan" if value != value else value


def _failure_kind(exc: BaseException) -> str | None:
    """How a failed call failed: "refused" when the request never reached the server (no
    connection, or a transient 429/5xx answer: safe to send again), "unanswered" when the server
    took the connection but did not answer in time, None for an error the server answered with.
    """
    import requests.exceptions
    import urllib3.exceptions

    kind = None
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        error = stack.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(
            error,
            (
                ConnectionRefusedError,
                urllib3.exceptions.NewConnectionError,
                urllib3.exceptions.ConnectTimeoutError,
                urllib3.exceptions.ResponseError,
                requests.exceptions.ConnectTimeout,
            ),
        ):
            return "refused"
        if isinstance(
            error,
            (
                TimeoutError,
                urllib3.exceptions.ReadTimeoutError,
                urllib3.exceptions.ProtocolError,
                requests.exceptions.Timeout,
                requests.exceptions.ConnectionError,
            ),
        ):
            kind = "unanswered"
        stack.extend((error.__cause__, error.__context__, getattr(error, "reason", None)))
        stack.extend(error.args)
    return kind


_COLSPEC_TYPES = {
    "float64": "double",
    "float32": "float",
    "int64": "long",
    "int32": "integer",
    "bool": "boolean",
    "object": "string",
    "string": "string",
    "str": "string",
}


def _schema_json(data: DatasetInput) -> str | None:
    """The schema in MLflow's column-spec form, which its UI renders."""
    if not data.schema or data.kind in ("file", "directory", "sequence"):
        return None
    if data.kind in ("numpy", "scipy.sparse") or set(data.schema) == {"dtype"}:
        dtype = next(iter(data.schema.values()))
        shape = [-1, *(data.shape or ())[1:]]
        spec = [{"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": shape}}]
        return json.dumps({"mlflow_tensorspec": {"features": json.dumps(spec)}})
    columns = [
        {"type": _COLSPEC_TYPES.get(dtype.split("[")[0].lower(), "string"), "name": str(name)}
        for name, dtype in data.schema.items()
    ]
    return json.dumps({"mlflow_colspec": columns})


def _chunks(items: list[T], size: int) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
