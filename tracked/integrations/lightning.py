"""Lightning inside a run: `Trainer.fit`, `validate`, `test` (`lightning`, `pytorch_lightning`).

Imported by `scope` only when one of the two packages is. One `fit` call is one training of the
run. Before it: the module's `save_hyperparameters()` (its `hparams`) and the datamodule's as
params, beside the trainer's settings as `trainer.*` (`trainer.max_epochs`, `trainer.precision`,
`trainer.accumulate_grad_batches`, `trainer.gradient_clip_val`, ...) and the `ModelCheckpoint`
monitor as `checkpoint.*`. During it: every value the module logs (`self.log`) reaches the run
through a Lightning `Logger` added to the trainer's loggers for the call, with Lightning's own
step (and its `epoch` value), as often as Lightning hands values to loggers
(`log_every_n_steps`); at the start of training the optimizers and LR schedulers as params and
the datamodule's arrays, tensors and tensor datasets as dataset inputs. After it: the best
checkpoint by the `ModelCheckpoint` monitor as the training's model (`best_model_score`,
`best_epoch`, `best_step` as metrics), else the trained module, with the first rows of the
training loader as its input example.

`Trainer.validate` and `Trainer.test` in a run are no trainings: what they log goes into the run
itself (`test_loss` beside the training's metrics), through the same lent logger.

The user's loggers keep working and the list is put back after the call. When the trainer had
no logger (`logger=False`), the added one answers Lightning's questions about directories the way
no logger would, so checkpoints land where they would have. An `MLFlowLogger` that has no run
yet is pointed at the tracked run for the call (its client is wrapped: calls naming the tracked
run go into it, any other run goes to MLflow as before), so it makes no second run; its metric
values then are the run's metrics (under its `prefix`, if any) and tracked adds no logger of its
own. An `MLFlowLogger` that already has a run (`run_id=`) keeps writing there.
"""

from __future__ import annotations

import copy
import sys
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tracked import active
from tracked.capture.keys import sanitize_key
from tracked.integrations import scope
from tracked.integrations.methods import autologged, method_hook
from tracked.integrations.scope import Hook

if TYPE_CHECKING:
    from tracked.run import TrackedRun, Training

__all__ = ["patch_targets"]

_PACKAGES = ("lightning.pytorch", "pytorch_lightning")
# Trainer attributes logged as `trainer.<name>` when set (None means "off" and is left out).
_SETTINGS = (
    "max_epochs",
    "min_epochs",
    "max_steps",
    "min_steps",
    "precision",
    "accumulate_grad_batches",
    "gradient_clip_val",
    "gradient_clip_algorithm",
    "val_check_interval",
    "check_val_every_n_epoch",
    "limit_train_batches",
    "limit_val_batches",
    "log_every_n_steps",
    "num_devices",
    "num_nodes",
)
# The MLFlowLogger attributes the redirection swaps; any missing means another Lightning.
_LOGGER_STATE = ("_mlflow_client", "_run_id", "_experiment_id", "_initialized")


def patch_targets() -> list[tuple[Any, str, Hook]]:
    """`Trainer.fit`, `validate` and `test` of each imported Lightning package not already
    wrapped: both the `lightning` and the `pytorch_lightning` entries of `scope.FRAMEWORKS`
    land here."""
    taken = {(id(owner), name) for pairs in scope.patched().values() for owner, name in pairs}
    targets: list[tuple[Any, str, Hook]] = []
    for package in _PACKAGES:
        module = sys.modules.get(f"{package}.trainer.trainer")
        trainer = getattr(module, "Trainer", None)
        if trainer is None:
            continue
        hooks = {"fit": method_hook(_Fit, autolog=("pytorch",)), "validate": _evaluate}
        hooks["test"] = _evaluate
        for name, hook in hooks.items():
            if name in vars(trainer) and (id(trainer), name) not in taken:
                targets.append((trainer, name, hook))
    return targets


def _evaluate(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`Trainer.validate`/`test` in a run: what they log goes into the run itself (they are no
    training of their own), through the same lent logger, and a user's MLFlowLogger too."""
    run = active.current_run()
    if run is None or scope.capturing() or autologged(("pytorch",)):
        return wrapped(*args, **kwargs)
    lending = _Lending(run, instance, _RunSink(run), known=run.record.params)
    try:
        lending.attach()
    except Exception as exc:
        scope.report_failure(run, "lightning", exc, call="Trainer.validate/test")
    try:
        return wrapped(*args, **kwargs)
    finally:
        try:
            lending.restore()
        except Exception as exc:  # never over the call's own result or error
            scope.report_failure(run, "lightning", exc, call="Trainer.validate/test")


class _Fit:
    """One `Trainer.fit` call: what `scope.run_captured` runs around it."""

    framework = "lightning"
    name = "lightning.Trainer.fit"
    produces_model = False  # fit returns None; `after` hands over the model

    def __init__(self, run: TrackedRun, trainer: Any) -> None:
        self.run = run
        self.trainer = trainer
        self.module: Any = None
        self.datamodule: Any = None
        self.started = False
        self._lending: _Lending | None = None
        self._training: Training | None = None

    def before(self, training: Training, arguments: dict[str, Any]) -> None:
        self._training = training
        trainer = self.trainer
        self.module = arguments.get("model")
        self.datamodule = arguments.get("datamodule")
        params: dict[str, Any] = {}
        for owner in (self.module, self.datamodule):
            hparams = getattr(owner, "hparams", None)
            if isinstance(hparams, Mapping):
                params.update(hparams)
        for setting in _SETTINGS:
            value = _attribute(trainer, setting)
            if value is not None:
                params[f"trainer.{setting}"] = value
        for part in ("accelerator", "strategy"):
            value = _attribute(trainer, part)
            if value is not None:
                params[f"trainer.{part}"] = type(value).__name__
        if arguments.get("ckpt_path") is not None:
            params["trainer.ckpt_path"] = arguments["ckpt_path"]
        checkpoint = _monitoring_checkpoint(trainer)
        if checkpoint is not None:
            params["checkpoint.monitor"] = checkpoint.monitor
            params["checkpoint.mode"] = getattr(checkpoint, "mode", None)
        training.log_params(params)
        known = self.run.record.slots[training.slot].params
        self._lending = _Lending(self.run, trainer, training, known=known, on_start=self.start)
        self._lending.attach()

    def start(self) -> None:
        """At the start of training (or at its end when it never started): what setup made."""
        if self.started or self._training is None:
            return
        self.started = True
        training, trainer = self._training, self.trainer
        optimizers = list(_attribute(trainer, "optimizers") or ())
        schedulers = [c.scheduler for c in _attribute(trainer, "lr_scheduler_configs") or ()]
        objects: dict[str, Any] = {}
        if optimizers:
            objects["optimizer" if len(optimizers) == 1 else "optimizers"] = (
                optimizers[0] if len(optimizers) == 1 else optimizers
            )
        if schedulers:
            objects["lr_scheduler" if len(schedulers) == 1 else "lr_schedulers"] = (
                schedulers[0] if len(schedulers) == 1 else schedulers
            )
        if objects:
            training.log_params(objects)
        datamodule = self.datamodule or _attribute(trainer, "datamodule")
        if datamodule is not None:
            _log_datamodule(self.run, datamodule)

    def after(self, training: Training, result: Any) -> None:
        self.start()
        model = self.module
        checkpoint = _monitoring_checkpoint(self.trainer)
        best_path = getattr(checkpoint, "best_model_path", "") if checkpoint else ""
        if best_path and model is not None:
            model = self._best(training, checkpoint, best_path)
        if model is not None:
            training.set_model(model, input_example=self._example())

    def _best(self, training: Training, checkpoint: Any, path: str) -> Any:
        """A copy of the module with the best checkpoint's weights, or the module itself when
        the checkpoint cannot be read (reported)."""
        import torch

        try:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:
                # The checkpoint this very training wrote, with objects (hparams, callback
                # state) that the weights-only reader refuses.
                state = torch.load(path, map_location="cpu", weights_only=False)
            best = copy.deepcopy(self.module)  # LightningModule drops its trainer in a copy
            best.load_state_dict(state["state_dict"])
        except Exception as exc:
            scope.report_failure(self.run, self.framework, exc, call="best checkpoint")
            return self.module
        values: dict[str, float] = {}
        score = getattr(checkpoint, "best_model_score", None)
        if score is not None:
            values["best_model_score"] = float(score)
        for key, name in (("epoch", "best_epoch"), ("global_step", "best_step")):
            if isinstance(state.get(key), int):
                values[name] = float(state[key])
        training.log_metrics(values)
        training.log_params({"checkpoint.best_model_path": path})
        return best

    def _example(self) -> Any:
        from tracked.models.example import example_rows

        loader = _attribute(self.trainer, "train_dataloader")
        if isinstance(loader, (list, tuple)) and loader:
            loader = loader[0]
        elif isinstance(loader, Mapping) and loader:
            loader = next(iter(loader.values()))
        try:
            return example_rows(loader) if loader is not None else None
        except Exception:
            return None

    def restore(self) -> None:
        """What the call started with, at the latest now; then the trainer's loggers back."""
        try:
            self.start()
        except Exception as exc:  # setup failed half-way: what it made is not all there
            scope.report_failure(self.run, self.framework, exc, call="fit start")
        if self._lending is not None:
            self._lending.restore()
            self._lending = None


def _attribute(owner: Any, name: str) -> Any:
    """A trainer property that may raise before setup (no strategy yet) reads as None."""
    try:
        return getattr(owner, name, None)
    except Exception:
        return None


def _monitoring_checkpoint(trainer: Any) -> Any:
    """The first ModelCheckpoint with a monitor, or None."""
    for callback in _attribute(trainer, "checkpoint_callbacks") or ():
        if getattr(callback, "monitor", None):
            return callback
    return None


def _log_datamodule(run: TrackedRun, datamodule: Any) -> None:
    """Fingerprint the datamodule's arrays, tensors, frames and tensor datasets, by attribute."""
    from tracked.capture.fingerprint import is_data_like
    from tracked.record import context_for

    for name, value in list(vars(datamodule).items()):
        if name.startswith("_") or isinstance(value, (str, bytes)):
            continue
        try:
            wanted = is_data_like(value)
        except Exception:
            wanted = False
        if wanted:
            run.log_input(value, name, context_for(name))


# -- the Logger tracked lends the trainer for the call -------------------------------------------


class _RunSink:
    """The run itself as where an evaluation's values go (it is no training of its own)."""

    def __init__(self, run: TrackedRun) -> None:
        self.run = run

    def log_metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        self.run.log_metrics(values, step=step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.run.log_params(params)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.run.set_tags(tags)


class _Lending:
    """One call's loan to the trainer: tracked's logger added to its loggers, and each
    MLFlowLogger without a run pointed at the tracked run; `restore` takes both back.

    `sink` (the training, or the run for an evaluation) receives the values; `known` are the
    params already logged there, which a redirected MLFlowLogger does not log again.
    """

    def __init__(
        self,
        run: TrackedRun,
        trainer: Any,
        sink: Training | _RunSink,
        *,
        known: Mapping[str, str],
        on_start: Any = None,
    ) -> None:
        self.run, self.trainer, self.sink, self.known = run, trainer, sink, known
        self.on_start = on_start
        self._loggers: list[Any] | None = None
        self._redirected: list[tuple[Any, dict[str, Any]]] = []

    def attach(self) -> None:
        trainer = self.trainer
        loggers = list(trainer.loggers)
        for logger in loggers:
            if _is_mlflow_logger(logger):
                saved = _redirect(logger, self)
                if saved is not None:
                    self._redirected.append((logger, saved))
        # A redirected MLFlowLogger already sends every value into the run: not twice.
        recorder = _recorder_class(trainer)(self, record_metrics=not self._redirected)
        self._loggers = trainer.loggers
        trainer.loggers = [*loggers, recorder]

    def restore(self) -> None:
        """Put the trainer's loggers back, and every redirected MLFlowLogger's own state."""
        if self._loggers is not None:
            self.trainer.loggers = self._loggers
            self._loggers = None
        for logger, saved in self._redirected:
            for name, value in saved.items():
                setattr(logger, name, value)
        self._redirected.clear()


_RECORDERS: dict[type, type] = {}


def _recorder_class(trainer: Any) -> type:
    """A Logger subclass of the trainer's own package (`lightning` or `pytorch_lightning`)."""
    package = next(
        cls.__module__.split(".trainer", 1)[0]
        for cls in type(trainer).__mro__
        if cls.__name__ == "Trainer" and cls.__module__.startswith(_PACKAGES)
    )
    module = sys.modules[f"{package}.loggers.logger"]
    base = module.Logger
    found = _RECORDERS.get(base)
    if found is None:
        found = _RECORDERS[base] = types.new_class(
            "TrackedLogger",
            (_Recorder, base),
            exec_body=lambda namespace: namespace.update(_dummy=module.DummyExperiment),
        )
    return found


class _Recorder:
    """Mixed into Lightning's `Logger`: hands every value Lightning logs to the training.

    As the trainer's only logger it names no directory of its own (save_dir = the trainer's
    `default_root_dir`, empty name and version), so `ModelCheckpoint` and `trainer.log_dir`
    resolve exactly as with no logger.
    """

    _dummy: Any  # the package's DummyExperiment class, set by `_recorder_class`

    def __init__(self, lending: _Lending, *, record_metrics: bool = True) -> None:
        super().__init__()
        self._lending = lending
        self._record = record_metrics
        self._keys: dict[str, str] = {}
        self._failed = False

    @property
    def name(self) -> str:
        return ""

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> Any:
        return _attribute(self._lending.trainer, "default_root_dir")

    @property
    def log_dir(self) -> Any:
        return self.save_dir

    @property
    def experiment(self) -> Any:
        """What `self.logger.experiment` gives a module when this is the only logger: a
        Lightning `DummyExperiment`, which accepts any call and does nothing."""
        return self._dummy()

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        self._started()  # hparams were logged before the call; this is the start of training

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self._started()
        if not self._record or self._failed:
            return
        try:
            keys = self._keys
            values: dict[str, float] = {}
            for raw, value in metrics.items():
                key = keys.get(raw)
                if key is None:
                    key = keys[raw] = sanitize_key(raw)
                values[key] = float(value)
            self._lending.sink.log_metrics(values, step)
        except Exception as exc:
            self._failed = True
            scope.report_failure(self._lending.run, "lightning", exc)

    def finalize(self, status: str) -> None:
        return None

    def _started(self) -> None:
        start = self._lending.on_start
        if start is not None:
            self._lending.on_start = None  # once
            try:
                start()
            except Exception as exc:
                scope.report_failure(self._lending.run, "lightning", exc, call="fit start")


# -- a user's MLFlowLogger, pointed at the tracked run ------------------------------------------


def _is_mlflow_logger(logger: Any) -> bool:
    return any(
        cls.__name__ == "MLFlowLogger" and cls.__module__.startswith(_PACKAGES)
        for cls in type(logger).__mro__
    )


def _redirect(logger: Any, lending: _Lending) -> dict[str, Any] | None:
    """Point an MLFlowLogger without a run of its own at the tracked run; its state before."""
    if not all(hasattr(logger, name) for name in _LOGGER_STATE):
        scope.report_failure(
            lending.run,
            "lightning",
            AttributeError("this MLFlowLogger has no _run_id/_mlflow_client"),
            call="MLFlowLogger",
        )
        return None
    if logger._run_id is not None:
        return None  # it writes to a run the user chose
    import mlflow

    facade = mlflow.active_run()  # inside the scope: the tracked run, as MLflow sees it
    if facade is None:
        return None
    saved = {name: getattr(logger, name) for name in _LOGGER_STATE}
    run_id = facade.info.run_id
    logger._mlflow_client = RunClient(logger._mlflow_client, run_id, lending, facade)
    logger._run_id = run_id
    logger._experiment_id = facade.info.experiment_id
    logger._initialized = True
    return saved


class RunClient:
    """An `MlflowClient` stand-in for an MLFlowLogger: calls naming the tracked run go into it
    (through the training or the run, so nothing waits for the store); everything else to the
    original client. Its `set_terminated` of the tracked run does nothing: the run ends with its
    scope."""

    def __init__(self, client: Any, run_id: str, lending: _Lending, run: Any) -> None:
        self._client = client
        self._run_id = run_id
        self._sink = lending.sink
        self._known = lending.known
        self._tracked = lending.run
        self._run = run
        self._keys: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def _ours(self, run_id: Any) -> bool:
        return run_id == self._run_id

    def log_batch(
        self, run_id: str, metrics: Any = (), params: Any = (), tags: Any = (), **kwargs: Any
    ) -> None:
        if not self._ours(run_id):
            self._client.log_batch(run_id, metrics, params, tags, **kwargs)
            return
        by_step: dict[int, dict[str, float]] = {}
        keys = self._keys
        for metric in metrics or ():
            key = keys.get(metric.key)
            if key is None:
                key = keys[metric.key] = sanitize_key(metric.key)
            by_step.setdefault(int(metric.step or 0), {})[key] = float(metric.value)
        for step, values in by_step.items():
            self._sink.log_metrics(values, step)
        if params:
            known = self._known
            self._sink.log_params(
                {p.key: p.value for p in params if sanitize_key(p.key) not in known}
            )
        if tags:
            self._sink.set_tags({t.key: t.value for t in tags})

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        timestamp: Any = None,
        step: Any = None,
        **kw: Any,
    ) -> None:
        if not self._ours(run_id):
            self._client.log_metric(run_id, key, value, timestamp, step, **kw)
            return
        name = self._keys.get(key) or self._keys.setdefault(key, sanitize_key(key))
        self._sink.log_metrics({name: float(value)}, int(step or 0))

    def log_param(self, run_id: str, key: str, value: Any, **kwargs: Any) -> Any:
        if not self._ours(run_id):
            return self._client.log_param(run_id, key, value, **kwargs)
        self._sink.log_params({key: value})
        return value

    def set_tag(self, run_id: str, key: str, value: Any, **kwargs: Any) -> None:
        if not self._ours(run_id):
            self._client.set_tag(run_id, key, value, **kwargs)
            return
        self._sink.set_tags({key: value})

    def log_artifact(self, run_id: str, local_path: Any, artifact_path: Any = None) -> None:
        if not self._ours(run_id):
            self._client.log_artifact(run_id, local_path, artifact_path)
            return
        self._tracked.log_artifact(local_path, artifact_path)

    def log_artifacts(self, run_id: str, local_dir: Any, artifact_path: Any = None) -> None:
        if not self._ours(run_id):
            self._client.log_artifacts(run_id, local_dir, artifact_path)
            return
        self._tracked.log_artifacts(local_dir, artifact_path)

    def get_run(self, run_id: str) -> Any:
        return self._run if self._ours(run_id) else self._client.get_run(run_id)

    def set_terminated(self, run_id: str, *args: Any, **kwargs: Any) -> None:
        if not self._ours(run_id):
            self._client.set_terminated(run_id, *args, **kwargs)
