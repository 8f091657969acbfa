"""Registered models and their versions: create, tag, and resolve "name@alias" references.

Version tags carry what registry queries need (run id, commit, dirty flag, metrics, data
digests), so listing or comparing versions never has to look up their runs.

Every call goes through the store door (`tracked.store`): bounded, and failing with tracked's
errors, so a dead server reads "server not reachable" (StoreUnavailableError) within the store's
bounds and only an answer from the store reads "not found".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from tracked import tags
from tracked.errors import (
    AliasNotFoundError,
    ModelNotFoundError,
    NotFoundError,
    StoreRejectedError,
    TrackingError,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

    from tracked.record import RunRecord
    from tracked.store import Store

    # What registry functions take: a Store. A raw MlflowClient is still accepted (turned into
    # the Store of its URIs by `as_store`) while callers move over; it goes once they have.
    StoreLike: TypeAlias = Store | MlflowClient

__all__ = [
    "as_store",
    "client",
    "get_version",
    "model_name_for",
    "name_filter",
    "parse_ref",
    "register_run_model",
    "register_version",
    "registered_model",
    "registry_store",
    "version_metrics",
    "version_tags",
    "versions_of",
]

_REF = re.compile(r"^(?P<name>[^@]+?)(?:@(?P<alias>[^@/]+)|/(?P<version>\d+))?$")
METRIC_TAG = tags.METRIC_PREFIX  # kept for callers that import them from here
DATA_TAG = tags.DATA_PREFIX


def registry_store(tracking_uri: str | None = None) -> Store:
    """The store of tracked's configured registry (or of `tracking_uri`)."""
    from tracked.store import store_for

    return store_for(tracking_uri=tracking_uri)


def client(tracking_uri: str | None = None) -> MlflowClient:
    """The raw MLflow client of `registry_store(tracking_uri)`: unbounded, for callers not moved
    to `Store` yet (models/loading.py). Registry code uses `registry_store`."""
    return registry_store(tracking_uri).client


def as_store(store: StoreLike) -> Store:
    """`store` itself, or for a raw MlflowClient handed in by a caller not moved to `Store` yet,
    the Store of the same tracking and registry URIs (so its calls are bounded too)."""
    from tracked.config import get_config
    from tracked.store import Store, store_for

    if isinstance(store, Store):
        return store
    # MLflow's client keeps its URIs private; this goes once every caller passes a Store.
    tracking_uri = store._tracking_client.tracking_uri
    settings = get_config().replace(tracking_uri=tracking_uri, registry_uri=store._registry_uri)
    return store_for(settings)


def parse_ref(ref: str, version: int | str | None = None) -> tuple[str, str | None, str | None]:
    """(name, alias, version) from "name@alias", "name/3" or "name" plus `version`."""
    match = _REF.match(ref.strip())
    if not match:
        raise TrackingError(
            f"tracked: model reference {ref!r} is not NAME, NAME@ALIAS or NAME/VERSION"
        )
    name, alias, number = match["name"], match["alias"], match["version"]
    if version is not None:
        if alias or number:
            raise TrackingError(f"tracked: {ref!r} already names a version; drop version=")
        number = str(version)
    return name, alias, number


def register_version(
    store: StoreLike,
    name: str,
    *,
    source: str,
    run_id: str,
    tags: Mapping[str, str],
    description: str | None = None,
    model_id: str | None = None,
) -> ModelVersion:
    """Create the next version of `name` (and the registered model on first use); `model_id`
    links it to MLflow 3's logged model it was registered from."""
    from tracked.tags import MANAGED

    store = as_store(store)
    try:
        store.call(  # sent again after a lost answer: "already exists" is handled below
            lambda c: c.create_registered_model(name, tags={MANAGED: "true"}),
            what=f"create registered model {name!r}",
        )
    except StoreRejectedError as error:
        if error.code != "RESOURCE_ALREADY_EXISTS":
            raise
    version_tags = dict(tags)
    return store.call(
        lambda c: c.create_model_version(
            name,
            source=source,
            run_id=run_id,
            tags=version_tags,
            description=description,
            model_id=model_id,
        ),
        what=f"register a version of {name!r}",
        idempotent=False,
        found=None if "'" in name else functools.partial(_version_of, name, run_id, source),
    )


def _version_of(name: str, run_id: str, source: str, client: MlflowClient) -> ModelVersion | None:
    """The version of `name` registered from `run_id`'s `source`, if there is one (a create
    whose answer was lost)."""
    found = client.search_model_versions(f"name = '{name}' AND run_id = '{run_id}'")
    return next((v for v in found if v.source == source), None)


def model_name_for(record: RunRecord, naming: str, flavor: str) -> str:
    """The registered-model name for the run's model: `record.model_name` or `naming`."""
    from tracked.models.naming import render_model_name

    return render_model_name(
        record.model_name or naming,
        project=record.project,
        name=record.name,
        experiment=record.experiment,
        flavor=flavor,
        tags=record.tags,
    )


def version_tags(record: RunRecord, run_id: str, flavor: str) -> dict[str, str]:
    """What a version carries so registry queries need no run look-ups."""
    out = {
        tags.VERSION_RUN_ID: run_id,
        tags.RUN_UUID: record.run_uuid,
        tags.FLAVOR: flavor,
        tags.VERSION_PROJECT: record.project,
        tags.VERSION_EXPERIMENT: record.experiment,
    }
    if tags.GIT_COMMIT in record.tags:
        out[tags.VERSION_GIT_COMMIT] = record.tags[tags.GIT_COMMIT]
        out[tags.GIT_DIRTY] = record.tags.get(tags.GIT_DIRTY, "unknown")
    out.update({f"{tags.METRIC_PREFIX}{k}": repr(v) for k, v in record.latest_metrics().items()})
    out.update({f"{tags.DATA_PREFIX}{i.name}": i.digest for i in record.inputs})
    for name in (tags.KEY_METRIC, tags.MODEL_CLASS):
        if record.tags.get(name):
            out[name] = record.tags[name]
    return out


def register_run_model(
    store: StoreLike,
    record: RunRecord,
    *,
    run_id: str,
    source: str,
    flavor: str,
    naming: str,
    reuse_existing: bool = False,
    model_id: str | None = None,
    description: str | None = None,
    extra_tags: Mapping[str, str] | None = None,
) -> ModelVersion:
    """Register the run's model as the next version of its templated name.

    With `reuse_existing` (a run replayed from its journal), a version this run already
    registered is returned instead of creating a duplicate.
    """
    store = as_store(store)
    name = model_name_for(record, naming, flavor)
    if reuse_existing:
        for found in versions_of(store, name, must_exist=False):
            if found.run_id == run_id:
                return found
    found_tags = {**version_tags(record, run_id, flavor), **dict(extra_tags or {})}
    return register_version(
        store,
        name,
        source=source,
        run_id=run_id,
        tags={k: v for k, v in found_tags.items() if v},
        description=description,
        model_id=model_id,
    )


def get_version(store: StoreLike, ref: str, version: int | str | None = None) -> ModelVersion:
    """The version `ref` names: an alias, "latest" (highest number), or a number.

    An alias is looked up in the spelling given, then lower-case (the spelling tracked writes).
    """
    store = as_store(store)
    name, alias, number = parse_ref(ref, version)
    if number is not None:
        return _version(store, name, number)
    if alias is None or alias.lower() == "latest":
        found = versions_of(store, name)
        if not found:
            raise ModelNotFoundError(name, "latest")
        return max(found, key=lambda v: int(v.version))
    aliases = _aliases(registered_model(store, name))
    held = aliases.get(alias, aliases.get(alias.lower()))
    if held is None:
        raise AliasNotFoundError(name, alias)
    return _version(store, name, held)


def registered_model(store: Store, name: str) -> RegisteredModel:
    """The registered model `name` (aliases and tags); ModelNotFoundError when there is none."""
    try:
        return store.call(
            lambda c: c.get_registered_model(name), what=f"read registered model {name!r}"
        )
    except NotFoundError:
        raise ModelNotFoundError(name) from None


def versions_of(store: Store, name: str, *, must_exist: bool = True) -> list[ModelVersion]:
    """Every version of `name`; ModelNotFoundError when the model does not exist (`must_exist`).

    The versions a search returns have no aliases: read them from `registered_model`.
    """
    found = store.pages(
        lambda c, token: c.search_model_versions(
            name_filter(name), max_results=1000, page_token=token
        ),
        what=f"list versions of {name!r}",
    )
    if not found and must_exist:
        registered_model(store, name)  # ModelNotFoundError when the model itself is missing
    return found


def version_metrics(version: Any) -> dict[str, float]:
    """The run metrics stored on a version as `tracked.metric.<key>` tags."""
    return tags.metrics(version.tags or {})


def _version(store: Store, name: str, number: str) -> ModelVersion:
    try:
        return store.call(
            lambda c: c.get_model_version(name, number), what=f"read {name!r} version {number}"
        )
    except NotFoundError:
        raise ModelNotFoundError(name, number) from None


def _aliases(model: Any) -> dict[str, str]:
    return {str(a): str(v) for a, v in (getattr(model, "aliases", None) or {}).items()}


def name_filter(name: str) -> str:
    """The search filter for the versions of registered model `name`."""
    return "name = '{}'".format(name.replace("'", "\\'"))
