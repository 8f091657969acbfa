"""The wrapper every integration of a framework *method* shares (`Trainer.fit`, `Model.fit`).

`method_hook(make)` gives the hook `scope` installs on the method: outside a run, inside a
captured call, or when MLflow's autolog for the framework is on, it calls straight through;
otherwise it runs the call as one training (`scope.run_captured`) with the `Capture` that
`make(run, instance)` returns, and afterwards, however the call ended, the capture's optional
`restore()`: what it lent the framework object for the call (a logger, a callback) is given back.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tracked import active
from tracked.integrations import scope
from tracked.integrations.scope import Capture, Hook

if TYPE_CHECKING:
    from tracked.run import TrackedRun

__all__ = ["autologged", "method_hook"]


def method_hook(
    make: Callable[[TrackedRun, Any], Capture], *, autolog: tuple[str, ...] = ()
) -> Hook:
    """The hook for a method whose calls `make(run, instance)` captures."""

    def hook(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        run = active.current_run()
        if run is None or scope.capturing() or autologged(autolog):
            return wrapped(*args, **kwargs)
        capture = make(run, instance)
        function = getattr(wrapped, "__func__", None)
        if function is None or instance is None:
            function, call_args = wrapped, args
        else:
            # The plain function with `self` first: run_captured caches signatures by function,
            # and a bound method there would keep the instance (and its model) alive.
            call_args = (instance, *args)
        try:
            return scope.run_captured(run, function, call_args, kwargs, capture)
        finally:
            restore = getattr(capture, "restore", None)
            if restore is not None:
                try:
                    restore()
                except Exception as exc:  # never over the call's own result or error
                    scope.report_failure(run, capture.framework, exc, call="restore")

    return hook


def autologged(flavors: tuple[str, ...]) -> bool:
    """Whether MLflow's autolog is on for one of `flavors`: it records the call itself."""
    if not flavors or "mlflow" not in sys.modules:
        return False
    from tracked.integrations.mlflow_fluent import autolog_enabled

    return any(autolog_enabled(flavor) for flavor in flavors)
