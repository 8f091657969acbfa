"""The one owner of framework patches: they exist only while some run is active.

`Scope` is a listener of `tracked.active`: when the first run in the process starts, it wraps the
training entry points of every supported framework that is imported; when the last run ends, it
puts the original objects back, by identity. A framework imported while a run is active (first
imported inside the block or the decorated function) is patched at its import, through wrapt's
post-import hooks, so its first call is captured too.

While patched, a wrapper first asks `current_run()`, a context variable: in a thread or task with
no active run it calls straight through, so code outside any block behaves as before even while
another thread trains inside one.

Each framework module (`tracked.integrations.xgboost`, `.lightgbm`, ...) supplies the targets and a
`Capture` per training call; the skeleton that runs one call with capture around it is here, so
tracking never changes what the call returns or raises. Every captured call is a `Training` of the
run (`TrackedRun.begin_training`): several trainings in one run become child runs of it.
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

from tracked import active
from tracked.errors import CaptureError, TrackingError
from tracked.problems import logger

if TYPE_CHECKING:
    from tracked.run import TrackedRun, Training

__all__ = [
    "FRAMEWORKS",
    "Capture",
    "booster_params",
    "capturing",
    "fit_estimator",
    "patched",
    "report_failure",
    "run_captured",
    "training_targets",
]

# Wrapper signature used by wrapt: (wrapped, instance, args, kwargs) -> result.
Hook = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]

# framework module -> the integration that knows it. Each integration module has
# `patch_targets() -> list[(owner, attribute, hook)]` and is imported only once the framework is.
FRAMEWORKS: dict[str, str] = {
    "mlflow": "tracked.integrations.mlflow_fluent",
    "xgboost": "tracked.integrations.xgboost",
    "lightgbm": "tracked.integrations.lightgbm",
    "lightning": "tracked.integrations.lightning",
    "pytorch_lightning": "tracked.integrations.lightning",
    "keras": "tracked.integrations.keras",
    # transformers imports its submodules lazily: the one that defines Trainer
    "transformers.trainer": "tracked.integrations.transformers",
    "catboost": "tracked.integrations.catboost",
    "optuna": "tracked.integrations.optuna",
    "sklearn.model_selection._search": "tracked.integrations.sklearn_search",
    "xgboost.dask": "tracked.integrations.xgboost_dask",
    "ray.tune": "tracked.integrations.ray_tune",
}

_lock = threading.RLock()
_runs: set[Any] = set()  # runs between entered and exited, in any thread
_patches: dict[str, list[_Patch]] = {}  # framework -> its installed patches
_hooked: set[str] = set()  # frameworks with a post-import hook registered

# The scikit-learn estimator whose fit() is running in this context: its train() call logs the
# estimator, not the raw booster.
_fitting: contextvars.ContextVar[Any] = contextvars.ContextVar("tracked_fitting", default=None)
# True inside a captured training call, so a call reached from inside it is not captured twice.
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


class Scope:
    """The `tracked.active` listener that patches frameworks while runs are active."""

    def entered(self, run: TrackedRun) -> None:
        failures: list[tuple[str, BaseException]] = []
        with _lock:
            _runs.add(run)
            for framework in FRAMEWORKS:
                if framework in sys.modules:
                    error = _install_locked(framework)
                    if error is not None:
                        failures.append((framework, error))
                elif framework not in _hooked:
                    _hook_import(framework)
        for framework, error in failures:
            _report_install(run, framework, error)

    def exited(self, run: TrackedRun) -> None:
        with _lock:
            if run not in _runs:
                return
            _runs.discard(run)
            if _runs:
                return
            installed = [patch for patches in _patches.values() for patch in patches]
            _patches.clear()
        _restore(installed)


SCOPE = Scope()
active.add_listener(SCOPE)


def _install_locked(framework: str) -> BaseException | None:
    if framework in _patches:
        return None
    try:
        _patches[framework] = _install(FRAMEWORKS[framework])
    except Exception as exc:  # a half-imported or unexpected framework version
        _patches[framework] = []
        return exc
    return None


def _hook_import(framework: str) -> None:
    """Patch `framework` when it is imported, if a run is active then (wrapt post-import hook)."""
    import wrapt

    _hooked.add(framework)

    def imported(module: Any) -> None:
        with _lock:
            if not _runs:
                return
            error = _install_locked(framework)
            runs = list(_runs)
        if error is not None and runs:
            _report_install(runs[0], framework, error)

    wrapt.register_post_import_hook(imported, framework)


def _report_install(run: TrackedRun, framework: str, error: BaseException) -> None:
    reason = f"cannot capture its training: {type(error).__name__}: {error}"
    run.problems.failed(
        CaptureError(framework, reason),
        consequence=f"{framework} training in this run is not recorded",
        raise_strict=False,
    )


def patched() -> dict[str, list[tuple[Any, str]]]:
    """Which (owner, attribute) pairs are wrapped now, per framework: for tests and `doctor`."""
    with _lock:
        return {
            name: [(p.owner, p.attribute) for p in patches]
            for name, patches in _patches.items()
            if patches
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
    """What an integration does around one training call."""

    framework: str
    name: str  # how the call is named in the training's child run, e.g. "xgboost.train"

    def before(self, training: Training, arguments: dict[str, Any]) -> None:
        """Log what is known before training; add the metric callback to `arguments`."""

    def after(self, training: Training, result: Any) -> None:
        """Log what training produced (best iteration, rounds) and hand over the model."""


def capturing() -> bool:
    """Whether a captured training call is running in this context (nested calls pass)."""
    return _training.get()


def run_captured(
    run: TrackedRun,
    wrapped: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    capture: Capture,
) -> Any:
    """Call `wrapped` with `capture` around it, as one `Training` of `run`. The user's call, its
    result and its exceptions are unchanged: a failure to capture is reported on the run (one
    line naming the call and why) and the call goes ahead uncaptured.
    """
    estimator = _fitting.get()
    signature = _lenient_signature(wrapped)
    reference = getattr(capture, "reference", None)
    if _generic(signature) and reference is not None:
        # Someone's `def wrapper(*args, **kwargs)` over the framework's function: read the
        # call as the framework's own signature says.
        signature = _lenient_signature(inspect.unwrap(reference()))
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        # Not a call this version accepts: the framework raises its own error for it, or, if it
        # does accept it, the user must know it was not recorded.
        report_failure(run, capture.framework, exc, call=capture.name)
        return wrapped(*args, **kwargs)
    name = capture.name if estimator is None else f"{type(estimator).__name__}.fit"
    training = run.begin_training(capture.framework, name=name)
    arguments = dict(bound.arguments)
    try:
        capture.before(training, arguments)
        call_args, call_kwargs = _rebuild(signature, args, kwargs, arguments)
    except TrackingError:
        raise
    except Exception as exc:
        report_failure(run, capture.framework, exc, call=capture.name)
        call_args, call_kwargs = args, dict(kwargs)
    token = _training.set(True)
    try:
        result = wrapped(*call_args, **call_kwargs)
    except BaseException as exc:
        training.end(exc)
        raise
    finally:
        _training.reset(token)
    try:
        capture.after(training, result)
        model = result if estimator is None else estimator
        if model is not None and getattr(capture, "produces_model", True):
            training.set_model(model)
    except TrackingError:
        raise
    except Exception as exc:
        report_failure(run, capture.framework, exc, call=capture.name)
    training.end(None)
    return result


@functools.lru_cache(maxsize=64)
def _lenient_signature(func: Callable[..., Any]) -> inspect.Signature:
    """`func`'s signature with keyword-only parameters also accepted by position, in order: how
    a framework that deprecates positional arguments (XGBoost's `train(params, dtrain, 10,
    watchlist)`) still takes them. Binding then matches what the call really does."""
    signature = inspect.signature(func)
    parameters = list(signature.parameters.values())
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return signature
    relaxed = [
        p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD)
        if p.kind is inspect.Parameter.KEYWORD_ONLY
        else p
        for p in parameters
    ]
    try:
        return signature.replace(parameters=relaxed)
    except ValueError:  # a keyword-only parameter without default after one with: keep as is
        return signature


def _rebuild(
    signature: inspect.Signature,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    arguments: Mapping[str, Any],
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call as the user wrote it (same positional and keyword arguments), with the values
    the capture changed or added (its callback) in place."""
    named = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    names = [n for n, p in signature.parameters.items() if p.kind not in named]
    new_args = list(args)
    new_kwargs = dict(kwargs)
    for name, value in arguments.items():
        if name not in names:
            continue  # *args / **kwargs: passed through as the user wrote them
        index = names.index(name)
        if 0 <= index < len(args):
            if new_args[index] is not value:
                new_args[index] = value
        elif new_kwargs.get(name, _MISSING) is not value:
            new_kwargs[name] = value
    return tuple(new_args), new_kwargs


_MISSING = object()


def _generic(signature: inspect.Signature) -> bool:
    """Only *args/**kwargs: a pass-through wrapper, not the framework's function."""
    kinds = {p.kind for p in signature.parameters.values()}
    return kinds <= {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}


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


def training_targets(
    modules: Iterable[str],
    sklearn_module: str,
    base_class: str,
    captures: Mapping[str, Callable[[], Capture]],
) -> list[tuple[Any, str, Hook]]:
    """Where a framework gets wrappers: each imported module's entry points named in `captures`
    (`train`, `cv`: the user's and the one its scikit-learn API calls), and each scikit-learn
    estimator class's own `fit`."""

    def hook_for(make: Callable[[], Capture]) -> Hook:
        def call(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            found = active.current_run()
            if found is None or capturing():
                return wrapped(*args, **kwargs)
            capture = make()
            if _autologged(capture.framework):
                return wrapped(*args, **kwargs)  # MLflow's autolog records this call already
            return run_captured(found, wrapped, args, kwargs, capture)

        return call

    def fit(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if active.current_run() is None:
            return wrapped(*args, **kwargs)
        return fit_estimator(instance, wrapped, args, kwargs)

    targets: list[tuple[Any, str, Hook]] = []
    for name in modules:
        module = sys.modules.get(name)
        if module is None:
            continue
        for entry, make in captures.items():
            if entry in vars(module):
                targets.append((module, entry, hook_for(make)))
    sklearn_api = sys.modules.get(sklearn_module)
    base = getattr(sklearn_api, base_class, None)
    if base is not None:
        classes = {c for c in vars(sklearn_api).values() if inspect.isclass(c)}
        for cls in sorted(classes, key=lambda c: c.__qualname__):
            if issubclass(cls, base) and "fit" in vars(cls):
                targets.append((cls, "fit", fit))
    return targets


def _autologged(framework: str) -> bool:
    if "mlflow" not in sys.modules:
        return False
    from tracked.integrations.mlflow_fluent import autolog_enabled

    return autolog_enabled(framework)


def report_failure(
    run: TrackedRun, framework: str, exc: BaseException, *, call: str | None = None
) -> None:
    """A capture step failed: one warning per framework and run (an error when strict)."""
    what = call or framework
    run.problems.capture(
        f"integration-{framework}",
        what,
        f"not captured: {type(exc).__name__}: {exc}; the call ran as usual",
    )
