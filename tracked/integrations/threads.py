"""A run's scope reaches the threads of a `ThreadPoolExecutor` it submits work to.

The active runs live in a context variable, and a pool thread does not see the context of the
code that submitted to it (Python copies a context into `asyncio` tasks and `asyncio.to_thread`,
not into threads). So while any run is active, `ThreadPoolExecutor.submit` is wrapped: a call
submitted from inside a run's scope runs with that scope's runs active. A decorated function or a
`tracked.run()` there is a child of the submitting run (Optuna's `n_jobs>1`, a hand-made pool of
trials), and `tracked.log_metrics` there logs into the submitting run, as MLflow's fluent API
would. Only tracked's own context variable travels: the rest of the thread's context (decimal
settings, a framework's own variables) is left as Python gives it.

A plain `threading.Thread` is not covered: pass `parent=run` to the run made in it.

Installed with the first active run, removed with the last, by identity (as scope.py does for
framework patches); a submit from a thread with no active run calls straight through.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from tracked import active

if TYPE_CHECKING:
    from tracked.run import TrackedRun

__all__ = ["THREADS"]


class _Threads:
    """The listener that wraps `ThreadPoolExecutor.submit` while runs are active."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: set[Any] = set()
        self._original: Any = None
        self._wrapper: Any = None

    def entered(self, run: TrackedRun) -> None:
        with self._lock:
            self._runs.add(run)
            if self._wrapper is None:
                self._install()

    def exited(self, run: TrackedRun) -> None:
        with self._lock:
            self._runs.discard(run)
            if self._runs or self._wrapper is None:
                return
            from concurrent.futures import ThreadPoolExecutor

            if vars(ThreadPoolExecutor).get("submit") is self._wrapper:
                ThreadPoolExecutor.submit = self._original  # type: ignore[method-assign]
            # Else someone wrapped over us: ours stays inside theirs and calls straight through.
            self._wrapper = self._original = None

    def _install(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        import wrapt

        self._original = vars(ThreadPoolExecutor)["submit"]

        def submit(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
            runs = active.runs()
            if not runs or not args:
                return wrapped(*args, **kwargs)
            fn, *rest = args
            return wrapped(_in_scope(runs, fn), *rest, **kwargs)

        self._wrapper = wrapt.FunctionWrapper(self._original, submit)
        ThreadPoolExecutor.submit = self._wrapper  # type: ignore[method-assign]


def _in_scope(runs: tuple[Any, ...], fn: Any) -> Any:
    """`fn`, called with `runs` as the active runs of the pool thread for the call's duration."""

    def call(*args: Any, **kwargs: Any) -> Any:
        token = active.adopt(runs)
        try:
            return fn(*args, **kwargs)
        finally:
            active.restore(token)

    return call


THREADS = _Threads()
active.add_listener(THREADS)
