"""Promotion, rollback, comparison and retention of registered model versions.

Promotion moves an alias (MLflow 3's `champion`/`challenger`), optionally a legacy stage too,
and records why: a `Decision` on the version (tags `tracked.promotion.*`) and as a JSON artifact
on its run. Every alias move appends to a history kept on the registered model
(`tracked.alias_history.<alias>`), so rollback works repeatedly and across processes.

Every call goes through the store door (`tracked.store`): bounded, so the Python API fails
exactly like the CLI on a dead server, with StoreUnavailableError ("server not reachable")
within the store's bounds, never "not found" after MLflow's own minutes of retries.

Aliases are lower-case (`normalize_alias`): `promote(..., to="Production")` and
`tracked promote --to Production` move `production`, never a second alias beside it. MLflow's
alias rules apply on top: letters, digits, `_` and `-`, at most 255 characters; `latest` and
`v<digits>` are reserved. A reference "name@Alias" finds an alias another tool set in exactly
that spelling first, else the lower-case one.

A version promoted to an alias it already holds changes nothing: the decision says so
(`unchanged=True`, verdict tag `unchanged`), no rule is evaluated and the history does not list
the version twice. A holder that cannot be read is never "no holder": the rules refuse with
"could not read the current <alias>: ..." (see policy.py), or the call raises when the store is
down.

Concurrent promoters of one model serialise on the registry lock (`tracked.registry.lock`):
inside it each reads the current holder, evaluates, moves; the alias therefore ends on the best
candidate that passed, and each decision was made against the holder that was really there.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tracked import tags
from tracked.capture.keys import MAX_ERROR_LENGTH, clean_text
from tracked.errors import (
    AliasNotFoundError,
    ModelNotFoundError,
    NotFoundError,
    PolicyError,
    StoreRejectedError,
    TrackingError,
)
from tracked.registry.lock import LOCK_SUFFIX as LOCK_SUFFIX  # ops hides these models
from tracked.registry.lock import RegistryLock, registry_lock
from tracked.registry.policy import (
    Candidate,
    Decision,
    PromotionPolicy,
    normalize_alias,
    normalize_stage,
)
from tracked.registry.versions import (
    as_store,
    get_version,
    registered_model,
    registry_store,
    version_metrics,
    versions_of,
)

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

    from tracked.registry.versions import StoreLike
    from tracked.store import Store

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

logger = logging.getLogger("tracked")

HISTORY_TAG = tags.ALIAS_HISTORY_PREFIX
HISTORY_LIMIT = 100


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
    `stage` moves the legacy MLflow stage too (Staging, Production, Archived).
    """
    store = registry_store(tracking_uri)
    if isinstance(policy, (list, tuple)):
        decisions = apply_policies(store, name, version, policy, force=force)
        if not decisions:
            raise PolicyError("tracked: an empty list of policies decides nothing")
        return decisions[-1]
    single = policy if isinstance(policy, PromotionPolicy) else None
    alias = normalize_alias(to, "to")
    return _promote(store, name, str(version), alias, single, force=force, stage=stage)


def apply_policies(
    store: StoreLike,
    name: str,
    version: str | int,
    policies: Sequence[PromotionPolicy],
    *,
    force: bool = False,
) -> list[Decision]:
    """Evaluate an ordered list of policies (e.g. challenger, then champion); each independent."""
    store = as_store(store)
    return [
        _promote(store, name, str(version), p.to, p, force=force, stage=p.stage) for p in policies
    ]


def _promote(
    store: Store,
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
    stage = normalize_stage(stage)
    found = get_version(store, name, version)  # fails early for an unknown model/version
    with registry_lock(store, name) as lock:
        model = registered_model(store, name)
        aliases = _aliases(model)
        if aliases.get(to) == version:
            decision = Decision(
                model=name,
                version=version,
                to=to,
                promoted=True,
                rules=(),
                reason=f"v{version} already holds {to}; nothing to do",
                unchanged=True,
            )
        else:
            decision = _decide(store, found, to, policy, aliases)
            if force and not decision.promoted:
                decision = dataclasses.replace(decision, promoted=True, forced=True)
            if decision.promoted:
                lock.check()
                history = tags.alias_history(model.tags or {}, to)
                _move_alias(store, name, to, version, history)
        if decision.promoted and stage:
            _transition_stage(store, name, version, stage)
    _record(store, found, decision)
    return decision


def _decide(
    store: Store,
    found: ModelVersion,
    to: str,
    policy: PromotionPolicy | None,
    aliases: Mapping[str, str],
) -> Decision:
    holders = _Holders(store, found.name, aliases)
    if policy is not None:
        return policy.evaluate(_candidate(store, found), holders)
    return Decision(
        model=found.name,
        version=str(found.version),
        to=to,
        promoted=True,
        rules=(),
        reason="promoted on request (no policy)",
        previous=aliases.get(to),
    )


class _Holders:
    """`holders(alias)` for policy evaluation: the Candidate that holds the alias, or None.

    None only when the registered model (read under the lock) has no such alias; a holder
    that cannot be read raises, and the rule asking refuses with the reason.
    """

    def __init__(self, store: Store, name: str, aliases: Mapping[str, str]) -> None:
        self.store, self.name, self.aliases = store, name, aliases

    def __call__(self, alias: str) -> Candidate | None:
        version = self.aliases.get(alias)
        if version is None:
            return None
        found = self.store.call(
            lambda c: c.get_model_version(self.name, version),
            what=f"read {self.name!r} v{version}, the current {alias}",
        )
        return _candidate(self.store, found)


def _candidate(store: Store, found: ModelVersion) -> Candidate:
    """What policies judge: metrics from version tags (else the run), run params, all tags."""
    version_tags = dict(found.tags or {})
    metrics = version_metrics(found)
    params: dict[str, str] = {}
    if found.run_id:
        run_id = found.run_id
        run = store.get_or_none(lambda c: c.get_run(run_id), what=f"read run {run_id}")
        if run is not None:  # None: the run is gone; the version's tags are what is left
            params = dict(run.data.params)
            version_tags = {**run.data.tags, **version_tags}
            metrics = {**run.data.metrics, **metrics}
    return Candidate(
        name=found.name,
        version=str(found.version),
        metrics=metrics,
        params=params,
        tags=version_tags,
        run_id=found.run_id,
    )


def _move_alias(store: Store, name: str, alias: str, version: str, history: list[str]) -> None:
    store.call(
        lambda c: c.set_registered_model_alias(name, alias, version),
        what=f"move alias {alias!r} of {name!r} to v{version}",
    )
    _write_history(store, name, alias, [*history, version])


def _write_history(store: Store, name: str, alias: str, history: list[str]) -> None:
    text = json.dumps(history[-HISTORY_LIMIT:])
    store.call(
        lambda c: c.set_registered_model_tag(name, HISTORY_TAG + alias, text),
        what=f"record the history of alias {alias!r} of {name!r}",
    )


def alias_history(
    name: str,
    alias: str = "champion",
    *,
    store: Store | None = None,
    tracking_uri: str | None = None,
) -> list[str]:
    """Versions that held `alias`, oldest first; the last one holds it now."""
    store = store or registry_store(tracking_uri)
    model = registered_model(store, name)
    return tags.alias_history(model.tags or {}, normalize_alias(alias))


def _transition_stage(store: Store, name: str, version: str, stage: str) -> None:
    """Legacy stages for servers and UIs that still use them; MLflow's deprecation is ours."""

    def transition(client: Any) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client.transition_model_version_stage(
                name, version, stage, archive_existing_versions=stage in ("Production", "Staging")
            )

    store.call(transition, what=f"move {name!r} v{version} to stage {stage}")


def _record(store: Store, found: ModelVersion, decision: Decision) -> None:
    """The decision on the version (tags) and on its run (a JSON artifact)."""
    name, version = found.name, str(found.version)
    verdict = (
        "unchanged"
        if decision.unchanged
        else "forced"
        if decision.forced
        else "promoted"
        if decision.promoted
        else "rejected"
    )
    recorded = {
        tags.PROMOTION_DECISION: verdict,
        tags.PROMOTION_REASON: clean_text(decision.reason, limit=MAX_ERROR_LENGTH),
        tags.PROMOTION_TO: decision.to,
        tags.promotion_decision_for(decision.to): verdict,
    }

    def tag_version(client: Any) -> None:
        for key, value in recorded.items():
            client.set_model_version_tag(name, version, key, value)

    store.call(tag_version, what=f"record the promotion decision on {name!r} v{version}")
    if not found.run_id:
        return
    run_id = found.run_id
    text = json.dumps(decision.to_dict(), indent=2, sort_keys=True, default=str)
    path = f"tracked/promotion/{decision.to}-v{decision.version}.json"
    try:
        store.call(lambda c: c.log_text(run_id, text, path), what=f"log {path} on run {run_id}")
    except (NotFoundError, StoreRejectedError) as error:
        # the run is gone or read-only: the version's tags above hold the verdict and reason
        logger.warning("tracked: %s; the decision is on the version's tags only", error)


# -- rollback, listing, comparison, retention -------------------------------------------------


def rollback(name: str, alias: str = "champion", *, tracking_uri: str | None = None) -> str:
    """Move `alias` back to the version that held it before; returns that version."""
    store = registry_store(tracking_uri)
    alias = normalize_alias(alias, "alias")
    with registry_lock(store, name) as lock:
        history = tags.alias_history(registered_model(store, name).tags or {}, alias)
        existing = {str(v.version) for v in versions_of(store, name)}
        while len(history) >= 2:
            history.pop()  # the current holder
            if history[-1] in existing:
                return _roll_back_to(store, lock, name, alias, history)
        if not history:
            raise AliasNotFoundError(name, alias)
        raise PolicyError(
            f"tracked: alias {alias!r} of {name!r} has no earlier holder to roll back to "
            f"(it is on v{history[-1]}, its first holder still registered)"
        )


def _roll_back_to(
    store: Store, lock: RegistryLock, name: str, alias: str, history: list[str]
) -> str:
    previous = history[-1]
    lock.check()
    store.call(
        lambda c: c.set_registered_model_alias(name, alias, previous),
        what=f"move alias {alias!r} of {name!r} back to v{previous}",
    )
    _write_history(store, name, alias, history)
    return previous


def list_versions(name: str, *, tracking_uri: str | None = None) -> list[VersionRow]:
    """Every version of `name`, newest first."""
    store = registry_store(tracking_uri)
    # search_model_versions leaves aliases empty; the registered model has them all.
    by_version: dict[str, list[str]] = {}
    for alias, version in _aliases(registered_model(store, name)).items():
        by_version.setdefault(version, []).append(alias)
    rows = [_row(v, by_version.get(str(v.version), ())) for v in versions_of(store, name)]
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
    store = registry_store(tracking_uri)
    with registry_lock(store, name):
        model = registered_model(store, name)
        rows = sorted(versions_of(store, name), key=lambda v: int(v.version), reverse=True)
        protected_versions = set(_aliases(model).values())
        model_tags = model.tags or {}
        for alias in tags.prefixed(model_tags, HISTORY_TAG):
            protected_versions.update(tags.alias_history(model_tags, alias))
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
                _delete_version(store, name, version)
    return GcReport(name, deleted, kept, protected, dry_run)


def _delete_version(store: Store, name: str, version: str) -> None:
    store.call(
        lambda c: c.delete_model_version(name, version),
        what=f"delete {name!r} v{version}",
        idempotent=False,
    )


def _row(found: ModelVersion, aliases: Sequence[str] = ()) -> VersionRow:
    version_tags = found.tags or {}
    return VersionRow(
        name=found.name,
        version=str(found.version),
        aliases=tuple(sorted(aliases or getattr(found, "aliases", None) or ())),
        metrics=version_metrics(found),
        run_id=found.run_id,
        git_commit=tags.git_commit(version_tags),
        git_dirty=tags.git_dirty(version_tags),
        data=tags.prefixed(version_tags, tags.DATA_PREFIX),
        created=found.creation_timestamp,
        stage=found.current_stage if found.current_stage not in (None, "None") else None,
        decision=version_tags.get(tags.PROMOTION_DECISION),
    )


def _aliases(model: RegisteredModel) -> dict[str, str]:
    return {str(a): str(v) for a, v in (getattr(model, "aliases", None) or {}).items()}
