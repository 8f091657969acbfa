"""Ranking versions: by the key metric (tracked/ranking.py says which and which way)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from tracked.config import did_you_mean
from tracked.ops.base import InputError, Param, Result, open_store
from tracked.ops.models import ModelName, VersionInfo, configured_policy, run_tags, version_rows
from tracked.ranking import KeyMetric, choose_key_metric

if TYPE_CHECKING:
    from tracked.config import Settings
    from tracked.store import Store

__all__ = ["BestVersion", "Comparison", "best_version", "compare", "key_metric_of"]

MetricOption = Annotated[
    str | None,
    Param(
        "metric to rank by (default: the key metric: the run's tracked.key_metric tag, the "
        "champion policy's first metric, the key_metric setting, else a well-known name)",
        flags=("--metric", "-m"),
    ),
]
Direction = Annotated[
    bool | None,
    Param(
        "override which way is better (default: from the policy, else the metric's name: "
        "loss, rmse, error, latency... lower is better)",
        flags=("--higher-is-better/--lower-is-better",),
    ),
]


@dataclass(frozen=True)
class Comparison(Result):
    model: str
    metric: str
    higher_is_better: bool
    key_metric: KeyMetric
    best: str | None  # the best version that logged the metric
    versions: list[VersionInfo]  # best first; versions without the metric last


@dataclass(frozen=True)
class BestVersion(Result):
    model: str
    metric: str
    higher_is_better: bool
    key_metric: KeyMetric
    version: VersionInfo


def key_metric_of(
    store: Store,
    settings: Settings,
    rows: list[VersionInfo],
    metric: str | None = None,
    higher_is_better: bool | None = None,
) -> KeyMetric | None:
    """The key metric of a model's versions (the newest version's run names it, if any)."""
    alias = settings.champion_alias
    return choose_key_metric(
        metric=metric,
        higher_is_better=higher_is_better,
        tags=run_tags(store, rows[0]) if rows and not metric else {},
        policy=configured_policy(settings, alias),
        alias=alias,
        setting=settings.key_metric,
        available={m for r in rows for m in r.metrics},
    )


def _ranked(
    name: str,
    metric: str | None,
    versions: list[int] | None,
    higher_is_better: bool | None,
    tracking_uri: str | None,
) -> tuple[KeyMetric, list[VersionInfo]]:
    with open_store(tracking_uri) as (settings, store):
        rows = version_rows(store, name)
        if versions:
            wanted = {str(v) for v in versions}
            unknown = sorted(wanted - {r.version for r in rows}, key=int)
            if unknown:
                have = ", ".join(r.version for r in reversed(rows)) or "none"
                raise InputError(f"version of {name!r}", int(unknown[0]), f"its versions: {have}")
            rows = [r for r in rows if r.version in wanted]
        key = key_metric_of(store, settings, rows, metric, higher_is_better)
    logged = sorted({m for r in rows for m in r.metrics})
    if key is None:
        raise InputError(
            "metric",
            None,
            f"no key metric for {name!r}: pass --metric (logged: {', '.join(logged) or 'none'})",
        )
    if key.name not in logged:
        hint = did_you_mean(key.name, logged)
        raise InputError(
            f"metric (chosen by {key.chosen_by})",
            key.name,
            f"no version of {name!r} logged it{hint}; logged: {', '.join(logged) or 'none'}",
        )
    sign = -1.0 if key.higher_is_better else 1.0
    ranked = sorted(
        rows,
        key=lambda r: (
            key.name not in r.metrics,
            sign * r.metrics.get(key.name, 0.0),
            -int(r.version),
        ),
    )
    return key, ranked


def compare(
    name: ModelName,
    metric: MetricOption = None,
    versions: Annotated[
        list[int] | None, Param("only these versions (default: all)", flags=("--versions",))
    ] = None,
    higher_is_better: Direction = None,
    *,
    tracking_uri: str | None = None,
) -> Comparison:
    """Versions side by side, ranked by the key metric, best first."""
    key, rows = _ranked(name, metric, versions, higher_is_better, tracking_uri)
    best = rows[0].version if rows and key.name in rows[0].metrics else None
    return Comparison(name, key.name, key.higher_is_better, key, best, rows)


def best_version(
    name: ModelName,
    metric: MetricOption = None,
    higher_is_better: Direction = None,
    *,
    tracking_uri: str | None = None,
) -> BestVersion:
    """The version with the best value of the key metric."""
    key, rows = _ranked(name, metric, None, higher_is_better, tracking_uri)
    return BestVersion(name, key.name, key.higher_is_better, key, rows[0])
