"""What happens when tracking goes wrong: one clear warning per kind of problem, or, under
`strict=True`, an exception. The user's training result is never touched by either.

Every message passes through redaction before it is shown (a tracking URI's password, a token in
an error text). Store failures are deduplicated per process: the first one is shown in full, the
rest are counted and summed up in one line at exit.
"""

from __future__ import annotations

import logging
import threading

from tracked.errors import CaptureError, TrackingError

__all__ = [
    "Problems",
    "logger",
    "report_store_failure",
    "store_error",
    "store_failure_summary",
]

logger = logging.getLogger("tracked")


def _redacted(message: str) -> str:
    from tracked.capture.secrets import redact_value

    return redact_value(message)


class Problems:
    """Per-run policy for problems: warn once per kind, or raise when strict."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.seen: list[str] = []  # every message, for tests and the run summary
        self.deferred: TrackingError | None = None  # a strict-mode error raised after the end
        self._kinds: set[str] = set()
        self._lock = threading.Lock()

    def capture(self, kind: str, field: str, reason: str) -> None:
        """A value could not be captured as given (bad input): sanitised and logged anyway."""
        error = CaptureError(field, reason)
        if self.strict:
            raise error
        self.warn(kind, f"{error}; logged what could be, training continues")

    def note(self, kind: str, message: str) -> None:
        """Something the user should know that is not an error (one line per kind)."""
        self.warn(kind, message)

    def failed(self, error: TrackingError, *, consequence: str, raise_strict: bool = True) -> None:
        """Tracking itself failed (store down, model not loggable...)."""
        if self.strict and raise_strict:
            raise error
        kind = type(error).__name__ + str(getattr(error, "uri", ""))
        self.warn(kind, f"{error}; {consequence}")

    def defer(self, error: TrackingError) -> None:
        """Under strict mode, raise `error` once the run has ended (its status written)."""
        if self.deferred is None:
            self.deferred = error

    def warn(self, kind: str, message: str) -> None:
        message = _redacted(message)
        with self._lock:
            self.seen.append(message)
            first = kind not in self._kinds
            self._kinds.add(kind)
        if first:
            logger.warning(message)
        else:
            logger.debug(message)


_failures_lock = threading.Lock()
_failures: dict[str, int] = {}  # one entry per kind of store failure: how many were not shown


def report_store_failure(error: TrackingError, consequence: str) -> None:
    """A store failed: the first failure of a kind is shown in full, later ones counted."""
    kind = f"{type(error).__name__}:{getattr(error, 'uri', '')}:{getattr(error, 'reason', '')}"
    with _failures_lock:
        first = kind not in _failures
        _failures[kind] = _failures.get(kind, -1) + 1
    message = _redacted(f"{error}; {consequence}")
    if first:
        logger.warning(message)
    else:
        logger.debug(message)


def reset_store_failures() -> None:
    """Forget which store failures were shown (the next one is shown in full again)."""
    with _failures_lock:
        _failures.clear()


def store_failure_summary() -> str | None:
    """One line for the exit: how many store failures were not shown, or None."""
    with _failures_lock:
        hidden = sum(_failures.values())
    if hidden <= 0:
        return None
    return f"tracked: {hidden} more store failure{'s' if hidden != 1 else ''} like the above"


def store_error(uri: str, exc: BaseException) -> TrackingError:
    """Whatever an MLflow call raised, as one of tracked's errors (see tracked/store.py)."""
    from tracked.capture.secrets import redact_value
    from tracked.store import translate

    return translate(exc, uri=redact_value(uri), what="reach the store")
