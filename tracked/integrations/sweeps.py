"""What the sweep integrations (Optuna, scikit-learn search, Ray Tune) share: a trial's run.

A sweep's run is the run whose scope called the engine; each trial is a child run of it, opened
with `trial_run`. A trial's run registers nothing: the sweep's run registers the best trial's
model at its end, under its own name and promotion policies, so one sweep gives one version.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tracked import tags as T

if TYPE_CHECKING:
    from tracked.run import TrackedRun

__all__ = ["decorated", "main_model", "trial_run"]


def trial_run(
    parent: TrackedRun | str,
    name: str,
    *,
    trial: Any,
    params: Mapping[str, Any] | None = None,
    **options: Any,
) -> TrackedRun:
    """A trial's run under `parent` (the sweep's run, or its run id in another process): no
    registration (the sweep registers the best trial's model), no git capture (the sweep's run
    has it), the source file of the sweep; `options` as `tracked.run` takes them."""
    from tracked.run import TrackedRun

    source = None if isinstance(parent, str) else parent.tags.get(T.SOURCE_NAME)
    return TrackedRun(
        name,
        parent=parent,
        params=params,
        tags={T.TRIAL: trial},
        register=False,
        git=False,
        source=source,
        **options,
    )


def main_model(run: TrackedRun) -> Any:
    """The model a finished run logged as its main model (`log_model`, the returned model or
    its training's), or None."""
    for capture in run.record.models:
        if capture.slot == 0 and capture.name == "model" and capture.obj is not None:
            return capture.obj
    return None


def decorated(func: Any) -> tuple[Callable[..., Any], Any, Callable[..., Any]] | None:
    """For a `@tracked_training` function: (its wrapper, the bound instance, the function it
    wraps), so an engine can run its own code inside the decorated call's run; else None."""
    wrapper = getattr(func, "_self_wrapper", None)
    inner = getattr(func, "__wrapped__", None)
    if wrapper is None or inner is None or wrapper.__module__ != "tracked.decorator":
        return None
    return wrapper, getattr(func, "_self_instance", None), inner
