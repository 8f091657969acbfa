"""Ray Tune inside a run: trials running in Ray's worker processes are child runs of the run.

Imported by `scope` only when `ray.tune` is. A `ray.tune.Tuner(trainable, ...)` made inside a run
block (or a decorated function) with a function trainable gets that function wrapped: the
wrapper carries the sweep's run id and tracking URI to the workers inside the pickled trainable
itself (nothing to set in the workers' environment), and in the worker runs each trial inside
`tracked.run("trial-<trial id>", parent=<the sweep's run id>)`: the trial's `config` as params,
every `tune.report(metrics)` as metrics with step = Tune's `training_iteration` (numbers only),
its id as the `tracked.trial` tag, and the state COMPLETE or FAIL (an exception: the run ends
FAILED). Framework calls inside the trainable are captured into the trial's run as anywhere
else. The trial's run is sent before the trial returns (Ray may end its worker right after).

The sweep's run gets `tracked.sweep.engine` = ray; after `Tuner.fit`, when the `TuneConfig`
names a `metric` and `mode`, the best trial's id as `tracked.sweep.best_trial` and its value of
that metric as `best_value`. A trial's model (`tracked.log_model(model)` in the trainable, or a
captured training's) is logged in the trial's run, never registered there; the best trial's
model is registered from its run under the sweep's model name, and the sweep run's promotion
policies are applied to that version.

Only a Tuner made inside the run is wrapped (the trainable is read when the Tuner is made);
class trainables and `tune.run` are left as they are.
"""

from __future__ import annotations

import functools
import inspect
import numbers
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tracked import active
from tracked import tags as T
from tracked.integrations import scope, sweeps
from tracked.integrations.scope import Hook

if TYPE_CHECKING:
    from tracked.run import TrackedRun

__all__ = ["patch_targets"]

_FRAMEWORK = "ray"
# Tuners made inside a run -> (the sweep's run, the TuneConfig's metric and mode)
_sweeps: weakref.WeakKeyDictionary[Any, tuple[TrackedRun, str | None, str | None]] = (
    weakref.WeakKeyDictionary()
)
# A trial's run -> how many times it reported (Tune's training_iteration)
_reports: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def patch_targets() -> list[tuple[Any, str, Hook]]:
    """`Tuner.__init__` and `Tuner.fit` (the driver), `tune.report` (the workers)."""
    import ray.tune
    import ray.tune.tuner

    return [
        (ray.tune.tuner.Tuner, "__init__", _tuner_init),
        (ray.tune.tuner.Tuner, "fit", _tuner_fit),
        (ray.tune, "report", _report),
    ]


def _tuner_init(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    run = active.current_run()
    trainable = args[0] if args else kwargs.get("trainable")
    if run is None or not inspect.isfunction(trainable):
        return wrapped(*args, **kwargs)
    try:
        parent = run.run_id
        if parent is None:
            raise RuntimeError("the run has no id in the store yet (is the store reachable?)")
        options = {
            "tracking_uri": run.settings.tracking_uri,
            "project": run.settings.project,
            "strict": run.settings.strict,
        }
        traced = _trial_function(trainable, parent, options)
        config = kwargs.get("tune_config")
        _sweeps[instance] = (
            run,
            getattr(config, "metric", None),
            getattr(config, "mode", None),
        )
        run.set_tags({T.SWEEP_ENGINE: _FRAMEWORK})
    except Exception as exc:
        scope.report_failure(run, _FRAMEWORK, exc, call="Tuner")
        return wrapped(*args, **kwargs)
    if args:
        args = (traced, *args[1:])
    else:
        kwargs = {**kwargs, "trainable": traced}
    return wrapped(*args, **kwargs)


def _trial_function(
    function: Callable[..., Any], parent: str, options: dict[str, Any]
) -> Callable[..., Any]:
    """`function` as each trial runs it in its worker: inside the trial's run."""

    @functools.wraps(function)
    def trial(config: Any, *args: Any, **kwargs: Any) -> Any:
        return run_trial(function, parent, options, config, *args, **kwargs)

    return trial


def run_trial(
    function: Callable[..., Any],
    parent: str,
    options: dict[str, Any],
    config: Any,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """In the worker: the trial in its run (a child of the sweep's run), sent before it returns."""
    from ray import tune

    trial_id = tune.get_context().get_trial_id()
    run = sweeps.trial_run(
        parent, f"trial-{trial_id}", trial=trial_id, params=dict(config or {}), **options
    )
    state = "FAIL"
    try:
        with run:
            try:
                result = function(config, *args, **kwargs)
                state = "COMPLETE"
            finally:
                run.set_tags({T.TRIAL_STATE: state})
    finally:
        run.flush()  # Ray may end this worker as soon as the trial returns
    return result


def _report(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    run = active.current_run()
    if run is not None:
        try:
            metrics = args[0] if args else kwargs.get("metrics")
            step = _reports.get(run, 0) + 1
            _reports[run] = step
            values = {
                key: value
                for key, value in (metrics or {}).items()
                if isinstance(value, numbers.Real) and not isinstance(value, bool)
            }
            run.log_metrics(values, step=step)
        except Exception as exc:
            scope.report_failure(run, _FRAMEWORK, exc, call="tune.report")
    return wrapped(*args, **kwargs)


def _tuner_fit(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    results = wrapped(*args, **kwargs)
    found = _sweeps.pop(instance, None)
    if found is None:
        return results
    run, metric, mode = found
    try:
        _best(run, results, metric, mode)
    except Exception as exc:
        scope.report_failure(run, _FRAMEWORK, exc, call="Tuner.fit")
    return results


def _best(run: TrackedRun, results: Any, metric: str | None, mode: str | None) -> None:
    """The best trial on the sweep's run; its model registered from its run."""
    if metric is None or mode is None:
        return
    best = results.get_best_result(metric=metric, mode=mode)
    trial_id = best.metrics.get("trial_id")
    value = best.metrics.get(metric)
    if trial_id is None:
        return
    run.set_tags({T.SWEEP_BEST_TRIAL: trial_id})
    if isinstance(value, numbers.Real):
        run.log_metrics({"best_value": float(value)})
    if run.register:
        _register_best(run, str(trial_id))


def _register_best(run: TrackedRun, trial_id: str) -> None:
    """Register the model the best trial's run logged, named as the sweep's run would name its
    own, and apply the sweep run's promotion policies to that version."""
    from tracked.models.naming import render_model_name
    from tracked.ops.register import register_model
    from tracked.store import store_for

    parent_id = run.run_id
    if parent_id is None:
        return
    store = store_for(run.settings)
    experiment_id = store.call(
        lambda c: c.get_run(parent_id).info.experiment_id, what="read the sweep's run"
    )
    found = store.call(
        lambda c: c.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.`{T.PARENT_RUN_ID}` = '{parent_id}' and tags.`{T.TRIAL}` = '{trial_id}'"
            ),
        ),
        what="find the best trial's run",
    )
    if not found:
        return
    trial_run = found[0]
    flavor = trial_run.data.tags.get(T.model_tag("model", "flavor"))
    if not flavor:
        return  # the trials logged no model
    name = run.record.model_name or render_model_name(
        run.settings.naming,
        project=run.record.project,
        name=run.record.name,
        experiment=run.record.experiment or "",
        flavor=flavor,
        tags=run.tags,
    )
    version = register_model(trial_run.info.run_id, name, tracking_uri=run.settings.tracking_uri)
    run.set_tags({T.MODEL_NAME: version.model, T.MODEL_VERSION: version.version})
    run.model_name, run.model_version = version.model, version.version
    run.model_uri = f"models:/{version.model}/{version.version}"
    if run.record.promote:
        from tracked.registry.lifecycle import promote

        decisions = [
            promote(
                version.model,
                version.version,
                to=policy.to,
                policy=policy,
                tracking_uri=run.settings.tracking_uri,
            )
            for policy in run.record.promote
        ]
        run.decisions = decisions
        run.promotion = decisions[-1] if decisions else None
        run.record.promote = []  # applied: the run's own end has no model to apply them to
