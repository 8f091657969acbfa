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
    "PolicyError",
    "SpoolError",
    "StoreUnavailableError",
    "TrackingError",
]


class TrackingError(Exception):
    """Base class of every error raised by tracked."""


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


class ModelNotFoundError(TrackingError):
    """No registered model, or no such version of it."""

    def __init__(self, name: str, version: str | int | None = None) -> None:
        self.name, self.version = name, version
        what = f"{name!r} version {version}" if version is not None else f"{name!r}"
        super().__init__(
            f"tracked: registered model {what} not found (list them with `tracked models`)"
        )


class AliasNotFoundError(TrackingError):
    """A registered model has no version under the requested alias."""

    def __init__(self, name: str, alias: str) -> None:
        self.name, self.alias = name, alias
        super().__init__(
            f"tracked: registered model {name!r} has no alias {alias!r} "
            f"(see `tracked versions {name}`)"
        )


class PolicyError(TrackingError):
    """A promotion policy is malformed, or a promotion was refused under strict mode."""


class SpoolError(TrackingError):
    """A spooled run could not be written or replayed."""
