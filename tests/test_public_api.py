"""The public surface: `tracked.__all__` pinned, and `import tracked` stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tracked

# Copied from tracked/__init__.py: a change to the public API must change this list too.
EXPECTED_PUBLIC = [
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

HEAVY = ["mlflow", "sklearn", "xgboost", "lightgbm", "pandas", "numpy", "torch", "scipy"]


def test_all_is_pinned() -> None:
    assert set(tracked.__all__) == set(EXPECTED_PUBLIC)
    assert len(tracked.__all__) == len(set(tracked.__all__))


def test_all_is_sorted() -> None:
    assert tracked.__all__ == sorted(tracked.__all__)


@pytest.mark.parametrize("name", EXPECTED_PUBLIC)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(tracked, name) is not None


def test_errors_share_one_base() -> None:
    errors = [name for name in EXPECTED_PUBLIC if name.endswith("Error")]
    assert all(issubclass(getattr(tracked, name), tracked.TrackingError) for name in errors)


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_import_pulls_in_no_heavy_package() -> None:
    code = (
        "import sys, tracked\n"
        f"heavy = {HEAVY!r}\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & set(heavy))\n"
        "assert not loaded, loaded\n"
    )

    done = _python("-c", code)

    assert done.returncode == 0, done.stderr


def test_importtime_shows_no_mlflow() -> None:
    done = _python("-X", "importtime", "-c", "import tracked")

    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert any(line.rstrip().endswith("| tracked") for line in lines)  # the output is real
    offenders = [line for line in lines if line.rstrip().endswith("mlflow")]
    assert offenders == []
