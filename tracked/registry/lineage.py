"""Lineage: which code, data and params produced a registered model version.

`lineage("churn@champion")` answers "what exactly trained this?"; `find_versions(digest=...)`
answers the reverse, "which versions were trained on this exact data?".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tracked import tags
from tracked.registry.versions import (
    as_store,
    get_version,
    name_filter,
    registry_store,
    version_metrics,
)

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from tracked.registry.versions import StoreLike

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
    store = registry_store(tracking_uri)
    return lineage_of(store, get_version(store, ref, version))


def lineage_of(store: StoreLike, found: ModelVersion) -> Lineage:
    """Lineage of an already-fetched ModelVersion (one run look-up)."""
    store = as_store(store)
    version_tags = dict(found.tags or {})
    run = None
    if found.run_id:
        run_id = found.run_id
        # None when the run is gone: the version's own tags still tell most of it
        run = store.get_or_none(lambda c: c.get_run(run_id), what=f"read run {run_id}")
    inputs = _inputs_from_run(run) if run is not None else ()
    if not inputs:
        inputs = tuple(
            InputLineage(name=name, digest=digest)
            for name, digest in sorted(tags.prefixed(version_tags, tags.DATA_PREFIX).items())
        )
    both = {**(run.data.tags if run is not None else {}), **version_tags}  # the version's win
    return Lineage(
        model=found.name,
        version=str(found.version),
        run_id=found.run_id,
        git_commit=tags.git_commit(both),
        git_dirty=tags.git_dirty(both),
        git_branch=both.get(tags.GIT_BRANCH),
        repo_url=both.get(tags.GIT_REPO_URL),
        aliases=tuple(getattr(found, "aliases", ()) or ()),
        inputs=inputs,
        params=dict(run.data.params) if run is not None else {},
        metrics=dict(run.data.metrics) if run is not None else version_metrics(found),
        created=found.creation_timestamp,
        tags=version_tags,
    )


def find_versions(
    digest: str, *, name: str | None = None, tracking_uri: str | None = None
) -> list[VersionMatch]:
    """Versions trained on data with this digest (full `xxh3-128:v1:...` or a hex prefix)."""
    store = registry_store(tracking_uri)
    wanted = digest.strip().lower()
    query = name_filter(name) if name else ""
    found_versions = store.pages(
        lambda c, token: c.search_model_versions(query, max_results=1000, page_token=token),
        what=f"search versions{f' of {name!r}' if name else ''}",
    )
    matches = []
    for found in found_versions:
        for key, value in tags.prefixed(found.tags or {}, tags.DATA_PREFIX).items():
            if _same_digest(value, wanted):
                matches.append(
                    VersionMatch(found.name, str(found.version), key, value, found.run_id)
                )
    return sorted(matches, key=lambda m: (m.model, int(m.version), m.input))


def _same_digest(value: str, wanted: str) -> bool:
    value = value.lower()
    if value == wanted:
        return True
    hex_part = value.rsplit(":", 1)[-1]
    return len(wanted) >= 8 and hex_part.startswith(wanted.rsplit(":", 1)[-1])


def _inputs_from_run(run: Any) -> tuple[InputLineage, ...]:
    found = []
    for entry in run.inputs.dataset_inputs if run.inputs else ():
        dataset = entry.dataset
        profile = _json(dataset.profile)
        source = _json(dataset.source)
        context = next((t.value for t in entry.tags if t.key == tags.DATASET_CONTEXT), None)
        shape = profile.get("shape")
        found.append(
            InputLineage(
                name=dataset.name,
                digest=profile.get(tags.PROFILE_DIGEST, dataset.digest),
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
