"""Which run is active where, and who is told when a run's scope begins and ends.

The active runs live in a context variable: each thread and each asyncio task sees its own, so a
run in one thread never receives another thread's metrics. Integrations (framework capture, the
MLflow fluent API) register a `ScopeListener` here and learn about scopes through it; they find
the run they log into with `current_run()`. Nothing here imports the run itself, so the run and
the integrations do not import each other.
"""

from __future__ import annotations

import contextvars
import threading
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tracked.run import TrackedRun

__all__ = [
    "ScopeListener",
    "add_listener",
    "adopt",
    "current_run",
    "last_run",
    "pop",
    "push",
    "restore",
    "set_last",
]

_stack: contextvars.ContextVar[tuple[TrackedRun, ...]] = contextvars.ContextVar(
    "tracked_runs", default=()
)
_last = threading.local()


class ScopeListener(Protocol):
    """Told when a run's scope begins and ends (in the thread that runs it)."""

    def entered(self, run: TrackedRun) -> None: ...

    def exited(self, run: TrackedRun) -> None: ...


_listeners: list[ScopeListener] = []


def add_listener(listener: ScopeListener) -> None:
    """Register `listener` for every scope from now on (once per listener)."""
    if listener not in _listeners:
        _listeners.append(listener)


def current_run() -> TrackedRun | None:
    """The innermost active run in this thread or task, or None."""
    stack = _stack.get()
    return stack[-1] if stack else None


def runs() -> tuple[TrackedRun, ...]:
    """The active runs in this context, outermost first."""
    return _stack.get()


def push(run: TrackedRun, *, tell: bool = True) -> contextvars.Token[tuple[TrackedRun, ...]]:
    """`run` becomes the current run in this context; listeners are told (unless `tell` is
    False: a run that records nothing, on a rank other than 0, patches no framework)."""
    token = _stack.set((*_stack.get(), run))
    if not tell:
        return token
    for listener in list(_listeners):
        _tell(listener.entered, run)
    return token


def adopt(runs: tuple[TrackedRun, ...]) -> contextvars.Token[tuple[TrackedRun, ...]]:
    """`runs` (another context's active runs) become this context's, for work submitted from
    there (see tracked/integrations/threads.py); listeners are not told: no scope begins."""
    return _stack.set(runs)


def restore(token: contextvars.Token[tuple[TrackedRun, ...]]) -> None:
    """Undo `adopt`."""
    _stack.reset(token)


def pop(
    run: TrackedRun, token: contextvars.Token[tuple[TrackedRun, ...]] | None, *, tell: bool = True
) -> None:
    """`run`'s scope ended (normally or not); listeners are told (unless `tell` is False)."""
    if token is not None:
        try:
            _stack.reset(token)
        except ValueError:
            # Ended in another context (a generator closed elsewhere): remove by identity.
            _stack.set(tuple(r for r in _stack.get() if r is not run))
    if not tell:
        return
    for listener in reversed(list(_listeners)):
        _tell(listener.exited, run)


def _tell(method: Any, run: TrackedRun) -> None:
    """A listener that fails must not break the run: the run is told, the training goes on."""
    try:
        method(run)
    except Exception as exc:
        from tracked.errors import CaptureError

        run.problems.failed(
            CaptureError(type(method.__self__).__name__, f"{type(exc).__name__}: {exc}"),
            consequence="capture of this scope's framework calls may be incomplete",
            raise_strict=False,
        )


def last_run() -> TrackedRun | None:
    """The run that most recently ended in this thread: how a decorated call's caller gets its
    run id without changing the function's return value."""
    return getattr(_last, "run", None)


def set_last(run: Any) -> None:
    _last.run = run
