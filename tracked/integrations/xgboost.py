"""XGBoost inside a run block: `xgboost.train` and the scikit-learn API's `fit`.

Imported by `scope` only when `xgboost` already is. Per training call it logs the booster params
and `num_boost_round`, every eval metric at every iteration as `{eval name}-{metric}`
(`val-auc`, `validation_0-logloss`) with step = iteration, then `boosted_rounds`, and
`best_iteration` / `best_score` when early stopping ran, and the model: the estimator for a
`fit`, else the booster.

The scikit-learn API calls `train` through the name `xgboost.sklearn` imported, so that name is
wrapped too, beside `xgboost.train` and `xgboost.training.train`. A reference taken before the
block (`from xgboost import train`) is not wrapped. `xgboost.dask` and `xgboost.spark` are not
captured.
"""

from __future__ import annotations

from typing import Any

from xgboost.callback import TrainingCallback

from tracked.capture.keys import sanitize_key
from tracked.integrations import scope
from tracked.integrations.scope import Hook
from tracked.run import TrackedRun

__all__ = ["MetricRecorder", "patch_targets"]


def patch_targets() -> list[tuple[Any, str, Hook]]:
    """Where `scope` puts wrappers for xgboost."""
    return scope.training_targets(
        ("xgboost", "xgboost.training", "xgboost.sklearn"), "xgboost.sklearn", "XGBModel", _Capture
    )


class _Capture:
    framework = "xgboost"

    def __init__(self, run: TrackedRun) -> None:
        self.run = run

    def before(self, arguments: dict[str, Any]) -> None:
        params = scope.booster_params(arguments.get("params"))
        params.setdefault("num_boost_round", arguments.get("num_boost_round", 10))
        self.run.log_params(params)
        # First, not last: the container stops at the first callback that returns True
        # (`any(...)`), and a user's callback that stops training must not hide that iteration.
        arguments["callbacks"] = [MetricRecorder(self.run), *(arguments.get("callbacks") or ())]

    def after(self, booster: Any) -> None:
        values = {"boosted_rounds": float(booster.num_boosted_rounds())}
        for key in ("best_iteration", "best_score"):
            value = booster.attr(key)  # set only by early stopping; the property would raise
            if value is not None:
                values[key] = float(value)
        self.run._add_metrics(values, None)


class MetricRecorder(TrainingCallback):
    """Sends the latest value of every eval metric to the run after each iteration.

    The per-iteration cost is a few dict lookups: keys are built and sanitised once per
    (eval set, metric) pair, and the values go to the run's buffered fast path.
    """

    def __init__(self, run: TrackedRun) -> None:
        super().__init__()
        self._run = run
        self._keys: dict[str, dict[str, str]] = {}
        self._failed = False

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        if self._failed:
            return False
        try:
            values: dict[str, float] = {}
            for data, metrics in evals_log.items():
                keys = self._keys.get(data)
                if keys is None:
                    keys = self._keys[data] = {}
                for metric, history in metrics.items():
                    key = keys.get(metric)
                    if key is None:
                        key = keys[metric] = sanitize_key(f"{data}-{metric}")
                    value = history[-1]
                    # xgboost.cv logs (mean, std) pairs
                    values[key] = float(value[0] if isinstance(value, tuple) else value)
            self._run._add_metrics(values, epoch)
        except Exception as exc:
            self._failed = True
            scope.report_failure(self._run, "xgboost", exc)
        return False
