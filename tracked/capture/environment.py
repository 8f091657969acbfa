"""The environment a run trained in, read from package metadata without importing anything heavy.

Environment variables are never captured wholesale: they are where credentials live.
"""

from __future__ import annotations

import functools
import getpass
import platform
import socket
import sys

__all__ = [
    "KEY_PACKAGES",
    "current_user",
    "environment_tags",
    "package_version",
    "requirements_txt",
]

# Versions worth a tag of their own: what decides whether a model loads and behaves the same.
KEY_PACKAGES = (
    "mlflow",
    "numpy",
    "pandas",
    "scikit-learn",
    "xgboost",
    "lightgbm",
    "torch",
    "tracked",
)


def package_version(name: str) -> str | None:
    """The installed version of distribution `name`, or None."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def environment_tags() -> dict[str, str]:
    """`tracked.env.*` tags: interpreter, platform, host, user and the key package versions."""
    tags = {
        "tracked.env.python": platform.python_version(),
        "tracked.env.implementation": platform.python_implementation(),
        "tracked.env.platform": platform.platform(terse=True),
        "tracked.env.hostname": socket.gethostname(),
    }
    for name in KEY_PACKAGES:
        version = package_version(name)
        if version:
            tags[f"tracked.env.{name}"] = version
    return tags


@functools.lru_cache(maxsize=1)
def requirements_txt() -> str:
    """`pip freeze`-style list of every installed distribution (cached: it doesn't change)."""
    from importlib import metadata

    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    header = f"# python {platform.python_version()} on {sys.platform}\n"
    return header + "".join(line + "\n" for _, line in sorted(seen.items()))


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
