"""CatBoost's fit inside a run: params, every eval metric at every iteration, best iteration, the
model in CatBoost's native .cbm format."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

catboost = pytest.importorskip("catboost")

from framework_checks import history, load_registered  # noqa: E402

import tracked  # noqa: E402
from tracked.integrations import scope  # noqa: E402

CLASSES = (
    catboost.CatBoost,
    catboost.CatBoostClassifier,
    catboost.CatBoostRegressor,
    catboost.CatBoostRanker,
)
ORIGINALS = {cls: vars(cls)["fit"] for cls in CLASSES}
ITERATIONS = 12


@pytest.fixture(autouse=True)
def _unpatched_after() -> Iterator[None]:
    yield
    assert {cls: vars(cls)["fit"] for cls in CLASSES} == ORIGINALS
    assert scope.patched() == {}


def _data(seed: int, n: int = 240) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    return X, (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.5, size=n) > 0).astype(int)


def _classifier(**params: Any) -> Any:
    defaults = {"iterations": ITERATIONS, "depth": 3, "thread_count": 1, "verbose": 0}
    return catboost.CatBoostClassifier(**{**defaults, **params}, train_dir=None)


def _assert_evals(store: Any, run_id: str, model: Any) -> None:
    """Every value of get_evals_result(), point by point, with step = iteration."""
    evals = model.get_evals_result()
    assert evals, "no eval results"
    for data, metrics in evals.items():
        for metric, values in metrics.items():
            points = history(store, run_id, f"{data}-{metric}")
            assert [s for s, _ in points] == list(range(len(values))), (data, metric)
            assert [v for _, v in points] == pytest.approx(values, rel=1e-9), (data, metric)


def test_fit_in_a_block_records_params_every_eval_metric_and_the_model(
    store: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    X, y = _data(0)
    Xv, yv = _data(1)
    model = _classifier(eval_metric="AUC", learning_rate=0.2)
    with tracked.run("cat") as run:
        assert model.fit(X, y, eval_set=(Xv, yv)) is model
    assert run.status == "FINISHED"
    _assert_evals(store, run.run_id, model)
    stored = store.run(run.run_id).data
    assert stored.params["depth"] == "3"
    assert stored.params["learning_rate"] == "0.2"
    assert stored.params["eval_metric"] == "AUC"
    assert stored.params["loss_function"] == "Logloss"  # chosen by CatBoost, read after fit
    assert stored.metrics["best_iteration"] == model.get_best_iteration()
    assert stored.metrics["best_score.validation-AUC"] == pytest.approx(
        model.get_best_score()["validation"]["AUC"]
    )
    assert stored.metrics["boosted_rounds"] == ITERATIONS
    (saved,) = run.record.models
    assert saved.obj is model and saved.serialization == "catboost-cbm"
    native, served = load_registered(store, run, monkeypatch)
    np.testing.assert_allclose(native.predict_proba(Xv), model.predict_proba(Xv))
    np.testing.assert_array_equal(np.asarray(served.predict(Xv)).ravel(), model.predict(Xv))


def test_a_decorated_function_returning_the_model(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    @tracked.tracked_training
    def train(X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray) -> Any:
        model = catboost.CatBoostRegressor(
            iterations=ITERATIONS, depth=2, thread_count=1, verbose=0, train_dir=None
        )
        return model.fit(X, y, eval_set=[(X_val, y_val)])

    X, y = _data(0)
    Xv, yv = _data(1)
    model = train(X, y.astype(float), Xv, yv.astype(float))
    run = tracked.last_run()
    assert run is not None and run.status == "FINISHED"
    assert [m.obj for m in run.record.models] == [model]
    _assert_evals(store, run.run_id, model)
    native, served = load_registered(store, run, monkeypatch)
    np.testing.assert_allclose(native.predict(Xv), model.predict(Xv))
    np.testing.assert_allclose(np.asarray(served.predict(Xv)).ravel(), model.predict(Xv))


@pytest.mark.sqlite_only
def test_metric_period_and_several_eval_sets(store: Any) -> None:
    X, y = _data(0)
    model = _classifier(metric_period=5)
    with tracked.run("period") as run:
        model.fit(X, y, eval_set=[_data(1), _data(2)])
    for data in ("validation_0", "validation_1"):
        # evaluated at iterations 0, 5, 10 and the last one
        assert [s for s, _ in history(store, run.run_id, f"{data}-Logloss")] == [0, 5, 10, 11]
        values = model.get_evals_result()[data]["Logloss"]
        assert [v for _, v in history(store, run.run_id, f"{data}-Logloss")] == pytest.approx(
            values
        )


@pytest.mark.sqlite_only
def test_a_failing_iteration_ends_failed_with_the_iterations_before_it(store: Any) -> None:
    class Diverges:
        def after_iteration(self, info: Any) -> bool:
            if info.iteration == 4:
                raise RuntimeError("diverged at iteration 4")
            return True

    X, y = _data(0)
    with pytest.raises(Exception, match="diverged at iteration 4"), tracked.run("dies") as run:
        _classifier().fit(X, y, eval_set=_data(1), callbacks=[Diverges()])
    assert run.status == "FAILED"
    assert store.run(run.run_id).info.status == "FAILED"
    assert [s for s, _ in history(store, run.run_id, "validation-Logloss")] == [0, 1, 2, 3]
    assert run.record.models == []


@pytest.mark.sqlite_only
def test_a_callback_that_stops_training_does_not_hide_the_last_iteration(store: Any) -> None:
    class StopAtThree:
        def after_iteration(self, info: Any) -> bool:
            return info.iteration < 3

    callbacks = [StopAtThree()]
    X, y = _data(0)
    with tracked.run("stop") as run:
        model = _classifier().fit(X, y, eval_set=_data(1), callbacks=callbacks)
    assert len(callbacks) == 1  # the user's list is not changed
    assert [s for s, _ in history(store, run.run_id, "validation-Logloss")] == [0, 1, 2]
    assert model.tree_count_ == 3


@pytest.mark.sqlite_only
def test_predictions_are_those_of_an_untracked_fit(store: Any) -> None:
    X, y = _data(0)
    bare = _classifier().fit(X, y)
    with tracked.run("same"):
        captured = _classifier().fit(X, y)
    np.testing.assert_array_equal(bare.predict_proba(X), captured.predict_proba(X))


def test_catboost_imported_inside_the_block_is_captured(sqlite_uri: str) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np
        import tracked

        tracked.configure(tracking_uri={sqlite_uri!r}, experiment="late-catboost", project="p")
        with tracked.run("late") as run:
            before = "catboost" in sys.modules
            import catboost
            X = np.arange(40.0).reshape(20, 2)
            catboost.CatBoostRegressor(iterations=3, verbose=0, thread_count=1,
                                       train_dir=None).fit(X, X[:, 0], eval_set=(X, X[:, 0]))
        tracked.flush()
        print(json.dumps({{"before": before, "models": len(run.record.models),
                          "rmse": "validation-RMSE" in run.metrics}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "before": False,
        "models": 1,
        "rmse": True,
    }
