"""Lineage: which code, data and params produced a registered model version.

`lineage("churn@champion")` answers "what exactly trained this?"; `find_versions(digest=...)`
answers the reverse, "which versions were trained on this exact data?".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from tracked.registry.versions import DATA_TAG, get_version, version_metrics
from tracked.registry.versions import client as _client

__all__ = ["InputLineage", "Lineage", "VersionMatch", "find_versions", "lineage"]


@dataclass(frozen=True)
class InputLineage:
    name: str
    digest: str
    kind: str | None = None
    context: str | None = None
    shape: tuple[int, ...] | None = None
    source: str | None = None
    nbytes: int | None = None


@dataclass(frozen=True)
class Lineage:
    model: str
    version: str
    run_id: str | None
    git_commit: str | None
    git_dirty: bool | None
    git_branch: str | None = None
    repo_url: str | None = None
    aliases: tuple[str, ...] = ()
    inputs: tuple[InputLineage, ...] = ()
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    created: int | None = None  # ms since the epoch
    tags: dict[str, str] = field(default_factory=dict)

    def input(self, name: str) -> InputLineage | None:
        return next((i for i in self.inputs if i.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VersionMatch:
    model: str
    version: str
    input: str  # the argument name the data was passed as
    digest: str
    run_id: str | None


def lineage(
    ref: str, version: int | str | None = None, *, tracking_uri: str | None = None
) -> Lineage:
    """Everything that produced the version `ref` names ("name@alias", "name", version=3)."""
    client = _client(tracking_uri)
    found = get_version(client, ref, version)
    return lineage_of(client, found)


def lineage_of(client: Any, found: Any) -> Lineage:
    """Lineage of an already-fetched ModelVersion (one run look-up)."""
    from mlflow.exceptions import MlflowException

    tags = dict(found.tags or {})
    run = None
    if found.run_id:
        try:
            run = client.get_run(found.run_id)
        except MlflowException:
            run = None  # the run was deleted: the version's own tags still tell most of it
    inputs = _inputs_from_run(run) if run is not None else ()
    if not inputs:
        inputs = tuple(
            InputLineage(name=k[len(DATA_TAG) :], digest=v)
            for k, v in sorted(tags.items())
            if k.startswith(DATA_TAG)
        )
    run_tags = run.data.tags if run is not None else {}
    dirty = tags.get("tracked.git.dirty", run_tags.get("tracked.git.dirty"))
    return Lineage(
        model=found.name,
        version=str(found.version),
        run_id=found.run_id,
        git_commit=tags.get("tracked.git.commit") or run_tags.get("mlflow.source.git.commit"),
        git_dirty=None if dirty is None else dirty == "true",
        git_branch=run_tags.get("mlflow.source.git.branch"),
        repo_url=run_tags.get("mlflow.source.git.repoURL"),
        aliases=tuple(getattr(found, "aliases", ()) or ()),
        inputs=inputs,
        params=dict(run.data.params) if run is not None else {},
        metrics=dict(run.data.metrics) if run is not None else version_metrics(found),
        created=found.creation_timestamp,
        tags=tags,
    )


def find_versions(
    digest: str, *, name: str | None = None, tracking_uri: str | None = None
) -> list[VersionMatch]:
    """Versions trained on data with this digest (full `xxh3-128:v1:...` or a hex prefix)."""
    client = _client(tracking_uri)
    wanted = digest.strip().lower()
    query = f"name = '{name}'" if name else ""
    matches = []
    for found in _all_versions(client, query):
        for key, value in (found.tags or {}).items():
            if key.startswith(DATA_TAG) and _same_digest(value, wanted):
                matches.append(
                    VersionMatch(
                        found.name, str(found.version), key[len(DATA_TAG) :], value, found.run_id
                    )
                )
    return sorted(matches, key=lambda m: (m.model, int(m.version), m.input))


def _same_digest(value: str, wanted: str) -> bool:
    value = value.lower()
    if value == wanted:
        return True
    hex_part = value.rsplit(":", 1)[-1]
    return len(wanted) >= 8 and hex_part.startswith(wanted.rsplit(":", 1)[-1])


def _all_versions(client: Any, query: str) -> list[Any]:
    out: list[Any] = []
    token = None
    while True:
        page = client.search_model_versions(query, max_results=1000, page_token=token)
        out.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return out


def _inputs_from_run(run: Any) -> tuple[InputLineage, ...]:
    found = []
    for entry in run.inputs.dataset_inputs if run.inputs else ():
        dataset = entry.dataset
        profile = _json(dataset.profile)
        source = _json(dataset.source)
        context = next((t.value for t in entry.tags if t.key == "mlflow.data.context"), None)
        shape = profile.get("shape")
        found.append(
            InputLineage(
                name=dataset.name,
                digest=profile.get("tracked.digest", dataset.digest),
                kind=profile.get("kind"),
                context=context,
                shape=tuple(shape) if shape is not None else None,
                source=source.get("uri"),
                nbytes=profile.get("nbytes"),
            )
        )
    return tuple(sorted(found, key=lambda i: i.name))


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
