"""XGBoost inside a run block: captured in the block, untouched outside it, in every thread."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import xgboost as xgb
import xgboost.sklearn
import xgboost.training
from python_process import in_fresh_interpreter
from xgboost.callback import TrainingCallback

import tracked
from tracked.integrations import scope
from tracked.run import Training

ROUNDS = 6
PARAMS = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "nthread": 1}


def _originals() -> dict[str, Any]:
    return {
        "xgboost.train": xgb.train,
        "xgboost.training.train": xgboost.training.train,
        "xgboost.sklearn.train": xgboost.sklearn.train,
        **{
            f"{cls.__name__}.fit": vars(cls)["fit"]
            for cls in (
                xgb.XGBModel,
                xgb.XGBClassifier,
                xgb.XGBRanker,
                xgb.XGBRFClassifier,
                xgb.XGBRFRegressor,
            )
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


def _dmatrices() -> tuple[xgb.DMatrix, xgb.DMatrix]:
    X, y = _data(0)
    Xv, yv = _data(1)
    return xgb.DMatrix(X, label=y), xgb.DMatrix(Xv, label=yv)


def _history(store: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in store.metric_history(run_id, key))


class CountingCallback(TrainingCallback):
    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[int] = []

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        self.epochs.append(epoch)
        return False


def test_train_records_params_every_iteration_and_the_booster(store: Any) -> None:
    dtrain, dval = _dmatrices()
    evals_result: dict[str, Any] = {}
    params = {**PARAMS, "eval_metric": ["logloss", "auc"]}
    with tracked.run("xgb") as run:
        assert xgb.train is not ORIGINALS["xgboost.train"]
        booster = xgb.train(
            params,
            dtrain,
            num_boost_round=ROUNDS,
            evals=[(dtrain, "train"), (dval, "val")],
            evals_result=evals_result,
            verbose_eval=False,
        )
    assert run.status == "FINISHED"
    for data in ("train", "val"):
        for metric in ("logloss", "auc"):
            history = _history(store, run.run_id, f"{data}-{metric}")
            assert [step for step, _ in history] == list(range(ROUNDS))
            # the user's own evals_result still filled, with the same values
            assert [v for _, v in history] == pytest.approx(evals_result[data][metric])
    stored = store.run(run.run_id).data
    assert stored.params["max_depth"] == "3"
    assert stored.params["eta"] == "0.3"
    assert stored.params["num_boost_round"] == str(ROUNDS)
    assert stored.params["eval_metric"] == "['logloss', 'auc']"
    assert stored.metrics["boosted_rounds"] == ROUNDS
    assert "best_iteration" not in stored.metrics  # no early stopping
    assert [m.obj for m in run.record.models] == [booster]


def test_result_is_the_same_as_without_tracking(store: Any) -> None:
    dtrain, dval = _dmatrices()
    kwargs: dict[str, Any] = {"evals": [(dval, "val")], "verbose_eval": False}
    bare = xgb.train(PARAMS, dtrain, ROUNDS, **kwargs)
    with tracked.run("same"):
        captured = xgb.train(PARAMS, dtrain, ROUNDS, **kwargs)
    np.testing.assert_array_equal(bare.predict(dval), captured.predict(dval))


def test_early_stopping_and_user_callbacks_keep_working(store: Any) -> None:
    X, y = _data(0)
    Xv, yv = _data(1, noise=True)  # unlearnable: validation loss gets worse early
    dtrain, dval = xgb.DMatrix(X, label=y), xgb.DMatrix(Xv, label=yv)
    user = CountingCallback()
    with tracked.run("early") as run:
        booster = xgb.train(
            {**PARAMS, "max_depth": 6, "eval_metric": "logloss"},
            dtrain,
            num_boost_round=100,
            evals=[(dval, "val")],
            early_stopping_rounds=3,
            callbacks=(user,),  # a tuple, not a list
            verbose_eval=False,
        )
    rounds = booster.num_boosted_rounds()
    assert rounds < 100
    assert user.epochs == list(range(rounds))  # the user's callback ran every iteration
    history = _history(store, run.run_id, "val-logloss")
    assert [step for step, _ in history] == list(range(rounds))
    metrics = store.run(run.run_id).data.metrics
    assert metrics["best_iteration"] == booster.best_iteration
    assert metrics["best_score"] == pytest.approx(booster.best_score)
    assert metrics["boosted_rounds"] == rounds


def test_a_user_callback_that_stops_training_does_not_hide_the_last_iteration(store: Any) -> None:
    class StopAtTwo(TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            return epoch == 2

    dtrain, dval = _dmatrices()
    callbacks = [StopAtTwo()]
    with tracked.run("stop") as run:
        xgb.train(PARAMS, dtrain, 10, evals=[(dval, "val")], callbacks=callbacks, verbose_eval=0)
    assert len(callbacks) == 1  # the user's list is not mutated
    assert [s for s, _ in _history(store, run.run_id, "val-logloss")] == [0, 1, 2]


@pytest.mark.parametrize("kind", ["classifier", "regressor", "ranker", "rf-classifier"])
def test_sklearn_fit_records_the_estimator(store: Any, kind: str) -> None:
    X, y = _data(0)
    Xv, yv = _data(1)
    fit_kwargs: dict[str, Any] = {"eval_set": [(X, y), (Xv, yv)], "verbose": False}
    common = {"n_estimators": 4, "n_jobs": 1, "max_depth": 3}
    if kind == "classifier":
        model: Any = xgb.XGBClassifier(**common, eval_metric="logloss")
    elif kind == "regressor":
        model = xgb.XGBRegressor(**common, eval_metric="rmse")
    elif kind == "ranker":
        model = xgb.XGBRanker(**common, eval_metric="ndcg@3")
        qid = np.repeat(np.arange(30), 10)
        fit_kwargs = {"qid": qid, "eval_set": [(Xv, yv)], "eval_qid": [qid], "verbose": False}
    else:
        model = xgb.XGBRFClassifier(**common, eval_metric="logloss")
    with tracked.run("sk") as run:
        assert model.fit(X, y, **fit_kwargs) is model
    assert len(run.record.models) == 1
    assert run.record.models[0].obj is model
    assert model.callbacks is None  # the estimator's own settings are untouched
    metric = {"classifier": "logloss", "rf-classifier": "logloss", "regressor": "rmse"}.get(
        kind,
        "ndcg_3",  # '@' is not valid in an MLflow key
    )
    last = "validation_0" if kind == "ranker" else "validation_1"
    rounds = 1 if kind == "rf-classifier" else 4  # a random forest is one boosting round
    history = _history(store, run.run_id, f"{last}-{metric}")
    assert [step for step, _ in history] == list(range(rounds))
    assert store.run(run.run_id).data.params["max_depth"] == "3"


def test_params_as_a_list_of_pairs(store: Any) -> None:
    dtrain, dval = _dmatrices()
    pairs = [*PARAMS.items(), ("eval_metric", "auc"), ("eval_metric", "logloss")]
    with tracked.run("pairs") as run:
        xgb.train(pairs, dtrain, 2, evals=[(dval, "val")], verbose_eval=False)
    assert store.run(run.run_id).data.params["eval_metric"] == "['auc', 'logloss']"
    for metric in ("auc", "logloss"):
        assert [s for s, _ in _history(store, run.run_id, f"val-{metric}")] == [0, 1]


def test_a_patch_made_over_ours_survives_the_block(store: Any) -> None:
    dtrain, dval = _dmatrices()
    calls: list[int] = []
    with tracked.run("stacked") as run:
        ours = xgb.train

        def theirs(*args: Any, **kwargs: Any) -> Any:  # another autologger, patched after us
            calls.append(1)
            return ours(*args, **kwargs)

        xgb.train = theirs
    try:
        assert xgb.train is theirs  # not clobbered by our restore
        xgb.train(PARAMS, dtrain, 2, evals=[(dval, "val")], verbose_eval=False)
        assert calls == [1]  # ours, left inside theirs, only called through
        with tracked.run("next") as later:
            xgb.train(PARAMS, dtrain, 2, evals=[(dval, "val")], verbose_eval=False)
        assert len(later.record.models) == 1  # captured once, not twice
        assert run.record.models == []
    finally:
        xgb.train = ORIGINALS["xgboost.train"]


def test_outside_the_block_nothing_is_captured_and_originals_are_back(store: Any) -> None:
    dtrain, dval = _dmatrices()
    with tracked.run("one"):
        xgb.train(PARAMS, dtrain, 2, evals=[(dval, "val")], verbose_eval=False)
    _assert_unpatched()
    xgb.train(PARAMS, dtrain, 2, evals=[(dval, "val")], verbose_eval=False)
    xgb.XGBClassifier(n_estimators=2, n_jobs=1).fit(*_data(0))
    assert [r.info.run_name for r in store.runs()] == ["one"]

    with pytest.raises(RuntimeError, match="boom"), tracked.run("failing") as failing:
        xgb.train(PARAMS, dtrain, 2, evals=[(dval, "val")], verbose_eval=False)
        raise RuntimeError("boom")
    assert failing.status == "FAILED"
    _assert_unpatched()


def test_an_error_inside_train_propagates_unchanged(store: Any) -> None:
    dtrain, _ = _dmatrices()
    with pytest.raises(xgb.core.XGBoostError), tracked.run("bad-params") as run:
        xgb.train({**PARAMS, "objective": "no-such-objective"}, dtrain, 2)
    assert run.status == "FAILED"
    assert run.record.models == []
    _assert_unpatched()


def test_a_capture_failure_does_not_touch_training(
    store: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    dtrain, dval = _dmatrices()
    bare = xgb.train(PARAMS, dtrain, ROUNDS, evals=[(dval, "val")], verbose_eval=False)
    with tracked.run("broken") as run:

        def broken(self: Any, values: Any, step: Any = None) -> None:
            raise ValueError("store exploded")

        # A fault no real part produces on demand: tracked's own per-iteration path raising.
        monkeypatch.setattr(Training, "log_metrics", broken)
        booster = xgb.train(PARAMS, dtrain, ROUNDS, evals=[(dval, "val")], verbose_eval=False)
    np.testing.assert_array_equal(bare.predict(dval), booster.predict(dval))
    assert "store exploded" in caplog.text
    assert run.status == "FINISHED"


@in_fresh_interpreter
def test_a_thread_outside_any_block_is_not_captured_while_another_trains_inside(
    store: Any,
) -> None:
    # Each thread trains on its own DMatrix, as independent code in two threads would.
    barrier = threading.Barrier(2, timeout=120)
    block_open = threading.Event()
    errors: list[BaseException] = []
    seen: dict[str, Any] = {}

    class Meet(CountingCallback):
        """Holds both threads inside train() at the same iteration."""

        def __init__(self, who: str) -> None:
            super().__init__()
            self.who = who

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            if epoch == 0:
                seen[self.who] = {
                    "patched": xgb.train is not ORIGINALS["xgboost.train"],
                    "run": tracked.current_run(),
                }
                barrier.wait()
            return super().after_iteration(model, epoch, evals_log)

    def train(who: str) -> xgb.Booster:
        dtrain, dval = _dmatrices()
        return xgb.train(
            PARAMS, dtrain, ROUNDS, evals=[(dval, "val")], callbacks=[Meet(who)], verbose_eval=0
        )

    def inside() -> None:
        try:
            with tracked.run("inside") as run:
                seen["inside-run"] = run
                block_open.set()
                seen["inside-booster"] = train("inside")
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    def outside() -> None:
        try:
            assert block_open.wait(120)
            seen["outside-booster"] = train("outside")
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=inside), threading.Thread(target=outside)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert not errors, errors
    assert seen["outside"]["patched"]  # the outside call went through the wrapper ...
    assert seen["outside"]["run"] is None  # ... and saw no run, so it passed straight through
    assert seen["inside"]["run"] is seen["inside-run"]
    run = seen["inside-run"]
    assert [m.obj for m in run.record.models] == [seen["inside-booster"]]
    assert [s for s, _ in _history(store, run.run_id, "val-logloss")] == list(range(ROUNDS))
    assert [r.info.run_name for r in store.runs()] == ["inside"]


def test_nested_blocks_capture_into_the_innermost_run(store: Any) -> None:
    dtrain, dval = _dmatrices()

    def train(rounds: int) -> xgb.Booster:
        return xgb.train(PARAMS, dtrain, rounds, evals=[(dval, "val")], verbose_eval=False)

    with tracked.run("outer") as outer:
        with tracked.run("inner") as inner:
            inner_booster = train(2)
        assert xgb.train is not ORIGINALS["xgboost.train"]  # outer still active
        outer_booster = train(3)
    _assert_unpatched()
    assert [m.obj for m in inner.record.models] == [inner_booster]
    assert [m.obj for m in outer.record.models] == [outer_booster]
    assert [s for s, _ in _history(store, inner.run_id, "val-logloss")] == [0, 1]
    assert [s for s, _ in _history(store, outer.run_id, "val-logloss")] == [0, 1, 2]
    assert store.run(inner.run_id).data.tags["mlflow.parentRunId"] == outer.run_id


def test_a_decorated_training_function_is_captured(store: Any) -> None:
    dtrain, dval = _dmatrices()

    @tracked.tracked_training
    def fit(*, rounds: int = 3) -> xgb.Booster:
        return xgb.train(PARAMS, dtrain, rounds, evals=[(dval, "val")], verbose_eval=False)

    booster = fit()
    run = tracked.last_run()
    assert run is not None
    assert [m.obj for m in run.record.models] == [booster]
    assert [s for s, _ in _history(store, run.run_id, "val-logloss")] == [0, 1, 2]


def test_xgboost_imported_inside_the_block_is_captured_from_its_first_call(
    sqlite_uri: str,
) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys
        import tracked

        tracked.configure(tracking_uri={sqlite_uri!r}, experiment="late-import", project="p")
        out = {{}}
        with tracked.run("outer") as outer:
            out["imported_at_enter"] = "xgboost" in sys.modules
            import numpy as np
            import xgboost as xgb
            original = getattr(xgb.train, "__wrapped__", xgb.train)
            X = np.arange(40.0).reshape(20, 2)
            d = xgb.DMatrix(X, label=(X[:, 0] > 20).astype(int))
            params = {{"objective": "binary:logistic", "nthread": 1}}
            xgb.train(params, d, 2, evals=[(d, "val")], verbose_eval=False)
            with tracked.run("inner") as inner:
                xgb.train(params, d, 2, evals=[(d, "val")], verbose_eval=False)
        out["outer_models"] = len(outer.record.models)
        out["inner_models"] = len(inner.record.models)
        out["restored"] = xgb.train is original
        print(json.dumps(out))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {
        "imported_at_enter": False,  # entering a block never imports xgboost
        "outer_models": 1,  # imported inside the block: patched at import, first call captured
        "inner_models": 1,
        "restored": True,
    }
