"""The one owner of framework patches: they exist only while some run block is active.

A run calls `enter_run(run)` when it starts and `exit_run(run)` when it ends. The first run to
enter wraps the training entry points of every supported framework that is already imported
(`sys.modules`; we never import a framework ourselves); the last run to exit puts the original
objects back, by identity. A framework imported after the first block started is patched at the
next `enter_run` (a nested block, or the next block), not in the middle of the current one.

While patched, a wrapper first asks `current_run()`, a context variable: in a thread or task with
no active run it calls straight through, so code outside any block behaves as before even while
another thread trains inside one. Threads started inside a block do not inherit the block's
context, so their training is not captured either.

The framework modules (`tracked.integrations.xgboost`, `.lightgbm`) supply the targets and a
`Capture` per training call; the skeleton that runs a call with capture around it is here, so
tracking never changes what the call returns or raises.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import inspect
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from tracked.errors import CaptureError, TrackingError
from tracked.problems import logger

if TYPE_CHECKING:
    from tracked.run import TrackedRun

__all__ = [
    "Capture",
    "booster_params",
    "capturing",
    "enter_run",
    "exit_run",
    "fit_estimator",
    "patched",
    "report_failure",
    "run_captured",
]

# Wrapper signature used by wrapt: (wrapped, instance, args, kwargs) -> result.
Hook = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]

# framework module -> the integration that knows it. Each integration module has
# `patch_targets() -> list[(owner, attribute, hook)]` and is imported only once the framework is.
FRAMEWORKS: dict[str, str] = {
    "xgboost": "tracked.integrations.xgboost",
    "lightgbm": "tracked.integrations.lightgbm",
}

_lock = threading.Lock()
_runs: set[Any] = set()  # runs between enter_run and exit_run, in any thread
_patches: dict[str, list[_Patch]] = {}  # framework -> its installed patches

# The scikit-learn estimator whose fit() is running in this context: its train() call logs the
# estimator, not the raw booster.
_fitting: contextvars.ContextVar[Any] = contextvars.ContextVar("tracked_fitting", default=None)
# True inside a captured train() call, so a train() reached from inside it is not captured twice.
_training: contextvars.ContextVar[bool] = contextvars.ContextVar("tracked_training", default=False)


class _Patch:
    """One attribute replaced by a wrapt wrapper; `restore` puts the exact original back."""

    def __init__(self, owner: Any, attribute: str, hook: Hook) -> None:
        self.owner, self.attribute = owner, attribute
        # The owner's own __dict__ entry, not getattr(): on a class that would be a bound or
        # inherited function, and restoring that would not be the object that was there.
        self.original = vars(owner)[attribute]
        self.enabled = True

        def guarded(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
            if not self.enabled:
                return wrapped(*args, **kwargs)
            return hook(wrapped, instance, args, kwargs)

        import wrapt  # only when a framework is really patched: keeps `import tracked` light

        self.wrapper = wrapt.FunctionWrapper(self.original, guarded)
        setattr(owner, attribute, self.wrapper)

    def restore(self) -> None:
        self.enabled = False
        if vars(self.owner).get(self.attribute) is self.wrapper:
            setattr(self.owner, self.attribute, self.original)
        # Else someone patched over us (another autologger). Putting our original back would drop
        # their patch, so ours stays inside theirs, disabled: it only calls through.


def enter_run(run: TrackedRun) -> None:
    """A run block started: patch every imported framework that is not patched yet.

    Never raises: a framework that cannot be patched is reported on the run and left alone.
    Calling it twice for the same run is harmless.
    """
    failures: list[tuple[str, BaseException]] = []
    with _lock:
        _runs.add(run)
        for framework, integration in FRAMEWORKS.items():
            if framework in _patches or framework not in sys.modules:
                continue
            try:
                _patches[framework] = _install(integration)
            except Exception as exc:  # a half-imported or unexpected framework version
                failures.append((framework, exc))
    for framework, error in failures:
        reason = f"cannot capture its training: {type(error).__name__}: {error}"
        run.problems.failed(
            CaptureError(framework, reason),
            consequence=f"{framework} training in this run is not recorded",
            raise_strict=False,
        )


def exit_run(run: TrackedRun) -> None:
    """A run block ended (normally or not): unpatch everything if it was the last active run.

    Calling it for a run that never entered, or twice, does nothing.
    """
    with _lock:
        if run not in _runs:
            return
        _runs.discard(run)
        if _runs:
            return
        installed = [patch for patches in _patches.values() for patch in patches]
        _patches.clear()
        _restore(installed)


def patched() -> dict[str, list[tuple[Any, str]]]:
    """Which (owner, attribute) pairs are wrapped now, per framework: for tests and `doctor`."""
    with _lock:
        return {
            name: [(p.owner, p.attribute) for p in patches] for name, patches in _patches.items()
        }


def _install(integration: str) -> list[_Patch]:
    module = importlib.import_module(integration)
    installed: list[_Patch] = []
    try:
        for owner, attribute, hook in module.patch_targets():
            installed.append(_Patch(owner, attribute, hook))
    except BaseException:
        _restore(installed)
        raise
    return installed


def _restore(patches: list[_Patch]) -> None:
    """Restore in reverse order; one failure must not leave the others patched."""
    for patch in reversed(patches):
        try:
            patch.restore()
        except Exception as exc:  # pragma: no cover - setattr on a module or class
            logger.warning("tracked: could not restore %s: %s", patch.attribute, exc)


# -- the skeleton around one captured training call ---------------------------------------------


class Capture(Protocol):
    """What an integration does around one train() call."""

    framework: str

    def before(self, arguments: dict[str, Any]) -> None:
        """Log what is known before training; add the metric callback to `arguments`."""

    def after(self, result: Any) -> None:
        """Log what training produced (best iteration, rounds)."""


def capturing() -> bool:
    """Whether a captured train() is running in this context (then nested calls pass through)."""
    return _training.get()


def run_captured(
    run: TrackedRun,
    wrapped: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    capture: Capture,
) -> Any:
    """Call `wrapped` with `capture` around it. The user's call, its result and its exceptions are
    unchanged: a failure to capture is reported on the run and the call goes ahead uncaptured.
    """
    estimator = _fitting.get()
    try:
        bound = _signature(wrapped).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return wrapped(*args, **kwargs)  # a wrong call: let the framework raise its own error
    try:
        capture.before(bound.arguments)
    except TrackingError:
        raise
    except Exception as exc:
        report_failure(run, capture.framework, exc)
        return wrapped(*args, **kwargs)
    token = _training.set(True)
    try:
        result = wrapped(*bound.args, **bound.kwargs)
    finally:
        _training.reset(token)
    try:
        capture.after(result)
        _log_model(run, result if estimator is None else estimator)
    except TrackingError:
        raise
    except Exception as exc:
        report_failure(run, capture.framework, exc)
    return result


def fit_estimator(
    estimator: Any, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> Any:
    """Run a scikit-learn-API fit so that the train() inside it logs `estimator` as the model."""
    if _fitting.get() is not None:  # super().fit() inside a subclass's fit: already marked
        return wrapped(*args, **kwargs)
    token = _fitting.set(estimator)
    try:
        return wrapped(*args, **kwargs)
    finally:
        _fitting.reset(token)


def booster_params(params: Any) -> dict[str, Any]:
    """Booster params as a dict, without the None values both frameworks treat as unset (the
    scikit-learn API passes every constructor default). XGBoost also takes a list of pairs with
    repeated keys (`[("eval_metric", "auc"), ("eval_metric", "logloss")]`): one list value."""
    if params is None:
        return {}
    pairs = params.items() if isinstance(params, Mapping) else params
    out: dict[str, Any] = {}
    for key, value in pairs if isinstance(pairs, Iterable) else ():
        if value is None:
            continue
        if key in out:
            old = out[key]
            out[key] = [*old, value] if isinstance(old, list) else [old, value]
        else:
            out[key] = value
    return out


@functools.lru_cache(maxsize=32)
def training_targets(
    modules: Iterable[str], sklearn_module: str, base_class: str, capture: Callable[[Any], Capture]
) -> list[tuple[Any, str, Hook]]:
    """Where a framework gets wrappers: every imported module's `train` name (the user's and the
    one its scikit-learn API calls), and each scikit-learn estimator class's own `fit`."""
    from tracked.run import current_run  # at patch time: run.py imports this module

    def train(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        run = current_run()
        if run is None or capturing():
            return wrapped(*args, **kwargs)
        return run_captured(run, wrapped, args, kwargs, capture(run))

    def fit(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if current_run() is None:
            return wrapped(*args, **kwargs)
        return fit_estimator(instance, wrapped, args, kwargs)

    targets: list[tuple[Any, str, Hook]] = []
    for name in modules:
        module = sys.modules.get(name)
        if module is not None and "train" in vars(module):
            targets.append((module, "train", train))
    sklearn_api = sys.modules.get(sklearn_module)
    base = getattr(sklearn_api, base_class, None)
    if base is not None:
        classes = {c for c in vars(sklearn_api).values() if inspect.isclass(c)}
        for cls in sorted(classes, key=lambda c: c.__qualname__):
            if issubclass(cls, base) and "fit" in vars(cls):
                targets.append((cls, "fit", fit))
    return targets


def _signature(func: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(func)


def _log_model(run: TrackedRun, model: Any) -> None:
    """Log `model` once; a second training in the same run gets `model_2`, `model_3`, ..."""
    if model is None or any(m.obj is model for m in run.record.models):
        return
    names = {m.name for m in run.record.models}
    name, n = "model", 1
    while name in names:
        n += 1
        name = f"model_{n}"
    run.log_model(model, name)


def report_failure(run: TrackedRun, framework: str, exc: BaseException) -> None:
    """A capture step failed: one warning per framework and run (an error when strict)."""
    run.problems.capture(
        f"integration-{framework}", framework, f"capture failed: {type(exc).__name__}: {exc}"
    )
