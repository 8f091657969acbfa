"""Optuna inside a run: `Study.optimize` makes the run the study's run, each trial a child run.

Imported by `scope` only when `optuna` is. `study.optimize(objective, ...)` called inside a run
block (or a decorated function) records:

- on the run (the study's run): `optuna.study_name`, `optuna.sampler`, `optuna.pruner` (class
  names) and `optuna.direction` (`optuna.directions` for several objectives) as params; at the
  end `best_value` as a metric, the best trial's number as the `tracked.sweep.best_trial` tag
  (the Pareto front's numbers, comma-joined, for several objectives), the best trial's params
  and its own metrics, and its model as the run's model: the one registered, under the run's
  name and promotion policies;
- one child run per trial, `trial-<number>` (tagged `tracked.trial`), whatever thread runs it
  (`n_jobs>1` runs trials in a thread pool, which inherits the study's scope: trials nest under
  the study's run, and framework calls inside a trial are captured into the trial's run):
  the trial's params (`trial.params` at its end), every `trial.report(value, step)` as the
  stepped metric `intermediate_value`, the objective's result as `value` (`value_0`, `value_1`,
  ... for several objectives), and the state as the `tracked.trial.state` tag. A pruned trial
  ends FINISHED with state PRUNED (it ran as asked, and its curve is what pruning decided on); a
  failed one (an exception, or a value Optuna rejects: None, NaN, the wrong number of values)
  ends FAILED with state FAIL. Trials' runs register nothing.

A trial's model is what its run logs as its model: `tracked.log_model(model)` in the objective,
or the model of a training captured in it (`xgb.train`, `lgb.train`, `Trainer.fit`, ...). Only
the best trial's model is kept in memory until the end and registered (single objective only).

A `@tracked_training` objective runs in its own run as the decorator makes it: that run (named
as the decorator names it) is the trial's run, with all of the above (no second run per
trial); its registration is left to the study's run, and its `model_name`/`promote` are used
there when the study's run has none of its own. The study's run needs a scope: `optimize`
outside any run block is left alone (each call of a decorated objective is then a run of its
own).
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any

from tracked import active
from tracked import tags as T
from tracked.integrations import scope, sweeps
from tracked.integrations.scope import Hook

if TYPE_CHECKING:
    from tracked.run import TrackedRun

__all__ = ["patch_targets"]

_FRAMEWORK = "optuna"
# The metrics of a trial that are Optuna's own, not copied to the study's run as the best's.
_OWN = ("value", "intermediate_value")


def patch_targets() -> list[tuple[Any, str, Hook]]:
    """`Study.optimize` and `Trial.report`."""
    import optuna.study.study
    import optuna.trial._trial

    return [
        (optuna.study.study.Study, "optimize", _optimize),
        (optuna.trial._trial.Trial, "report", _report),
    ]


def _optimize(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    run = active.current_run()
    if run is None or scope.capturing():
        return wrapped(*args, **kwargs)
    if args:
        objective = args[0]
    elif "func" in kwargs:
        objective = kwargs["func"]
    else:  # not a call Optuna accepts: let it say so
        return wrapped(*args, **kwargs)
    try:
        study = _Study(run, instance)
        study.begin()
        wrapped_objective = study.objective(objective)
    except Exception as exc:
        scope.report_failure(run, _FRAMEWORK, exc, call="Study.optimize")
        return wrapped(*args, **kwargs)
    if args:
        args = (wrapped_objective, *args[1:])
    else:
        kwargs = {**kwargs, "func": wrapped_objective}
    try:
        return wrapped(*args, **kwargs)
    finally:
        try:
            study.end()
        except Exception as exc:
            scope.report_failure(run, _FRAMEWORK, exc, call="Study.optimize")


def _report(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = wrapped(*args, **kwargs)  # Optuna checks the value and the step first
    run = active.current_run()
    if run is not None:
        try:
            value, step = _report_arguments(*args, **kwargs)
            run.log_metrics({"intermediate_value": float(value)}, step=int(step))
        except Exception as exc:
            scope.report_failure(run, _FRAMEWORK, exc, call="Trial.report")
    return result


def _report_arguments(value: Any, step: Any) -> tuple[Any, Any]:
    return value, step


class _Best:
    """The best completed trial so far (single objective): its model is kept for the end."""

    def __init__(self, outcome: _Trial, value: float, run: TrackedRun) -> None:
        self.number, self.value = outcome.number, value
        self.params = dict(run.params)
        self.metrics = {k: v for k, v in run.metrics.items() if k not in _OWN}
        self.model = sweeps.main_model(run)
        self.promote, self.model_name = outcome.promote, outcome.model_name


class _Study:
    """One `optimize` call inside `run`: the trials' runs and the best one."""

    def __init__(self, run: TrackedRun, study: Any) -> None:
        self.run, self.study = run, study
        self.lock = threading.Lock()
        self.best: _Best | None = None
        self.directions = [d.name.lower() for d in study.directions]

    def begin(self) -> None:
        study = self.study
        params: dict[str, Any] = {
            "optuna.study_name": study.study_name,
            "optuna.sampler": type(study.sampler).__name__,
            "optuna.pruner": type(study.pruner).__name__,
        }
        if len(self.directions) == 1:
            params["optuna.direction"] = self.directions[0]
        else:
            params["optuna.directions"] = self.directions
        self.run.log_params(params)
        self.run.set_tags({T.SWEEP_ENGINE: _FRAMEWORK})

    def objective(self, objective: Any) -> Any:
        """`objective` as Optuna will call it: each call is a trial with a run of its own."""

        def trial_objective(trial: Any) -> Any:
            return self.trial(objective, trial)

        return trial_objective

    def trial(self, objective: Any, trial: Any) -> Any:
        """One trial in its run; returns what the objective returned or raises what it raised."""
        outcome = _Trial(self, trial)
        found = sweeps.decorated(objective)
        try:
            if found is None:
                run = sweeps.trial_run(self.run, f"trial-{trial.number}", trial=trial.number)
                with run:
                    outcome.call(objective)
            else:
                # The decorated call's run is the trial's run; the objective runs inside it.
                wrapper, instance, inner = found
                wrapper(lambda: outcome.call(inner), instance, (), {})
        except _Rejected:
            pass  # the objective returned a value Optuna marks FAIL: its run ended FAILED
        self.done(outcome)
        if outcome.pruned is not None:
            raise outcome.pruned
        return outcome.result

    def done(self, outcome: _Trial) -> None:
        """A trial's run has ended: keep it if it is the best so far."""
        run, value = outcome.run, outcome.value
        if run is None or outcome.state != "COMPLETE" or value is None or len(value) != 1:
            return
        maximize = self.directions[0] == "maximize"
        with self.lock:
            best = self.best
            if best is None or (value[0] > best.value if maximize else value[0] < best.value):
                self.best = _Best(outcome, value[0], run)

    def end(self) -> None:
        """The study's best trial on the study's run; its model as the run's model."""
        run, study = self.run, self.study
        if len(self.directions) > 1:
            front = sorted(t.number for t in study.best_trials)
            if front:
                run.set_tags({T.SWEEP_BEST_TRIAL: ",".join(map(str, front))})
            return
        try:
            best_trial = study.best_trial
        except ValueError:  # no trial completed
            return
        run.log_metrics({"best_value": float(best_trial.value)})
        run.set_tags({T.SWEEP_BEST_TRIAL: best_trial.number})
        best = self.best
        if best is None or best.number != best_trial.number:
            return  # the best trial ran before this call (a loaded study): no model here
        run.log_params(best.params)
        if best.metrics:
            run.log_metrics(best.metrics)
        if best.model is not None and sweeps.main_model(run) is None:
            run.log_model(best.model)
        # A decorated objective's registration settings, when the study's run has none.
        if not run.record.promote and best.promote:
            run.record.promote = best.promote
        if run.record.model_name is None and best.model_name is not None:
            run.record.model_name = best.model_name


class _Rejected(Exception):
    """The objective returned what Optuna fails the trial for: ends the trial's run FAILED."""


class _Trial:
    """One trial's outcome, filled inside its run."""

    def __init__(self, study: _Study, trial: Any) -> None:
        self.study, self.trial = study, trial
        self.number: int = trial.number
        self.run: TrackedRun | None = None
        self.state = "FAIL"
        self.result: Any = None
        self.value: list[float] | None = None
        self.pruned: BaseException | None = None
        self.promote: list[Any] = []  # a decorated objective's, moved to the study's run
        self.model_name: str | None = None

    def call(self, objective: Any) -> Any:
        """Inside the trial's run: the objective, then what it gave."""
        import optuna

        run = self.run = active.current_run()
        if run is not None and run is not self.study.run:
            self._own(run)
        try:
            self.result = objective(self.trial)
        except optuna.TrialPruned as exc:
            self.state, self.pruned = "PRUNED", exc
            self._record()
            return None  # the run ends FINISHED; the trial raises it after
        except BaseException:
            self._record()
            raise
        self.value = _values(self.result, len(self.study.directions))
        if self.value is not None:
            self.state = "COMPLETE"
        self._record()
        if self.value is None:
            raise _Rejected(f"the objective returned {self.result!r}, which Optuna fails")
        return self.result

    def _own(self, run: TrackedRun) -> None:
        """A decorated objective's run is the trial's (named as the decorator names it): it
        registers nothing, the study's run registers the best trial's model."""
        run.register = False
        self.promote, run.record.promote = list(run.record.promote), []
        self.model_name = run.record.model_name
        run.set_tags({T.TRIAL: self.number})

    def _record(self) -> None:
        run = self.run
        if run is None:
            return
        try:
            run.log_params(self.trial.params)
            if self.value is not None:
                if len(self.value) == 1:
                    run.log_metrics({"value": self.value[0]})
                else:
                    run.log_metrics({f"value_{i}": v for i, v in enumerate(self.value)})
            run.set_tags({T.TRIAL_STATE: self.state})
        except Exception as exc:
            scope.report_failure(run, _FRAMEWORK, exc, call="trial")


def _values(result: Any, expected: int) -> list[float] | None:
    """The objective's result as Optuna takes it (a number, or one per objective), or None
    when Optuna fails the trial for it."""
    items = list(result) if isinstance(result, (list, tuple)) else [result]
    if len(items) != expected:
        return None
    try:
        values = [float(item) for item in items]
    except (TypeError, ValueError):
        return None
    return None if any(math.isnan(v) for v in values) else values
