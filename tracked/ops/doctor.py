"""`tracked doctor`: where each setting came from, what is wrong with the configuration, and
whether the stores and git work, each failure with a fix.

Read-only: the doctor never writes to the user's store. It creates no experiment, run or
artifact, never creates a missing SQLite database, and checks that a folder is writable with
`os.access` instead of writing into it. (It cannot prove a server accepts writes without
writing; it says so.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracked.config import Settings, get_config, uri_problem
from tracked.errors import TrackingError
from tracked.ops.base import Result
from tracked.ops.storage import DoctorCheck, artifact_checks, default_root, nearest_existing

if TYPE_CHECKING:
    from tracked.store import Store

__all__ = ["ConfigValue", "DoctorCheck", "DoctorReport", "doctor"]


@dataclass(frozen=True)
class ConfigValue(Result):
    name: str
    value: Any
    origin: str


@dataclass(frozen=True)
class DoctorReport(Result):
    config: list[ConfigValue]
    checks: list[DoctorCheck]

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "ok": self.ok}


def doctor(*, tracking_uri: str | None = None) -> DoctorReport:
    """Where each setting came from, and whether the configuration, the stores and git work."""
    from tracked.store import shown_uri

    settings = get_config().replace(tracking_uri=tracking_uri)
    config = []
    for f in dataclasses.fields(settings):
        if f.name in ("origins", "problems"):
            continue
        value = getattr(settings, f.name)
        if isinstance(value, str):
            value = shown_uri(value)
        elif f.name == "policies":
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or None
        config.append(ConfigValue(f.name, value, settings.origins.get(f.name, "default")))
    checks = [_configuration_check(settings), *_store_checks(settings), _git_check()]
    return DoctorReport(config, checks)


def _configuration_check(settings: Settings) -> DoctorCheck:
    if not settings.problems:
        return DoctorCheck("configuration", True, "no unknown keys or variables")
    return DoctorCheck(
        "configuration",
        False,
        "; ".join(settings.problems),
        "rename or remove what the suggestion names (tracked ignores unknown settings)",
    )


def _skipped(name: str, why: str = "the tracking store is not usable") -> DoctorCheck:
    return DoctorCheck(name, None, f"skipped: {why}")


def _store_checks(settings: Settings) -> list[DoctorCheck]:
    from tracked.store import shown_uri, sqlite_path, store_for

    uri, shown = settings.tracking_uri, shown_uri(settings.tracking_uri)
    rest = ("registry", "experiment", "artifact store")
    problem = uri_problem(uri)
    if problem is not None:
        check = DoctorCheck(
            "tracking store", False, f"{shown}: {problem}", "fix tracking_uri (see its origin)"
        )
        return [check, *(_skipped(n) for n in rest)]
    store = store_for(settings)
    path = sqlite_path(uri)
    if path is not None and not path.exists():
        folder = path.parent
        writable = nearest_existing(folder)
        if writable is not None and os.access(writable, os.W_OK):
            detail = f"SQLite database {path} does not exist yet: the first run creates it"
            return [
                DoctorCheck("tracking store", True, detail),
                _skipped("registry", "no database yet"),
                DoctorCheck("experiment", None, "the first run creates the database and it"),
                *artifact_checks(settings, store, default_root(settings, store)),
            ]
        return [
            DoctorCheck(
                "tracking store",
                False,
                f"SQLite database {path}: folder {folder} is missing or not writable",
                "create the folder, or set TRACKED_TRACKING_URI to a writable location",
            ),
            *(_skipped(n) for n in rest),
        ]
    checks = [
        _read_check(store, "tracking store", path, lambda c: c.search_experiments(max_results=1))
    ]
    if checks[0].ok is False:
        return [*checks, *(_skipped(n) for n in rest)]
    if store.http:
        checks.append(_server_check(settings))
    checks.append(
        _read_check(store, "registry", None, lambda c: c.search_registered_models(max_results=1))
    )
    checks.extend(_experiment_checks(settings, store))
    return checks


def _read_check(store: Store, name: str, path: Path | None, read: Any) -> DoctorCheck:
    fix = {
        "tracking store": "check the URI with its origin above, that the store is running, "
        "and its credentials (MLFLOW_TRACKING_USERNAME/PASSWORD for a server)",
        "registry": "check registry_uri and that the registry's database is reachable",
    }[name]
    try:
        store.call(read, what=f"read the {name}")
    except TrackingError as error:
        reason = getattr(error, "reason", None) or str(error).removeprefix("tracked: ")
        return DoctorCheck(name, False, f"{store.shown}: {reason}", fix)
    if path is not None:
        writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
        if not writable:
            return DoctorCheck(
                name,
                False,
                f"SQLite database {path} can be read but not written",
                "make the database file and its folder writable for this user",
            )
        return DoctorCheck(name, True, f"SQLite database {path}: answers reads, is writable")
    if store.http:
        detail = f"{store.shown}: answers reads (writes are not tried: doctor writes nothing)"
    else:
        detail = f"{store.shown}: answers reads"
    return DoctorCheck(name, True, detail)


def _server_check(settings: Settings) -> DoctorCheck:
    """What the server says about itself; the database behind it only where it tells."""
    uri = settings.tracking_uri
    parts = []
    version = _http_get(uri, "/version", settings.connect_timeout)
    if version is not None and version[0] == 200 and version[1].strip():
        parts.append(f"mlflow {version[1].strip()[:40]}")
    store_type = None
    for path in ("/api/3.0/mlflow/server-info", "/api/2.0/mlflow/server-info"):
        info = _http_get(uri, path, settings.connect_timeout)
        if info is not None and info[0] == 200:
            with contextlib.suppress(ValueError, AttributeError):
                store_type = json.loads(info[1]).get("store_type")
            break
    kinds = {"SqlStore": "a SQL database", "FileStore": "a file store (no database)"}
    if store_type in kinds:
        parts.append(f"backend {kinds[store_type]} (its engine and address are not visible)")
    else:
        parts.append("database: not visible from the client")
    return DoctorCheck("server", None, "; ".join(parts))


def _http_get(uri: str, path: str, timeout: float) -> tuple[int, str] | None:
    import urllib.error
    import urllib.request

    parsed = urllib.parse.urlsplit(uri)
    netloc = (parsed.hostname or "") + (f":{parsed.port}" if parsed.port else "")
    url = urllib.parse.urlunsplit((parsed.scheme, netloc, parsed.path.rstrip("/") + path, "", ""))
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read(65536).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except Exception:
        return None


def _experiment_checks(settings: Settings, store: Store) -> list[DoctorCheck]:
    """The configured experiment (looked up, never created) and where its artifacts go."""
    name, by_id = settings.experiment, settings.experiment_id
    if by_id:
        found = store.get_or_none(lambda c: c.get_experiment(by_id), what="read the experiment")
    else:
        found = store.call(lambda c: c.get_experiment_by_name(name), what="read the experiment")
    root: str | None
    if found is not None:
        root = found.artifact_location
        detail = f"{found.name!r} (id {found.experiment_id}), {found.lifecycle_stage}"
        if found.lifecycle_stage == "deleted":
            detail += ": the next run restores it"
    else:
        wanted = f"id {by_id}" if by_id else repr(name)
        detail = f"{wanted} does not exist yet: the first run creates it"
        root = default_root(settings, store)
    experiment = DoctorCheck("experiment", None, detail)
    return [experiment, *artifact_checks(settings, store, root)]


def _git_check() -> DoctorCheck:
    import shutil
    import subprocess

    git = shutil.which("git")
    if git is None:
        return DoctorCheck(
            "git",
            False,
            "git not found on PATH: runs are recorded without commit or dirty flag",
            "install git (e.g. `apt-get install git`) or add it to PATH",
        )
    try:
        version = subprocess.run(
            [git, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        top = subprocess.run(
            [git, "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return DoctorCheck("git", False, f"{git} does not run ({exc})", "reinstall git")
    where = (
        f"working directory is in {top.stdout.strip()}"
        if top.returncode == 0
        else "working directory is not in a git repository (runs record no commit)"
    )
    return DoctorCheck("git", True, f"{version}; {where}")
