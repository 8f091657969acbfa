"""Registry reads: registered models and their versions."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from tracked import tags as T
from tracked.errors import ModelNotFoundError
from tracked.ops.base import InputError, Param, Result, model_names, open_store, with_hint
from tracked.ranking import KeyMetric

if TYPE_CHECKING:
    from tracked.config import Settings
    from tracked.store import Store

__all__ = [
    "ModelList",
    "ModelSummary",
    "VersionInfo",
    "VersionList",
    "configured_policy",
    "list_models",
    "list_versions",
    "registered_model",
    "version_rows",
]


ModelName = Annotated[str, Param("registered model name")]


def verdict(tag: str | None) -> str | None:
    """A recorded decision in one wording everywhere: promoted, forced or refused."""
    return "refused" if tag == "rejected" else tag


@dataclass(frozen=True)
class VersionInfo(Result):
    """One version as listings show it, read from its tags (no run look-up)."""

    name: str
    version: str
    aliases: tuple[str, ...]
    metrics: dict[str, float]
    run_id: str | None
    git_commit: str | None
    git_dirty: bool | None
    data: dict[str, str]
    created: int | None
    stage: str | None
    decision: str | None
    flavor: str | None
    model_class: str | None

    _TIMES = ("created",)

    @classmethod
    def of(cls, found: Any, aliases: tuple[str, ...] = ()) -> VersionInfo:
        tags = dict(found.tags or {})
        metrics = {}
        for key, value in T.prefixed(tags, T.METRIC_PREFIX).items():
            with contextlib.suppress(ValueError):
                metrics[key] = float(value)
        stage = found.current_stage if found.current_stage not in (None, "None") else None
        return cls(
            name=found.name,
            version=str(found.version),
            aliases=tuple(sorted(aliases)),
            metrics=metrics,
            run_id=found.run_id or None,
            git_commit=T.git_commit(tags),
            git_dirty=T.git_dirty(tags),
            data=T.prefixed(tags, T.DATA_PREFIX),
            created=found.creation_timestamp,
            stage=stage,
            decision=verdict(tags.get(T.PROMOTION_DECISION)),
            flavor=tags.get(T.FLAVOR),
            model_class=tags.get(T.MODEL_CLASS),
        )


@dataclass(frozen=True)
class ModelSummary(Result):
    name: str
    versions: int
    latest_version: str | None
    aliases: dict[str, str]
    key_metric: KeyMetric | None
    champion_alias: str
    champion: str | None
    champion_metric: float | None
    updated: int | None
    description: str | None = None

    _TIMES = ("updated",)


@dataclass(frozen=True)
class ModelList(Result):
    models: list[ModelSummary]


@dataclass(frozen=True)
class VersionList(Result):
    model: str
    key_metric: KeyMetric | None
    versions: list[VersionInfo]  # newest first


# --------------------------------------------------------------------------- reading


def registered_model(store: Store, name: str) -> Any:
    """The registered model `name`; not found says which names are close."""
    if ":" in name or "/" in name:
        raise InputError("model name", name, "a registered model's name has no '/' or ':'")
    found = store.get_or_none(
        lambda c: c.get_registered_model(name), what=f"read registered model {name!r}"
    )
    if found is None:
        raise with_hint(ModelNotFoundError(name), name, model_names(store))
    return found


def version_rows(store: Store, name: str) -> list[VersionInfo]:
    """Every version of `name`, newest first, with the aliases each holds."""
    model = registered_model(store, name)
    held: dict[str, list[str]] = {}
    for alias, number in (getattr(model, "aliases", None) or {}).items():
        held.setdefault(str(number), []).append(alias)
    quoted = name.replace("'", "\\'")
    found = store.pages(
        lambda c, token: c.search_model_versions(
            f"name = '{quoted}'", max_results=1000, page_token=token
        ),
        what=f"list versions of {name!r}",
    )
    rows = [VersionInfo.of(v, tuple(held.get(str(v.version), ()))) for v in found]
    return sorted(rows, key=lambda r: int(r.version), reverse=True)


def configured_policy(settings: Settings, alias: str) -> Any:
    """The configured policy for `alias` for ranking purposes; a broken one is warned about."""
    from tracked.errors import PolicyError
    from tracked.ops.promotion import configured_policies
    from tracked.problems import logger

    try:
        return configured_policies(settings).get(alias)
    except PolicyError as error:
        logger.warning("%s (ranking without it)", error)
        return None


# --------------------------------------------------------------------------- operations


def list_models(
    metric: Annotated[
        str | None,
        Param(
            "metric to show for each champion (default: the key metric: the run's "
            "tracked.key_metric tag, the champion policy's first metric, the key_metric "
            "setting, else a well-known name such as val_auc)",
            flags=("--metric", "-m"),
        ),
    ] = None,
    *,
    tracking_uri: str | None = None,
) -> ModelList:
    """Registered models with their aliases, latest version and the champion's key metric."""
    from tracked.ranking import choose_key_metric
    from tracked.registry.lifecycle import LOCK_SUFFIX

    with open_store(tracking_uri) as (settings, store):
        alias = settings.champion_alias
        policy = configured_policy(settings, alias)
        found = store.pages(
            lambda c, token: c.search_registered_models(max_results=1000, page_token=token),
            what="list registered models",
        )
        models = []
        for model in sorted(found, key=lambda m: m.name):
            if (model.tags or {}).get(T.LOCK) == "true" or model.name.endswith(LOCK_SUFFIX):
                continue  # a promotion in progress, not a model
            rows = version_rows(store, model.name)
            aliases = {a: str(v) for a, v in sorted((model.aliases or {}).items())}
            champion = next((r for r in rows if r.version == aliases.get(alias)), None)
            source = champion or (rows[0] if rows else None)
            key = choose_key_metric(
                metric=metric,
                tags={**(model.tags or {}), **run_tags(store, source)},
                policy=policy,
                alias=alias,
                setting=settings.key_metric,
                available=source.metrics if source is not None else (),
            )
            value = champion.metrics.get(key.name) if champion and key else None
            models.append(
                ModelSummary(
                    name=model.name,
                    versions=len(rows),
                    latest_version=rows[0].version if rows else None,
                    aliases=aliases,
                    key_metric=key,
                    champion_alias=alias,
                    champion=champion.version if champion is not None else None,
                    champion_metric=value,
                    updated=model.last_updated_timestamp,
                    description=model.description or None,
                )
            )
        return ModelList(models)


def run_tags(store: Store, row: VersionInfo | None) -> dict[str, str]:
    """The tags of the run behind `row` that name its key metric (none without a run)."""
    if row is None or row.run_id is None:
        return {}
    run_id = row.run_id
    run = store.get_or_none(lambda c: c.get_run(run_id), what=f"read run {run_id}")
    tags = dict(run.data.tags) if run is not None else {}
    return {T.KEY_METRIC: tags[T.KEY_METRIC]} if T.KEY_METRIC in tags else {}


def list_versions(name: ModelName, *, tracking_uri: str | None = None) -> VersionList:
    """Versions of a registered model, newest first: aliases, metrics, flavor, commit, data."""
    from tracked.ops.compare import key_metric_of

    with open_store(tracking_uri) as (settings, store):
        rows = version_rows(store, name)
        return VersionList(name, key_metric_of(store, settings, rows), rows)
