"""Registered models and their versions: create, tag, and resolve "name@alias" references.

Version tags carry what registry queries need (run id, commit, dirty flag, metrics, data
digests), so listing or comparing versions never has to look up their runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tracked.errors import AliasNotFoundError, ModelNotFoundError, TrackingError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from tracked.record import RunRecord

__all__ = [
    "client",
    "get_version",
    "model_name_for",
    "parse_ref",
    "register_run_model",
    "register_version",
    "version_metrics",
    "version_tags",
]

_REF = re.compile(r"^(?P<name>[^@]+?)(?:@(?P<alias>[^@/]+)|/(?P<version>\d+))?$")
METRIC_TAG = "tracked.metric."
DATA_TAG = "tracked.data."


def client(tracking_uri: str | None = None) -> MlflowClient:
    """The MLflow client for tracked's configured store (or `tracking_uri`)."""
    from tracked.config import get_config
    from tracked.writers.mlflow import client_for

    settings = get_config().replace(tracking_uri=tracking_uri)
    return client_for(settings.tracking_uri, settings.registry_uri)


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
    client: MlflowClient,
    name: str,
    *,
    source: str,
    run_id: str,
    tags: Mapping[str, str],
    description: str | None = None,
) -> ModelVersion:
    """Create the next version of `name` (and the registered model on first use)."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name, tags={"tracked.managed": "true"})
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    return client.create_model_version(
        name, source=source, run_id=run_id, tags=dict(tags), description=description
    )


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
    tags = {
        "tracked.run_id": run_id,
        "tracked.run_uuid": record.run_uuid,
        "tracked.flavor": flavor,
        "tracked.project": record.project,
        "tracked.experiment": record.experiment,
    }
    if "mlflow.source.git.commit" in record.tags:
        tags["tracked.git.commit"] = record.tags["mlflow.source.git.commit"]
        tags["tracked.git.dirty"] = record.tags.get("tracked.git.dirty", "unknown")
    tags.update({f"{METRIC_TAG}{k}": repr(v) for k, v in record.latest_metrics().items()})
    tags.update({f"{DATA_TAG}{i.name}": i.digest for i in record.inputs})
    return tags


def register_run_model(
    client: MlflowClient,
    record: RunRecord,
    *,
    run_id: str,
    source: str,
    flavor: str,
    naming: str,
    reuse_existing: bool = False,
) -> ModelVersion:
    """Register the run's model as the next version of its templated name.

    With `reuse_existing` (replaying a spooled run), a version this run already registered is
    returned instead of creating a duplicate.
    """
    name = model_name_for(record, naming, flavor)
    if reuse_existing:
        for found in client.search_model_versions(f"name = '{_quote(name)}'"):
            if found.run_id == run_id:
                return found
    return register_version(
        client, name, source=source, run_id=run_id, tags=version_tags(record, run_id, flavor)
    )


def get_version(client: MlflowClient, ref: str, version: int | str | None = None) -> ModelVersion:
    """The version `ref` names: an alias, "latest" (highest number), or a number."""
    from mlflow.exceptions import MlflowException

    name, alias, number = parse_ref(ref, version)
    try:
        if number is not None:
            return client.get_model_version(name, number)
        if alias in (None, "latest"):
            versions = client.search_model_versions(f"name = '{_quote(name)}'")
            if not versions:
                client.get_registered_model(name)  # raises when the model doesn't exist
                raise ModelNotFoundError(name, "latest")
            return max(versions, key=lambda v: int(v.version))
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
            if alias not in (None, "latest") and _model_exists(client, name):
                raise AliasNotFoundError(name, alias) from None
            raise ModelNotFoundError(name, number) from None
        raise


def version_metrics(version: Any) -> dict[str, float]:
    """The run metrics stored on a version as `tracked.metric.<key>` tags."""
    out = {}
    for key, value in (version.tags or {}).items():
        if key.startswith(METRIC_TAG):
            try:
                out[key[len(METRIC_TAG) :]] = float(value)
            except ValueError:
                continue
    return out


def _model_exists(client: MlflowClient, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        return False
    return True


def _quote(text: str) -> str:
    return text.replace("'", "\\'")
