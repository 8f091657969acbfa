"""The MLflow writer: the only module that sends run data to MLflow's tracking API.

It uses `MlflowClient` with explicit run ids, never MLflow's fluent "active run" state, so runs
in different threads and nested runs cannot leak into each other, and no MLflow run is ever left
active in the user's process.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tracked.capture.keys import sanitize_key
from tracked.config import Settings
from tracked.errors import StoreUnavailableError
from tracked.problems import store_error
from tracked.record import Artifact, DatasetInput, MetricPoint, RunRecord

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["MlflowWriter", "client_for"]

MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
_PROBE_TIMEOUT = 3.0

T = TypeVar("T")


@functools.lru_cache(maxsize=32)
def client_for(tracking_uri: str, registry_uri: str) -> MlflowClient:
    """One MlflowClient per store pair, reused: building one re-reads the store's schema."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)


_experiments: dict[tuple[str, str], str] = {}
_experiments_lock = threading.Lock()


class MlflowWriter:
    """Writes one run to an MLflow tracking store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.uri = settings.tracking_uri
        self.artifact_uri: str | None = None  # the run's artifact root, once created

    @property
    def client(self) -> MlflowClient:
        return client_for(self.settings.tracking_uri, self.settings.registry_uri)

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
                digest=data.digest.rsplit(":", 1)[-1][:32],  # MLflow allows 36 characters
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
        try:
            return fn()
        except StoreUnavailableError:
            raise
        except Exception as exc:
            raise store_error(self.uri, exc) from exc

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
            raise StoreUnavailableError(self.uri, f"server not reachable ({exc})") from None

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
