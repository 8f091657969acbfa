"""What happens when tracking goes wrong: one clear warning per kind of problem, or, under
`strict=True`, an exception. The user's training result is never touched by either.
"""

from __future__ import annotations

import logging
import re

from tracked.errors import AuthenticationError, CaptureError, StoreUnavailableError, TrackingError

__all__ = ["Problems", "logger", "store_error"]

logger = logging.getLogger("tracked")

_HTTP_STATUS = re.compile(r"(?:error code|status(?: code)?|HTTP)[^0-9]{0,12}(401|403)\b", re.I)


class Problems:
    """Per-run policy for problems: warn once per kind, or raise when strict."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.seen: list[str] = []  # every message, for tests and the run summary
        self._kinds: set[str] = set()

    def capture(self, kind: str, field: str, reason: str) -> None:
        """A value could not be captured as given (bad input): sanitised and logged anyway."""
        error = CaptureError(field, reason)
        if self.strict:
            raise error
        self._warn(kind, f"{error}; logged what could be, training continues")

    def failed(self, error: TrackingError, *, consequence: str, raise_strict: bool = True) -> None:
        """Tracking itself failed (store down, model not loggable...)."""
        if self.strict and raise_strict:
            raise error
        self._warn(type(error).__name__ + str(getattr(error, "uri", "")), f"{error}; {consequence}")

    def _warn(self, kind: str, message: str) -> None:
        self.seen.append(message)
        if kind in self._kinds:
            logger.debug(message)
            return
        self._kinds.add(kind)
        logger.warning(message)


def store_error(uri: str, exc: BaseException) -> StoreUnavailableError:
    """Turn whatever the MLflow client raised into one readable TrackingError."""
    from tracked.capture.secrets import redact_value

    if isinstance(exc, StoreUnavailableError):
        return exc
    text = str(exc).strip() or type(exc).__name__
    match = _HTTP_STATUS.search(text)
    if match:
        return AuthenticationError(redact_value(uri), int(match.group(1)))
    first = text.splitlines()[0]
    if len(first) > 240:
        first = first[:240] + "..."
    return StoreUnavailableError(redact_value(uri), f"{type(exc).__name__}: {redact_value(first)}")
