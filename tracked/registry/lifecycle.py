"""Promotion, rollback, comparison and retention of registered model versions.

Promotion moves an alias (MLflow 3's `champion`/`challenger`), optionally a legacy stage too,
and records why: a `Decision` on the version (tags `tracked.promotion.*`) and as a JSON artifact
on its run. Every alias move appends to a history kept on the registered model
(`tracked.alias_history.<alias>`), so rollback works repeatedly and across processes.

MLflow has no compare-and-set on aliases. Concurrent promoters serialise on a registry lock:
creating a registered model is atomic (unique name), so `<name>.tracked-lock` is created to
enter and deleted to leave. Inside it each promoter reads the current holder, evaluates, moves;
the alias therefore ends on the best candidate that passed, and each decision was made against
the holder that was really there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tracked.errors import AliasNotFoundError, ModelNotFoundError, PolicyError, TrackingError
from tracked.registry.policy import Candidate, Decision, PromotionPolicy
from tracked.registry.versions import DATA_TAG, client, get_version, version_metrics

__all__ = [
    "GcReport",
    "VersionRow",
    "alias_history",
    "apply_policies",
    "best_version",
    "compare",
    "gc",
    "list_versions",
    "promote",
    "rollback",
]

HISTORY_TAG = "tracked.alias_history."
LOCK_SUFFIX = ".tracked-lock"
HISTORY_LIMIT = 100
LOCK_TIMEOUT = 60.0  # seconds to wait for the lock
LOCK_STALE = 120.0  # a lock older than this was left by a crashed process: break it


@dataclass(frozen=True)
class VersionRow:
    """One version as registry listings show it; everything read from version tags."""

    name: str
    version: str
    aliases: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    data: dict[str, str] = field(default_factory=dict)
    created: int | None = None
    stage: str | None = None
    decision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GcReport:
    name: str
    deleted: list[str]
    kept: list[str]
    protected: list[str]  # would be deleted by age, but hold an alias or are in its history
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- promotion --------------------------------------------------------------------------------


def promote(
    name: str,
    version: str | int,
    *,
    to: str = "champion",
    policy: PromotionPolicy | Sequence[PromotionPolicy] | None = None,
    force: bool = False,
    stage: str | None = None,
    tracking_uri: str | None = None,
) -> Decision:
    """Evaluate `policy` for `name` version `version` and move alias `to` if it passes.

    With a list of policies the last decision is returned (see `apply_policies` for all).
    `force=True` moves the alias even when rules fail, and records that it was forced.
    """
    registry = client(tracking_uri)
    if isinstance(policy, (list, tuple)):
        decisions = apply_policies(registry, name, version, policy, force=force)
        if not decisions:
            raise PolicyError("tracked: an empty list of policies decides nothing")
        return decisions[-1]
    return _promote(registry, name, str(version), to, policy, force=force, stage=stage)


def apply_policies(
    registry: Any,
    name: str,
    version: str | int,
    policies: Sequence[PromotionPolicy],
    *,
    force: bool = False,
) -> list[Decision]:
    """Evaluate an ordered list of policies (e.g. challenger, then champion); each independent."""
    return [
        _promote(registry, name, str(version), p.to, p, force=force, stage=p.stage)
        for p in policies
    ]


def _promote(
    registry: Any,
    name: str,
    version: str,
    to: str,
    policy: PromotionPolicy | None,
    *,
    force: bool,
    stage: str | None,
) -> Decision:
    if policy is not None:
        to, stage = policy.to, stage or policy.stage
    found = get_version(registry, name, version)  # fails early for an unknown model/version
    with _registry_lock(registry, name):
        candidate = _candidate(registry, found)
        holders = _Holders(registry, name)
        if policy is None:
            current = holders(to)
            decision = Decision(
                model=name,
                version=version,
                to=to,
                promoted=True,
                rules=(),
                reason="promoted on request (no policy)",
                previous=None if current is None else current.version,
            )
        else:
            decision = policy.evaluate(candidate, holders)
        if force and not decision.promoted:
            decision = dataclasses.replace(decision, promoted=True, forced=True)
        if decision.promoted and decision.previous != version:
            _move_alias(registry, name, to, version)
        if decision.promoted and stage:
            _transition_stage(registry, name, version, stage)
    _record(registry, found, decision)
    return decision


class _Holders:
    """`holders(alias)` for policy evaluation: the Candidate that holds the alias, or None."""

    def __init__(self, registry: Any, name: str) -> None:
        self.registry, self.name = registry, name

    def __call__(self, alias: str) -> Candidate | None:
        from mlflow.exceptions import MlflowException

        try:
            found = self.registry.get_model_version_by_alias(self.name, alias)
        except MlflowException:
            return None
        return _candidate(self.registry, found)


def _candidate(registry: Any, found: Any) -> Candidate:
    """What policies judge: metrics from version tags (else the run), run params, all tags."""
    from mlflow.exceptions import MlflowException

    tags = dict(found.tags or {})
    metrics = version_metrics(found)
    params: dict[str, str] = {}
    if found.run_id:
        try:
            run = registry.get_run(found.run_id)
        except MlflowException:
            run = None
        if run is not None:
            params = dict(run.data.params)
            tags = {**run.data.tags, **tags}
            metrics = {**run.data.metrics, **metrics}
    return Candidate(
        name=found.name,
        version=str(found.version),
        metrics=metrics,
        params=params,
        tags=tags,
        run_id=found.run_id,
    )


def _move_alias(registry: Any, name: str, alias: str, version: str) -> None:
    registry.set_registered_model_alias(name, alias, version)
    history = alias_history(name, alias, registry=registry)
    history.append(version)
    _write_history(registry, name, alias, history)


def _write_history(registry: Any, name: str, alias: str, history: list[str]) -> None:
    registry.set_registered_model_tag(
        name, HISTORY_TAG + alias, json.dumps(history[-HISTORY_LIMIT:])
    )


def alias_history(name: str, alias: str = "champion", *, registry: Any = None) -> list[str]:
    """Versions that held `alias`, oldest first; the last one holds it now."""
    registry = registry or client()
    model = _registered_model(registry, name)
    try:
        history = json.loads((model.tags or {}).get(HISTORY_TAG + alias, "[]"))
    except ValueError:
        history = []
    return [str(v) for v in history]


def _transition_stage(registry: Any, name: str, version: str, stage: str) -> None:
    """Legacy stages for servers and UIs that still use them; MLflow's deprecation is ours."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        registry.transition_model_version_stage(
            name, version, stage, archive_existing_versions=stage in ("Production", "Staging")
        )


def _record(registry: Any, found: Any, decision: Decision) -> None:
    """The decision on the version (tags) and on its run (a JSON artifact)."""
    verdict = "forced" if decision.forced else "promoted" if decision.promoted else "rejected"
    reason = decision.reason if len(decision.reason) < 5000 else decision.reason[:5000] + "..."
    tags = {
        "tracked.promotion.decision": verdict,
        "tracked.promotion.reason": reason,
        "tracked.promotion.to": decision.to,
        f"tracked.promotion.{decision.to}.decision": verdict,
    }
    for key, value in tags.items():
        registry.set_model_version_tag(found.name, str(found.version), key, value)
    if found.run_id:
        from mlflow.exceptions import MlflowException

        with contextlib.suppress(MlflowException, OSError):
            registry.log_text(
                found.run_id,
                json.dumps(decision.to_dict(), indent=2, sort_keys=True, default=str),
                f"tracked/promotion/{decision.to}-v{decision.version}.json",
            )


# -- rollback, listing, comparison, retention -------------------------------------------------


def rollback(name: str, alias: str = "champion", *, tracking_uri: str | None = None) -> str:
    """Move `alias` back to the version that held it before; returns that version."""
    registry = client(tracking_uri)
    with _registry_lock(registry, name):
        history = alias_history(name, alias, registry=registry)
        existing = {str(v.version) for v in _versions(registry, name)}
        while len(history) >= 2:
            history.pop()  # the current holder
            previous = history[-1]
            if previous in existing:
                registry.set_registered_model_alias(name, alias, previous)
                _write_history(registry, name, alias, history)
                return previous
        if not history:
            raise AliasNotFoundError(name, alias)
        raise PolicyError(
            f"tracked: alias {alias!r} of {name!r} has no earlier holder to roll back to "
            f"(it is on v{history[-1]}, its first holder still registered)"
        )


def list_versions(name: str, *, tracking_uri: str | None = None) -> list[VersionRow]:
    """Every version of `name`, newest first."""
    registry = client(tracking_uri)
    # search_model_versions leaves aliases empty; the registered model has them all.
    aliases: dict[str, list[str]] = {}
    for alias, version in (
        getattr(_registered_model(registry, name), "aliases", None) or {}
    ).items():
        aliases.setdefault(str(version), []).append(alias)
    rows = [_row(v, aliases.get(str(v.version), ())) for v in _versions(registry, name)]
    return sorted(rows, key=lambda r: int(r.version), reverse=True)


def compare(
    name: str,
    metric: str,
    versions: Sequence[str | int] | None = None,
    *,
    higher_is_better: bool = True,
    tracking_uri: str | None = None,
) -> list[VersionRow]:
    """Versions sorted by `metric`, best first; versions without it come last."""
    rows = list_versions(name, tracking_uri=tracking_uri)
    if versions:
        wanted = {str(v) for v in versions}
        missing = wanted - {r.version for r in rows}
        if missing:
            raise ModelNotFoundError(name, sorted(missing, key=int)[0])
        rows = [r for r in rows if r.version in wanted]
    sign = -1.0 if higher_is_better else 1.0
    return sorted(
        rows,
        key=lambda r: (metric not in r.metrics, sign * r.metrics.get(metric, 0.0), -int(r.version)),
    )


def best_version(
    name: str, metric: str, *, higher_is_better: bool = True, tracking_uri: str | None = None
) -> VersionRow | None:
    """The version with the best `metric`, or None when no version logged it."""
    rows = compare(name, metric, higher_is_better=higher_is_better, tracking_uri=tracking_uri)
    return rows[0] if rows and metric in rows[0].metrics else None


def gc(
    name: str, keep_last: int, *, dry_run: bool = True, tracking_uri: str | None = None
) -> GcReport:
    """Delete all but the newest `keep_last` versions, never one that holds an alias or is in
    an alias's rollback history. Dry-run by default: says what it would delete."""
    if keep_last < 0:
        raise TrackingError(f"tracked: gc keep_last={keep_last}: must be 0 or more")
    registry = client(tracking_uri)
    with _registry_lock(registry, name):
        model = _registered_model(registry, name)
        rows = sorted(_versions(registry, name), key=lambda v: int(v.version), reverse=True)
        protected_versions = {str(v) for v in (getattr(model, "aliases", None) or {}).values()}
        for key, value in (model.tags or {}).items():
            if key.startswith(HISTORY_TAG):
                with contextlib.suppress(ValueError):
                    protected_versions.update(str(v) for v in json.loads(value))
        kept, deleted, protected = [], [], []
        for index, found in enumerate(rows):
            version = str(found.version)
            if index < keep_last:
                kept.append(version)
            elif version in protected_versions or found.aliases:
                protected.append(version)
            else:
                deleted.append(version)
        if not dry_run:
            for version in deleted:
                registry.delete_model_version(name, version)
    return GcReport(name, deleted, kept, protected, dry_run)


def _row(found: Any, aliases: Sequence[str] = ()) -> VersionRow:
    tags = found.tags or {}
    dirty = tags.get("tracked.git.dirty")
    return VersionRow(
        name=found.name,
        version=str(found.version),
        aliases=tuple(sorted(aliases or getattr(found, "aliases", None) or ())),
        metrics=version_metrics(found),
        run_id=found.run_id,
        git_commit=tags.get("tracked.git.commit"),
        git_dirty=None if dirty in (None, "unknown") else dirty == "true",
        data={k[len(DATA_TAG) :]: v for k, v in tags.items() if k.startswith(DATA_TAG)},
        created=found.creation_timestamp,
        stage=found.current_stage if found.current_stage not in (None, "None") else None,
        decision=tags.get("tracked.promotion.decision"),
    )


def _versions(registry: Any, name: str) -> list[Any]:
    _registered_model(registry, name)  # a clear error for an unknown model
    out: list[Any] = []
    token = None
    while True:
        page = registry.search_model_versions(
            f"name = '{name.replace(chr(39), chr(92) + chr(39))}'",
            max_results=1000,
            page_token=token,
        )
        out.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return out


def _registered_model(registry: Any, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return registry.get_registered_model(name)
    except MlflowException:
        raise ModelNotFoundError(name) from None


# -- the registry lock ------------------------------------------------------------------------


@contextlib.contextmanager
def _registry_lock(registry: Any, name: str, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Mutual exclusion across processes and machines for alias changes of `name`."""
    from mlflow.exceptions import MlflowException

    lock = name + LOCK_SUFFIX
    owner = f"{socket.gethostname()}:{os.getpid()}:{time.time()}"
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            registry.create_registered_model(
                lock,
                tags={"tracked.lock.owner": owner, "tracked.lock": "true"},
                description=f"tracked: lock for alias changes of {name}; safe to delete if stale",
            )
            break
        except MlflowException as exc:
            # "already exists": someone holds it. "does not exist": the store raced our create
            # against the holder's delete; either way, try again.
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST"):
                raise
        _break_if_stale(registry, lock)
        if time.monotonic() > deadline:
            raise PolicyError(
                f"tracked: registered model {name!r} is locked by another promotion for over "
                f"{timeout:.0f} s; if no promotion is running, delete {lock!r}"
            )
        time.sleep(delay)  # back off between attempts at an atomic create, not a sync sleep
        delay = min(delay * 2, 0.5)
    try:
        yield
    finally:
        with contextlib.suppress(MlflowException):
            held = registry.get_registered_model(lock)
            if (held.tags or {}).get("tracked.lock.owner") == owner:  # never free someone else's
                registry.delete_registered_model(lock)


def _break_if_stale(registry: Any, lock: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        found = registry.get_registered_model(lock)
    except MlflowException:
        return
    age = time.time() - (found.creation_timestamp or 0) / 1000
    if age > LOCK_STALE:
        with contextlib.suppress(MlflowException):
            registry.delete_registered_model(lock)
