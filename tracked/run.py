"""TrackedRun: one training run, as a context manager. The decorator is a thin layer over it.

A run captures into a `RunRecord` and hands the record to a writer. The order of its life:
start (git, environment, params, create the MLflow run) -> the user's code (metrics buffered
and written off-thread) -> end (final metrics, artifacts, models, status, then registration
and promotion). Nothing in it may change or break the user's result: every tracking failure
goes to `Problems`, which warns once, or raises only under `strict=True`.
"""

from __future__ import annotations

import contextvars
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tracked import shutdown
from tracked.capture.environment import current_user, environment_tags, requirements_txt
from tracked.capture.git import GitState, capture_git
from tracked.capture.keys import MAX_TAG_LENGTH, safe_text, sanitize_key, truncate
from tracked.capture.metrics import metric_values
from tracked.capture.params import capture_params
from tracked.capture.secrets import redact, redact_value
from tracked.config import Settings, resolve
from tracked.errors import TrackingError
from tracked.integrations import scope
from tracked.problems import Problems
from tracked.record import (
    Artifact,
    DatasetInput,
    MetricPoint,
    ModelCapture,
    RunRecord,
    context_for,
    now_ms,
)
from tracked.writers.batching import MetricBuffer

if TYPE_CHECKING:
    from tracked.registry.policy import Decision

__all__ = ["TrackedRun", "current_run", "last_run", "log_metrics", "log_params", "run"]

_last = threading.local()
_MIN_STEP, _MAX_STEP = -(2**63), 2**63 - 1
_stack: contextvars.ContextVar[tuple[TrackedRun, ...]] = contextvars.ContextVar(
    "tracked_runs", default=()
)


def current_run() -> TrackedRun | None:
    """The innermost active run in this thread or task, or None."""
    stack = _stack.get()
    return stack[-1] if stack else None


def last_run() -> TrackedRun | None:
    """The run that most recently ended in this thread: how a decorated call's caller gets its
    run id without changing the function's return value."""
    return getattr(_last, "run", None)


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Log metrics to the active run (inside a decorated function or a `run()` block)."""
    active = _require_active("log_metrics")
    if active is not None:
        active.log_metrics(metrics, step=step)


def log_params(params: Mapping[str, Any]) -> None:
    """Log params to the active run (inside a decorated function or a `run()` block)."""
    active = _require_active("log_params")
    if active is not None:
        active.log_params(params)


def _require_active(what: str) -> TrackedRun | None:
    active = current_run()
    if active is None:
        Problems(resolve().strict).capture(
            "no-active-run",
            what,
            "no active run: call it inside a @tracked_training function or a tracked.run() block",
        )
    return active


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
        self.register = register
        self.fingerprint = fingerprint
        self.include, self.exclude = include, exclude
        self._explicit_experiment = experiment is not None
        self._initial_params = dict(params or {})
        self._initial_tags = dict(tags or {})
        self.record.promote = _as_list(promote)
        self._source = source
        self._function = function
        self._git = git
        self._writer: Any = None
        self._buffer: MetricBuffer | None = None
        self._token: contextvars.Token[tuple[TrackedRun, ...]] | None = None
        self._lock = threading.Lock()
        self._data_args: dict[str, Any] = {}
        self._started = self._ended = False
        self._store_failed = False  # set when the store failed: the run then goes to the spool
        self._deferred: TrackingError | None = None  # a strict-mode error raised after the end
        self.run_id: str | None = None
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

    # -- start ----------------------------------------------------------------------------------

    def start(self) -> TrackedRun:
        """Capture the starting state and create the run in the store."""
        if self._started:
            raise TrackingError("tracked: a TrackedRun can only be started once")
        self._started = True
        parent = current_run()
        if parent is not None:
            self.record.parent_run_id = parent.run_id
            if not self._explicit_experiment:
                self.record.experiment = parent.record.experiment
        self._token = _stack.set((*_stack.get(), self))
        try:
            self._capture_start()
            self._open_writer()
        except TrackingError:
            self._pop()
            raise
        except Exception as exc:  # a bug in tracked must not stop the training
            self._internal_error(exc, "start")
        shutdown.register(self)  # ended at exit or on SIGTERM if nobody ends it
        scope.enter_run(self)  # XGBoost/LightGBM fits inside the block are captured
        return self

    def _capture_start(self) -> None:
        record = self.record
        record.tags.update(
            {
                "mlflow.user": current_user(),
                "mlflow.source.type": "LOCAL",
                "tracked.run_uuid": record.run_uuid,
                "tracked.project": record.project,
            }
        )
        if self._source:
            record.tags["mlflow.source.name"] = self._source
        if self._function:
            record.tags["tracked.function"] = self._function
        record.tags.update(environment_tags())
        if self._git:
            self.git = capture_git(self._source)
            if self.git is not None:
                record.tags.update(self.git.tags())
        self.set_tags(self._initial_tags, _write=False)
        self.log_params(self._initial_params, _write=False)
        if self.fingerprint:
            for name, value in self._data_args.items():
                self._add_input(value, name, context_for(name))

    def capture_arguments(self, values: Mapping[str, Any]) -> None:
        """Params from a call's bound arguments; data-like ones are kept for fingerprinting."""
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

    def _open_writer(self) -> None:
        from tracked.writers.mlflow import MlflowWriter

        writer = MlflowWriter(self.settings)
        try:
            self.run_id = writer.start(self.record)
        except TrackingError as error:
            self._store_failed = True
            self.problems.failed(
                error, consequence="the training runs on; the run is kept for `tracked sync`"
            )
            return
        self._writer = writer
        self._buffer = MetricBuffer(self._write_metrics, name=f"tracked-metrics-{self.run_id}")

    # -- during the run -------------------------------------------------------------------------

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log numeric values; `step` for a series (e.g. the iteration), None for a final value."""
        try:
            values = metric_values(metrics, report=self.problems.capture)
        except TrackingError:
            raise
        except Exception as exc:  # a mapping whose items() raises, say
            self.problems.capture("metrics", "metrics", f"{type(exc).__name__}: {exc}")
            return
        self._add_metrics(values, step)

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self.log_metrics({key: value}, step=step)

    def _add_metrics(self, values: Mapping[str, float], step: int | None) -> None:
        """The per-iteration path: values are already valid; only append and buffer."""
        if not values:
            return
        if step is not None and not (type(step) is int and _MIN_STEP <= step <= _MAX_STEP):
            step = self._valid_step(step)
            if step is None:
                return
        timestamp = now_ms()
        points = [MetricPoint(k, v, step or 0, timestamp) for k, v in values.items()]
        with self._lock:
            self.record.metrics.extend(points)
        if self._buffer is not None and not self._ended:
            self._buffer.add(points)

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

    def log_params(self, params: Mapping[str, Any], *, _write: bool = True) -> None:
        """Log params (flattened, redacted); a changed value for a logged key is refused."""
        try:
            captured = capture_params(
                params, include=self.include, exclude=self.exclude, report=self.problems.capture
            )
        except TrackingError:
            raise
        except Exception as exc:
            self.problems.capture("params", "params", f"{type(exc).__name__}: {exc}")
            return
        new = {}
        for key, value in captured.params.items():
            old = self.record.params.get(key)
            if old is not None and old != value:
                self.problems.capture(
                    "param-changed", key, f"already logged as {old!r}; MLflow params are immutable"
                )
                continue
            new[key] = value
        self.record.params.update(new)
        self._data_args.update(captured.data)
        if _write and new:
            self._write(lambda w: w.log_params(self.run_id, new), "params")

    def set_tags(self, tags: Mapping[str, Any], *, _write: bool = True) -> None:
        """Set run tags (values redacted and truncated to MLflow's limit)."""
        clean = {}
        for key, value in tags.items():
            name = sanitize_key(key)
            text = safe_text(value)
            if text is None:
                self.problems.capture("unprintable", name, "str() and repr() of the tag raised")
                continue
            clean[name] = truncate(redact(name, text), MAX_TAG_LENGTH)
        self.record.tags.update(clean)
        if _write and clean:
            self._write(lambda w: w.set_tags(self.run_id, clean), "tags")

    def log_text(self, text: str, artifact_file: str) -> None:
        """Attach `text` as an artifact (written when the run ends)."""
        self.record.artifacts.append(Artifact(artifact_file, content=text.encode("utf-8")))

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        """Attach a local file or directory (copied when the run ends)."""
        import os

        name = os.path.basename(os.path.normpath(local_path))
        target = f"{artifact_path.rstrip('/')}/{name}" if artifact_path else name
        self.record.artifacts.append(Artifact(target, local_path=os.fspath(local_path)))

    def log_input(self, data: Any, name: str, context: str = "training") -> None:
        """Fingerprint `data` (array, DataFrame, file, directory...); log it as a dataset input."""
        found = self._add_input(data, name, context)
        if found is not None and self.run_id is not None:
            self._write(lambda w: w.log_inputs(self.run_id, [found]), "inputs")

    def _add_input(self, data: Any, name: str, context: str) -> DatasetInput | None:
        from tracked.capture.fingerprint import fingerprint

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
        return dataset

    def log_model(self, model: Any, name: str = "model", *, input_example: Any = None) -> None:
        """Log `model` (and register it unless register=False) when the run ends."""
        self.record.models.append(ModelCapture(model, name=name, input_example=input_example))

    def capture_result(self, result: Any) -> None:
        """Metrics and model from a training function's return value; never raises unless strict."""
        from tracked.capture.metrics import read_result

        try:
            outcome = read_result(result, report=self.problems.capture)
        except TrackingError:
            raise
        except Exception as exc:
            self.problems.capture("result", "return value", f"{type(exc).__name__}: {exc}")
            return
        self._add_metrics(outcome.metrics, None)
        if outcome.model is not None and not any(
            m.obj is outcome.model for m in self.record.models
        ):
            self.record.models.append(ModelCapture(outcome.model))

    # -- end ------------------------------------------------------------------------------------

    def end(self, exc: BaseException | None = None) -> None:
        """Finish the run: status from `exc`, then everything buffered, artifacts and models."""
        if self._ended or not self._started:
            return
        self._ended = True
        record = self.record
        record.end_time = now_ms()
        if exc is None:
            record.status = "FINISHED"
        elif isinstance(exc, KeyboardInterrupt):
            record.status = "KILLED"
        else:
            record.status = "FAILED"
        if exc is not None:
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            record.artifacts.append(Artifact("tracked/error.txt", redact_value(text).encode()))
        self._pop()
        scope.exit_run(self)
        _last.run = self
        # Under strict mode a tracking error may raise, but never over the user's own exception.
        strict = self.problems.strict and exc is None
        self.problems.strict = strict
        try:
            self._finish_writer()
        except TrackingError:
            raise
        except Exception as exc:  # a bug in tracked must not break the training's result
            self._internal_error(exc, "end")
        finally:
            shutdown.unregister(self)

    def _internal_error(self, exc: Exception, phase: str) -> None:
        error = TrackingError(
            f"tracked: internal error at run {phase} ({type(exc).__name__}: {exc}); "
            "please report it with the output of `tracked doctor`"
        )
        self.problems.failed(error, consequence="the training result is unaffected")
        self._writer = None

    def _finish_writer(self) -> None:
        record = self.record
        pending = self._buffer.close() if self._buffer is not None else []
        if self._buffer is not None and self._buffer.error is not None:
            self._fail(self._buffer.error, "metrics")
        if self.git is not None and self.git.diff:
            record.artifacts.append(Artifact("tracked/git.diff", self.git.diff.encode()))
        record.artifacts.append(Artifact("tracked/requirements.txt", requirements_txt().encode()))
        self._write(lambda w: w.log_metrics(self.run_id, pending), "metrics")
        self._write(lambda w: w.log_artifacts(self.run_id, record.artifacts), "artifacts")
        saved = [self._log_model(capture) for capture in record.models]
        self._write(lambda w: w.end(self.run_id, record.status, record.end_time), "status")
        if self.register and record.status == "FINISHED" and self._writer is not None:
            for capture, flavor in zip(record.models, saved, strict=True):
                if capture.register and flavor is not None:
                    self._register(capture, flavor)
                    break  # one registered version per run: the first model
        if self._store_failed:
            self._spool()
        if self._deferred is not None and self.problems.strict:
            raise self._deferred  # strict: raised only after the run's status is written

    def _spool(self) -> None:
        """The store was unreachable at the start or failed on the way: keep the whole run on
        disk for `tracked sync` (writers/spool.py), so nothing the training produced is lost."""
        from tracked.writers.spool import spool_run

        spool_run(self)

    def _log_model(self, capture: ModelCapture) -> str | None:
        """Save `capture` in its flavor's native format and upload it; returns the flavor."""
        import os
        import tempfile

        from tracked.models.example import input_example
        from tracked.models.flavors import save_model

        if self._writer is None:
            return None
        example = capture.input_example
        if example is None:
            example = input_example(self._data_args)
        with tempfile.TemporaryDirectory(prefix="tracked-model-") as tmp:
            try:
                saved = save_model(capture.obj, os.path.join(tmp, "model"), input_example=example)
            except TrackingError as error:
                self.problems.failed(
                    error, consequence="the run is recorded without this model", raise_strict=False
                )
                self._deferred = self._deferred or error
                return None
            upload = Artifact(capture.name, local_path=saved.path)
            self._write(lambda w: w.log_artifacts(self.run_id, [upload]), "model")
        prefix = "tracked.model." if capture.name == "model" else f"tracked.model.{capture.name}."
        self.set_tags(
            {prefix + "flavor": saved.flavor, prefix + "serialization": saved.serialization}
        )
        return saved.flavor if self._writer is not None else None

    def _register(self, capture: ModelCapture, flavor: str) -> None:
        from tracked.registry.versions import register_run_model

        try:
            version = register_run_model(
                self._writer.client,
                self.record,
                run_id=str(self.run_id),
                source=f"{self._writer.artifact_uri}/{capture.name}",
                flavor=flavor,
                naming=self.settings.naming,
            )
        except TrackingError as error:  # a bad naming template
            self.problems.failed(error, consequence="the model is logged but not registered")
            return
        except Exception as exc:
            self._fail(exc, "registration")
            return
        self.model_name, self.model_version = version.name, str(version.version)
        self.model_uri = f"models:/{version.name}/{version.version}"
        if self.record.promote:
            self._apply_policies()
        self.set_tags(
            {"tracked.model.name": version.name, "tracked.model.version": self.model_version}
        )

    def _apply_policies(self) -> None:
        """Evaluate the run's promotion policies for the version it just registered."""
        from tracked.registry.lifecycle import apply_policies

        try:
            self.decisions = apply_policies(
                self._writer.client,
                str(self.model_name),
                str(self.model_version),
                self.record.promote,
            )
        except TrackingError as error:
            self.problems.failed(error, consequence="the version is registered but not promoted")
            return
        except Exception as exc:
            self._fail(exc, "promotion")
            return
        self.promotion = self.decisions[-1] if self.decisions else None

    def _write_metrics(self, points: list[MetricPoint]) -> None:
        self._writer.log_metrics(self.run_id, points)

    def _write(self, action: Any, what: str) -> None:
        if self._writer is None:
            return
        try:
            action(self._writer)
        except TrackingError as error:
            self._fail(error, what)

    def _fail(self, error: BaseException, what: str) -> None:
        from tracked.problems import store_error

        if not isinstance(error, TrackingError):
            error = store_error(self.settings.tracking_uri, error)
        self._store_failed = True
        self.problems.failed(
            error,
            consequence=f"{what} of run {self.run_id} not sent; the run is kept for `tracked sync`",
        )
        self._writer = None  # one failure is enough: stop talking to a broken store

    def _pop(self) -> None:
        if self._token is None:
            return
        try:
            _stack.reset(self._token)
        except ValueError:
            # Ended in another context (e.g. a generator closed elsewhere): remove by identity.
            _stack.set(tuple(r for r in _stack.get() if r is not self))
        self._token = None

    def __repr__(self) -> str:
        return f"<TrackedRun {self.record.name!r} run_id={self.run_id} status={self.status}>"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _caller_file() -> str | None:
    frame = sys._getframe(2)
    filename = frame.f_code.co_filename
    return None if filename.startswith("<") else filename
