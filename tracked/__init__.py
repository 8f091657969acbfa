"""tracked: one decorator or one `with` block records a training run in MLflow.

    import tracked

    @tracked.tracked_training
    def train(X, y, *, max_depth=3): ...

Importing tracked is cheap: MLflow and the ML frameworks load on first use, not here.
"""

from typing import TYPE_CHECKING, Any

from tracked.config import Settings, configure, get_config, reset_defaults
from tracked.decorator import tracked_training
from tracked.errors import (
    AliasNotFoundError,
    AuthenticationError,
    CaptureError,
    ConfigError,
    FingerprintError,
    ModelLoggingError,
    ModelNotFoundError,
    NamingError,
    PolicyError,
    RegistryLockedError,
    SpoolError,
    StoreUnavailableError,
    TrackingError,
    UnsafeModelError,
)
from tracked.run import (
    TrackedRun,
    current_run,
    flush,
    last_run,
    log_artifact,
    log_artifacts,
    log_dict,
    log_figure,
    log_image,
    log_input,
    log_metrics,
    log_model,
    log_params,
    log_text,
    run,
    set_tags,
)

if TYPE_CHECKING:
    from tracked.capture.fingerprint import Fingerprint, fingerprint
    from tracked.models.loading import load_model
    from tracked.ops.diff import Diff, diff
    from tracked.registry.lifecycle import (
        GcReport,
        VersionRow,
        best_version,
        compare,
        gc,
        list_versions,
        promote,
        rollback,
    )
    from tracked.registry.lineage import Lineage, find_versions, lineage
    from tracked.registry.policy import Decision, PromotionPolicy, RuleResult, metric
    from tracked.sync import SyncReport, sync

__version__ = "0.1.0"

__all__ = [
    "AliasNotFoundError",
    "AuthenticationError",
    "CaptureError",
    "ConfigError",
    "Decision",
    "Diff",
    "Fingerprint",
    "FingerprintError",
    "GcReport",
    "Lineage",
    "ModelLoggingError",
    "ModelNotFoundError",
    "NamingError",
    "PolicyError",
    "PromotionPolicy",
    "RegistryLockedError",
    "RuleResult",
    "Settings",
    "SpoolError",
    "StoreUnavailableError",
    "SyncReport",
    "TrackedRun",
    "TrackingError",
    "UnsafeModelError",
    "VersionRow",
    "__version__",
    "best_version",
    "compare",
    "configure",
    "current_run",
    "diff",
    "find_versions",
    "fingerprint",
    "flush",
    "gc",
    "get_config",
    "last_run",
    "lineage",
    "list_versions",
    "load_model",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_image",
    "log_input",
    "log_metrics",
    "log_model",
    "log_params",
    "log_text",
    "metric",
    "promote",
    "reset_defaults",
    "rollback",
    "run",
    "set_tags",
    "sync",
    "tracked_training",
]


# Loaded on first use: the registry, lineage, sync and fingerprint code is not needed to decorate
# a function, and `import tracked` stays light.
_LAZY = {
    **dict.fromkeys(("Diff", "diff"), "tracked.ops.diff"),
    **dict.fromkeys(("Fingerprint", "fingerprint"), "tracked.capture.fingerprint"),
    "load_model": "tracked.models.loading",
    **dict.fromkeys(
        (
            "GcReport",
            "VersionRow",
            "best_version",
            "compare",
            "gc",
            "list_versions",
            "promote",
            "rollback",
        ),
        "tracked.registry.lifecycle",
    ),
    **dict.fromkeys(("Lineage", "find_versions", "lineage"), "tracked.registry.lineage"),
    **dict.fromkeys(
        ("Decision", "PromotionPolicy", "RuleResult", "metric"), "tracked.registry.policy"
    ),
    **dict.fromkeys(("SyncReport", "sync"), "tracked.sync"),
}


def __getattr__(name: str) -> Any:
    """Names whose modules load on first use, so `import tracked` stays light."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # the next look-up is a plain attribute
        return value
    raise AttributeError(f"module 'tracked' has no attribute {name!r}")
