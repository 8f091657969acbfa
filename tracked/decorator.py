"""`@tracked_training`: records every call of a training function as a run.

The wrapper's body is the whole story: bind the arguments, run the function between two clearly
marked lines, record what it returned. wrapt makes the wrapper correct on functions, methods,
classmethods and staticmethods and keeps the name, docstring and signature.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, overload

from tracked.capture.params import bind_arguments
from tracked.errors import TrackingError
from tracked.problems import logger
from tracked.run import TrackedRun

__all__ = ["tracked_training"]

F = TypeVar("F", bound=Callable[..., Any])


@overload
def tracked_training(wrapped: F) -> F: ...
@overload
def tracked_training(
    wrapped: None = None,
    *,
    name: str | None = None,
    experiment: str | None = None,
    project: str | None = None,
    tags: Mapping[str, Any] | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    model_name: str | None = None,
    register: bool = True,
    promote: Any = None,
    fingerprint: bool = True,
    tracking_uri: str | None = None,
    strict: bool | None = None,
    key_metric: str | None = None,
    label: str | Sequence[str] | None = None,
    log_system_metrics: bool | None = None,
    run_name: str | None = None,
    parent: Any = None,
    resume: str | None = None,
    run_key: str | None = None,
    force_resume: bool = False,
    all_ranks: bool = False,
) -> Callable[[F], F]: ...


def tracked_training(
    wrapped: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    experiment: str | None = None,
    project: str | None = None,
    tags: Mapping[str, Any] | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    model_name: str | None = None,
    register: bool = True,
    promote: Any = None,
    fingerprint: bool = True,
    tracking_uri: str | None = None,
    strict: bool | None = None,
    key_metric: str | None = None,
    label: str | Sequence[str] | None = None,
    log_system_metrics: bool | None = None,
    run_name: str | None = None,
    parent: Any = None,
    resume: str | None = None,
    run_key: str | None = None,
    force_resume: bool = False,
    all_ranks: bool = False,
) -> Any:
    """Record each call of the decorated training function as an MLflow run.

    Params are the call's bound arguments (defaults applied); metrics and the model come from
    the return value and from `tracked.log_metrics` calls inside. The function returns exactly
    what it returned, and raises exactly what it raised: tracking never changes the result.
    Settings given here win over `configure()`, environment variables and pyproject.toml.

    `key_metric` names the metric that ranks this function's versions (`tracked compare`, the
    version's description); `label` names the target column(s) of a DataFrame argument, kept out
    of the model's signature; `log_system_metrics=True` runs MLflow's system-metrics monitor;
    `run_name` is a template for the run's name in MLflow (`{name}`, `{uuid}`, `{params[KEY]}`;
    default `"{name}-{uuid}"`, so runs of one function can be told apart). `parent` (a
    `TrackedRun` or a run id) makes each call's run a child of that run, in its experiment.
    `resume` (a run id, or "auto" with `run_key`) continues an existing run (see `TrackedRun`).
    Under a distributed launcher only rank 0 records; `all_ranks=True` adds every rank's system
    metrics to rank 0's run.
    """
    import wrapt  # here, not at module level: it pulls in importlib.metadata (25 ms)

    if wrapped is None:
        return functools.partial(
            tracked_training,
            name=name,
            experiment=experiment,
            project=project,
            tags=tags,
            include=include,
            exclude=exclude,
            model_name=model_name,
            register=register,
            promote=promote,
            fingerprint=fingerprint,
            tracking_uri=tracking_uri,
            strict=strict,
            key_metric=key_metric,
            label=label,
            log_system_metrics=log_system_metrics,
            run_name=run_name,
            parent=parent,
            resume=resume,
            run_key=run_key,
            force_resume=force_resume,
            all_ranks=all_ranks,
        )
    options = {
        "experiment": experiment,
        "project": project,
        "tags": tags,
        "include": include,
        "exclude": exclude,
        "model_name": model_name,
        "register": register,
        "promote": promote,
        "fingerprint": fingerprint,
        "tracking_uri": tracking_uri,
        "strict": strict,
        "key_metric": key_metric,
        "label": label,
        "log_system_metrics": log_system_metrics,
        "run_name": run_name or "{name}-{uuid}",
        "parent": parent,
        "resume": resume,
        "run_key": run_key,
        "force_resume": force_resume,
        "all_ranks": all_ranks,
    }
    target = inspect.unwrap(wrapped.__func__ if hasattr(wrapped, "__func__") else wrapped)
    function = f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', '?')}"
    run_name = name or getattr(target, "__name__", "training")
    source = _source_file(target)

    def new_run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The run for this call; a null context if tracked itself cannot be set up."""
        try:
            run = TrackedRun(run_name, source=source, function=function, **options)
        except TrackingError as error:  # e.g. a malformed pyproject.toml
            if strict:
                raise
            logger.warning("%s; the training runs untracked", error)
            return _Untracked()
        if not run.inert:  # a rank other than 0 records nothing
            run.capture_arguments(bind_arguments(fn, args, kwargs))
        return run

    if inspect.iscoroutinefunction(target):

        @wrapt.decorator(proxy=_picklable_wrapper())
        def async_wrapper(fn: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            async def call() -> Any:
                with new_run(fn, args, kwargs) as run:
                    # ---- the user's training ----
                    result = await fn(*args, **kwargs)
                    # ---- back in tracked ----
                    run.capture_result(result)
                return result

            return call()

        return async_wrapper(wrapped)

    @wrapt.decorator(proxy=_picklable_wrapper())
    def wrapper(fn: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        with new_run(fn, args, kwargs) as run:
            # ---- the user's training ----
            result = fn(*args, **kwargs)
            # ---- back in tracked ----
            run.capture_result(result)
        return result

    return wrapper(wrapped)


@functools.cache
def _picklable_wrapper() -> type:
    """wrapt's FunctionWrapper, pickled by reference (module + qualified name) as a plain
    function is: `pool.map`, Dask's `client.submit` and Ray send a decorated module-level
    function to a worker, which imports the module and finds the same decorated function."""
    import wrapt

    class PicklableWrapper(wrapt.FunctionWrapper):  # type: ignore[misc]
        def __reduce_ex__(self, protocol: Any) -> str:
            # pickle: a string is a global name in the object's __module__
            return str(self.__wrapped__.__qualname__)

    return PicklableWrapper


class _Untracked(contextlib.nullcontext):  # type: ignore[type-arg]
    """Stands in for a run when none could be made: the training runs as if undecorated."""

    def __enter__(self) -> _Untracked:
        return self

    def capture_result(self, result: Any) -> None:
        pass


def _source_file(fn: Any) -> str | None:
    """The file the function was defined in; a notebook's path for a notebook cell when it can
    be known; None for code with no file (`python -c`, `exec`): git then reads the working
    directory."""
    import os

    try:
        found = inspect.getsourcefile(fn) or inspect.getfile(fn)
    except (TypeError, OSError):
        found = None
    if found and os.path.isfile(found):
        return found
    return _notebook_path()


def _notebook_path() -> str | None:
    """The notebook a Jupyter/IPython kernel runs, where the front end says (JupyterLab and
    Notebook 7 set JPY_SESSION_NAME; VS Code sets `__vsc_ipynb_file__`)."""
    import builtins
    import os

    shell = getattr(builtins, "get_ipython", None)
    if shell is None:
        return None
    try:
        namespace = shell().user_ns
    except Exception:
        namespace = {}
    path = namespace.get("__vsc_ipynb_file__") or os.environ.get("JPY_SESSION_NAME")
    return str(path) if path and os.path.isfile(str(path)) else None
