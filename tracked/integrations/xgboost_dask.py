"""XGBoost on Dask inside a run: `xgboost.dask.train(client, params, dtrain, ...)`.

Imported by `scope` only when `xgboost.dask` is. The training runs on the Dask workers, and a
callback would have to travel there and back, so nothing is added to the call: it is one
training of the run, recorded from what the call returns (`{"booster": ..., "history": ...}`).
Before it: the booster params and `num_boost_round`. After it: every value of the returned
`history` as `{eval name}-{metric}` with step = iteration (the same names as `xgboost.train`
inside a run), `boosted_rounds`, `best_iteration`/`best_score` when early stopping ran, and the
booster as the training's model. The scikit-learn-style Dask estimators (`DaskXGBClassifier`,
...) are not captured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracked import active
from tracked.capture.keys import sanitize_key
from tracked.integrations import scope
from tracked.integrations.scope import Hook

if TYPE_CHECKING:
    from tracked.run import Training

__all__ = ["patch_targets"]


def patch_targets() -> list[tuple[Any, str, Hook]]:
    """`xgboost.dask.train`."""
    import xgboost.dask

    return [(xgboost.dask, "train", _hook)]


def _hook(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    run = active.current_run()
    if run is None or scope.capturing():
        return wrapped(*args, **kwargs)
    return scope.run_captured(run, wrapped, args, kwargs, _DaskTrain())


class _DaskTrain:
    framework = "xgboost"
    name = "xgboost.dask.train"
    produces_model = False  # the result is a dict: its booster is handed over in after()

    @staticmethod
    def reference() -> Any:
        import xgboost.dask

        return xgboost.dask.train

    def before(self, training: Training, arguments: dict[str, Any]) -> None:
        params = scope.booster_params(arguments.get("params"))
        params.setdefault("num_boost_round", arguments.get("num_boost_round", 10))
        training.log_params(params)

    def after(self, training: Training, result: Any) -> None:
        booster = result["booster"]
        history = result.get("history") or {}
        points: dict[int, dict[str, float]] = {}
        for data, metrics in history.items():
            for metric, values in metrics.items():
                key = sanitize_key(f"{data}-{metric}")
                for step, value in enumerate(values):
                    points.setdefault(step, {})[key] = float(value)
        for step in sorted(points):
            training.log_metrics(points[step], step)
        values = {"boosted_rounds": float(booster.num_boosted_rounds())}
        for name in ("best_iteration", "best_score"):
            value = booster.attr(name)
            if value is not None:
                values[name] = float(value)
        training.log_metrics(values)
        training.set_model(booster)
