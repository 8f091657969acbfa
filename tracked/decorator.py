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
) -> Any:
    """Record each call of the decorated training function as an MLflow run.

    Params are the call's bound arguments (defaults applied); metrics and the model come from
    the return value and from `tracked.log_metrics` calls inside. The function returns exactly
    what it returned, and raises exactly what it raised: tracking never changes the result.
    Settings given here win over `configure()`, environment variables and pyproject.toml.
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
        run.capture_arguments(bind_arguments(fn, args, kwargs))
        return run

    if inspect.iscoroutinefunction(target):

        @wrapt.decorator
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

    @wrapt.decorator
    def wrapper(fn: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        with new_run(fn, args, kwargs) as run:
            # ---- the user's training ----
            result = fn(*args, **kwargs)
            # ---- back in tracked ----
            run.capture_result(result)
        return result

    return wrapper(wrapped)


class _Untracked(contextlib.nullcontext):  # type: ignore[type-arg]
    """Stands in for a run when none could be made: the training runs as if undecorated."""

    def __enter__(self) -> _Untracked:
        return self

    def capture_result(self, result: Any) -> None:
        pass


def _source_file(fn: Any) -> str | None:
    try:
        return inspect.getsourcefile(fn) or inspect.getfile(fn)
    except (TypeError, OSError):
        return None
