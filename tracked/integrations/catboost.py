"""CatBoost inside a run: `fit` of CatBoost, CatBoostClassifier, CatBoostRegressor, CatBoostRanker.

Imported by `scope` only when `catboost` is. One `fit` call is one training of the run: the
parameters the model was given (`get_params()`) before it, and after it the resolved values of
those CatBoost chooses itself when not given (`learning_rate`, `iterations`, `depth`,
`loss_function`, `eval_metric`); every metric of every eval set at every iteration it is
computed as `{data}-{metric}` (`learn-Logloss`, `validation-AUC`, `validation_1-RMSE`), step =
the iteration counted from 0 (with `metric_period` > 1, the iterations CatBoost evaluates), so
the points are those of `get_evals_result()`; then `boosted_rounds` (iterations run), and with an
eval set `best_iteration` and `best_score.{data}-{metric}`; and the model, saved by its flavor
in CatBoost's native `.cbm` format.

The metrics come from a training callback put first in `callbacks` (CatBoost stops at the first
callback that returns False, which would hide that iteration from the ones after it); the user's
list is not changed.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from tracked.capture.keys import sanitize_key
from tracked.integrations import scope
from tracked.integrations.methods import method_hook
from tracked.integrations.scope import Hook

if TYPE_CHECKING:
    from tracked.run import TrackedRun, Training

__all__ = ["MetricRecorder", "patch_targets"]

_CLASSES = ("CatBoost", "CatBoostClassifier", "CatBoostRegressor", "CatBoostRanker")
_RESOLVED = ("iterations", "learning_rate", "depth", "loss_function", "eval_metric")


def patch_targets() -> list[tuple[Any, str, Hook]]:
    """Each model class's own `fit` (they all call the private `_fit`, which is not wrapped)."""
    core = sys.modules.get("catboost.core")
    targets: list[tuple[Any, str, Hook]] = []
    for name in _CLASSES:
        cls = getattr(core, name, None)
        if cls is not None and "fit" in vars(cls):
            targets.append((cls, "fit", method_hook(_Fit)))
    return targets


class _Fit:
    framework = "catboost"
    name = "catboost.fit"

    def __init__(self, run: TrackedRun, model: Any) -> None:
        self.run = run
        self.model = model
        self.given: dict[str, Any] = {}
        self.recorder: MetricRecorder | None = None

    def before(self, training: Training, arguments: dict[str, Any]) -> None:
        self.given = dict(self.model.get_params())
        params = dict(self.given)
        for key in ("early_stopping_rounds", "use_best_model"):
            if arguments.get(key) is not None:
                params[key] = arguments[key]
        training.log_params(params)
        self.recorder = MetricRecorder(training)
        arguments["callbacks"] = [self.recorder, *(arguments.get("callbacks") or ())]

    def after(self, training: Training, model: Any) -> None:
        try:
            resolved = model.get_all_params()
        except Exception:  # CatBoostError on a model that cannot say
            resolved = {}
        training.log_params(
            {k: resolved[k] for k in _RESOLVED if k in resolved and k not in self.given}
        )
        rounds = self.recorder.rounds if self.recorder else 0
        values = {"boosted_rounds": float(rounds or model.tree_count_ or 0)}
        best = model.get_best_iteration()
        if best is not None and model.get_best_score():
            values["best_iteration"] = float(best)
            for data, metrics in model.get_best_score().items():
                for metric, value in metrics.items():
                    values[sanitize_key(f"best_score.{data}-{metric}")] = float(value)
        training.log_metrics(values)


class MetricRecorder:
    """A CatBoost training callback: each metric value CatBoost computed this iteration goes to
    the training, keyed once per (data, metric) pair."""

    def __init__(self, training: Training) -> None:
        self._training = training
        self._keys: dict[tuple[str, str], str] = {}
        self._seen: dict[tuple[str, str], int] = {}
        self._failed = False
        self.rounds = 0

    def after_iteration(self, info: Any) -> bool:
        self.rounds = int(info.iteration)
        if self._failed:
            return True
        try:
            values: dict[str, float] = {}
            keys, seen = self._keys, self._seen
            for data, metrics in info.metrics.items():
                for metric, history in metrics.items():
                    pair = (data, metric)
                    count = len(history)
                    if count == seen.get(pair, 0):
                        continue  # not evaluated at this iteration (metric_period)
                    seen[pair] = count
                    key = keys.get(pair)
                    if key is None:
                        key = keys[pair] = sanitize_key(f"{data}-{metric}")
                    values[key] = float(history[-1])
            if values:
                self._training.log_metrics(values, self.rounds - 1)
        except Exception as exc:
            self._failed = True
            scope.report_failure(self._training.run, "catboost", exc)
        return True  # True: go on training
