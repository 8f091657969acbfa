"""The MLflow writer: what a journal's events become in an MLflow tracking store.

It sends through `tracked.store` (the one door: bounds, error translation) with explicit run ids,
never MLflow's fluent "active run" state. The sender (tracked/sender.py) calls it; the training
thread never does, except at a run's end to publish its models.

Metric points go in batches. On a SQL store (the embedded SQLite store, or a PostgreSQL URI)
runs, params, tags, points and statuses are written through MLflow's own table definitions and
session by tracked/writers/sql.py, one transaction per call (a run's params, tags and points of
one pass together): MLflow's ORM costs 2 to 5 ms of Python per call and about 0.1 ms per point
there, the bulk insert a few microseconds per point. Anything unusual (another store type, a
missing or deleted run, a changed param, a value MLflow refuses, a schema this code does not
know) goes through MLflow's client instead, which answers it as MLflow does; `log_batch` dedupes
points the same way on every MLflow store.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracked import tags as T
from tracked.capture.keys import sanitize_key
from tracked.errors import StoreRejectedError
from tracked.record import DatasetInput
from tracked.writers.sql import NOT_HANDLED

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from tracked.store import Store
    from tracked.writers.sql import SqlFastPath

__all__ = ["MAX_METRICS_PER_BATCH", "MAX_PARAMS_TAGS_PER_BATCH", "MlflowWriter"]

MAX_METRICS_PER_BATCH = 1000  # MLflow's limits per log_batch call
MAX_PARAMS_TAGS_PER_BATCH = 100
_SQL_SCHEMES = ("sqlite", "postgresql")
Points = tuple[Sequence[str], Sequence[float], Sequence[int], Sequence[int]]


class MlflowWriter:
    """Writes runs to one MLflow store. Stateless apart from caches; thread-safe."""

    def __init__(self, store: Store, *, artifact_location: str | None = None) -> None:
        self.store = store
        self.artifact_location = artifact_location
        self._sql: SqlFastPath | None = None  # on a SQL store (tracked/writers/sql.py)
        self._sql_checked = False
        self._lock = threading.Lock()

    # -- runs -----------------------------------------------------------------------------------

    def experiment_id(
        self, name: str, experiment_id: str | None = None, *, artifact_root: str | None = None
    ) -> str:
        """The experiment's id; one that is created keeps its artifacts under `artifact_root`
        (the run's `artifact_location` setting), else the writer's, else the store's default."""
        if experiment_id:
            return experiment_id
        location = self._artifact_location(name, artifact_root or self.artifact_location)
        return self.store.experiment_id(name, location=location)

    def find_run(self, experiment_id: str, run_uuid: str) -> tuple[str, str] | None:
        """(run id, artifact uri) of the run already created for journal `run_uuid`, if any."""

        return self.store.call(
            functools.partial(_find_run, experiment_id, run_uuid), what="find the run of a journal"
        )

    def run_info(self, run_id: str) -> tuple[str, str, str]:
        """(experiment id, artifact uri, status) of an existing run."""

        def get(client: MlflowClient) -> tuple[str, str, str]:
            info = client.get_run(run_id).info
            return str(info.experiment_id), str(info.artifact_uri), str(info.status)

        return self.store.call(get, what=f"read run {run_id}")

    def run_state(self, run_id: str) -> dict[str, Any]:
        """What resuming run `run_id` needs: its experiment, status, params, tags, and the step
        of each metric's latest point (MLflow's latest is the highest step)."""

        def get(client: MlflowClient) -> dict[str, Any]:
            run = client.get_run(run_id)
            latest = getattr(run.data, "_metric_objs", None)
            if latest is None:  # pragma: no cover - an MLflow without it: one call per key
                latest = [
                    max(client.get_metric_history(run_id, key), key=lambda m: m.step)
                    for key in run.data.metrics
                ]
            return {
                "experiment_id": str(run.info.experiment_id),
                "status": str(run.info.status),
                "params": dict(run.data.params),
                "tags": dict(run.data.tags),
                "last_steps": {str(m.key): int(m.step) for m in latest},
            }

        return self.store.call(get, what=f"read run {run_id}")

    def find_by_tag(self, experiment_id: str, tag: str, value: str) -> str | None:
        """The latest run of the experiment whose tag `tag` is `value`, if any."""

        def find(client: MlflowClient) -> str | None:
            quoted = value.replace("'", "\\'")
            runs = client.search_runs(
                [experiment_id],
                filter_string=f"tags.`{tag}` = '{quoted}'",
                max_results=1,
                order_by=["attributes.start_time DESC"],
            )
            return str(runs[0].info.run_id) if runs else None

        return self.store.call(find, what=f"find the run tagged {tag}={value}")

    def create_run(
        self,
        experiment_id: str,
        *,
        name: str,
        start_time: int,
        tags: Mapping[str, str],
        params: Mapping[str, str] | None = None,
    ) -> tuple[str, str, list[str]]:
        """Create a run with its tags and params; returns (run id, artifact uri, the keys of the
        params the store refused)."""
        run_uuid = tags.get(T.RUN_UUID)
        # an answer lost on the way back: the run is found by its journal's uuid tag
        found = functools.partial(_find_run, experiment_id, run_uuid) if run_uuid else None
        sql = self._sql_store()
        if sql is not None:
            made = self._sql_call(
                lambda: sql.create_run(
                    experiment_id,
                    name=name,
                    start_time=start_time,
                    tags=tags,
                    params=params or {},
                    user=tags.get("mlflow.user", "unknown"),
                ),
                what=f"create run {name!r}",
                idempotent=False,
                found=found,
            )
            if made is not NOT_HANDLED:
                return made[0], made[1], []

        def create(client: MlflowClient) -> tuple[str, str]:
            run = client.create_run(
                experiment_id, start_time=start_time, tags=dict(tags), run_name=name
            )
            return str(run.info.run_id), str(run.info.artifact_uri)

        run_id, uri = self.store.call(
            create, what=f"create run {name!r}", idempotent=False, found=found
        )
        return run_id, uri, self.log_params(run_id, params) if params else []

    def reopen(self, run_id: str) -> None:
        """Set a finished run back to RUNNING (a resumed run)."""
        self.store.call(
            lambda c: c.update_run(run_id, status="RUNNING"), what=f"reopen run {run_id}"
        )

    def end(self, run_id: str, status: str, end_time: int) -> None:
        sql = self._sql_store()
        if sql is not None:
            done = self._sql_call(lambda: sql.end(run_id, status, end_time), what="end run")
            if done is not NOT_HANDLED:
                return
        self.store.call(
            lambda c: c.set_terminated(run_id, status=status, end_time=end_time),
            what=f"end run {run_id}",
        )

    # -- data -----------------------------------------------------------------------------------

    def log(
        self,
        run_id: str,
        *,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        points: Points | None = None,
    ) -> tuple[list[str], list[str]]:
        """A run's params, tags and metric points (one transaction on a SQL store); returns the
        keys of the params and of the tags the store refused."""
        sql = self._sql_store()
        if sql is not None:
            done = self._sql_call(
                lambda: sql.log(run_id, params=params, tags=tags, points=points),
                what="log params, tags and metric points",
            )
            if done is not NOT_HANDLED:
                return [], []
        refused_params = self.log_params(run_id, params) if params else []
        refused_tags = self.set_tags(run_id, tags) if tags else []
        if points is not None:
            self.log_points(run_id, *points)
        return refused_params, refused_tags

    def log_params(self, run_id: str, params: Mapping[str, str]) -> list[str]:
        """Log params; returns the keys the store refused (each refused alone, the rest kept)."""
        from mlflow.entities import Param

        return self._batched(
            run_id, [Param(k, v) for k, v in params.items()], "params", "log params"
        )

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> list[str]:
        from mlflow.entities import RunTag

        return self._batched(run_id, [RunTag(k, v) for k, v in tags.items()], "tags", "set tags")

    def _batched(self, run_id: str, items: list[Any], field: str, what: str) -> list[str]:
        """Send in chunks; a chunk the store refuses is sent one item at a time, so one value it
        will not take (a param changed since, a character the database rejects) costs only
        itself. Returns the keys refused."""
        refused: list[str] = []

        def send(part: list[Any]) -> None:
            self.store.call(
                functools.partial(_log_batch, run_id=run_id, field=field, items=part), what=what
            )

        for start in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
            chunk = items[start : start + MAX_PARAMS_TAGS_PER_BATCH]
            try:
                send(chunk)
            except StoreRejectedError:
                for item in chunk:
                    try:
                        send([item])
                    except StoreRejectedError:
                        refused.append(item.key)
        return refused

    def log_points(
        self,
        run_id: str,
        keys: Sequence[str],
        values: Sequence[float],
        steps: Sequence[int],
        timestamps: Sequence[int],
    ) -> None:
        """Metric points, four parallel columns; points the store already has are skipped."""
        if not keys:
            return
        sql = self._sql_store()
        if sql is not None:
            points = (keys, values, steps, timestamps)
            done = self._sql_call(lambda: sql.log(run_id, points=points), what="log metric points")
            if done is not NOT_HANDLED:
                return
        from mlflow.entities import Metric

        items = [
            Metric(k, v, t, s) for k, v, s, t in zip(keys, values, steps, timestamps, strict=True)
        ]
        for start in range(0, len(items), MAX_METRICS_PER_BATCH):
            chunk = items[start : start + MAX_METRICS_PER_BATCH]
            self.store.call(
                functools.partial(_log_batch, run_id=run_id, field="metrics", items=chunk),
                what="log metric points",
            )

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        """Dataset inputs with tracked's full-content digest, so the MLflow UI shows them."""
        if not inputs:
            return
        entries = [_dataset_input(data) for data in inputs]
        self.store.call(lambda c: c.log_inputs(run_id, datasets=entries), what="log inputs")

    def log_mlflow_inputs(self, run_id: str, inputs: Sequence[Mapping[str, Any]]) -> None:
        """Dataset inputs a user logged with `mlflow.log_input` inside a tracked run."""
        if not inputs:
            return
        from mlflow.entities import Dataset, InputTag
        from mlflow.entities import DatasetInput as MlflowDatasetInput

        entries = [
            MlflowDatasetInput(
                Dataset(**entry["dataset"]),
                [InputTag(k, v) for k, v in (entry.get("tags") or {}).items()],
            )
            for entry in inputs
        ]
        self.store.call(lambda c: c.log_inputs(run_id, datasets=entries), what="log inputs")

    def upload(
        self,
        run_id: str,
        local: str | os.PathLike[str],
        artifact_path: str,
        *,
        artifact_uri: str | None = None,
    ) -> None:
        """Upload a file or directory to `artifact_path` inside the run's artifacts.

        With the run's `artifact_uri` (known since the run was created), MLflow's artifact
        repository is made from it instead of asking the store for the run first.
        """
        local = Path(local)
        head, _, tail = artifact_path.rstrip("/").rpartition("/")
        directory = _local_directory(artifact_uri)
        if directory is not None and _plain_path(artifact_path) and local.is_file():
            target = directory.joinpath(*artifact_path.rstrip("/").split("/"))
            self.store.call(
                lambda _c: _place(local, target), what=f"upload artifact {artifact_path}"
            )
            return
        repo = self._repo(artifact_uri)
        if local.is_dir():

            def send(client: MlflowClient) -> None:
                if repo is not None:
                    repo.log_artifacts(str(local), artifact_path)
                else:
                    client.log_artifacts(run_id, str(local), artifact_path)

        elif local.name == tail:

            def send(client: MlflowClient) -> None:
                if repo is not None:
                    repo.log_artifact(str(local), head or None)
                else:
                    client.log_artifact(run_id, str(local), head or None)

        else:  # the staged copy has another name: lay it out under its artifact name first
            import shutil
            import tempfile

            def send(client: MlflowClient) -> None:
                # mkdtemp, not TemporaryDirectory: the latter's finalizer removes the directory
                # at interpreter exit while the exit drain may still be uploading from it.
                tmp = tempfile.mkdtemp(prefix="tracked-upload-")
                try:
                    target = Path(tmp, tail)
                    _link_or_copy(local, target)
                    if repo is not None:
                        repo.log_artifact(str(target), head or None)
                    else:
                        client.log_artifact(run_id, str(target), head or None)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)

        self.store.call(send, what=f"upload artifact {artifact_path}")

    # -- internals ------------------------------------------------------------------------------

    def _repo(self, artifact_uri: str | None) -> Any:
        """MLflow's artifact repository for a run's artifact URI, as MLflow's client makes it
        (`TrackingServiceClient._get_artifact_repo`, less its `get_run`); None without a URI
        or for a Databricks store, whose URIs MLflow rewrites first."""
        if not artifact_uri or self.store.uri.startswith("databricks"):
            return None
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        return get_artifact_repository(artifact_uri, tracking_uri=self.store.uri)

    def _artifact_location(self, experiment: str, root: str | None) -> str | None:
        """Under `root` when given; else keep an embedded store's artifacts beside its database,
        not in the working dir."""
        from tracked.store import sqlite_path

        safe = sanitize_key(experiment).replace("/", "_")
        if root:
            return root.rstrip("/") + "/" + safe
        db = sqlite_path(self.store.uri)
        if db is None:
            return None
        return (db.parent / "mlartifacts" / safe).as_uri()

    def _sql_store(self) -> SqlFastPath | None:
        """The fast path for MLflow's SQL store behind this store (tracked/writers/sql.py)."""
        with self._lock:
            if self._sql_checked:
                return self._sql
            if urllib.parse.urlsplit(self.store.uri).scheme.split("+")[0] not in _SQL_SCHEMES:
                self._sql_checked = True
                return None
            from tracked.writers.sql import fast_path

            self._sql, self._sql_checked = fast_path(self.store.backend()), True
            return self._sql

    def _sql_call(self, write: Any, *, what: str, **options: Any) -> Any:
        """`write()` through the store's door; NOT_HANDLED when MLflow's client should do it
        instead: the fast path declined it, or the database refused its statements (a schema
        this code does not know; MLflow's client then says what is wrong, if anything)."""
        try:
            return self.store.call(lambda _c: write(), what=what, **options)
        except StoreRejectedError:
            return NOT_HANDLED


def _log_batch(client: MlflowClient, *, run_id: str, field: str, items: list[Any]) -> None:
    client.log_batch(run_id, **{field: items}, synchronous=True)


def _same_device(path: Path, directory: str) -> bool:
    try:
        return os.stat(path).st_dev == os.stat(directory).st_dev
    except OSError:
        return False


def _link_or_copy(source: Path, target: Path) -> None:
    """`target` as a hard link to `source` when both are on one device and the file system takes
    it (not across two mounts of one file system, not on SMB), else a copy with its mode and
    times."""
    import shutil

    if _same_device(source, str(target.parent)):
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copy2(source, target)


def _local_directory(artifact_uri: str | None) -> Path | None:
    """The directory of a run's artifacts on this machine's file system (the embedded store's
    default), as MLflow's local artifact repository finds it; None for another scheme (MLflow's
    artifact repository uploads)."""
    if not artifact_uri:
        return None
    parsed = urllib.parse.urlsplit(artifact_uri)
    local = (parsed.scheme == "file" and parsed.netloc in ("", "localhost")) or (
        parsed.scheme == "" and artifact_uri.startswith("/")
    )
    if not local:
        return None
    from mlflow.utils.file_utils import local_file_uri_to_path

    return Path(local_file_uri_to_path(artifact_uri))


def _plain_path(artifact_path: str) -> bool:
    """A relative artifact path with no `..`, empty or backslashed parts (MLflow's repository
    judges the others)."""
    parts = artifact_path.rstrip("/").split("/")
    if artifact_path.startswith("/") or "\\" in artifact_path:
        return False
    return all(p not in ("", ".", "..") for p in parts)


def _place(source: Path, target: Path) -> None:
    """What MLflow's local artifact repository does for one file (a copy with its mode and
    times), as a hard link when both are on one device (the staged file is the journal's, removed
    once the run is sent); written under a temporary name, then renamed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tracked-{os.getpid()}-{threading.get_ident()}")
    try:
        _link_or_copy(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _dataset_input(data: DatasetInput) -> Any:
    from mlflow.entities import Dataset, InputTag
    from mlflow.entities import DatasetInput as MlflowDatasetInput

    if data.source:
        source_type, source = "local", json.dumps({"uri": data.source})
    else:
        source_type, source = "code", json.dumps({"tags": {"tracked.input": data.name}})
    profile: dict[str, Any] = {"tracked.digest": data.digest, "kind": data.kind}
    profile["nbytes"] = data.nbytes
    if data.shape is not None:
        profile["shape"] = list(data.shape)
    dataset = Dataset(
        name=data.name,
        digest=mlflow_digest(data),
        source_type=source_type,
        source=source,
        schema=_schema_json(data),
        profile=json.dumps(profile),
    )
    return MlflowDatasetInput(dataset, [InputTag(T.DATASET_CONTEXT, data.context)])


def mlflow_digest(data: DatasetInput) -> str:
    """The digest MLflow stores for a dataset: it allows 36 characters."""
    return data.digest.rsplit(":", 1)[-1][:32]


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
    if data.kind in ("numpy", "scipy.sparse", "torch") or set(data.schema) == {"dtype"}:
        dtype = next(iter(data.schema.values()))
        shape = [-1, *(data.shape or ())[1:]]
        spec = [{"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": shape}}]
        return json.dumps({"mlflow_tensorspec": {"features": json.dumps(spec)}})
    columns = [
        {"type": _COLSPEC_TYPES.get(dtype.split("[")[0].lower(), "string"), "name": str(name)}
        for name, dtype in data.schema.items()
    ]
    return json.dumps({"mlflow_colspec": columns})


def _find_run(experiment_id: str, run_uuid: str, client: MlflowClient) -> tuple[str, str] | None:
    """(run id, artifact uri) of the run created for journal `run_uuid`, if there is one."""
    from mlflow.entities import ViewType

    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{T.RUN_UUID}` = '{run_uuid}'",
        run_view_type=ViewType.ALL,
        max_results=5,
        order_by=["attributes.start_time ASC"],
    )
    if not runs:
        return None
    return str(runs[0].info.run_id), str(runs[0].info.artifact_uri)
