"""LightGBM inside a run block: `lightgbm.train` and the scikit-learn API's `fit`.

Imported by `scope` only when `lightgbm` already is. Per training call it logs the params and
`num_boost_round`, every eval result at every iteration as `{data name}-{metric}`
(`valid_0-binary_logloss`, `training-auc`) with step = iteration, then `boosted_rounds`, and
when early stopping ran `best_iteration` (LightGBM's own, counted from 1) and
`best_score.{data name}-{metric}`, and the model: the estimator for a `fit`, else the booster.

The scikit-learn API calls `train` through the name `lightgbm.sklearn` imported, so that name
is wrapped too, beside `lightgbm.train` and `lightgbm.engine.train`. A reference taken before
the block (`from lightgbm import train`) is not wrapped; `lightgbm.dask` is not captured.
"""

from __future__ import annotations

from typing import Any

from tracked.capture.keys import sanitize_key
from tracked.integrations import scope
from tracked.integrations.scope import Hook
from tracked.run import TrackedRun

__all__ = ["MetricRecorder", "patch_targets"]


def patch_targets() -> list[tuple[Any, str, Hook]]:
    """Where `scope` puts wrappers for lightgbm."""
    return scope.training_targets(
        ("lightgbm", "lightgbm.engine", "lightgbm.sklearn"),
        "lightgbm.sklearn",
        "LGBMModel",
        _Capture,
    )


class _Capture:
    framework = "lightgbm"

    def __init__(self, run: TrackedRun) -> None:
        self.run = run
        self.recorder = MetricRecorder(run)

    def before(self, arguments: dict[str, Any]) -> None:
        params = scope.booster_params(arguments.get("params"))
        params.setdefault("num_boost_round", arguments.get("num_boost_round", 100))
        self.run.log_params(params)
        # First in the list: LightGBM orders callbacks without an `order` by position, and an
        # early-stopping callback raises, which skips every callback after it that iteration.
        arguments["callbacks"] = [self.recorder, *(arguments.get("callbacks") or ())]

    def after(self, booster: Any) -> None:
        # Iterations run, counted by the callback: after early stopping the returned booster
        # is cut back to the best iteration, so its current_iteration() is that instead.
        rounds = self.recorder.rounds or booster.current_iteration()
        values = {"boosted_rounds": float(rounds)}
        if booster.best_iteration > 0:  # 0 unless early stopping ran
            values["best_iteration"] = float(booster.best_iteration)
            for data, metrics in booster.best_score.items():
                for metric, value in metrics.items():
                    values[sanitize_key(f"best_score.{data}-{metric}")] = float(value)
        self.run._add_metrics(values, None)


class MetricRecorder:
    """A LightGBM callback: sends every eval result of the iteration to the run.

    The per-iteration cost is a few dict lookups: keys are built and sanitised once per
    (data, metric) pair, and the values go to the run's buffered fast path.
    """

    def __init__(self, run: TrackedRun) -> None:
        self._run = run
        self._keys: dict[str, dict[str, str]] = {}
        self._failed = False
        self.rounds = 0  # boosting rounds so far, counting those of an `init_model`

    def __call__(self, env: Any) -> None:
        self.rounds = env.iteration + 1
        results = env.evaluation_result_list
        if self._failed or not results:
            return
        try:
            values: dict[str, float] = {}
            for result in results:  # (data, metric, value, higher_is_better[, stdv])
                data, metric = result[0], result[1]
                keys = self._keys.get(data)
                if keys is None:
                    keys = self._keys[data] = {}
                key = keys.get(metric)
                if key is None:
                    key = keys[metric] = sanitize_key(f"{data}-{metric}")
                values[key] = float(result[2])
            self._run._add_metrics(values, env.iteration)
        except Exception as exc:
            self._failed = True
            scope.report_failure(self._run, "lightgbm", exc)
