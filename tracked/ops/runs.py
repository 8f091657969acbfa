"""Runs: search them, show one, record one."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from tracked import tags as T
from tracked.errors import NotFoundError, StoreRejectedError
from tracked.ops.base import InputError, Param, Result, open_store, with_hint
from tracked.ops.models import configured_policy
from tracked.ranking import KeyMetric, choose_key_metric

if TYPE_CHECKING:
    from tracked.config import Settings
    from tracked.store import Store

__all__ = [
    "RunDetail",
    "RunList",
    "RunSummary",
    "log_run",
    "run_detail",
    "search_runs",
]


@dataclass(frozen=True)
class RunSummary(Result):
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
    flavor: str | None
    model_class: str | None

    _TIMES = ("start_time", "end_time")

    @classmethod
    def of(cls, run: Any, experiments: Mapping[str, str]) -> RunSummary:
        tags = run.data.tags
        return cls(
            run_id=run.info.run_id,
            name=run.info.run_name,
            experiment=experiments.get(run.info.experiment_id),
            status=run.info.status,
            start_time=run.info.start_time,
            end_time=run.info.end_time,
            metrics=dict(run.data.metrics),
            params=dict(run.data.params),
            git_commit=T.git_commit(tags),
            git_dirty=T.git_dirty(tags),
            model=tags.get(T.MODEL_NAME),
            model_version=tags.get(T.MODEL_VERSION),
            flavor=tags.get(T.model_tag("model", "flavor")),
            model_class=tags.get(T.MODEL_CLASS),
        )


@dataclass(frozen=True)
class RunList(Result):
    experiment: str
    filter: str | None
    key_metric: KeyMetric | None
    runs: list[RunSummary]
    other_experiments: list[str]  # without --experiment: other experiments that hold runs


@dataclass(frozen=True)
class RunDetail(Result):
    """One run in full: what `tracked show RUN_ID` prints."""

    run: RunSummary
    git_branch: str | None
    repo_url: str | None
    inputs: dict[str, str]  # argument name -> data digest
    tags: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        out = {"kind": "run", **self.run.to_dict()}
        out.update(git_branch=self.git_branch, repo_url=self.repo_url, inputs=dict(self.inputs))
        return {**out, "tags": dict(self.tags)}


# --------------------------------------------------------------------------- reading runs


def run_inputs(run: Any) -> dict[str, str]:
    """argument name -> the data digest tracked recorded for it (from the run's datasets)."""
    out = {}
    for entry in run.inputs.dataset_inputs if run.inputs else ():
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            profile = json.loads(entry.dataset.profile or "{}")
            out[entry.dataset.name] = profile.get("tracked.digest", entry.dataset.digest)
    return out


def get_run(store: Store, run_id: str, *, missing_ok: bool = False) -> Any:
    """The MLflow run `run_id`; a malformed or unknown id says so (never a store failure)."""
    try:
        run = store.get_or_none(lambda c: c.get_run(run_id), what=f"read run {run_id}")
    except StoreRejectedError:
        run = None  # INVALID_PARAMETER_VALUE: not an id the store could hold
    if run is None and not missing_ok:
        raise NotFoundError(f"run {run_id!r}", "list runs with `tracked runs -e '*'`")
    return run


def run_detail(store: Store, run_id: str, *, missing_ok: bool = False) -> RunDetail | None:
    run = get_run(store, run_id, missing_ok=missing_ok)
    if run is None:
        return None
    experiment_id = run.info.experiment_id
    experiment = store.get_or_none(
        lambda c: c.get_experiment(experiment_id), what=f"read experiment {experiment_id}"
    )
    names = {experiment_id: experiment.name} if experiment is not None else {}
    tags = dict(run.data.tags)
    return RunDetail(
        RunSummary.of(run, names),
        git_branch=tags.get(T.GIT_BRANCH),
        repo_url=tags.get(T.GIT_REPO_URL),
        inputs=run_inputs(run),
        tags={k: v for k, v in sorted(tags.items()) if not k.startswith("mlflow.log-model")},
    )


def experiment_names(store: Store) -> dict[str, str]:
    """id -> name of every active experiment."""
    found = store.pages(
        lambda c, token: c.search_experiments(max_results=1000, page_token=token),
        what="list experiments",
    )
    return {str(e.experiment_id): e.name for e in found}


def _experiment(store: Store, settings: Settings, given: str | None) -> tuple[str, dict[str, str]]:
    """The experiment to search (name) and the id -> name map of what to search in."""
    every = experiment_names(store)
    if given == "*":
        return "*", every
    if given is None and settings.experiment_id and settings.experiment_id in every:
        return every[settings.experiment_id], {
            settings.experiment_id: every[settings.experiment_id]
        }
    name = given or settings.experiment
    chosen = {i: n for i, n in every.items() if n == name}
    if not chosen and given is None:
        return name, {}  # the configured experiment has no runs yet: say where runs are
    if not chosen:
        error = NotFoundError(f"experiment {name!r}", "search every experiment with -e '*'")
        raise with_hint(error, name, every.values())
    return name, chosen


# --------------------------------------------------------------------------- operations


def _positive(limit: int) -> None:
    if limit < 1:
        raise InputError("--limit", limit, "how many runs to show: 1 or more")


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
    limit: Annotated[
        int,
        Param("most runs to return, newest first", flags=("--limit", "-n"), check=_positive),
    ] = 20,
    *,
    tracking_uri: str | None = None,
) -> RunList:
    """Runs of an experiment, newest first, optionally filtered by metrics, params or tags."""
    _positive(limit)
    with open_store(tracking_uri) as (settings, store):
        name, searched = _experiment(store, settings, experiment)
        try:
            runs = (
                []
                if not searched
                else store.call(
                    lambda c: c.search_runs(
                        list(searched),
                        filter_string=filter or "",
                        max_results=limit,
                        order_by=["attributes.start_time DESC"],
                    ),
                    what="search runs",
                )
            )
        except StoreRejectedError as error:
            raise InputError("filter", filter, _filter_fix(error.reason)) from None
        others: list[str] = []
        if experiment is None:
            others = _others_with_runs(store, set(searched))
        summaries = [RunSummary.of(r, searched) for r in runs]
        key = choose_key_metric(
            tags=next((r.data.tags for r in runs if T.KEY_METRIC in r.data.tags), {}),
            policy=configured_policy(settings, settings.champion_alias),
            setting=settings.key_metric,
            alias=settings.champion_alias,
            available={m for s in summaries for m in s.metrics},
        )
    return RunList(name, filter, key, summaries, others)


def _filter_fix(reason: str) -> str:
    text = reason.split(": ", 1)[-1] if reason.startswith("MlflowException") else reason
    return (
        f'{text.rstrip(".")}. Write e.g. "metrics.val_auc > 0.9", "params.C = \'0.1\'", '
        "\"tags.`mlflow.runName` = 'train'\""
    )


def _others_with_runs(store: Store, searched: set[str]) -> list[str]:
    """Names of other experiments holding runs (among the newest 1000 runs of the store)."""
    every = experiment_names(store)
    rest = [i for i in every if i not in searched]
    if not rest:
        return []
    found = store.call(
        lambda c: c.search_runs(rest, max_results=1000), what="look for runs in other experiments"
    )
    holding = {r.info.experiment_id for r in found}
    return sorted(every[i] for i in holding)


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

    with open_store(tracking_uri, must_exist=False) as (settings, store):
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
        run.flush(settings.http_timeout)  # a one-shot command: answer with the stored run
        recorded = get_run(store, str(run.run_id))
        experiments = {recorded.info.experiment_id: run.record.experiment}
    return RunSummary.of(recorded, experiments)
