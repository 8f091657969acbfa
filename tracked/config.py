"""Settings: one immutable object, resolved with a clear precedence, knowing each value's origin.

Precedence, highest first:

1. an argument (of the decorator, `tracked.run(...)`, a CLI option such as `--tracking-uri`)
2. `tracked.configure(...)`
3. `TRACKED_*` environment variables (`TRACKED_TRACKING_URI`, `TRACKED_EXPERIMENT`, ...)
4. MLflow's in-process settings: `mlflow.set_tracking_uri()`, `mlflow.set_registry_uri()` and
   `mlflow.set_experiment()` (read only when the program already imported mlflow)
5. MLflow's environment variables: `MLFLOW_TRACKING_URI`, `MLFLOW_REGISTRY_URI`,
   `MLFLOW_EXPERIMENT_NAME`, `MLFLOW_EXPERIMENT_ID`
6. the `[tool.tracked]` table of the nearest pyproject.toml (and `[tool.tracked.policies]`)
7. defaults

So a CI job that redirects MLflow through its environment is not overridden by a committed
pyproject.toml. An experiment given by id (`mlflow.set_experiment()` records an id,
`MLFLOW_EXPERIMENT_ID`) sets `experiment_id`; code that opens the experiment uses it before
`experiment` and resolves its name from the store when it needs one. A name and an id at the same
level: the name wins, as in MLflow.

Mistakes are reported, not ignored: an unknown key in `[tool.tracked]`, an unknown `TRACKED_*`
variable, or a tracking URI whose scheme no store understands (`htp://`) becomes a line in
`Settings.problems` with a suggestion ("did you mean ...?"), logged once per process as a warning,
and raised as `ConfigError` when `strict` is on. A malformed value (`TRACKED_STRICT=maybe`) is
always a `ConfigError`. `tracked doctor` shows each value with its origin, and the problems.

Code asks `get_config()`; nothing else in tracked reads `os.environ` for these values.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
import threading
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tracked.errors import ConfigError

__all__ = [
    "Settings",
    "configure",
    "default_cache_dir",
    "did_you_mean",
    "get_config",
    "project_root",
    "reset_defaults",
    "resolve",
    "uri_problem",
]

DEFAULT_NAMING = "{project}-{name}"
DEFAULT_CHAMPION_ALIAS = "champion"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_logger = logging.getLogger("tracked")


@dataclass(frozen=True)
class Settings:
    """The resolved configuration; `origins` says where each value came from, `problems` what
    was wrong with the configuration (unknown keys and variables, unusable URIs)."""

    tracking_uri: str
    registry_uri: str
    experiment: str
    project: str
    naming: str = DEFAULT_NAMING
    strict: bool = False
    spool_dir: str = ""
    artifact_location: str | None = None
    connect_timeout: float = 3.0  # seconds "is the store up" may take (first contact, connect)
    http_timeout: float = 30.0  # overall deadline of one call to a store: connect + whole answer
    exit_wait: float = 60.0  # seconds the interpreter's exit waits for points still being sent
    experiment_id: str | None = None  # set when the experiment was given by id; wins over the name
    key_metric: str | None = None  # the metric tables rank by when a run or policy names none
    champion_alias: str = DEFAULT_CHAMPION_ALIAS  # the alias that marks the model in production
    policies: Mapping[str, str] = field(default_factory=dict, hash=False)  # alias -> module:attr
    quiet: bool = False  # no line of tracked's own at the end of a run
    # A launcher's run for worker processes: the parent of a run that names no other (see run.py)
    parent_run_id: str | None = None
    resume_run_id: str | None = None  # a restarted job's run to continue (its first top-level run)
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)
    problems: tuple[str, ...] = field(default=(), compare=False)

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes` applied, each recorded as coming from an argument."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        unknown = set(changes) - set(_FIELDS)
        if unknown:
            name = sorted(unknown)[0]
            raise ConfigError(name, changes[name], _unknown_fix(name, _FIELDS))
        changes = {k: _coerce(k, v, "argument") for k, v in changes.items()}
        origins = dict(self.origins)
        origins.update(dict.fromkeys(changes, "argument"))
        derived = self.origins.get("registry_uri", "").startswith("same as tracking_uri")
        if "tracking_uri" in changes and "registry_uri" not in changes and derived:
            changes["registry_uri"] = changes["tracking_uri"]
            origins["registry_uri"] = "same as tracking_uri (argument)"
        if "experiment" in changes and "experiment_id" not in changes and self.experiment_id:
            changes["experiment_id"] = None  # a name given as an argument beats an id from below
            origins["experiment_id"] = "default"
        return dataclasses.replace(self, **changes, origins=origins)


_FIELDS = [f.name for f in fields(Settings) if f.name not in ("origins", "problems")]
_ENV = {name: f"TRACKED_{name.upper()}" for name in _FIELDS}
# TRACKED_* variables that are not settings: tracked's own test suite reads these.
_OTHER_ENV = frozenset({"TRACKED_REQUIRE_SERVICES"})
_OTHER_ENV_PREFIX = "TRACKED_TEST_"
_MLFLOW_ENV = {
    "tracking_uri": "MLFLOW_TRACKING_URI",
    "registry_uri": "MLFLOW_REGISTRY_URI",
    "experiment": "MLFLOW_EXPERIMENT_NAME",
    "experiment_id": "MLFLOW_EXPERIMENT_ID",
}
_FLOATS = ("connect_timeout", "http_timeout", "exit_wait")
_BOOLS = ("strict", "quiet")
_OPTIONAL = ("artifact_location", "experiment_id", "key_metric", "parent_run_id", "resume_run_id")
_ALIAS = re.compile(r"[a-z_][a-z0-9_-]*")
_POLICY_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")

_lock = threading.Lock()
_overrides: dict[str, Any] = {}
_reported: set[str] = set()


def configure(**values: Any) -> None:
    """Set process-wide settings; they win over environment variables and pyproject.toml.

    Accepts any `Settings` field (tracking_uri, registry_uri, experiment, project, naming,
    strict, spool_dir, artifact_location, connect_timeout, http_timeout, exit_wait,
    experiment_id, key_metric, champion_alias, policies, quiet, parent_run_id, resume_run_id).
    Passing `None` removes an earlier override.
    """
    unknown = set(values) - set(_FIELDS)
    if unknown:
        name = sorted(unknown)[0]
        raise ConfigError(name, values[name], _unknown_fix(name, _FIELDS))
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
    unknown = set(arguments) - set(_FIELDS)
    if unknown:
        name = sorted(unknown)[0]
        raise ConfigError(name, arguments[name], _unknown_fix(name, _FIELDS))
    table_source = f"pyproject {pyproject_path} [tool.tracked]"
    levels: list[dict[str, tuple[Any, str]]] = [
        _labelled("argument", {k: v for k, v in arguments.items() if v is not None}),
        _labelled("configure()", overrides),
        _env(_ENV),
        _labelled("MLflow in-process (mlflow.set_*)", _mlflow_in_process()),
        _env(_MLFLOW_ENV),
        _labelled(table_source, {k: v for k, v in table.items() if k in _FIELDS}),
    ]
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for name in _FIELDS:
        if name not in ("experiment", "experiment_id"):
            _first(levels, (name,), values, origins)
    _first(levels, ("experiment", "experiment_id"), values, origins)  # a name or an id

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
        origins["experiment"] = (
            "same as project (unused: experiment_id names the experiment)"
            if values.get("experiment_id")
            else "same as project"
        )
    if "spool_dir" not in values:
        values["spool_dir"] = str(default_cache_dir() / "spool")
        origins["spool_dir"] = "default (user cache directory)"
    for name in _FIELDS:
        origins.setdefault(name, "default")

    values.setdefault("policies", {})
    values["policies"] = types.MappingProxyType(dict(values["policies"]))
    problems = _problems(values, table, pyproject_path)
    _report(problems, bool(values.get("strict", False)))
    shown = tuple(str(p).removeprefix("tracked: ") for p in problems)
    return Settings(**values, origins=origins, problems=shown)


def _labelled(origin: str, values: Mapping[str, Any]) -> dict[str, tuple[Any, str]]:
    return {name: (value, origin) for name, value in values.items()}


def _env(variables: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    """The variables that are set (non-empty): field -> (value, origin)."""
    out = {}
    for name, variable in variables.items():
        value = os.environ.get(variable)
        if value:
            out[name] = (value, f"env {variable}")
    return out


def _first(
    levels: list[dict[str, tuple[Any, str]]],
    names: tuple[str, ...],
    values: dict[str, Any],
    origins: dict[str, str],
) -> None:
    """The first level that has one of `names` decides (the first of them it has)."""
    for level in levels:
        for name in names:
            if name in level:
                raw, origin = level[name]
                values[name], origins[name] = _coerce(name, raw, origin), origin
                return


def _mlflow_in_process() -> dict[str, str]:
    """What the program set with mlflow.set_tracking_uri/set_registry_uri/set_experiment.

    Read from MLflow's module state only when those modules are already imported: asking must
    not import MLflow (that costs a second and `import tracked` stays light).
    """
    out: dict[str, str] = {}
    readers = (
        ("tracking_uri", "mlflow.tracking._tracking_service.utils", "_tracking_uri"),
        ("registry_uri", "mlflow.tracking._model_registry.utils", "_registry_uri"),
        ("experiment_id", "mlflow.tracking.fluent", "_active_experiment_id"),
    )
    for name, module_name, attribute in readers:
        module = sys.modules.get(module_name)
        value = getattr(module, attribute, None) if module is not None else None
        if value:
            out[name] = str(value)
    return out


def _coerce(name: str, value: Any, source: str) -> Any:
    where = f"{name} (from {source})"
    if name in _FLOATS:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = -1.0
        if not number >= 0 or number == float("inf"):
            raise ConfigError(where, value, "expected seconds, a number >= 0")
        return number
    if name in _BOOLS:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(where, value, "use true/false or 1/0")
    if name == "policies":
        return _policies(where, value)
    if name == "champion_alias":
        alias = str(value).strip().lower() if isinstance(value, str) else value
        if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
            raise ConfigError(where, value, "an alias is a letter or _ then letters, digits, _, -")
        return alias
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if name in _OPTIONAL and value in ("", None):
        return None
    if name == "experiment_id" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or (name != "artifact_location" and not value.strip()):
        raise ConfigError(where, value, "expected a non-empty string")
    return value


def _policies(where: str, value: Any) -> dict[str, str]:
    """alias -> "module:attribute": a mapping, or "alias=module:attr,..." from the environment."""
    if isinstance(value, str):
        pairs = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            alias, sep, spec = item.partition("=")
            if not sep:
                raise ConfigError(where, value, "use ALIAS=MODULE:ATTRIBUTE, comma-separated")
            pairs[alias.strip()] = spec.strip()
        value = pairs
    if not isinstance(value, Mapping):
        raise ConfigError(where, value, 'expected a table of alias = "module:attribute"')
    out = {}
    for alias, spec in value.items():
        key = alias.strip().lower() if isinstance(alias, str) else alias
        if not isinstance(key, str) or not _ALIAS.fullmatch(key):
            raise ConfigError(f"{where}[{alias!r}]", alias, "an alias is a letter or _ first")
        if not isinstance(spec, str) or not _POLICY_SPEC.fullmatch(spec.strip()):
            raise ConfigError(
                f"{where}[{alias!r}]", spec, "expected MODULE:ATTRIBUTE, e.g. policies:champion"
            )
        out[key] = spec.strip()
    return out


# -- mistakes ---------------------------------------------------------------------------------


def did_you_mean(word: str, choices: Any, *, cutoff: float = 0.6) -> str:
    """ " (did you mean 'x'?)" for the closest of `choices`, or "" when none is close."""
    import difflib

    candidates = [str(c) for c in choices]
    starting = [c for c in candidates if c.lower().startswith(word.lower()) and word]
    if len(starting) == 1:  # an abbreviation: "prod" for "production"
        return f" (did you mean {starting[0]!r}?)"
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=cutoff)
    if not close and word.lower() != word:
        close = difflib.get_close_matches(word.lower(), candidates, n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_fix(name: str, known: Any) -> str:
    hint = did_you_mean(name, known)
    return f"unknown setting{hint}; known settings are {', '.join(known)}"


# Schemes MLflow's stores understand; plugins register more (entry point group below).
_KNOWN_SCHEMES = frozenset(
    {"", "file", "http", "https", "databricks", "databricks-uc", "uc", "sqlite"}
    | {"postgresql", "postgres", "mysql", "mssql", "oracle"}
)
_DATABASES = ("postgresql", "mysql", "mssql", "sqlite", "oracle")


def uri_problem(uri: str) -> str | None:
    """Why `uri` cannot name a tracking store (an unknown scheme, with a suggestion), or None."""
    import urllib.parse

    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter: a plain path
        return None
    if scheme in _KNOWN_SCHEMES or scheme.split("+", 1)[0] in _DATABASES:
        return None
    if scheme in _plugin_schemes():
        return None
    hint = did_you_mean(scheme, sorted(_KNOWN_SCHEMES - {""}))
    return (
        f"unknown scheme {scheme!r}{hint}; a store's URI is http(s)://host:port, "
        "sqlite:///path.db, postgresql://... or a folder path"
    )


def _plugin_schemes() -> set[str]:
    from importlib.metadata import entry_points

    try:
        return {ep.name for ep in entry_points(group="mlflow.tracking_store")}
    except Exception:  # a broken plugin's metadata must not break configuration
        return set()


def _problems(
    values: Mapping[str, Any], table: Mapping[str, Any], pyproject_path: Path | None
) -> list[ConfigError]:
    from tracked.capture.secrets import redact

    problems = []
    for key in sorted(set(table) - set(_FIELDS)):
        problems.append(
            ConfigError(
                f"{key} (pyproject {pyproject_path} [tool.tracked])",
                redact(key, str(table[key])),
                f"unknown key, ignored{did_you_mean(key, _FIELDS)}",
            )
        )
    known_env = set(_ENV.values()) | _OTHER_ENV
    for variable in sorted(os.environ):
        if (
            variable.startswith("TRACKED_")
            and variable not in known_env
            and not variable.startswith(_OTHER_ENV_PREFIX)
        ):
            problems.append(
                ConfigError(
                    variable,
                    redact(variable, os.environ[variable]),
                    "unknown environment variable, ignored"
                    + did_you_mean(variable, sorted(_ENV.values())),
                )
            )
    uris = ["tracking_uri"]
    if values["registry_uri"] != values["tracking_uri"]:
        uris.append("registry_uri")
    for name in uris:
        problem = uri_problem(values[name])
        if problem is not None:
            problems.append(ConfigError(name, redact(name, values[name]), problem))
    return problems


def _report(problems: list[ConfigError], strict: bool) -> None:
    """Each problem once per process as a warning; the first as ConfigError when strict."""
    if not problems:
        return
    if strict:
        raise problems[0]
    with _lock:
        fresh = [p for p in problems if str(p) not in _reported]
        _reported.update(str(p) for p in fresh)
    for problem in fresh:
        _logger.warning("%s", problem)


# -- pyproject.toml ---------------------------------------------------------------------------

_pyproject_cache: dict[Path, tuple[float, dict[str, Any]]] = {}


def _pyproject(base: Path) -> tuple[Path | None, dict[str, Any], str | None]:
    """The nearest pyproject.toml upward from `base`: its path, [tool.tracked], project name."""
    resolved = base.resolve()
    for directory in (resolved, *resolved.parents):
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


def project_root(cwd: str | os.PathLike[str] | None = None) -> Path:
    """The folder of the nearest pyproject.toml (where policy modules are imported from), else
    the working directory."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    path, _, _ = _pyproject(base)
    return path.parent if path is not None else base.resolve()


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
    resolved = base.resolve()
    for directory in (resolved, *resolved.parents):
        if (directory / ".git").exists():
            return directory
    return None


def default_cache_dir() -> Path:
    """tracked's per-user cache directory (the spool and lock files live under it)."""
    if sys.platform == "win32":  # pragma: no cover
        root = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
    elif sys.platform == "darwin":  # pragma: no cover
        root = Path.home() / "Library" / "Caches"
    else:
        root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "tracked"
