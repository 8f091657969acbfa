"""Operations on runs and the registry: plain functions returning plain data.

The command line (`tracked.cli`) and the MCP server (`tracked.mcp`) only parse arguments and
render what these return. Each parameter is declared once, in the signature, as
`Annotated[type, Param(help=...)]`: the CLI builds its arguments and options from that, the MCP
server its tool input schemas, so the two cannot drift apart. `OPERATIONS` says which operation
is which command and which tool. Every result has `to_dict()` (JSON-safe: no NaN, no tuples).

Parameters without a `Param` (`tracking_uri`) are context the surface supplies, not input.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import inspect
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

from tracked.config import Settings, get_config
from tracked.errors import ModelLoggingError, PolicyError, StoreUnavailableError, TrackingError

__all__ = [
    "OPERATIONS",
    "Operation",
    "Param",
    "best_version",
    "compare",
    "declared_parameters",
    "doctor",
    "gc",
    "list_models",
    "list_versions",
    "load_policy",
    "log_run",
    "promote",
    "register_model",
    "rollback",
    "search_runs",
    "show_version",
    "sync",
    "ui_plan",
]

CHAMPION = "champion"
KEY_METRIC_TAG = "tracked.key_metric"
DOCTOR_EXPERIMENT = "tracked-doctor"
_PROBE_TIMEOUT = 3.0
_HTTP = ("http", "https")


# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Param:
    """One parameter, described once for people (CLI help) and agents (MCP input schema).

    `flags` spells the CLI option (`("--metric", "-m")`, or `("--a/--b",)` for an on/off
    switch); without flags a required parameter is a positional argument and an optional one
    `--its-name`. `tool=False` keeps it off the MCP tools (the operation's default applies).
    `check` validates a CLI value at parse time, so a bad one is a usage error (exit 2).
    """

    help: str
    flags: tuple[str, ...] = ()
    tool: bool = True
    check: Callable[[Any], object] | None = None


@dataclass(frozen=True)
class Declared:
    """A parameter as both surfaces see it: name, type (without `Annotated`), default, Param."""

    name: str
    annotation: Any
    default: Any  # inspect.Parameter.empty when required
    param: Param

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


def declared_parameters(fn: Callable[..., Any]) -> list[Declared]:
    """The parameters of `fn` that carry a `Param`, in signature order."""
    out = []
    for p in inspect.signature(fn, eval_str=True).parameters.values():
        if get_origin(p.annotation) is not Annotated:
            continue
        base, *metadata = get_args(p.annotation)
        param = next((m for m in metadata if isinstance(m, Param)), None)
        if param is not None:
            out.append(Declared(p.name, base, p.default, param))
    return out


@dataclass(frozen=True)
class Operation:
    """An operation and its names: `command` on the CLI, `tool` on the MCP server."""

    fn: Callable[..., Any]
    command: str | None
    tool: str | None
    writes: bool = False

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.fn) or ""

    @property
    def summary(self) -> str:
        return self.doc.split("\n", 1)[0]

    def parameters(self) -> list[Declared]:
        return declared_parameters(self.fn)


# --------------------------------------------------------------------------- plain results


def plain(value: Any) -> Any:
    """JSON-safe data: dataclasses and `to_dict()` objects as dicts, tuples as lists, no NaN."""
    if hasattr(value, "to_dict") and not isinstance(value, type):
        return plain(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


class _Result:
    """A dataclass result whose `to_dict()` is its fields as plain data."""

    def to_dict(self) -> dict[str, Any]:
        assert dataclasses.is_dataclass(self)
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class ModelSummary(_Result):
    name: str
    versions: int
    latest_version: str | None
    aliases: dict[str, str]
    key_metric: str | None
    champion: str | None
    champion_metric: float | None
    updated: int | None
    description: str | None = None


@dataclass(frozen=True)
class ModelList(_Result):
    models: list[ModelSummary]


@dataclass(frozen=True)
class VersionList(_Result):
    model: str
    versions: list[Any]  # lifecycle.VersionRow, newest first


@dataclass(frozen=True)
class VersionDetail(_Result):
    """A version's lineage and the last promotion decision recorded on it."""

    lineage: Any  # tracked.registry.lineage.Lineage
    decision: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {**plain(self.lineage), "decision": plain(self.decision)}


@dataclass(frozen=True)
class Comparison(_Result):
    model: str
    metric: str
    higher_is_better: bool
    best: str | None  # the best version that logged the metric
    versions: list[Any]  # lifecycle.VersionRow, best first


@dataclass(frozen=True)
class BestVersion(_Result):
    model: str
    metric: str
    higher_is_better: bool
    version: Any  # lifecycle.VersionRow


@dataclass(frozen=True)
class Promotion(_Result):
    decision: Any  # tracked.registry.policy.Decision

    @property
    def ok(self) -> bool:
        return bool(self.decision.promoted)

    def to_dict(self) -> dict[str, Any]:
        return {**plain(self.decision), "summary": self.decision.summary()}


@dataclass(frozen=True)
class Rollback(_Result):
    model: str
    alias: str
    version: str
    previous: str | None


@dataclass(frozen=True)
class GcResult(_Result):
    model: str
    keep: int
    dry_run: bool
    deleted: list[str]
    kept: list[str]
    protected: list[str]


@dataclass(frozen=True)
class RunSummary(_Result):
    run_id: str
    name: str | None
    experiment: str | None
    status: str
    start_time: int | None
    end_time: int | None
    metrics: dict[str, float]
    params: dict[str, str]
    git_commit: str | None
    git_dirty: bool | None
    model: str | None
    model_version: str | None


@dataclass(frozen=True)
class RunList(_Result):
    experiment: str
    filter: str | None
    runs: list[RunSummary]


@dataclass(frozen=True)
class RegisteredVersion(_Result):
    model: str
    version: str
    run_id: str
    source: str
    already_registered: bool


@dataclass(frozen=True)
class DoctorCheck(_Result):
    """One check: ok True (passed), False (failed, with a fix) or None (information, skipped)."""

    name: str
    ok: bool | None
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class ConfigValue(_Result):
    name: str
    value: Any
    origin: str


@dataclass(frozen=True)
class DoctorReport(_Result):
    config: list[ConfigValue]
    checks: list[DoctorCheck]

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "ok": self.ok}


@dataclass(frozen=True)
class UiPlan(_Result):
    url: str
    command: list[str] | None  # None: the store is a server already; open its URL


@dataclass(frozen=True)
class SyncResult(_Result):
    report: Any  # tracked.sync.SyncReport

    @property
    def ok(self) -> bool:
        return bool(getattr(self.report, "ok", True))

    def to_dict(self) -> dict[str, Any]:
        return dict(plain(self.report))

    def lines(self) -> list[str]:
        """One line per spooled run, then the summary."""
        summary = getattr(self.report, "summary", None)
        return [*self.report.lines(), *([summary()] if summary is not None else [])]


# --------------------------------------------------------------------------- shared spellings

ModelName = Annotated[str, Param("registered model name")]
MetricName = Annotated[str, Param("metric key, e.g. val_auc", flags=("--metric", "-m"))]
HigherIsBetter = Annotated[
    bool,
    Param(
        "whether a higher value of the metric is better",
        flags=("--higher-is-better/--lower-is-better",),
    ),
]


# --------------------------------------------------------------------------- store access


def _settings(tracking_uri: str | None) -> Settings:
    return get_config().replace(tracking_uri=tracking_uri)


def _shown(uri: str) -> str:
    from tracked.capture.secrets import strip_url_credentials

    return strip_url_credentials(uri)


def _sqlite_path(uri: str) -> str | None:
    if not uri.startswith("sqlite:"):
        return None
    path = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else uri[len("sqlite://") :]
    return None if path in ("", ":memory:") else path


def _check_reachable(uri: str, *, must_exist: bool) -> None:
    """Fail in seconds with a readable error, before MLflow's client retries for minutes."""
    scheme = urllib.parse.urlsplit(uri).scheme
    if scheme in _HTTP:
        problem = _http_problem(uri)
        if problem is not None:
            raise StoreUnavailableError(_shown(uri), f"server not reachable ({problem})")
        return
    path = _sqlite_path(uri)
    if must_exist and path is not None and not os.path.exists(path):
        raise StoreUnavailableError(
            _shown(uri),
            f"no database at {path}",
            "record a run first, or point --tracking-uri or TRACKED_TRACKING_URI at your store",
        )


def _endpoint(uri: str, path: str) -> str:
    parsed = urllib.parse.urlsplit(uri)
    netloc = parsed.hostname or ""
    if parsed.port:
        netloc += f":{parsed.port}"
    return urllib.parse.urlunsplit((parsed.scheme, netloc, parsed.path.rstrip("/") + path, "", ""))


def _http_problem(uri: str) -> str | None:
    try:
        with urllib.request.urlopen(_endpoint(uri, "/health"), timeout=_PROBE_TIMEOUT):
            return None
    except urllib.error.HTTPError:
        return None  # it answered; auth problems surface on the real call, with context
    except Exception as exc:
        return str(getattr(exc, "reason", None) or exc)


def _http_get(uri: str, path: str) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(_endpoint(uri, path), timeout=_PROBE_TIMEOUT) as response:
            return response.status, response.read(65536).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except Exception:
        return None


@contextlib.contextmanager
def _store(tracking_uri: str | None, *, must_exist: bool = True) -> Iterator[Settings]:
    """The settings for one operation; MLflow's exceptions come out as one TrackingError."""
    from mlflow.exceptions import MlflowException

    from tracked.problems import store_error

    settings = _settings(tracking_uri)
    _check_reachable(settings.tracking_uri, must_exist=must_exist)
    try:
        yield settings
    except MlflowException as exc:
        raise store_error(settings.tracking_uri, exc) from exc


def _registry(settings: Settings) -> Any:
    from tracked.registry.versions import client

    return client(settings.tracking_uri)


def _paged(fetch: Callable[[str | None], Any]) -> list[Any]:
    out: list[Any] = []
    token = None
    while True:
        page = fetch(token)
        out.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return out


# --------------------------------------------------------------------------- registry reads


def list_models(
    metric: Annotated[
        str | None,
        Param(
            "metric to show for each champion (default: the model's tracked.key_metric tag, "
            "else the champion's first metric)",
            flags=("--metric", "-m"),
        ),
    ] = None,
    *,
    tracking_uri: str | None = None,
) -> ModelList:
    """Registered models with their aliases, latest version and the champion's key metric."""
    from tracked.registry import lifecycle

    with _store(tracking_uri) as settings:
        registry = _registry(settings)
        found = _paged(
            lambda token: registry.search_registered_models(max_results=1000, page_token=token)
        )
        models = []
        for model in sorted(found, key=lambda m: m.name):
            tags = model.tags or {}
            if tags.get("tracked.lock") == "true" or model.name.endswith(lifecycle.LOCK_SUFFIX):
                continue  # a promotion in progress, not a model
            rows = lifecycle.list_versions(model.name, tracking_uri=settings.tracking_uri)
            aliases = {a: str(v) for a, v in sorted((model.aliases or {}).items())}
            champion = next((r for r in rows if r.version == aliases.get(CHAMPION)), None)
            key = metric or tags.get(KEY_METRIC_TAG)
            if key is None:
                source = champion or (rows[0] if rows else None)
                key = min(source.metrics) if source is not None and source.metrics else None
            value = champion.metrics.get(key) if champion is not None and key else None
            models.append(
                ModelSummary(
                    name=model.name,
                    versions=len(rows),
                    latest_version=rows[0].version if rows else None,
                    aliases=aliases,
                    key_metric=key,
                    champion=champion.version if champion is not None else None,
                    champion_metric=value,
                    updated=model.last_updated_timestamp,
                    description=model.description or None,
                )
            )
        return ModelList(models)


def list_versions(name: ModelName, *, tracking_uri: str | None = None) -> VersionList:
    """Versions of a registered model, newest first: aliases, metrics, commit, data digests."""
    from tracked.registry import lifecycle

    with _store(tracking_uri) as settings:
        rows = lifecycle.list_versions(name, tracking_uri=settings.tracking_uri)
        return VersionList(name, rows)


def show_version(
    ref: Annotated[str, Param("NAME@ALIAS, NAME/VERSION or NAME (the latest version)")],
    version: Annotated[
        int | None, Param("version number, when REF is a plain NAME", flags=("--version", "-v"))
    ] = None,
    *,
    tracking_uri: str | None = None,
) -> VersionDetail:
    """A version's full lineage (code, data, params, metrics) and its promotion decision."""
    from tracked.registry.lineage import lineage_of
    from tracked.registry.versions import get_version

    with _store(tracking_uri) as settings:
        registry = _registry(settings)
        found = get_version(registry, ref, version)
        return VersionDetail(lineage_of(registry, found), _decision(registry, found))


def _decision(registry: Any, found: Any) -> dict[str, Any] | None:
    """The last decision recorded on the version: its tags, and rule by rule from its run."""
    tags = found.tags or {}
    verdict = tags.get("tracked.promotion.decision")
    if verdict is None:
        return None
    to = tags.get("tracked.promotion.to")
    out: dict[str, Any] = {
        "verdict": verdict,
        "to": to,
        "reason": tags.get("tracked.promotion.reason"),
    }
    if found.run_id and to:
        path = f"tracked/promotion/{to}-v{found.version}.json"
        # the run may be deleted or its artifacts unreachable: the tags still tell the verdict
        with contextlib.suppress(Exception), tempfile.TemporaryDirectory() as tmp:
            local = registry.download_artifacts(found.run_id, path, tmp)
            with open(local, encoding="utf-8") as fh:
                recorded = json.load(fh)
            for key in ("rules", "previous", "forced", "evaluated_at"):
                if key in recorded:
                    out[key] = recorded[key]
    return out


def compare(
    name: ModelName,
    metric: MetricName,
    versions: Annotated[
        list[int] | None, Param("only these versions (default: all)", flags=("--versions",))
    ] = None,
    higher_is_better: HigherIsBetter = True,
    *,
    tracking_uri: str | None = None,
) -> Comparison:
    """Versions side by side, sorted by a metric, best first."""
    from tracked.registry import lifecycle

    with _store(tracking_uri) as settings:
        rows = lifecycle.compare(
            name,
            metric,
            versions or None,
            higher_is_better=higher_is_better,
            tracking_uri=settings.tracking_uri,
        )
    best = rows[0].version if rows and metric in rows[0].metrics else None
    return Comparison(name, metric, higher_is_better, best, rows)


def best_version(
    name: ModelName,
    metric: MetricName,
    higher_is_better: HigherIsBetter = True,
    *,
    tracking_uri: str | None = None,
) -> BestVersion:
    """The version with the best value of a metric."""
    from tracked.registry import lifecycle

    with _store(tracking_uri) as settings:
        row = lifecycle.best_version(
            name, metric, higher_is_better=higher_is_better, tracking_uri=settings.tracking_uri
        )
    if row is None:
        raise TrackingError(
            f"tracked: no version of {name!r} logged metric {metric!r} "
            f"(see the metrics with `tracked versions {name}`)"
        )
    return BestVersion(name, metric, higher_is_better, row)


# --------------------------------------------------------------------------- registry writes


def load_policy(spec: str) -> Any:
    """The PromotionPolicy (or list of them) that "module:attribute" names in user code."""
    from tracked.registry.policy import PromotionPolicy

    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise PolicyError(f"tracked: policy {spec!r} is not MODULE:ATTRIBUTE (e.g. policies:prod)")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the user's own modules, as `python -m` would find them
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise PolicyError(
            f"tracked: policy {spec!r}: cannot import {module_name!r} ({exc})"
        ) from None
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise PolicyError(f"tracked: policy {spec!r}: {module_name} has no {attribute!r}")
        value = getattr(value, part)
    policies = value if isinstance(value, (list, tuple)) else [value]
    if not policies or not all(isinstance(p, PromotionPolicy) for p in policies):
        raise PolicyError(
            f"tracked: policy {spec!r} is a {type(value).__name__}, "
            "not a PromotionPolicy or a list of them"
        )
    return value


def promote(
    name: ModelName,
    version: Annotated[int, Param("version number to promote")],
    to: Annotated[str, Param("alias to move onto the version", flags=("--to",))] = CHAMPION,
    policy: Annotated[
        str | None,
        Param(
            "MODULE:ATTRIBUTE of a PromotionPolicy (or list) whose rules the version must pass; "
            "without one the alias moves on request",
            flags=("--policy",),
            check=load_policy,
        ),
    ] = None,
    force: Annotated[
        bool, Param("move the alias even if rules fail (recorded as forced)", tool=False)
    ] = False,
    *,
    tracking_uri: str | None = None,
) -> Promotion:
    """Move an alias onto a version if the policy's rules pass; the decision, rule by rule."""
    from tracked.registry import lifecycle

    loaded = load_policy(policy) if policy else None
    with _store(tracking_uri) as settings:
        decision = lifecycle.promote(
            name,
            version,
            to=to,
            policy=loaded,
            force=force,
            tracking_uri=settings.tracking_uri,
        )
    return Promotion(decision)


def rollback(
    name: ModelName,
    alias: Annotated[str, Param("alias to move back", flags=("--alias",))] = CHAMPION,
    *,
    tracking_uri: str | None = None,
) -> Rollback:
    """Move an alias back to the version that held it before."""
    from mlflow.exceptions import MlflowException

    from tracked.registry import lifecycle

    with _store(tracking_uri) as settings:
        previous = None
        with contextlib.suppress(MlflowException):
            held = _registry(settings).get_model_version_by_alias(name, alias)
            previous = str(held.version)
        version = lifecycle.rollback(name, alias, tracking_uri=settings.tracking_uri)
    return Rollback(name, alias, version, previous)


def gc(
    name: ModelName,
    keep: Annotated[int, Param("how many of the newest versions to keep", flags=("--keep",))],
    dry_run: Annotated[
        bool,
        Param("only say what would be deleted (the default)", flags=("--dry-run/--delete",)),
    ] = True,
    *,
    tracking_uri: str | None = None,
) -> GcResult:
    """Delete all but the newest versions; never one with an alias or in a rollback history."""
    from tracked.registry import lifecycle

    with _store(tracking_uri) as settings:
        report = lifecycle.gc(name, keep, dry_run=dry_run, tracking_uri=settings.tracking_uri)
    return GcResult(name, keep, dry_run, report.deleted, report.kept, report.protected)


def register_model(
    run_id: Annotated[str, Param("id of a run that logged a model")],
    name: Annotated[
        str | None,
        Param("registered model name (default: the run's naming template)", flags=("--name",)),
    ] = None,
    *,
    tracking_uri: str | None = None,
) -> RegisteredVersion:
    """Register the model a run logged as a new version (or return the version it already is)."""
    from tracked.models.naming import render_model_name
    from tracked.registry.versions import register_version

    with _store(tracking_uri) as settings:
        registry = _registry(settings)
        run = _get_run(registry, run_id)
        tags = dict(run.data.tags)
        flavor = tags.get("tracked.model.flavor")
        if not flavor:
            raise ModelLoggingError(
                f"of run {run_id}", "the run logged no model (no tracked.model.flavor tag)"
            )
        experiment = registry.get_experiment(run.info.experiment_id).name
        wanted = name or tags.get("tracked.model.name")
        if wanted is None:
            wanted = render_model_name(
                settings.naming,
                project=tags.get("tracked.project", settings.project),
                name=run.info.run_name or "run",
                experiment=experiment,
                flavor=flavor,
                tags=tags,
            )
        source = f"{run.info.artifact_uri}/model"
        for existing in registry.search_model_versions(f"run_id = '{run_id}'"):
            if existing.name == wanted:
                return RegisteredVersion(wanted, str(existing.version), run_id, source, True)
        created = register_version(
            registry,
            wanted,
            source=source,
            run_id=run_id,
            tags=_version_tags(run, flavor, experiment),
        )
        version = str(created.version)
        registry.set_tag(run_id, "tracked.model.name", wanted)
        registry.set_tag(run_id, "tracked.model.version", version)
    return RegisteredVersion(wanted, version, run_id, source, False)


def _get_run(registry: Any, run_id: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return registry.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise TrackingError(
                f"tracked: run {run_id!r} not found (list runs with `tracked runs`)"
            ) from None
        raise


def _version_tags(run: Any, flavor: str, experiment: str) -> dict[str, str]:
    """What a version carries (see registry.versions.version_tags), read back from its run."""
    from tracked.registry.versions import DATA_TAG, METRIC_TAG

    tags = run.data.tags
    out = {"tracked.run_id": run.info.run_id, "tracked.flavor": flavor}
    out["tracked.experiment"] = experiment
    for key in ("tracked.run_uuid", "tracked.project"):
        if key in tags:
            out[key] = tags[key]
    if "mlflow.source.git.commit" in tags:
        out["tracked.git.commit"] = tags["mlflow.source.git.commit"]
        out["tracked.git.dirty"] = tags.get("tracked.git.dirty", "unknown")
    out.update({f"{METRIC_TAG}{k}": repr(v) for k, v in run.data.metrics.items()})
    for entry in run.inputs.dataset_inputs if run.inputs else ():
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            profile = json.loads(entry.dataset.profile or "{}")
            out[f"{DATA_TAG}{entry.dataset.name}"] = profile.get(
                "tracked.digest", entry.dataset.digest
            )
    return out


# --------------------------------------------------------------------------- runs


def search_runs(
    experiment: Annotated[
        str | None,
        Param(
            "experiment name (default: the configured experiment; '*' for every experiment)",
            flags=("--experiment", "-e"),
        ),
    ] = None,
    filter: Annotated[
        str | None,
        Param('MLflow search filter, e.g. "metrics.val_auc > 0.9"', flags=("--filter", "-f")),
    ] = None,
    limit: Annotated[int, Param("most runs to return, newest first", flags=("--limit", "-n"))] = 20,
    *,
    tracking_uri: str | None = None,
) -> RunList:
    """Runs of an experiment, newest first, optionally filtered by metrics, params or tags."""
    from mlflow.exceptions import MlflowException

    if limit < 1:
        raise TrackingError(f"tracked: limit={limit}: must be 1 or more")
    with _store(tracking_uri) as settings:
        registry = _registry(settings)
        name = experiment or settings.experiment
        if name == "*":
            found = registry.search_experiments(max_results=1000)
        else:
            one = registry.get_experiment_by_name(name)
            if one is None:
                raise TrackingError(
                    f"tracked: experiment {name!r} not found "
                    "(search every experiment with --experiment '*')"
                )
            found = [one]
        names = {e.experiment_id: e.name for e in found}
        try:
            runs = registry.search_runs(
                list(names),
                filter_string=filter or "",
                max_results=limit,
                order_by=["attributes.start_time DESC"],
            )
        except MlflowException as exc:
            if exc.error_code != "INVALID_PARAMETER_VALUE":
                raise
            reason = str(exc).strip().splitlines()[0]
            raise TrackingError(f"tracked: invalid filter {filter!r}: {reason}") from None
    return RunList(name, filter, [_run_summary(r, names) for r in runs])


def _run_summary(run: Any, experiments: Mapping[str, str]) -> RunSummary:
    tags = run.data.tags
    dirty = tags.get("tracked.git.dirty")
    return RunSummary(
        run_id=run.info.run_id,
        name=run.info.run_name,
        experiment=experiments.get(run.info.experiment_id),
        status=run.info.status,
        start_time=run.info.start_time,
        end_time=run.info.end_time,
        metrics=dict(run.data.metrics),
        params=dict(run.data.params),
        git_commit=tags.get("mlflow.source.git.commit"),
        git_dirty=None if dirty in (None, "unknown") else dirty == "true",
        model=tags.get("tracked.model.name"),
        model_version=tags.get("tracked.model.version"),
    )


def log_run(
    name: Annotated[str, Param("run name")],
    params: Annotated[
        dict[str, str | int | float | bool] | None,
        Param("parameters to record (KEY=VALUE on the command line)", flags=("--param", "-p")),
    ] = None,
    metrics: Annotated[
        dict[str, float] | None,
        Param("final metric values (KEY=VALUE on the command line)", flags=("--metric", "-m")),
    ] = None,
    experiment: Annotated[
        str | None,
        Param("experiment (default: the configured one)", flags=("--experiment", "-e")),
    ] = None,
    *,
    tracking_uri: str | None = None,
) -> RunSummary:
    """Record a finished training run's params and metrics (with git and environment)."""
    from tracked.run import TrackedRun

    with _store(tracking_uri, must_exist=False) as settings:
        run = TrackedRun(
            name,
            params=params or {},
            experiment=experiment,
            tracking_uri=settings.tracking_uri,
            strict=True,
            register=False,
        )
        with run:
            if metrics:
                run.log_metrics(metrics)
        registry = _registry(settings)
        recorded = registry.get_run(str(run.run_id))
        experiments = {recorded.info.experiment_id: run.record.experiment}
    return _run_summary(recorded, experiments)


# --------------------------------------------------------------------------- doctor


def doctor(*, tracking_uri: str | None = None) -> DoctorReport:
    """Where each setting came from, and whether the stores and git work (with fixes)."""
    settings = _settings(tracking_uri)
    config = [
        ConfigValue(
            f.name,
            _shown(v) if isinstance(v := getattr(settings, f.name), str) else v,
            settings.origins.get(f.name, "default"),
        )
        for f in dataclasses.fields(settings)
        if f.name != "origins"
    ]
    checks = _store_checks(settings)
    checks.append(_git_check())
    return DoctorReport(config, checks)


def _store_checks(settings: Settings) -> list[DoctorCheck]:
    uri = settings.tracking_uri
    shown = _shown(uri)
    scheme = urllib.parse.urlsplit(uri).scheme
    checks: list[DoctorCheck] = []
    fix_uri = "set TRACKED_TRACKING_URI (or [tool.tracked] tracking_uri) to a reachable store"
    if scheme in _HTTP:
        problem = _http_problem(uri)
        if problem is not None:
            checks.append(
                DoctorCheck(
                    "tracking store",
                    False,
                    f"{shown}: server not reachable ({problem})",
                    f"start the server (`mlflow server ...`) or {fix_uri}",
                )
            )
            return [*checks, _skipped("scratch run"), _skipped("artifact store")]
        checks.append(DoctorCheck("tracking store", True, f"{shown}: server answers /health"))
        checks.append(_server_check(uri))
    else:
        checks.append(_database_check(uri))
        if checks[-1].ok is False:
            return [*checks, _skipped("scratch run"), _skipped("artifact store")]
    return checks + _scratch_checks(settings)


def _skipped(name: str) -> DoctorCheck:
    return DoctorCheck(name, None, "skipped: the tracking store is not reachable")


def _server_check(uri: str) -> DoctorCheck:
    """What the server says about itself; the database behind it only where it tells."""
    parts = []
    version = _http_get(uri, "/version")
    if version is not None and version[0] == 200 and version[1].strip():
        parts.append(f"mlflow {version[1].strip()[:40]}")
    store_type = None
    for path in ("/api/3.0/mlflow/server-info", "/api/2.0/mlflow/server-info"):
        info = _http_get(uri, path)
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


def _database_check(uri: str) -> DoctorCheck:
    shown = _shown(uri)
    path = _sqlite_path(uri)
    if path is not None:
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.exists(path):
            return DoctorCheck("tracking store", True, f"SQLite database {path}")
        if os.path.isdir(folder) and os.access(folder, os.W_OK):
            return DoctorCheck(
                "tracking store", True, f"SQLite database {path} (created by the first run)"
            )
        return DoctorCheck(
            "tracking store",
            False,
            f"SQLite database {path}: folder {folder} is missing or not writable",
            "create the folder, or set TRACKED_TRACKING_URI to a writable location",
        )
    try:
        registry = _registry(get_config().replace(tracking_uri=uri))
        registry.search_experiments(max_results=1)
    except Exception as exc:
        from tracked.problems import store_error

        return DoctorCheck(
            "tracking store",
            False,
            str(store_error(uri, exc)).removeprefix("tracked: "),
            "check the database URI, that the database is running, and its credentials",
        )
    engine = urllib.parse.urlsplit(uri).scheme.split("+", 1)[0] or "file"
    return DoctorCheck("tracking store", True, f"{engine} store {shown}")


def _scratch_checks(settings: Settings) -> list[DoctorCheck]:
    """Write a run and an artifact to `tracked-doctor` the way a training would, then delete."""
    from tracked.record import Artifact, RunRecord, now_ms
    from tracked.writers.mlflow import MlflowWriter

    experiment = _doctor_experiment(settings)
    writer = MlflowWriter(settings.replace(experiment=experiment))
    record = RunRecord(name="doctor", experiment=experiment, project=settings.project)
    record.params["check"] = "write"
    try:
        run_id = writer.start(record)
    except TrackingError as error:
        reason = getattr(error, "reason", str(error))
        return [
            DoctorCheck(
                "scratch run",
                False,
                f"cannot write a run: {reason}",
                "check that the store accepts writes (permissions, credentials, disk space)",
            ),
            DoctorCheck("artifact store", None, "skipped: no scratch run"),
        ]
    checks = [DoctorCheck("scratch run", True, f"created and deleted a run in {experiment!r}")]
    root = writer.artifact_uri or ""
    name = f"doctor-{uuid.uuid4().hex[:8]}.txt"
    try:
        checks.append(
            _artifact_check(
                root,
                write=lambda: writer.log_artifacts(run_id, [Artifact(name, b"tracked doctor\n")]),
                listed=lambda: {a.path for a in writer.client.list_artifacts(run_id)},
                name=name,
            )
        )
        if root.startswith("s3://"):
            checks.append(_s3_check(root))
    finally:
        with contextlib.suppress(Exception):
            writer.end(run_id, "FINISHED", now_ms())
            writer.client.delete_run(run_id)
    return checks


def _doctor_experiment(settings: Settings) -> str:
    """`tracked-doctor`; one per configured artifact_location, since an experiment keeps the
    artifact root it was created with and the check must write where runs would now."""
    if not settings.artifact_location:
        return DOCTOR_EXPERIMENT
    digest = hashlib.sha1(settings.artifact_location.encode(), usedforsecurity=False)
    return f"{DOCTOR_EXPERIMENT}-{digest.hexdigest()[:8]}"


def _artifact_check(
    root: str, *, write: Callable[[], None], listed: Callable[[], set[str]], name: str
) -> DoctorCheck:
    via = " (through the server's artifact proxy)" if root.startswith("mlflow-artifacts:") else ""
    try:
        write()
        if name not in listed():
            raise OSError(f"{name} was written but is not listed")
    except Exception as exc:
        reason = getattr(exc, "reason", None) or _first_line(exc)
        return DoctorCheck(
            "artifact store",
            False,
            f"{_shown(root)}{via}: cannot write an artifact ({reason})",
            _artifact_fix(root),
        )
    with contextlib.suppress(Exception):
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        get_artifact_repository(root).delete_artifacts(name)
    return DoctorCheck("artifact store", True, f"{_shown(root)}{via}: wrote and listed an artifact")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _artifact_fix(root: str) -> str:
    if root.startswith("s3://"):
        return (
            "check the bucket exists, AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "or a profile) and MLFLOW_S3_ENDPOINT_URL for a non-AWS endpoint"
        )
    if root.startswith("mlflow-artifacts:"):
        return "check the server's --artifacts-destination and its credentials for it"
    return "check the artifact folder exists and is writable, or set artifact_location"


def _s3_check(root: str) -> DoctorCheck:
    """The bucket behind an s3:// artifact root, with the endpoint boto3 used."""
    parsed = urllib.parse.urlsplit(root)
    bucket, prefix = parsed.netloc, parsed.path.strip("/")
    # boto3's own setting (read by MLflow's S3 repository too), not a tracked setting
    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None
    where = f"bucket {bucket} at {endpoint or 'AWS (default endpoint)'}"
    try:
        import boto3
    except ImportError:
        return DoctorCheck(
            "s3 bucket", False, f"{where}: boto3 is not installed", "pip install 'tracked[s3]'"
        )
    key = f"{prefix}/tracked-doctor-{uuid.uuid4().hex[:8]}".lstrip("/")
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.head_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key=key, Body=b"tracked doctor\n")
        s3.delete_object(Bucket=bucket, Key=key)
    except Exception as exc:
        return DoctorCheck("s3 bucket", False, f"{where}: {_first_line(exc)}", _artifact_fix(root))
    return DoctorCheck("s3 bucket", True, f"{where}: reachable, wrote and deleted an object")


def _git_check() -> DoctorCheck:
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


# --------------------------------------------------------------------------- ui and sync


def ui_plan(
    host: Annotated[str, Param("interface for the UI to listen on", flags=("--host",))] = (
        "127.0.0.1"
    ),
    port: Annotated[int, Param("port for the UI", flags=("--port",))] = 5000,
    *,
    tracking_uri: str | None = None,
) -> UiPlan:
    """The MLflow UI on the configured store: a server's own URL, or an `mlflow ui` command."""
    settings = _settings(tracking_uri)
    uri = settings.tracking_uri
    if urllib.parse.urlsplit(uri).scheme in _HTTP:
        return UiPlan(_shown(uri), None)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    if settings.registry_uri != uri:
        command += ["--registry-store-uri", settings.registry_uri]
    command += ["--host", host, "--port", str(port)]
    shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    return UiPlan(f"http://{shown_host}:{port}", command)


def sync(
    dry_run: Annotated[
        bool, Param("only say what would be sent", flags=("--dry-run/--send",))
    ] = False,
    *,
    tracking_uri: str | None = None,
) -> SyncResult:
    """Send runs kept on disk while the store was unreachable (the spool) to the store."""
    try:
        from tracked.sync import sync as sync_spool
    except ImportError as exc:
        if exc.name not in ("tracked.sync", None):
            raise
        raise TrackingError(
            "tracked: `tracked sync` is not available in this version of tracked "
            "(tracked.sync is missing)"
        ) from None
    kwargs: dict[str, Any] = {"dry_run": dry_run}
    if tracking_uri is not None:
        if "tracking_uri" not in inspect.signature(sync_spool).parameters:
            raise TrackingError("tracked: sync sends to the configured store; drop --tracking-uri")
        kwargs["tracking_uri"] = tracking_uri
    return SyncResult(sync_spool(**kwargs))


# --------------------------------------------------------------------------- the table

OPERATIONS: tuple[Operation, ...] = (
    Operation(list_models, command="models", tool="list_models"),
    Operation(list_versions, command="versions", tool="list_versions"),
    Operation(show_version, command="show", tool="lineage"),
    Operation(compare, command="compare", tool="compare"),
    Operation(best_version, command="best", tool="best_version"),
    Operation(search_runs, command="runs", tool="search_runs"),
    Operation(promote, command="promote", tool="promote", writes=True),
    Operation(rollback, command="rollback", tool="rollback", writes=True),
    Operation(register_model, command="register", tool="register_model", writes=True),
    Operation(log_run, command="log", tool="log_run", writes=True),
    Operation(gc, command="gc", tool=None, writes=True),
    Operation(doctor, command="doctor", tool=None),
    Operation(sync, command="sync", tool=None, writes=True),
    Operation(ui_plan, command="ui", tool=None),
)
