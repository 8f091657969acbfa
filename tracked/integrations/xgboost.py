"""XGBoost inside a run: `xgboost.train`, `xgboost.cv` and the scikit-learn API's `fit`.

Imported by `scope` only when `xgboost` is. Per training call it logs the booster params and
`num_boost_round`, every eval metric at every iteration as `{eval name}-{metric}` (`val-auc`,
`validation_0-logloss`) with step = iteration, then `boosted_rounds`, and `best_iteration` /
`best_score` when early stopping ran, and the model: the estimator for a `fit`, else the
booster. `xgboost.cv` logs each metric's mean and standard deviation over the folds per
iteration under the names of the DataFrame it returns (`test-auc-mean`, `test-auc-std`), and
`nfold`; it produces no model.

Arguments are read in every form the installed XGBoost accepts, including `evals` passed by
position (`xgb.train(params, dtrain, 10, watchlist)`, deprecated but common). The scikit-learn API
calls `train` through the name `xgboost.sklearn` imported, so that name is wrapped too. A
reference taken before the run started (`from xgboost import train`) is not wrapped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xgboost.callback import TrainingCallback

from tracked.capture.keys import sanitize_key
from tracked.integrations import scope
from tracked.integrations.scope import Hook

if TYPE_CHECKING:
    from tracked.run import Training

__all__ = ["MetricRecorder", "patch_targets"]


def patch_targets() -> list[tuple[Any, str, Hook]]:
    """Where `scope` puts wrappers for xgboost."""
    return scope.training_targets(
        ("xgboost", "xgboost.training", "xgboost.sklearn"),
        "xgboost.sklearn",
        "XGBModel",
        {"train": _Train, "cv": _Cv},
    )


class _Train:
    framework = "xgboost"
    name = "xgboost.train"

    @staticmethod
    def reference() -> Any:
        """The framework's own function, whose signature reads a call."""
        import xgboost.training

        return xgboost.training.train

    def before(self, training: Training, arguments: dict[str, Any]) -> None:
        params = scope.booster_params(arguments.get("params"))
        params.setdefault("num_boost_round", arguments.get("num_boost_round", 10))
        training.log_params(params)
        # First, not last: the container stops at the first callback that returns True
        # (`any(...)`), and a user's callback that stops training must not hide that iteration.
        arguments["callbacks"] = [MetricRecorder(training), *(arguments.get("callbacks") or ())]

    def after(self, training: Training, booster: Any) -> None:
        values = {"boosted_rounds": float(booster.num_boosted_rounds())}
        for key in ("best_iteration", "best_score"):
            value = booster.attr(key)  # set only by early stopping; the property would raise
            if value is not None:
                values[key] = float(value)
        training.log_metrics(values)


class _Cv(_Train):
    name = "xgboost.cv"
    produces_model = False

    @staticmethod
    def reference() -> Any:
        import xgboost.training

        return xgboost.training.cv

    def before(self, training: Training, arguments: dict[str, Any]) -> None:
        super().before(training, arguments)
        training.log_params({"nfold": arguments.get("nfold", 3)})

    def after(self, training: Training, result: Any) -> None:
        try:
            rounds = len(result)
        except TypeError:
            return
        training.log_metrics({"cv_rounds": float(rounds)})


class MetricRecorder(TrainingCallback):
    """Sends the latest value of every eval metric to the training after each iteration.

    The per-iteration cost is a few dict lookups: keys are built and sanitised once per
    (eval set, metric) pair, and the values go to the run's queue.
    """

    def __init__(self, training: Training) -> None:
        super().__init__()
        self._training = training
        self._keys: dict[tuple[str, str], tuple[str, str]] = {}
        self._failed = False

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        if self._failed:
            return False
        try:
            values: dict[str, float] = {}
            keys = self._keys
            for data, metrics in evals_log.items():
                for metric, history in metrics.items():
                    names = keys.get((data, metric))
                    if names is None:
                        base = f"{data}-{metric}"
                        names = keys[(data, metric)] = (
                            sanitize_key(base),
                            sanitize_key(base + "-mean"),
                        )
                    value = history[-1]
                    if isinstance(value, tuple):  # xgboost.cv: (mean, std) over the folds
                        values[names[1]] = float(value[0])
                        values[names[1][:-5] + "-std"] = float(value[1])
                    else:
                        values[names[0]] = float(value)
            self._training.log_metrics(values, epoch)
        except Exception as exc:
            self._failed = True
            scope.report_failure(self._training.run, "xgboost", exc)
        return False
