"""Settings: one immutable object, resolved with a clear precedence, knowing each value's origin.

Precedence, highest first: `configure()` or a decorator/run argument, `TRACKED_*` environment
variables, the `[tool.tracked]` table of the nearest pyproject.toml, MLflow's own environment
variables (`MLFLOW_TRACKING_URI`, `MLFLOW_REGISTRY_URI`, `MLFLOW_EXPERIMENT_NAME`), then defaults.
Code asks `get_config()`; nothing else in tracked reads `os.environ` for these values.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tracked.errors import ConfigError

__all__ = ["Settings", "configure", "get_config", "reset_defaults", "resolve"]

DEFAULT_NAMING = "{project}-{name}"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Settings:
    """The resolved configuration; `origins` says where each value came from."""

    tracking_uri: str
    registry_uri: str
    experiment: str
    project: str
    naming: str = DEFAULT_NAMING
    strict: bool = False
    spool_dir: str = ""
    artifact_location: str | None = None
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes` applied, each recorded as coming from an argument."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        origins = dict(self.origins)
        origins.update(dict.fromkeys(changes, "argument"))
        derived = self.origins.get("registry_uri", "").startswith("same as tracking_uri")
        if "tracking_uri" in changes and "registry_uri" not in changes and derived:
            changes["registry_uri"] = changes["tracking_uri"]
            origins["registry_uri"] = "same as tracking_uri (argument)"
        return dataclasses.replace(self, **changes, origins=origins)


_FIELDS = [f.name for f in fields(Settings) if f.name != "origins"]
_ENV = {name: f"TRACKED_{name.upper()}" for name in _FIELDS}
_MLFLOW_ENV = {
    "tracking_uri": "MLFLOW_TRACKING_URI",
    "registry_uri": "MLFLOW_REGISTRY_URI",
    "experiment": "MLFLOW_EXPERIMENT_NAME",
}

_lock = threading.Lock()
_overrides: dict[str, Any] = {}


def configure(**values: Any) -> None:
    """Set process-wide settings; they win over environment variables and pyproject.toml.

    Accepts any `Settings` field (tracking_uri, registry_uri, experiment, project, naming,
    strict, spool_dir, artifact_location). Passing `None` removes an earlier override.
    """
    unknown = set(values) - set(_FIELDS)
    if unknown:
        name = sorted(unknown)[0]
        raise ConfigError(name, values[name], f"known settings are {', '.join(_FIELDS)}")
    with _lock:
        for key, value in values.items():
            if value is None:
                _overrides.pop(key, None)
            else:
                _overrides[key] = _coerce(key, value, "configure()")


def reset_defaults() -> None:
    """Forget everything `configure()` set."""
    with _lock:
        _overrides.clear()


def get_config() -> Settings:
    """The settings in force now (a fresh immutable object; environment changes are seen)."""
    return resolve()


def resolve(cwd: str | os.PathLike[str] | None = None, **arguments: Any) -> Settings:
    """Resolve settings, with `arguments` (e.g. from a decorator) above everything else."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    pyproject_path, table, project_name = _pyproject(base)
    with _lock:
        overrides = dict(_overrides)
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for name in _FIELDS:
        if arguments.get(name) is not None:
            values[name], origins[name] = _coerce(name, arguments[name], "argument"), "argument"
        elif name in overrides:
            values[name], origins[name] = overrides[name], "configure()"
        elif os.environ.get(_ENV[name]):
            source = f"env {_ENV[name]}"
            values[name], origins[name] = _coerce(name, os.environ[_ENV[name]], source), source
        elif name in table:
            source = f"pyproject {pyproject_path} [tool.tracked]"
            values[name], origins[name] = _coerce(name, table[name], source), source
        elif name in _MLFLOW_ENV and os.environ.get(_MLFLOW_ENV[name]):
            values[name] = os.environ[_MLFLOW_ENV[name]]
            origins[name] = f"env {_MLFLOW_ENV[name]}"

    if "tracking_uri" not in values:
        values["tracking_uri"] = f"sqlite:///{(base / 'mlflow.db').resolve().as_posix()}"
        origins["tracking_uri"] = "default (embedded SQLite in the working directory)"
    if "registry_uri" not in values:
        values["registry_uri"] = values["tracking_uri"]
        origins["registry_uri"] = f"same as tracking_uri ({origins['tracking_uri']})"
    if "project" not in values:
        if project_name:
            values["project"], origins["project"] = project_name, f"pyproject {pyproject_path}"
        else:
            root = _git_root(base)
            values["project"] = (root or base.resolve()).name or "default"
            origins["project"] = "git repository name" if root else "working directory name"
    if "experiment" not in values:
        values["experiment"] = values["project"]
        origins["experiment"] = "same as project"
    if "spool_dir" not in values:
        values["spool_dir"] = str(_default_cache_dir() / "spool")
        origins["spool_dir"] = "default (user cache directory)"
    for name in ("naming", "strict", "artifact_location"):
        origins.setdefault(name, "default")
    return Settings(**values, origins=origins)


def _coerce(name: str, value: Any, source: str) -> Any:
    if name == "strict":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"strict (from {source})", value, "use true/false or 1/0")
    if name == "artifact_location" and value in ("", None):
        return None
    if not isinstance(value, str) or (name != "artifact_location" and not value.strip()):
        raise ConfigError(f"{name} (from {source})", value, "expected a non-empty string")
    return value


_pyproject_cache: dict[Path, tuple[float, dict[str, Any]]] = {}


def _pyproject(base: Path) -> tuple[Path | None, dict[str, Any], str | None]:
    """The nearest pyproject.toml upward from `base`: its path, [tool.tracked], project name."""
    for directory in (base.resolve(), *base.resolve().parents):
        candidate = directory / "pyproject.toml"
        try:
            mtime = candidate.stat().st_mtime
        except OSError:
            continue
        cached = _pyproject_cache.get(candidate)
        if cached is None or cached[0] != mtime:
            data = _read_toml(candidate)
            _pyproject_cache[candidate] = (mtime, data)
        else:
            data = cached[1]
        table = data.get("tool", {}).get("tracked", {})
        name = data.get("project", {}).get("name")
        return candidate, table if isinstance(table, dict) else {}, name
    return None, {}, None


def _read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigError("pyproject.toml", str(path), f"cannot be read as TOML: {exc}") from None


def _git_root(base: Path) -> Path | None:
    for directory in (base.resolve(), *base.resolve().parents):
        if (directory / ".git").exists():
            return directory
    return None


def _default_cache_dir() -> Path:
    if sys.platform == "win32":  # pragma: no cover
        root = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
    elif sys.platform == "darwin":  # pragma: no cover
        root = Path.home() / "Library" / "Caches"
    else:
        root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "tracked"
