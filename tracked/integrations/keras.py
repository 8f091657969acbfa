"""Keras 3 inside a run: `Model.fit`, with any backend (TensorFlow is not needed).

Imported by `scope` only when `keras` is. One `fit` call is one training of the run: the
`compile` settings as params (`optimizer.class` and the optimizer's config, `loss`, `metrics`,
`loss_weights`, `run_eagerly`, `steps_per_execution`, `jit_compile`) beside the call's own
(`epochs`, `batch_size`, `validation_split`, `shuffle`, `initial_epoch`, ...); every value of
Keras' `History` at the end of each epoch (`loss`, `accuracy`, `val_loss`, ...) with step = the
epoch, through a Keras `Callback` added after the user's for the call; and the model, saved in
the `.keras` format by its flavor, with the first rows of `x` as its input example when `x` is
an array, tensor or DataFrame.

The wrapped `fit` is the backend trainer's (`TorchTrainer.fit`, `JAXTrainer.fit`): a model class
that overrides `fit` and calls `super().fit()` is captured once. The user's list of callbacks is
not changed (a new list is passed).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tracked.capture.keys import sanitize_key
from tracked.integrations import scope
from tracked.integrations.methods import method_hook
from tracked.integrations.scope import Hook

if TYPE_CHECKING:
    from tracked.run import TrackedRun, Training

__all__ = ["patch_targets"]

_FIT_SETTINGS = (
    "epochs",
    "batch_size",
    "validation_split",
    "shuffle",
    "class_weight",
    "initial_epoch",
    "steps_per_epoch",
    "validation_steps",
    "validation_batch_size",
    "validation_freq",
)
_COMPILE_SETTINGS = (
    "loss_weights",
    "run_eagerly",
    "steps_per_execution",
    "jit_compile",
    "auto_scale_loss",
)


def patch_targets() -> list[tuple[Any, str, Hook]]:
    """The backend trainer's `fit`: the first class in `keras.Model`'s MRO that defines it."""
    keras = sys.modules["keras"]
    for cls in keras.Model.__mro__:
        if "fit" in vars(cls):
            return [(cls, "fit", method_hook(_Fit, autolog=("keras", "tensorflow")))]
    return []


class _Fit:
    framework = "keras"
    name = "keras.Model.fit"
    produces_model = False  # fit returns its History; `after` hands over the model

    def __init__(self, run: TrackedRun, model: Any) -> None:
        self.run = run
        self.model = model
        self.x: Any = None

    def before(self, training: Training, arguments: dict[str, Any]) -> None:
        model = self.model
        self.x = arguments.get("x")
        params: dict[str, Any] = {}
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None:
            params["optimizer"] = optimizer  # its class and get_config() (capture/objects.py)
        loss = getattr(model, "loss", None)
        if loss is not None:
            params["loss"] = _named(loss)
        config = _compile_config(model)
        for key in ("metrics", "weighted_metrics"):
            if config.get(key):
                params[key] = _names(config[key])
        for key in _COMPILE_SETTINGS:
            if key in config and config[key] is not None:
                params[key] = config[key]
        defaults = _fit_defaults(model)
        for key in _FIT_SETTINGS:
            value = arguments.get(key, defaults.get(key))
            if value is not None:
                params[key] = value
        training.log_params(params)
        callbacks = arguments.get("callbacks")
        if callbacks is None or isinstance(callbacks, (list, tuple)):
            arguments["callbacks"] = [*(callbacks or ()), _recorder(training)]
        else:  # a CallbackList the user built: ours is not added to it (theirs is not ours)
            scope.report_failure(
                self.run,
                self.framework,
                TypeError(f"callbacks is a {type(callbacks).__name__}, not a list"),
                call="keras.Model.fit metrics",
            )

    def after(self, training: Training, result: Any) -> None:
        from tracked.models.example import example_rows

        try:
            example = example_rows(self.x, strict=True)
        except Exception:
            example = None
        training.set_model(self.model, input_example=example)


def _fit_defaults(fit_self: Any) -> dict[str, Any]:
    """`fit`'s defaults for the settings a call left out (epochs=1, shuffle=True, ...)."""
    import inspect

    method = getattr(fit_self, "fit", None)
    if method is None:
        return {}
    try:
        parameters = inspect.signature(inspect.unwrap(method)).parameters
    except (TypeError, ValueError):
        return {}
    return {
        name: p.default
        for name, p in parameters.items()
        if name in _FIT_SETTINGS and p.default is not inspect.Parameter.empty
    }


def _compile_config(model: Any) -> dict[str, Any]:
    try:
        config = model.get_compile_config()
    except Exception:
        return {}
    return dict(config) if isinstance(config, Mapping) else {}


def _named(value: Any) -> Any:
    """A loss or metric as a param: a string as is, a function by name, a Loss object as
    itself (its class and config), a structure of them element by element."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _named(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_named(v) for v in value]
    if callable(value) and hasattr(value, "__name__") and not hasattr(value, "get_config"):
        return value.__name__
    return value


def _names(value: Any) -> Any:
    """Serialized metrics (`get_compile_config`) as names: "accuracy", "MeanSquaredError"."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        if "class_name" in value:
            config = value.get("config")
            name = config.get("name") if isinstance(config, Mapping) else None
            return str(name or value["class_name"])
        return {str(k): _names(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_names(v) for v in value]
    return str(getattr(value, "name", None) or getattr(value, "__name__", None) or value)


def _recorder(training: Training) -> Any:
    """A Keras Callback that sends each epoch's logs to the training (step = epoch)."""
    import keras

    class TrackedHistory(keras.callbacks.Callback):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self._keys: dict[str, str] = {}
            self._failed = False

        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            if self._failed or not logs:
                return
            try:
                keys = self._keys
                values: dict[str, float] = {}
                for raw, value in logs.items():
                    try:
                        number = float(value)
                    except (TypeError, ValueError):
                        continue  # a string or a structure: not a metric
                    key = keys.get(raw)
                    if key is None:
                        key = keys[raw] = sanitize_key(raw)
                    values[key] = number
                training.log_metrics(values, int(epoch))
            except Exception as exc:
                self._failed = True
                scope.report_failure(training.run, "keras", exc)

    return TrackedHistory()
