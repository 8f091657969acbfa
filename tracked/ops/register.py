"""Registering the model a run logged (`tracked register`), for runs trained with
`register=False`: the version carries the tags the run pipeline would have put on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from tracked import tags as T
from tracked.errors import ModelLoggingError
from tracked.ops.base import Param, Result, open_store
from tracked.ops.runs import get_run, run_inputs

__all__ = ["RegisteredVersion", "register_model"]


@dataclass(frozen=True)
class RegisteredVersion(Result):
    model: str
    version: str
    run_id: str
    source: str
    already_registered: bool


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

    with open_store(tracking_uri) as (settings, store):
        run = get_run(store, run_id)
        tags = dict(run.data.tags)
        flavor = tags.get(T.model_tag("model", "flavor"))
        if not flavor:
            raise ModelLoggingError(f"of run {run_id}", "the run logged no model (no flavor tag)")
        experiment_id = run.info.experiment_id
        experiment = store.call(
            lambda c: c.get_experiment(experiment_id).name, what="read the run's experiment"
        )
        wanted = name or tags.get(T.MODEL_NAME)
        if wanted is None:
            wanted = render_model_name(
                settings.naming,
                project=tags.get(T.PROJECT, settings.project),
                name=tags.get(T.NAME) or run.info.run_name or "run",
                experiment=experiment,
                flavor=flavor,
                tags=tags,
            )
        model_id = tags.get(T.model_tag("model", "id"))
        if model_id:  # MLflow 3's logged model: register from it, linked
            logged = store.call(lambda c: c.get_logged_model(model_id), what="read the model")
            source = str(logged.artifact_location)
        else:  # a model logged as run artifacts (tracked 0.1)
            source = f"{run.info.artifact_uri}/model"
        existing = store.call(
            lambda c: c.search_model_versions(f"run_id = '{run_id}'"),
            what=f"look up versions of run {run_id}",
        )
        for found in existing:
            if found.name == wanted:
                return RegisteredVersion(wanted, str(found.version), run_id, source, True)
        version_tags = _version_tags(run, flavor, experiment)
        created = register_version(
            store, wanted, source=source, run_id=run_id, tags=version_tags, model_id=model_id
        )
        version = str(created.version)

        def tag_run(client: Any) -> None:
            client.set_tag(run_id, T.MODEL_NAME, wanted)
            client.set_tag(run_id, T.MODEL_VERSION, version)

        store.call(tag_run, what=f"tag run {run_id}")
    return RegisteredVersion(wanted, version, run_id, source, False)


def _version_tags(run: Any, flavor: str, experiment: str) -> dict[str, str]:
    """What a version carries (see registry.versions.version_tags), read back from its run."""
    tags = run.data.tags
    out = {T.VERSION_RUN_ID: run.info.run_id, T.FLAVOR: flavor, T.VERSION_EXPERIMENT: experiment}
    for key in (T.RUN_UUID, T.VERSION_PROJECT, T.MODEL_CLASS, T.KEY_METRIC):
        if key in tags:
            out[key] = tags[key]
    commit = T.git_commit(tags)
    if commit:
        out[T.VERSION_GIT_COMMIT] = commit
        out[T.GIT_DIRTY] = tags.get(T.GIT_DIRTY, "unknown")
    out.update({f"{T.METRIC_PREFIX}{k}": repr(v) for k, v in run.data.metrics.items()})
    out.update({f"{T.DATA_PREFIX}{k}": v for k, v in run_inputs(run).items()})
    return out
