"""TrackedRun: one training run, as a context manager. The decorator is a thin layer over it.

A run is a facade over capture -> record -> journal -> sender. At its start it captures the
starting state (arguments, environment, git in the background) into a `RunRecord` and opens its
journal (tracked/journal.py); the sender (tracked/sender.py) creates the run in the store and ships
the journal from there. During the run every value goes to the record (latest values only) and to
the journal queue, never to the store directly, so the training never waits for the store. At its
end it saves the models into the journal, publishes them (log, register, promote: the decorated
call returns after that), and writes its END; the sender writes the status after the last point.

Nothing in it may change or break the user's result: every tracking failure goes to `Problems`,
which warns once, or raises only under `strict=True`.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tracked import active, shutdown
from tracked import tags as T
from tracked.capture.environment import current_user, environment_tags, requirements_txt
from tracked.capture.keys import (
    MAX_ERROR_LENGTH,
    MAX_TAG_LENGTH,
    clean_text,
    safe_text,
    sanitize_key,
)
from tracked.capture.metrics import metric_values
from tracked.capture.params import capture_params
from tracked.capture.ranks import process_rank
from tracked.capture.secrets import redact_value
from tracked.config import Settings, resolve
from tracked.errors import StoreUnavailableError, TrackingError
from tracked.journal import Journal, Kind
from tracked.problems import Problems
from tracked.record import DatasetInput, ModelCapture, RunRecord, Slot, context_for, now_ms

if TYPE_CHECKING:
    from tracked.capture.git import GitState
    from tracked.registry.policy import Decision
    from tracked.resume import Resumed
    from tracked.sender import Shipment

__all__ = [
    "TrackedRun",
    "Training",
    "current_run",
    "flush",
    "last_run",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_image",
    "log_input",
    "log_metrics",
    "log_model",
    "log_params",
    "log_text",
    "run",
    "set_tags",
]

_MIN_STEP, _MAX_STEP = -(2**63), 2**63 - 1
_env_resume_used = False  # TRACKED_RESUME_RUN_ID resumes the process's first run only
_env_resume_lock = threading.Lock()
current_run = active.current_run
last_run = active.last_run


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Log metrics to the active run (inside a decorated function or a `run()` block)."""
    found = active.current_run()
    if found is None:
        _no_active_run("log_metrics")
    else:
        found.log_metrics(metrics, step=step)


def log_params(params: Mapping[str, Any]) -> None:
    """Log params to the active run (inside a decorated function or a `run()` block)."""
    found = active.current_run()
    if found is None:
        _no_active_run("log_params")
    else:
        found.log_params(params)


def _active(what: str) -> TrackedRun | None:
    found = active.current_run()
    if found is None:
        _no_active_run(what)
    return found


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set tags on the active run."""
    if (found := _active("set_tags")) is not None:
        found.set_tags(tags)


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    """Attach a file or directory to the active run (copied now: delete it when you like)."""
    if (found := _active("log_artifact")) is not None:
        found.log_artifact(local_path, artifact_path)


def log_artifacts(local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    """Attach every file under a directory to the active run (copied now)."""
    if (found := _active("log_artifacts")) is not None:
        found.log_artifacts(local_dir, artifact_path)


def log_figure(figure: Any, artifact_file: str, **save_kwargs: Any) -> None:
    """Attach a matplotlib (or plotly) figure to the active run, rendered now."""
    if (found := _active("log_figure")) is not None:
        found.log_figure(figure, artifact_file, **save_kwargs)


def log_image(image: Any, artifact_file: str) -> None:
    """Attach a PIL image or an array to the active run as an image file."""
    if (found := _active("log_image")) is not None:
        found.log_image(image, artifact_file)


def log_dict(dictionary: Any, artifact_file: str) -> None:
    """Attach a dict to the active run as JSON (YAML for .yaml/.yml)."""
    if (found := _active("log_dict")) is not None:
        found.log_dict(dictionary, artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    """Attach text to the active run as a file."""
    if (found := _active("log_text")) is not None:
        found.log_text(text, artifact_file)


def log_model(model: Any, name: str = "model", *, input_example: Any = None) -> None:
    """Log `model` in the active run (the one named "model" is registered)."""
    if (found := _active("log_model")) is not None:
        found.log_model(model, name, input_example=input_example)


def log_input(data: Any, name: str, context: str = "training") -> None:
    """Fingerprint `data` and log it as a dataset input of the active run."""
    if (found := _active("log_input")) is not None:
        found.log_input(data, name, context)


def _no_active_run(what: str) -> None:
    if not process_rank().owns_run:
        return  # ranks other than 0 record nothing, and say nothing about it
    Problems(resolve().strict).capture(
        "no-active-run",
        what,
        "no active run: call it inside a @tracked_training function or a tracked.run() block",
    )


def flush(timeout: float | None = None) -> bool:
    """Wait until everything the runs of this process logged is in the store (or `timeout`
    seconds passed); True when nothing is left. Runs are sent in the background; the
    interpreter's exit does this itself (bounded by `exit_wait`)."""
    import sys as _sys

    if "tracked.sender" not in _sys.modules:
        return True
    from tracked.sender import sender

    return not sender().drain(float("inf") if timeout is None else timeout)


def run(name: str | None = None, **options: Any) -> TrackedRun:
    """A run block: `with tracked.run("churn-xgb", params={...}) as run: ...`."""
    options.setdefault("source", _caller_file())
    return TrackedRun(name, **options)


class TrackedRun:
    """One training run. Use it as `with`/`async with`; its attributes stay readable after."""

    def __init__(
        self,
        name: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        experiment: str | None = None,
        project: str | None = None,
        tracking_uri: str | None = None,
        strict: bool | None = None,
        model_name: str | None = None,
        register: bool = True,
        promote: Any = None,
        fingerprint: bool = True,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        source: str | None = None,
        function: str | None = None,
        git: bool = True,
        key_metric: str | None = None,
        label: str | Sequence[str] | None = None,
        log_system_metrics: bool | None = None,
        run_name: str | None = None,
        parent: TrackedRun | str | None = None,
        resume: str | None = None,
        run_key: str | None = None,
        force_resume: bool = False,
        all_ranks: bool = False,
        settings: Settings | None = None,
    ) -> None:
        base = settings or resolve()
        self.settings = base.replace(
            tracking_uri=tracking_uri, experiment=experiment, project=project, strict=strict
        )
        self.problems = Problems(self.settings.strict)
        self.record = RunRecord(
            name=name or "run",
            experiment=self.settings.experiment,
            project=self.settings.project,
            model_name=model_name,
        )
        self.record.experiment_id = getattr(self.settings, "experiment_id", None)
        self.register = register
        self.fingerprint = fingerprint
        self.include, self.exclude = include, exclude
        self.key_metric = key_metric
        self.label = (label,) if isinstance(label, str) else tuple(label or ())
        self.log_system_metrics = log_system_metrics
        self.run_name = run_name
        self._explicit_experiment = experiment is not None
        self._parent = parent
        self._experiment_from_parent = False  # the sender reads the parent's experiment
        self._live_parent: TrackedRun | None = None  # told how this run ended
        self._resume = resume
        self.run_key = run_key
        self.force_resume = force_resume
        self.all_ranks = all_ranks
        self.resumed: Resumed | None = None  # the run this one continues (resume=...)
        self._shifts: dict[tuple[int, str], int] = {}  # a framework's restarted step counters
        self.rank = process_rank()
        # A rank other than 0 records nothing: no journal, no store, no thread (see start).
        self.inert = not self.rank.owns_run
        self._children: dict[str, int] = {}  # status -> how many child runs ended so; "started"
        self._initial_params = dict(params or {})
        self._initial_tags = dict(tags or {})
        self.record.promote = _as_list(promote)
        self._source = source
        self._function = function
        self._git = git
        self._journal: Journal | None = None
        self._shipment: Shipment | None = None
        self._token: Any = None
        self._lock = threading.Lock()
        self._data_args: dict[str, Any] = {}
        self._keys: dict[str, str] = {}  # raw metric name -> sanitised key (the hot path's cache)
        self._trainings: list[Training] = []
        self._chosen: ModelCapture | None = None  # run.log_model(obj): the model to register
        self._mlflow_models: list[tuple[Any, str, str, str]] = []  # see adopt_logged_model
        self._git_thread: threading.Thread | None = None
        self._monitor: Any = None
        self._started = self._ended = False
        self._mlflow_depth = 0
        self.run_uuid = self.record.run_uuid
        self.model_uri: str | None = None
        self.model_name: str | None = None
        self.model_version: str | None = None
        self.promotion: Decision | None = None  # the last policy's decision
        self.decisions: list[Decision] = []  # one per policy, in order
        self.git: GitState | None = None

    # -- the context-manager protocol -----------------------------------------------------------

    def __enter__(self) -> TrackedRun:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end(exc)

    async def __aenter__(self) -> TrackedRun:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end(exc)

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def params(self) -> dict[str, str]:
        return dict(self.record.params)

    @property
    def metrics(self) -> dict[str, float]:
        return self.record.latest_metrics()

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.record.tags)

    @property
    def run_id(self) -> str | None:
        """The run's id in the store: created now if the sender has not yet; None when the store
        cannot be reached (the run is then in its journal, for `tracked sync`)."""
        shipment = self._shipment
        if shipment is None:
            return None
        found = shipment.run_id
        if found is not None:
            return found
        if shipment.failure is not None or shipment.store.down() is not None:
            return None
        from tracked.sender import sender

        return sender().create_now(shipment)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything this run logged is in the store (for a run that ended: its
        status too); True when it is. The run's own block never waits for this."""
        from tracked.sender import sender

        shipment = self._shipment
        if shipment is None:
            return False
        wait = self.settings.exit_wait if timeout is None else timeout
        return sender().wait_for(shipment, wait)

    @property
    def ended(self) -> bool:
        """Whether `end()` has begun (the run may still be writing its end)."""
        return self._ended

    @property
    def journal_path(self) -> Path | None:
        """Where the run's journal is (until everything in it is in the store)."""
        return None if self._journal is None else self._journal.directory

    # -- start ----------------------------------------------------------------------------------

    def start(self) -> TrackedRun:
        """Capture the starting state and open the run's journal; the sender creates the run."""
        if self._started:
            raise TrackingError("tracked: a TrackedRun can only be started once")
        self._started = True
        if self.inert:
            self._token = active.push(self, tell=False)  # tracked.log_metrics finds it, no-op
            if self.all_ranks:
                from tracked.distributed import RankMetrics

                self._monitor = RankMetrics(self).start()
            return self
        # Patches frameworks while runs are active; pool threads see the submitting scope.
        import tracked.integrations.scope
        import tracked.integrations.threads  # noqa: F401
        from tracked.integrations.mlflow_fluent import native_depth
        from tracked.store import load_mlflow

        load_mlflow()  # here, before any of tracked's threads needs it (see load_mlflow)

        self._mlflow_depth = native_depth()  # MLflow runs the user started before this scope
        self._adopt_parent()
        self._begin_resume()
        self._token = active.push(self)
        try:
            self._capture_start()
            self._open()
        except TrackingError:
            self._ended = True
            active.pop(self, self._token)
            raise
        except Exception as exc:  # a bug in tracked must not stop the training
            self._internal_error(exc, "start")
        shutdown.register(self)  # ended at exit or on SIGTERM if nobody ends it
        return self

    def _adopt_parent(self) -> None:
        """Which run this one is a child of, first found: `parent=` (a TrackedRun, maybe running
        in another thread, or a run id), the active run in this context, the user's own
        `mlflow.start_run()` block, `TRACKED_PARENT_RUN_ID`. A child goes into its parent's
        experiment unless `experiment=` was given."""
        record = self.record
        parent = self._parent
        if parent is None:
            parent = active.current_run()
        if isinstance(parent, TrackedRun):
            self._adopt_live_parent(parent)
            return
        if parent is not None and not isinstance(parent, str):
            self.problems.capture(
                "parent",
                "parent",
                f"expected a TrackedRun or a run id, got {type(parent).__name__}; "
                "the run is recorded without a parent",
            )
            return
        if parent is None:
            from tracked.integrations.mlflow_fluent import outer_mlflow_run

            outer = outer_mlflow_run(self.settings)
            if outer is not None:
                record.parent_run_id, experiment_id = outer
                if not self._explicit_experiment:
                    record.experiment_id = experiment_id
                return
            parent = self.settings.parent_run_id
        if parent:  # a run id: the sender checks it exists and reads its experiment
            record.parent_run_id = parent.strip()
            self._experiment_from_parent = not self._explicit_experiment

    def _begin_resume(self) -> None:
        """Which run this one continues, if any (see tracked/resume.py): `resume=`, else
        TRACKED_RESUME_RUN_ID for the process's first run outside any other run."""
        global _env_resume_used
        target = self._resume
        if target is None and self.settings.resume_run_id and active.current_run() is None:
            with _env_resume_lock:
                if not _env_resume_used and self._parent is None:
                    target, _env_resume_used = self.settings.resume_run_id, True
        if target is None:
            return
        from tracked.resume import resume_point

        found = resume_point(self, target, self.run_key)
        if found is None:
            return
        self.resumed = found
        self.record.experiment_id = found.experiment_id
        self._experiment_from_parent = False

    @property
    def next_step(self) -> int:
        """The first step after every step this run logged before (a resumed run), else 0:
        `for step in range(run.next_step, total)` continues a resumed run's series."""
        return 0 if self.resumed is None else self.resumed.next_step

    def _adopt_live_parent(self, parent: TrackedRun) -> None:
        record = self.record
        if parent is self or parent._shipment is None:
            why = "is this run" if parent is self else "has not started (or is not recorded)"
            self.problems.capture(
                "parent", "parent", f"{parent!r} {why}; the run is recorded without a parent"
            )
            return
        record.parent_uuid = parent.run_uuid
        record.parent_run_id = parent._shipment.run_id  # None until the sender created it
        self._live_parent = parent
        parent._child_event("started")
        if not self._explicit_experiment:
            record.experiment = parent.record.experiment
            record.experiment_id = parent.record.experiment_id
            self._experiment_from_parent = True

    def _capture_start(self) -> None:
        record = self.record
        record.tags.update(
            {
                T.MLFLOW_USER: current_user(),
                T.SOURCE_TYPE: "LOCAL",
                T.RUN_UUID: record.run_uuid,
                T.NAME: record.name,
                T.PROJECT: record.project,
            }
        )
        if self._source:
            record.tags[T.SOURCE_NAME] = self._source
        if self._function:
            record.tags[T.FUNCTION] = self._function
        if self.key_metric:
            record.tags[T.KEY_METRIC] = sanitize_key(self.key_metric)
        record.tags.update(environment_tags())
        if self.rank.world_size > 1:
            record.tags[T.WORLD_SIZE] = str(self.rank.world_size)
            if self.all_ranks:
                from tracked.capture.ranks import launch_key

                key = launch_key()
                if key:
                    record.tags[T.LAUNCH] = key
        if self.run_key:
            record.tags[T.RUN_KEY] = self.run_key
        self.set_tags(self._initial_tags, _write=False)
        self.log_params(self._initial_params, _write=False)
        if self.resumed is not None:
            self._keep_resumed_params()
        if self.fingerprint:
            for name, value in self._data_args.items():
                self._add_input(value, name, context_for(name), _write=False)

    def _keep_resumed_params(self) -> None:
        """A resumed run keeps its params (MLflow's are immutable): a changed value is a line."""
        resumed, record = self.resumed, self.record
        assert resumed is not None
        for key, value in sorted(record.params.items()):
            old = resumed.params.get(key)
            if old is not None and old != value:
                self.problems.capture(
                    f"resume-param:{key}",
                    key,
                    f"was {old!r} in resumed run {resumed.run_id}, now {value!r}; "
                    "the old value is kept (MLflow params are immutable)",
                )
        record.params.update(resumed.params)
        record.tags[T.RESUMED] = str(resumed.times + 1)

    def capture_arguments(self, values: Mapping[str, Any]) -> None:
        """Params from a call's bound arguments; data-like ones are kept for fingerprinting."""
        if self.inert:
            return
        try:
            captured = capture_params(
                values, include=self.include, exclude=self.exclude, report=self.problems.capture
            )
        except TrackingError:
            raise
        except Exception as exc:
            self.problems.capture("params", "arguments", f"{type(exc).__name__}: {exc}")
            return
        self.record.params.update(captured.params)
        self._data_args.update(captured.data)

    def _open(self) -> None:
        from tracked.sender import START_HOLD, Shipment, sender
        from tracked.store import store_for

        record = self.record
        header = {
            "format": 2,
            "name": self._display_name(),
            "base_name": record.name,
            "experiment": record.experiment,
            "experiment_id": record.experiment_id,
            "project": record.project,
            "parent_run_id": record.parent_run_id,
            "parent_uuid": record.parent_uuid,
            "experiment_from_parent": self._experiment_from_parent,
            "resume_run_id": None if self.resumed is None else self.resumed.run_id,
            "start_time": record.start_time,
            "tags": record.tags,
            "params": record.params,
            "model_name": record.model_name,
            "store": redact_value(self.settings.tracking_uri),
            "artifact_location": self.settings.artifact_location,
            "naming": self.settings.naming,
            "pid": os.getpid(),
        }
        directory = Path(self.settings.spool_dir) / record.run_uuid
        try:
            self._journal = Journal(directory, header)
        except OSError as exc:
            error = TrackingError(
                f"tracked: cannot create the run's journal in {self.settings.spool_dir} ({exc}); "
                "set TRACKED_SPOOL_DIR to a writable directory"
            )
            if self.settings.strict:
                raise error from None
            fallback = _fallback_spool()
            try:
                directory = fallback / record.run_uuid
                self._journal = Journal(directory, header)
            except OSError:
                self.problems.failed(
                    error, consequence="the training runs; this run is not recorded"
                )
                return
            self.problems.failed(
                error, consequence=f"using {fallback} instead for this process", raise_strict=False
            )
        if record.inputs:
            self._journal.event(
                Kind.INPUTS, {"slot": 0, "inputs": [i.to_dict() for i in record.inputs]}
            )
        store = store_for(self.settings)
        shipment = Shipment(directory, store, record=record, on_problem=self.problems.warn)
        shipment.journal = self._journal
        shipment.header = header
        shipment._scanned = True  # a live shipment knows its header
        shipment.strict = self.settings.strict
        self._shipment = shipment
        if self.settings.strict:
            # Under strict mode a store that is down must stop the run before the training.
            try:
                shipment.ensure_run(0)
            except TrackingError:
                self._journal.remove()
                self._journal, self._shipment = None, None
                raise
        from tracked.config import uri_problem

        problem = uri_problem(self.settings.tracking_uri)
        if problem is not None:  # a typo in the URI is a configuration error, not an outage
            from tracked.errors import ConfigError

            error = ConfigError("tracking_uri", redact_value(self.settings.tracking_uri), problem)
            if self.settings.strict:
                self._journal.remove()
                self._journal, self._shipment = None, None
                raise error
            self.problems.failed(
                error,
                consequence=f"the run is kept in {directory}; fix the URI and run `tracked sync`",
            )
        else:
            try:
                store.ready()  # a dead store is said now, before the training
            except TrackingError as error:
                sender().note_failure(shipment, error)
            shipment.hold_until = time.monotonic() + START_HOLD
            sender().add(shipment)
        if self._git:
            self._git_thread = threading.Thread(
                target=self._capture_git, name="tracked-git", daemon=True
            )
            self._git_thread.start()
        self._start_system_metrics()

    def _display_name(self) -> str:
        """The run's name in the store: a person can tell two runs of one function apart."""
        template = self.run_name
        if template is None:
            return self.record.name
        try:
            return template.format(
                name=self.record.name, uuid=self.record.run_uuid[:6], params=self.record.params
            )
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            self.problems.capture("run-name", "run_name", f"{template!r}: {exc}; name kept")
            return self.record.name

    def _capture_git(self) -> None:
        from tracked.capture.git import capture_git

        try:
            state = capture_git(self._source, fallback=os.getcwd())
        except Exception as exc:  # pragma: no cover - capture_git reports no state instead
            self.problems.capture("git", "git", f"{type(exc).__name__}: {exc}")
            return
        self.git = state
        if state is None or self._journal is None:
            return
        self.set_tags(state.tags())
        if state.diff:
            self._attach_bytes(state.diff.encode(), "tracked/git.diff")

    def _start_system_metrics(self) -> None:
        """System metrics sampled into this run's journal, when asked (the argument, or MLflow's
        MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING); with `all_ranks=True` under a launcher, under
        this rank's name among the others' (tracked.distributed)."""
        ranked = self.all_ranks and self.rank.world_size > 1
        wanted = self.log_system_metrics
        if wanted is None:
            wanted = os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "").lower() in (
                "1",
                "true",
            )
        if not (wanted or ranked):
            return
        from tracked.capture.system import SystemMonitor

        prefix = "system/" + (f"{self.rank.label}/" if ranked else "")
        steps = self.resumed.last_steps if self.resumed is not None else {}
        first = max((s + 1 for k, s in steps.items() if k.startswith(prefix)), default=0)
        self._monitor = SystemMonitor(
            lambda values, step: self.log_metrics(values, step=step),
            node_id=self.rank.label if ranked else None,
            first_step=first,
            on_problem=lambda why: self.problems.capture("system-metrics", "system metrics", why),
        ).start()

    # -- during the run -------------------------------------------------------------------------

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log numeric values; `step` for a series (e.g. the iteration), None for a final value."""
        if self.inert:
            return
        keys = self._keys
        if step is not None and not (type(step) is int and _MIN_STEP <= step <= _MAX_STEP):
            step = self._valid_step(step)
            if step is None:
                return
        try:
            # The hot path: keys already seen valid, with float or int values, are passed on as
            # they are (a key MLflow would refuse is renamed once, on the slow path below).
            values: Mapping[str, Any] | None = metrics
            for raw, value in metrics.items():
                kind = type(value)
                if keys.get(raw) != raw or not (kind is float or kind is int):
                    values = None
                    break
            if values is None:
                values = metric_values(metrics, report=self.problems.capture)
                for raw in metrics:
                    if type(raw) is str and raw in values:
                        keys[raw] = raw
                    elif type(raw) is str:
                        keys.pop(raw, None)
        except TrackingError:
            raise
        except Exception as exc:  # a mapping whose items() raises, say
            self.problems.capture("metrics", "metrics", f"{type(exc).__name__}: {exc}")
            return
        self._add_points(0, values, step)

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self.log_metrics({key: value}, step=step)

    def _add_points(self, slot: int, values: Mapping[str, float], step: int | None) -> None:
        """Values already valid: fold into the record, queue for the journal."""
        if not values or self._ended:
            return
        if self.resumed is not None:
            self._add_resumed_points(slot, values, step)
            return
        journal = self._journal
        note = self.record.note_point
        timestamp = time.time_ns() // 1_000_000
        step = step or 0
        for key, value in values.items():
            value = float(value)
            note(slot, key, value, step, timestamp)
            if journal is not None:
                journal.point(slot, key, value, step, timestamp)

    def _add_resumed_points(self, slot: int, values: Mapping[str, float], step: int | None) -> None:
        """A resumed run's points: a value with no step lands on its key's last step (with a
        newer time, so it is the latest); a framework's counter that started again from 0
        continues after the key's last step; a step the user gave is kept as given."""
        assert self.resumed is not None
        last = self.resumed.last_steps
        journal = self._journal
        timestamp = time.time_ns() // 1_000_000
        into_run = slot == 0 or not self.record.slots[slot].child
        for key, value in values.items():
            stamp = timestamp
            if step is None:
                at = last.get(key, 0) if into_run else 0
                seen = self.record.latest.get(key) if slot == 0 else None
                if seen is not None and seen.step >= at:  # latest by (step, time): after it
                    at, stamp = seen.step, max(timestamp, seen.timestamp + 1)
            elif slot != 0 and into_run:
                shift = self._shifts.get((slot, key))
                if shift is None:
                    shift = max(0, last.get(key, -1) + 1 - step)
                    self._shifts[(slot, key)] = shift
                at = step + shift
            else:
                at = step
            self.record.note_point(slot, key, float(value), at, stamp)
            if journal is not None:
                journal.point(slot, key, float(value), at, stamp)

    def _valid_step(self, step: Any) -> int | None:
        """An int step MLflow accepts (64-bit), or None after reporting why it is not one."""
        try:
            number = int(step)
        except (TypeError, ValueError, OverflowError):
            number = None
        if number is None or number != step or not _MIN_STEP <= number <= _MAX_STEP:
            self.problems.capture("step", "step", f"{step!r} is not a 64-bit integer; skipped")
            return None
        return number

    def log_params(
        self, params: Mapping[str, Any], *, _write: bool = True, _slot: int = 0
    ) -> dict[str, str]:
        """Log params (flattened, redacted); a changed value for a logged key is refused."""
        if self.inert:
            return {}
        try:
            captured = capture_params(
                params, include=self.include, exclude=self.exclude, report=self.problems.capture
            )
        except TrackingError:
            raise
        except Exception as exc:
            self.problems.capture("params", "params", f"{type(exc).__name__}: {exc}")
            return {}
        logged = self.record.params if _slot == 0 else self.record.slots[_slot].params
        new = {}
        with self._lock:
            for key, value in captured.params.items():
                old = logged.get(key)
                if old is not None and old != value:
                    self.problems.capture(
                        "param-changed",
                        key,
                        f"already logged as {old!r}; MLflow params are immutable",
                    )
                    continue
                if old is None:
                    new[key] = value
            logged.update(new)
        if _slot == 0:
            self._data_args.update(captured.data)
        if _write and new and self._journal is not None:
            self._journal.event(Kind.PARAMS, {"slot": _slot, "params": new})
        return new

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def set_tags(self, tags: Mapping[str, Any], *, _write: bool = True, _slot: int = 0) -> None:
        """Set run tags (values redacted and truncated to MLflow's limit)."""
        if self.inert:
            return
        clean = {}
        for key, value in tags.items():
            name = sanitize_key(key)
            text = safe_text(value)
            if text is None:
                self.problems.capture("unprintable", name, "str() and repr() of the tag raised")
                continue
            clean[name] = clean_text(text, limit=MAX_TAG_LENGTH, name=name)
        target = self.record.tags if _slot == 0 else self.record.slots[_slot].tags
        target.update(clean)
        if _write and clean and self._journal is not None:
            self._journal.event(Kind.TAGS, {"slot": _slot, "tags": clean})

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    # -- artifacts: copied when logged ----------------------------------------------------------

    def log_artifact(
        self, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        """Attach a local file or directory: copied now, so it may be deleted right after."""
        source = Path(local_path)
        name = source.name or "artifact"
        target = f"{artifact_path.strip('/')}/{name}" if artifact_path else name
        self._stage(lambda journal: journal.stage(source, name), target, what=str(local_path))

    def log_artifacts(
        self, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        """Attach every file under `local_dir` (copied now) under `artifact_path`."""
        source = Path(local_dir)
        target = artifact_path.strip("/") if artifact_path else ""
        self._stage(lambda journal: journal.stage(source, "dir"), target, what=str(local_dir))

    def log_text(self, text: str, artifact_file: str) -> None:
        """Attach `text` as an artifact file."""
        self._attach_bytes(text.encode("utf-8"), artifact_file)

    def log_dict(self, dictionary: Any, artifact_file: str) -> None:
        """Attach `dictionary` as JSON (or YAML when the file name ends in .yaml/.yml)."""
        import json

        if artifact_file.endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_dump(dictionary, default_flow_style=False).encode()
        else:
            data = json.dumps(dictionary, indent=2, default=str).encode()
        self._attach_bytes(data, artifact_file)

    def log_figure(self, figure: Any, artifact_file: str, **save_kwargs: Any) -> None:
        """Attach a matplotlib or plotly figure, rendered now."""
        import io

        buffer = io.BytesIO()
        if hasattr(figure, "savefig"):  # matplotlib
            fmt = artifact_file.rsplit(".", 1)[-1] if "." in artifact_file else "png"
            figure.savefig(buffer, format=fmt, **save_kwargs)
        elif hasattr(figure, "to_html"):  # plotly
            if artifact_file.endswith(".html"):
                buffer.write(figure.to_html().encode())
            else:
                buffer.write(figure.to_image(format=artifact_file.rsplit(".", 1)[-1]))
        else:
            self.problems.capture(
                "figure",
                artifact_file,
                f"{type(figure).__name__} is not a matplotlib/plotly figure",
            )
            return
        self._attach_bytes(buffer.getvalue(), artifact_file)

    def log_image(self, image: Any, artifact_file: str) -> None:
        """Attach a PIL image or a numpy array (H x W [x C]) as an image file."""
        import io

        buffer = io.BytesIO()
        try:
            if hasattr(image, "save") and hasattr(image, "mode"):
                image.save(buffer, format=_image_format(artifact_file))
            else:
                import numpy as np
                from PIL import Image

                array = np.asarray(image)
                if array.dtype.kind == "f":
                    array = (np.clip(array, 0, 1) * 255).astype("uint8")
                Image.fromarray(array).save(buffer, format=_image_format(artifact_file))
        except Exception as exc:
            self.problems.capture("image", artifact_file, f"{type(exc).__name__}: {exc}")
            return
        self._attach_bytes(buffer.getvalue(), artifact_file)

    def _attach_bytes(self, data: bytes, artifact_file: str) -> None:
        name = artifact_file.rsplit("/", 1)[-1] or "artifact"
        self._stage(lambda journal: journal.stage_bytes(data, name), artifact_file, what=name)

    def _stage(self, copy: Any, target: str, *, what: str, slot: int = 0) -> None:
        if self.inert:
            return
        journal = self._journal
        if journal is None or self._journal_closed():
            self.problems.capture("artifact", what, "the run has no journal (not started, ended)")
            return
        try:
            staged = copy(journal)
        except OSError as exc:
            self.problems.capture("artifact", what, f"cannot be copied: {exc}")
            return
        journal.event(Kind.ARTIFACT, {"slot": slot, "path": target, "file": staged})
        self.record.artifacts.append(_artifact(target, staged))

    def _journal_closed(self) -> bool:
        return self._journal is None or self._journal.closed

    # -- inputs and models ----------------------------------------------------------------------

    def log_input(self, data: Any, name: str, context: str = "training") -> None:
        """Fingerprint `data` (array, DataFrame, file, directory...); log it as a dataset input."""
        self._add_input(data, name, context)

    def _add_input(
        self, data: Any, name: str, context: str, *, _write: bool = True
    ) -> DatasetInput | None:
        from tracked.capture.fingerprint import fingerprint

        if self.inert:
            return None
        try:
            found = fingerprint(data)
        except TrackingError as error:
            self.problems.capture("fingerprint", name, str(error))
            return None
        except Exception as exc:
            self.problems.capture("fingerprint", name, f"{type(exc).__name__}: {exc}")
            return None
        dataset = DatasetInput(
            name=sanitize_key(name),
            digest=found.digest,
            kind=found.kind,
            context=context,
            source=found.source,
            shape=found.shape,
            schema=found.schema,
            nbytes=found.nbytes,
        )
        self.record.inputs = [i for i in self.record.inputs if i.name != dataset.name]
        self.record.inputs.append(dataset)
        if _write and self._journal is not None:
            self._journal.event(Kind.INPUTS, {"slot": 0, "inputs": [dataset.to_dict()]})
        return dataset

    def log_mlflow_input(self, dataset: Any, context: str | None = None, tags: Any = None) -> None:
        """A dataset the user logged with `mlflow.log_input` inside this run."""
        entity = dataset._to_mlflow_entity() if hasattr(dataset, "_to_mlflow_entity") else dataset
        entry = {
            "dataset": {
                "name": entity.name,
                "digest": entity.digest,
                "source_type": entity.source_type,
                "source": entity.source,
                "schema": entity.schema,
                "profile": entity.profile,
            },
            "tags": {**({T.DATASET_CONTEXT: context} if context else {}), **dict(tags or {})},
        }
        if self._journal is not None:
            self._journal.event(Kind.INPUTS, {"slot": 0, "mlflow": [entry]})

    def log_model(
        self, model: Any, name: str = "model", *, input_example: Any = None, tokenizer: Any = None
    ) -> None:
        """Log `model` when the run ends; the model named "model" is the one registered (unless
        register=False). In a block with several trainings, this chooses the registered one.
        `tokenizer` is saved with a Hugging Face model."""
        if self.inert:
            return
        capture = ModelCapture(model, name=name, input_example=input_example, tokenizer=tokenizer)
        with self._lock:
            self.record.models = [
                m for m in self.record.models if not (m.slot == 0 and m.name == name)
            ]
            self.record.models.append(capture)
            if name == "model":
                self._chosen = capture

    def adopt_logged_model(
        self, model: Any, model_id: str, flavor: str, serialization: str = "mlflow"
    ) -> None:
        """MLflow's own code (autolog, `mlflow.<flavor>.log_model`) logged `model` into this run
        as logged model `model_id`: when it is the run's model, tracked registers that one
        instead of logging a second copy."""
        with self._lock:
            self._mlflow_models.append((model, model_id, flavor, serialization))

    def capture_result(self, result: Any) -> None:
        """Metrics and model from a training function's return value; never raises unless strict."""
        from tracked.capture.metrics import read_result

        if self.inert:
            return
        try:
            outcome = read_result(result, report=self.problems.capture)
        except TrackingError:
            raise
        except Exception as exc:
            self.problems.capture("result", "return value", f"{type(exc).__name__}: {exc}")
            return
        self._add_points(0, outcome.metrics, None)
        if outcome.model is not None and self._chosen is None:
            self.log_model(outcome.model)

    # -- trainings: the integrations' hook ------------------------------------------------------

    def begin_training(self, framework: str, *, name: str | None = None) -> Training:
        """A framework training call starts inside this run (called by integrations).

        The first training logs into the run itself; from the second on, each training is a
        child run of its own, the first included (its earlier data is copied there), so
        several trainings never mix their params, metrics or models.
        """
        with self._lock:
            index = len(self._trainings) + 1
            label = name or framework
            slot = Slot(index, f"{self.record.name}/{index}-{label}", framework)
            self.record.slots[index] = slot
            training = Training(self, index, framework, slot.name)
            self._trainings.append(training)
            journal = self._journal
            if index == 2:
                first = self.record.slots[1]
                first.child = True
                if journal is not None:
                    journal.event(Kind.CHILD, _child_frame(first, self._trainings[0], retro=True))
            if index >= 2:
                slot.child = True
                if journal is not None:
                    journal.event(Kind.CHILD, _child_frame(slot, training, retro=False))
        return training

    @property
    def trainings(self) -> list[Training]:
        return list(self._trainings)

    # -- end ------------------------------------------------------------------------------------

    def end(self, exc: BaseException | None = None) -> None:
        """Finish the run: status from `exc`, then models, registration, promotion, its END."""
        if self._ended or not self._started:
            return
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.stop()  # its last point is logged before the run stops taking points
        self._ended = True
        record = self.record
        record.end_time = now_ms()
        if exc is None:
            record.status = "FINISHED"
        elif isinstance(exc, KeyboardInterrupt):
            record.status = "KILLED"
        else:
            record.status = "FAILED"
        active.pop(self, self._token, tell=not self.inert)
        self._token = None
        active.set_last(self)
        if self.inert:
            return
        if self._live_parent is not None:
            self._live_parent._child_event(record.status)
        # Under strict mode a tracking error may raise, but never over the user's own exception.
        self.problems.strict = self.problems.strict and exc is None
        try:
            self._finish(exc)
        except TrackingError:
            raise
        except Exception as error:  # a bug in tracked must not break the training's result
            self._internal_error(error, "end")
        finally:
            shutdown.unregister(self)
        if self.problems.deferred is not None and self.problems.strict:
            raise self.problems.deferred  # raised only after the run's END is written

    def _finish(self, exc: BaseException | None) -> None:
        record, journal = self.record, self._journal
        if journal is None:
            return
        self._end_trainings()
        self._count_children()
        if exc is not None:
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            cleaned = clean_text(text, limit=MAX_ERROR_LENGTH)
            self._attach_bytes(cleaned.encode(errors="backslashreplace"), "tracked/error.txt")
        if self._git_thread is not None:
            self._git_thread.join(15.0)
        self._attach_bytes(requirements_txt().encode(), "tracked/requirements.txt")
        models = self._models_to_save()
        chosen = next((m for m in models if m.slot == 0 and m.name == "model"), None)
        from tracked.finish import intent_frame, save_models

        example = None
        if any(m.input_example is None for m in models):
            example = _example(self._data_args, chosen.obj if chosen else None, self.label)
        saved = save_models(
            journal,
            models,
            example=example,
            problems=self.problems,
            logged=self._mlflow_models,
        )
        chosen = chosen if chosen in saved else None
        self._describe_models(saved)
        journal.event(
            Kind.INTENT,
            intent_frame(
                register=self.register,
                chosen=chosen,
                naming=self.settings.naming,
                model_name=record.model_name,
                policies=record.promote,
                key_metric=self.key_metric,
            ),
        )
        journal.flush()
        self._publish(saved, chosen)
        journal.event(Kind.END, {"slot": 0, "status": record.status, "end_time": record.end_time})
        journal.close()
        from tracked.sender import sender

        sender().wake()
        if shutdown.in_worker_process():
            # A pool's worker may be ended at any time after its task returns (no exit hook
            # runs then): its run is sent before the call returns.
            self.flush()
        self._summary_line()

    def _child_event(self, status: str) -> None:
        with self._lock:
            self._children[status] = self._children.get(status, 0) + 1

    def _count_children(self) -> None:
        """Tag how the child runs started from this process ended. The run's own status stays
        its own (a sweep with failed trials is FINISHED, as in MLflow): the count says the rest."""
        with self._lock:
            counts = dict(self._children)
        started = counts.pop("started", 0)
        if not started:
            return
        tags = {
            T.CHILDREN_TOTAL: started,
            T.CHILDREN_FAILED: counts.get("FAILED", 0),
            T.CHILDREN_KILLED: counts.get("KILLED", 0),
        }
        running = started - sum(counts.values())
        if running > 0:
            tags[T.CHILDREN_RUNNING] = running
        self.set_tags(tags)

    def _end_trainings(self) -> None:
        """Trainings still open end with the run; a lone training's params become the run's."""
        for training in self._trainings:
            if not training.ended:
                training.end(None)
        if len(self._trainings) == 1:
            slot = self.record.slots[1]
            self.log_params(slot.params)
            if slot.tags:
                self.set_tags(slot.tags)

    def _models_to_save(self) -> list[ModelCapture]:
        """The models to save, each once, and where: the run's main model (what the function
        returned or `log_model` chose, else the last training's) registered, and with several
        trainings each training's own model in its child run. Also `record.models` after."""
        record = self.record
        models = [m for m in record.models if m.obj is not None]
        main = next((m for m in models if m.slot == 0 and m.name == "model"), None)
        trained = [m for m in models if m.slot != 0]
        if len(self._trainings) <= 1:  # a lone training logs into the run itself
            for capture in trained:
                if main is not None and capture.obj is main.obj:
                    models.remove(capture)  # the function returned the training's model
                    if main.tokenizer is None:
                        main.tokenizer = capture.tokenizer
                    if main.input_example is None:
                        main.input_example = capture.input_example
                elif main is None:
                    capture.slot, main = 0, capture
                else:  # the function returned another model: keep this one beside it
                    capture.slot = 0
                    capture.name = f"{self._trainings[0].framework}-model"
        elif main is None and trained:
            last = trained[-1]
            main = ModelCapture(
                last.obj, name="model", input_example=last.input_example, tokenizer=last.tokenizer
            )
            models.append(main)
        for capture in models:
            capture.register = capture is main and self.register
        record.models = models
        return models

    def _add_training_model(
        self, training: Training, model: Any, input_example: Any = None, tokenizer: Any = None
    ) -> None:
        with self._lock:
            if any(m.obj is model for m in self.record.models):
                return
            capture = ModelCapture(
                model,
                name="model",
                slot=training.slot,
                register=False,
                input_example=input_example,
                tokenizer=tokenizer,
            )
            self.record.models.append(capture)

    def _describe_models(self, models: Sequence[ModelCapture]) -> None:
        """The main model's class as a run tag (shown in listings); for a neural network its
        parameter counts as params and its architecture as `tracked/model_summary.txt`."""
        from tracked.models.summary import describe_model

        for capture in models:
            if capture.slot != 0 or capture.name != "model" or capture.obj is None:
                continue
            cls = type(capture.obj)
            self.set_tags({T.MODEL_CLASS: f"{cls.__module__}.{cls.__qualname__}"})
            try:
                described = describe_model(capture.obj)
            except Exception as exc:
                self.problems.capture("model-summary", "model", f"{type(exc).__name__}: {exc}")
                continue
            counts = {
                f"model.{key}": described[key]
                for key in ("parameters", "trainable_parameters")
                if key in described
            }
            if counts:
                self.log_params(counts)
            if described.get("summary"):
                self.log_text(str(described["summary"]), "tracked/model_summary.txt")

    def _publish(self, saved: Sequence[ModelCapture], chosen: ModelCapture | None) -> None:
        """Log, register and promote now, so the call returns with its version; when the store
        cannot take it, it stays in the journal and is done by the sender or `tracked sync`."""
        from tracked.finish import model_frame, publish

        shipment = self._shipment
        if shipment is None or (not saved and not self.record.promote):
            return
        if shipment.failure is not None or shipment.store.down() is not None:
            return
        try:
            outcome = publish(
                shipment,
                self.record,
                [model_frame(m) for m in saved],
                {
                    "register": self.register,
                    "model": None if chosen is None else [chosen.slot, chosen.name],
                    "naming": self.settings.naming,
                },
                policies=self.record.promote,
            )
        except StoreUnavailableError as error:
            if self.settings.strict:
                self.problems.failed(error, consequence="the model is kept in the run's journal")
            from tracked.sender import sender

            sender().note_failure(shipment, error)  # one line per process for one failure
            return
        except TrackingError as error:
            self.problems.failed(error, consequence="the run is recorded, its model is not")
            return
        shipment.mark("published")
        self.model_name, self.model_version = outcome.model_name, outcome.model_version
        if outcome.model_name:
            self.model_uri = f"models:/{outcome.model_name}/{outcome.model_version}"
        self.decisions = outcome.decisions
        self.promotion = outcome.decisions[-1] if outcome.decisions else None
        if self.settings.strict:
            for decision in outcome.decisions:
                if not decision.promoted:
                    from tracked.errors import PolicyError

                    self.problems.defer(PolicyError(f"tracked: {decision.reason}"))

    def _summary_line(self) -> None:
        from tracked.feedback import run_ended

        run_ended(self)

    def _internal_error(self, exc: Exception, phase: str) -> None:
        error = TrackingError(
            f"tracked: internal error at run {phase} ({type(exc).__name__}: {exc}); "
            "please report it with the output of `tracked doctor`"
        )
        self.problems.failed(error, consequence="the training result is unaffected")

    def __repr__(self) -> str:
        return f"<TrackedRun {self.record.name!r} uuid={self.run_uuid} status={self.status}>"


class Training:
    """One framework training call inside a run: what an integration logs into.

    Its metrics go to the run (a lone training) or to its own child run (several trainings),
    decided by the run; the integration does not need to know which.
    """

    def __init__(self, run: TrackedRun, slot: int, framework: str, name: str) -> None:
        self.run = run
        self.slot = slot
        self.framework = framework
        self.name = name
        self.model: Any = None
        self.ended = False
        self.start_time = now_ms()
        self.status = "RUNNING"

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.run.log_params(params, _slot=self.slot)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.run.set_tags(tags, _slot=self.slot)

    def log_metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        """Valid keys and float values only (the integration's per-iteration path)."""
        self.run._add_points(self.slot, values, step)

    def set_model(self, model: Any, *, input_example: Any = None, tokenizer: Any = None) -> None:
        """The model this training produced; `input_example` (a few input rows) gives it a
        signature, `tokenizer` is saved with a Hugging Face model."""
        self.model = model
        self.run._add_training_model(self, model, input_example, tokenizer)

    def end(self, error: BaseException | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        self.status = "FINISHED" if error is None else "FAILED"
        self.run.record.slots[self.slot].status = self.status
        journal = self.run._journal
        if journal is not None and self.run.record.slots[self.slot].child:
            journal.event(
                Kind.END, {"slot": self.slot, "status": self.status, "end_time": now_ms()}
            )

    def __repr__(self) -> str:
        return f"<Training {self.name!r} slot={self.slot} {self.status}>"


def _child_frame(slot: Slot, training: Training, *, retro: bool) -> dict[str, Any]:
    return {
        "slot": slot.index,
        "name": slot.name,
        "framework": slot.framework,
        "start_time": training.start_time,
        "retro": retro,
        "tags": {"tracked.training.framework": slot.framework},
    }


def _artifact(path: str, file: str) -> Any:
    from tracked.record import Artifact

    return Artifact(path, file)


def _example(data_args: Mapping[str, Any], model: Any, label: Sequence[str]) -> Any:
    """A few rows of the training data as the model sees them: the columns it was fitted on
    (a label column in the data argument never enters the signature), `label=` dropped."""
    from tracked.models.example import input_example

    try:
        return input_example(data_args, model=model, exclude_columns=label)
    except Exception:
        return None


def _fallback_spool() -> Path:
    """Where journals go when the configured spool directory cannot be written: a per-user
    directory under the system's temporary directory."""
    import tempfile

    return Path(tempfile.gettempdir()) / f"tracked-spool-{os.getuid()}"


def _image_format(name: str) -> str:
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else "png"
    return {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "gif": "GIF", "bmp": "BMP"}.get(
        extension, "PNG"
    )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _caller_file() -> str | None:
    frame = sys._getframe(2)
    filename = frame.f_code.co_filename
    return None if filename.startswith("<") else filename
