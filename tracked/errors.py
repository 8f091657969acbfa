"""One exception hierarchy: every error tracked raises is a `TrackingError`.

Each class builds its own one-line message from the offending name and value, and says how to
fix it, so the user reads what was wrong without a traceback.
"""

from __future__ import annotations

__all__ = [
    "AliasNotFoundError",
    "AuthenticationError",
    "CaptureError",
    "ConfigError",
    "FingerprintError",
    "ModelLoggingError",
    "ModelNotFoundError",
    "NamingError",
    "NotFoundError",
    "PolicyError",
    "RegistryLockedError",
    "SpoolError",
    "StoreRejectedError",
    "StoreUnavailableError",
    "TrackingError",
    "UnsafeModelError",
]


class TrackingError(Exception):
    """Base class of every error raised by tracked."""

    def __reduce__(self) -> tuple[object, ...]:
        # Subclasses take their own arguments, not the message: rebuild from the message and
        # the attributes, so an error crosses a process boundary (multiprocessing, Ray) whole.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


def _rebuild(
    cls: type[TrackingError], args: tuple[object, ...], state: dict[str, object]
) -> TrackingError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ConfigError(TrackingError):
    """A configuration value is missing or malformed."""

    def __init__(self, field: str, value: object, fix: str) -> None:
        self.field, self.value = field, value
        super().__init__(f"tracked: invalid configuration {field}={value!r}: {fix}")


class StoreUnavailableError(TrackingError):
    """The tracking store could not be reached or refused a write."""

    def __init__(self, uri: str, reason: str, fix: str | None = None) -> None:
        self.uri, self.reason = uri, reason
        hint = fix or "check the URI with `tracked doctor`, or set TRACKED_TRACKING_URI"
        super().__init__(f"tracked: tracking store {uri} failed: {reason} ({hint})")


class StoreRejectedError(TrackingError):
    """The store answered and refused a request: a value it does not accept, or a conflict.

    `code` is MLflow's error code (`RESOURCE_ALREADY_EXISTS`, `INVALID_PARAMETER_VALUE`, ...).
    """

    def __init__(self, what: str, reason: str, *, code: str | None = None) -> None:
        self.what, self.reason, self.code = what, reason, code
        super().__init__(f"tracked: the store refused to {what}: {reason}")


class NotFoundError(TrackingError):
    """The store answered that what was asked for does not exist."""

    def __init__(self, what: str, reason: str | None = None) -> None:
        self.what = what
        detail = f" ({reason})" if reason else ""
        super().__init__(f"tracked: not found: {what}{detail}")


class AuthenticationError(StoreUnavailableError):
    """The tracking server answered 401/403 to the credentials tracked sent."""

    def __init__(self, uri: str, status: int) -> None:
        self.status = status
        super().__init__(
            uri,
            f"HTTP {status} {'Unauthorized' if status == 401 else 'Forbidden'}",
            "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to valid credentials",
        )


class NamingError(TrackingError):
    """A model-name template or a rendered name is invalid."""

    def __init__(self, template: str, reason: str) -> None:
        self.template = template
        super().__init__(f"tracked: model name template {template!r}: {reason}")


class CaptureError(TrackingError):
    """A value handed to tracked could not be captured as given (raised only when strict)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        super().__init__(f"tracked: cannot capture {field!r}: {reason}")


class FingerprintError(TrackingError):
    """An object cannot be fingerprinted."""

    def __init__(self, obj: object, reason: str) -> None:
        self.type_name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        super().__init__(f"tracked: cannot fingerprint {self.type_name}: {reason}")


class ModelLoggingError(TrackingError):
    """A model could not be saved, logged or registered."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        super().__init__(f"tracked: model {what}: {reason}")


class ModelNotFoundError(NotFoundError):
    """No registered model, or no such version of it."""

    def __init__(self, name: str, version: str | int | None = None) -> None:
        self.name, self.version = name, version
        what = f"{name!r} version {version}" if version is not None else f"{name!r}"
        self.what = f"registered model {what}"
        TrackingError.__init__(
            self, f"tracked: registered model {what} not found (list them with `tracked models`)"
        )


class AliasNotFoundError(NotFoundError):
    """A registered model has no version under the requested alias."""

    def __init__(self, name: str, alias: str) -> None:
        self.name, self.alias = name, alias
        self.what = f"alias {alias!r} of {name!r}"
        TrackingError.__init__(
            self,
            f"tracked: registered model {name!r} has no alias {alias!r} "
            f"(see `tracked versions {name}`)",
        )


class PolicyError(TrackingError):
    """A promotion policy is malformed, or a promotion was refused under strict mode."""


class UnsafeModelError(TrackingError):
    """A model whose loading would unpickle data or run code from its files, not opted into."""

    def __init__(self, model: str, reason: str) -> None:
        self.model, self.reason = model, reason
        super().__init__(
            f"tracked: model {model} not loaded: {reason}. Loading it could run code from the "
            "model's files; if you trust its source, pass allow_pickle=True or set "
            "MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true"
        )


class SpoolError(TrackingError):
    """A spooled run could not be written or replayed."""


class RegistryLockedError(PolicyError):
    """The registry lock of a model could not be taken, or was lost while held.

    Nothing was changed: the caller may try the promotion again later (`tracked sync` keeps it).
    """

    def __init__(
        self, model: str, lock: str, waited: float, *, stale_after: float, lost: bool = False
    ) -> None:
        self.model, self.lock, self.waited, self.lost = model, lock, waited, lost
        if lost:
            message = (
                f"tracked: lost the registry lock {lock!r} of {model!r} after {waited:.0f} s "
                f"(held longer than {stale_after:.0f} s, another promoter broke it as stale); "
                "nothing was changed, promote again"
            )
        else:
            message = (
                f"tracked: registered model {model!r} is locked by another promotion; waited "
                f"{waited:.0f} s for {lock!r} (a lock older than {stale_after:.0f} s is broken "
                "automatically; promote again later)"
            )
        super().__init__(message)
