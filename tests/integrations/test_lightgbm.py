"""LightGBM inside a run block: captured in the block, untouched outside it, in every thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import lightgbm as lgb
import lightgbm.engine
import lightgbm.sklearn
import numpy as np
import pytest
from python_process import in_fresh_interpreter

import tracked
from tracked.integrations import scope

ROUNDS = 6
PARAMS = {"objective": "binary", "num_leaves": 7, "verbose": -1, "num_threads": 1}


def _originals() -> dict[str, Any]:
    return {
        "lightgbm.train": lgb.train,
        "lightgbm.engine.train": lightgbm.engine.train,
        "lightgbm.sklearn.train": lightgbm.sklearn.train,
        **{
            f"{cls.__name__}.fit": vars(cls)["fit"]
            for cls in (lgb.LGBMModel, lgb.LGBMClassifier, lgb.LGBMRegressor, lgb.LGBMRanker)
        },
    }


ORIGINALS = _originals()


def _assert_unpatched() -> None:
    now = _originals()
    for name, original in ORIGINALS.items():
        assert now[name] is original, name
    assert scope.patched() == {}


@pytest.fixture(autouse=True)
def _unpatched_after() -> Iterator[None]:
    """Every test leaves the frameworks exactly as it found them."""
    yield
    _assert_unpatched()


def _data(seed: int = 0, n: int = 300, noise: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = rng.integers(0, 2, n) if noise else (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y


def _datasets(noise: bool = False) -> tuple[lgb.Dataset, lgb.Dataset]:
    X, y = _data(0)
    Xv, yv = _data(1, noise=noise)
    dtrain = lgb.Dataset(X, label=y, free_raw_data=False)
    return dtrain, lgb.Dataset(Xv, label=yv, reference=dtrain, free_raw_data=False)


def _history(store: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in store.metric_history(run_id, key))


def _train(dtrain: lgb.Dataset, dval: lgb.Dataset, rounds: int = ROUNDS, **kw: Any) -> Any:
    return lgb.train(PARAMS, dtrain, rounds, valid_sets=[dval], valid_names=["val"], **kw)


def test_train_records_params_every_iteration_and_the_booster(store: Any) -> None:
    dtrain, dval = _datasets()
    recorded: dict[str, Any] = {}
    params = {**PARAMS, "metric": ["binary_logloss", "auc"]}
    with tracked.run("lgb") as run:
        assert lgb.train is not ORIGINALS["lightgbm.train"]
        booster = lgb.train(
            params,
            dtrain,
            ROUNDS,
            valid_sets=[dtrain, dval],
            valid_names=["train", "val"],
            callbacks=[lgb.record_evaluation(recorded)],
        )
    for data in ("train", "val"):
        for metric in ("binary_logloss", "auc"):
            history = _history(store, run.run_id, f"{data}-{metric}")
            assert [step for step, _ in history] == list(range(ROUNDS))
            assert [v for _, v in history] == pytest.approx(recorded[data][metric])
    stored = store.run(run.run_id).data
    assert stored.params["num_leaves"] == "7"
    assert stored.params["num_boost_round"] == str(ROUNDS)
    assert stored.metrics["boosted_rounds"] == ROUNDS
    assert "best_iteration" not in stored.metrics
    assert [m.obj for m in run.record.models] == [booster]


def test_result_is_the_same_as_without_tracking(store: Any) -> None:
    dtrain, dval = _datasets()
    X, _ = _data(1)
    bare = _train(dtrain, dval)
    with tracked.run("same"):
        captured = _train(dtrain, dval)
    np.testing.assert_array_equal(bare.predict(X), captured.predict(X))


def test_early_stopping_and_user_callbacks_keep_working(store: Any) -> None:
    dtrain, dval = _datasets(noise=True)  # unlearnable: validation loss gets worse early
    iterations: list[int] = []

    def user_callback(env: Any) -> None:
        iterations.append(env.iteration)

    callbacks = (lgb.early_stopping(3, verbose=False), user_callback)  # a tuple
    with tracked.run("early") as run:
        booster = _train(dtrain, dval, 200, callbacks=callbacks)
    rounds = len(iterations)
    assert rounds < 200
    assert iterations == list(range(rounds))  # the user's callback ran every iteration
    history = _history(store, run.run_id, "val-binary_logloss")
    assert [step for step, _ in history] == list(range(rounds))
    metrics = store.run(run.run_id).data.metrics
    assert metrics["boosted_rounds"] == rounds
    assert metrics["best_iteration"] == booster.best_iteration > 0
    assert metrics["best_score.val-binary_logloss"] == pytest.approx(
        booster.best_score["val"]["binary_logloss"]
    )


@pytest.mark.parametrize("kind", ["classifier", "regressor", "ranker"])
def test_sklearn_fit_records_the_estimator(store: Any, kind: str) -> None:
    X, y = _data(0)
    Xv, yv = _data(1)
    common = {"n_estimators": 4, "num_leaves": 7, "verbose": -1, "n_jobs": 1}
    fit_kwargs: dict[str, Any] = {"eval_X": (X, Xv), "eval_y": (y, yv)}
    if kind == "classifier":
        model: Any = lgb.LGBMClassifier(**common)
        key = "valid_1-binary_logloss"
    elif kind == "regressor":
        model = lgb.LGBMRegressor(**common)
        key = "valid_1-l2"
    else:
        model = lgb.LGBMRanker(**common, min_child_samples=2)
        group = [10] * 30
        fit_kwargs = {"group": group, "eval_X": (Xv,), "eval_y": (yv,), "eval_group": [group]}
        key = "valid_0-ndcg_1"  # "ndcg@1": '@' is not valid in an MLflow key
    with tracked.run("sk") as run:
        assert model.fit(X, y, **fit_kwargs) is model
    assert len(run.record.models) == 1
    assert run.record.models[0].obj is model
    assert [step for step, _ in _history(store, run.run_id, key)] == [0, 1, 2, 3]
    assert store.run(run.run_id).data.params["num_leaves"] == "7"


def test_outside_the_block_nothing_is_captured_and_originals_are_back(store: Any) -> None:
    dtrain, dval = _datasets()
    with tracked.run("one"):
        _train(dtrain, dval, 2)
    _assert_unpatched()
    _train(dtrain, dval, 2)
    lgb.LGBMClassifier(n_estimators=2, verbose=-1, n_jobs=1).fit(*_data(0))
    assert [r.info.run_name for r in store.runs()] == ["one"]

    with pytest.raises(RuntimeError, match="boom"), tracked.run("failing") as failing:
        _train(dtrain, dval, 2)
        raise RuntimeError("boom")
    assert failing.status == "FAILED"
    _assert_unpatched()


@in_fresh_interpreter
def test_a_thread_outside_any_block_is_not_captured_while_another_trains_inside(
    store: Any,
) -> None:
    # Each thread has its own data: a LightGBM Dataset is built lazily by the first train()
    # that uses it, and two threads building one at once crash (not tracked's doing).
    barrier = threading.Barrier(2, timeout=120)
    block_open = threading.Event()
    errors: list[BaseException] = []
    seen: dict[str, Any] = {}

    def meet(who: str) -> Any:
        def callback(env: Any) -> None:
            if env.iteration == 0:
                seen[who] = {
                    "patched": lgb.train is not ORIGINALS["lightgbm.train"],
                    "run": tracked.current_run(),
                }
                barrier.wait()  # both threads are inside train() at once

        return callback

    def inside() -> None:
        try:
            with tracked.run("inside") as run:
                seen["inside-run"] = run
                block_open.set()
                seen["inside-booster"] = _train(*_datasets(), callbacks=[meet("inside")])
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    def outside() -> None:
        try:
            assert block_open.wait(120)
            _train(*_datasets(), callbacks=[meet("outside")])
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=inside), threading.Thread(target=outside)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert not errors, errors
    assert seen["outside"] == {"patched": True, "run": None}
    assert seen["inside"]["run"] is seen["inside-run"]
    run = seen["inside-run"]
    assert [m.obj for m in run.record.models] == [seen["inside-booster"]]
    history = _history(store, run.run_id, "val-binary_logloss")
    assert [s for s, _ in history] == list(range(ROUNDS))
    assert [r.info.run_name for r in store.runs()] == ["inside"]


def test_nested_blocks_capture_into_the_innermost_run(store: Any) -> None:
    dtrain, dval = _datasets()
    with tracked.run("outer") as outer:
        with tracked.run("inner") as inner:
            inner_booster = _train(dtrain, dval, 2)
        assert lgb.train is not ORIGINALS["lightgbm.train"]
        outer_booster = _train(dtrain, dval, 3)
    _assert_unpatched()
    assert [m.obj for m in inner.record.models] == [inner_booster]
    assert [m.obj for m in outer.record.models] == [outer_booster]
    assert [s for s, _ in _history(store, inner.run_id, "val-binary_logloss")] == [0, 1]
    assert [s for s, _ in _history(store, outer.run_id, "val-binary_logloss")] == [0, 1, 2]
