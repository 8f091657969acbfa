"""LightGBM inside a run: `lightgbm.train`, `lightgbm.cv` and the scikit-learn API's `fit`.

Imported by `scope` only when `lightgbm` is. Per training call it logs the params and
`num_boost_round`, every eval result at every iteration as `{data name}-{metric}`
(`valid_0-binary_logloss`, `training-auc`) with step = iteration, then `boosted_rounds`, and
when early stopping ran `best_iteration` (LightGBM's own, counted from 1) and
`best_score.{data name}-{metric}`, and the model: the estimator for a `fit`, else the booster.
`lightgbm.cv` logs each metric's mean and standard deviation over the folds per iteration as
`{data}-{metric}-mean` / `-stdv` (LightGBM's `"valid auc-mean"` with a dash for the space),
and `nfold`; it produces no model.

The scikit-learn API calls `train` through the name `lightgbm.sklearn` imported, so that name
is wrapped too. A reference taken before the run started is not wrapped; `lightgbm.dask` is
not captured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracked.capture.keys import sanitize_key
from tracked.integrations import scope
from tracked.integrations.scope import Hook

if TYPE_CHECKING:
    from tracked.run import Training

__all__ = ["MetricRecorder", "patch_targets"]


def patch_targets() -> list[tuple[Any, str, Hook]]:
    """Where `scope` puts wrappers for lightgbm."""
    return scope.training_targets(
        ("lightgbm", "lightgbm.engine", "lightgbm.sklearn"),
        "lightgbm.sklearn",
        "LGBMModel",
        {"train": _Train, "cv": _Cv},
    )


class _Train:
    framework = "lightgbm"
    name = "lightgbm.train"

    @staticmethod
    def reference() -> Any:
        """The framework's own function, whose signature reads a call."""
        import lightgbm.engine

        return lightgbm.engine.train

    def __init__(self) -> None:
        self.recorder: MetricRecorder | None = None

    def before(self, training: Training, arguments: dict[str, Any]) -> None:
        params = scope.booster_params(arguments.get("params"))
        params.setdefault("num_boost_round", arguments.get("num_boost_round", 100))
        training.log_params(params)
        self.recorder = MetricRecorder(training)
        # First in the list: LightGBM orders callbacks without an `order` by position, and an
        # early-stopping callback raises, which skips every callback after it that iteration.
        arguments["callbacks"] = [self.recorder, *(arguments.get("callbacks") or ())]

    def after(self, training: Training, booster: Any) -> None:
        # Iterations run, counted by the callback: after early stopping the returned booster
        # is cut back to the best iteration, so its current_iteration() is that instead.
        rounds = (self.recorder.rounds if self.recorder else 0) or booster.current_iteration()
        values = {"boosted_rounds": float(rounds)}
        if booster.best_iteration > 0:  # 0 unless early stopping ran
            values["best_iteration"] = float(booster.best_iteration)
            for data, metrics in booster.best_score.items():
                for metric, value in metrics.items():
                    values[sanitize_key(f"best_score.{data}-{metric}")] = float(value)
        training.log_metrics(values)


class _Cv(_Train):
    name = "lightgbm.cv"
    produces_model = False

    @staticmethod
    def reference() -> Any:
        import lightgbm.engine

        return lightgbm.engine.cv

    def before(self, training: Training, arguments: dict[str, Any]) -> None:
        super().before(training, arguments)
        training.log_params({"nfold": arguments.get("nfold", 5)})

    def after(self, training: Training, result: Any) -> None:
        rounds = self.recorder.rounds if self.recorder else 0
        training.log_metrics({"cv_rounds": float(rounds)})


class MetricRecorder:
    """A LightGBM callback: sends every eval result of the iteration to the training.

    The per-iteration cost is a few dict lookups: keys are built and sanitised once per
    (data, metric) pair, and the values go to the run's queue.
    """

    def __init__(self, training: Training) -> None:
        self._training = training
        self._keys: dict[tuple[str, str], tuple[str, str, str]] = {}
        self._failed = False
        self.rounds = 0  # boosting rounds so far, counting those of an `init_model`

    def __call__(self, env: Any) -> None:
        self.rounds = env.iteration + 1
        results = env.evaluation_result_list
        if self._failed or not results:
            return
        try:
            values: dict[str, float] = {}
            keys = self._keys
            for result in results:  # (data, metric, value, higher_is_better[, stdv])
                data, metric = result[0], result[1]
                names = keys.get((data, metric))
                if names is None:
                    base = f"{data}-{metric}".replace(" ", "-")
                    names = keys[(data, metric)] = (
                        sanitize_key(base),
                        sanitize_key(base + "-mean"),
                        sanitize_key(base + "-stdv"),
                    )
                if len(result) >= 5:  # lightgbm.cv: mean and standard deviation over folds
                    values[names[1]] = float(result[2])
                    values[names[2]] = float(result[4])
                else:
                    values[names[0]] = float(result[2])
            self._training.log_metrics(values, env.iteration)
        except Exception as exc:
            self._failed = True
            scope.report_failure(self._training.run, "lightgbm", exc)
