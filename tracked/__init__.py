"""tracked: one decorator or one `with` block records a training run in MLflow.

    import tracked

    @tracked.tracked_training
    def train(X, y, *, max_depth=3): ...

Importing tracked is cheap: MLflow and the ML frameworks load on first use, not here.
"""

from tracked.capture.fingerprint import Fingerprint, fingerprint
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
    SpoolError,
    StoreUnavailableError,
    TrackingError,
)
from tracked.models.loading import load_model
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
from tracked.run import TrackedRun, current_run, last_run, log_metrics, log_params, run
from tracked.sync import SyncReport, sync

__version__ = "0.1.0"

__all__ = [
    "AliasNotFoundError",
    "AuthenticationError",
    "CaptureError",
    "ConfigError",
    "Decision",
    "Fingerprint",
    "FingerprintError",
    "GcReport",
    "Lineage",
    "ModelLoggingError",
    "ModelNotFoundError",
    "NamingError",
    "PolicyError",
    "PromotionPolicy",
    "RuleResult",
    "Settings",
    "SpoolError",
    "StoreUnavailableError",
    "SyncReport",
    "TrackedRun",
    "TrackingError",
    "VersionRow",
    "__version__",
    "best_version",
    "compare",
    "configure",
    "current_run",
    "find_versions",
    "fingerprint",
    "gc",
    "get_config",
    "last_run",
    "lineage",
    "list_versions",
    "load_model",
    "log_metrics",
    "log_params",
    "metric",
    "promote",
    "reset_defaults",
    "rollback",
    "run",
    "sync",
    "tracked_training",
]
