"""XGBoost and LightGBM as real code calls them, inside a tracked scope: every point tracked stores
equals what the framework itself reported (`evals_result`, `record_evaluation`, the DataFrame or
dict `cv` returns).

Each framework gets the same four cases: a positional call (`xgb.train(params, dtrain, 10,
watchlist)`, LightGBM's fully positional `train`), `cv` with five folds, the framework imported
for the first time inside the block (a fresh interpreter), and a loop of three trainings in one
scope (three child runs; the last model registered for a block, the returned one for a
decorated function). Trainings run one at a time: no boosting in concurrent threads here.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from fidelity_checks import children, history
from python_process import run_python

import tracked

RNG = np.random.default_rng(7)
X = RNG.normal(size=(240, 4))
Y = (X[:, 0] + 0.7 * X[:, 1] + RNG.normal(scale=0.8, size=240) > 0).astype(int)
XGB_PARAMS = {
    "objective": "binary:logistic",
    "eval_metric": ["logloss", "auc"],
    "max_depth": 2,
    "nthread": 1,
}
LGB_PARAMS = {
    "objective": "binary",
    "metric": ["binary_logloss", "auc"],
    "num_leaves": 4,
    "min_data_in_leaf": 5,
    "num_threads": 1,
    "verbose": -1,
}


def xgb_data() -> tuple[xgb.DMatrix, xgb.DMatrix]:
    return xgb.DMatrix(X[:180], label=Y[:180]), xgb.DMatrix(X[180:], label=Y[180:])


def lgb_data() -> tuple[lgb.Dataset, lgb.Dataset]:
    train = lgb.Dataset(X[:180], label=Y[:180], free_raw_data=False)
    return train, lgb.Dataset(X[180:], label=Y[180:], reference=train, free_raw_data=False)


def assert_same_curves(store: Any, run_id: str, reported: dict[str, dict[str, list]]) -> None:
    """Every (eval set, metric) curve the framework reported, point by point, as stored."""
    assert reported
    for data, metrics in reported.items():
        for metric, values in metrics.items():
            assert history(store, run_id, f"{data}-{metric}") == list(enumerate(values))


def assert_parent_holds_no_later_training(
    store: Any, run_id: str, key: str, reports: list[dict[str, dict[str, list]]]
) -> None:
    """Curves of several trainings never interleave in the parent: it holds nothing of the
    later trainings, at most the first one's curve (logged there while it was the only one)."""
    data, metric = key.split("-", 1)
    parent = history(store, run_id, key)
    assert parent in ([], list(enumerate(reports[0][data][metric])))


def registered_predictions(run: Any, data: Any) -> np.ndarray:
    model = tracked.load_model(run.model_name, run.model_version)
    return np.asarray(model.predict(data))


# -- XGBoost ------------------------------------------------------------------------------------


def test_xgboost_train_with_evals_by_position_is_captured(store) -> None:
    dtrain, dval = xgb_data()
    watchlist = [(dtrain, "train"), (dval, "val")]
    reported: dict[str, Any] = {}

    # the deprecated form, still accepted (with a FutureWarning)
    with tracked.run("positional") as run, pytest.warns(FutureWarning, match="evals"):
        booster = xgb.train(XGB_PARAMS, dtrain, 6, watchlist, evals_result=reported)

    assert_same_curves(store, run.run_id, reported)
    stored = store.run(run.run_id)
    assert stored.data.params["num_boost_round"] == "6"
    assert stored.data.params["max_depth"] == "2"
    assert np.array_equal(registered_predictions(run, dval), booster.predict(dval))


def test_xgboost_cv_logs_mean_and_std_per_iteration_and_the_fold_count(store) -> None:
    dtrain, _ = xgb_data()

    with tracked.run("xgb-cv") as run:
        frame = xgb.cv(XGB_PARAMS, dtrain, 5, nfold=5, seed=0)

    stored = store.run(run.run_id)
    assert stored.data.params["nfold"] == "5"
    assert len(frame.columns) == 8  # {train,test}-{logloss,auc}-{mean,std}
    for column in frame.columns:
        assert history(store, run.run_id, column) == list(enumerate(frame[column])), column
    assert run.model_version is None  # cv makes no model


def test_xgboost_first_imported_inside_the_block_is_captured(
    store, tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "out.json"
    monkeypatch.setenv("TRACKED_QUIET", "1")
    run_python(
        textwrap.dedent(
            f"""
            import json, sys
            import numpy as np
            import tracked

            tracked.configure(
                tracking_uri={store.uri!r}, experiment={store.experiment!r}, project="proj"
            )
            assert "xgboost" not in sys.modules
            with tracked.run("xgb-late-import") as run:
                import xgboost as xgb

                X = np.array({X.tolist()!r})
                y = np.array({Y.tolist()!r})
                dtrain = xgb.DMatrix(X[:180], label=y[:180])
                dval = xgb.DMatrix(X[180:], label=y[180:])
                reported = {{}}
                xgb.train({XGB_PARAMS!r}, dtrain, 4, evals=[(dval, "val")],
                          evals_result=reported, verbose_eval=False)
            tracked.flush(60)
            with open({str(out)!r}, "w") as f:
                json.dump({{"run_id": run.run_id, "reported": reported,
                           "version": run.model_version}}, f)
            """
        )
    )
    result = json.loads(out.read_text())
    assert_same_curves(store, result["run_id"], result["reported"])
    assert result["version"] is not None  # its booster was registered


def test_xgboost_three_trainings_in_a_block_are_three_children_and_the_last_is_registered(
    store,
) -> None:
    dtrain, dval = xgb_data()
    reports, boosters = [], []

    with tracked.run("seeds") as run:
        for depth in (1, 2, 3):
            reported: dict[str, Any] = {}
            params = {**XGB_PARAMS, "max_depth": depth}
            boosters.append(
                xgb.train(params, dtrain, 2 + depth, evals=[(dval, "val")],
                          evals_result=reported, verbose_eval=False)
            )  # fmt: skip
            reports.append(reported)

    kids = children(store, run.run_id)
    assert len(kids) == 3
    for depth, kid, reported in zip((1, 2, 3), kids, reports, strict=True):
        assert kid.data.params["max_depth"] == str(depth)
        assert kid.data.params["num_boost_round"] == str(2 + depth)
        assert_same_curves(store, kid.info.run_id, reported)
        assert kid.data.tags["tracked.model.id"]  # each child its own booster
    assert len({kid.data.tags["tracked.model.id"] for kid in kids}) == 3
    assert_parent_holds_no_later_training(store, run.run_id, "val-logloss", reports)
    assert np.array_equal(registered_predictions(run, dval), boosters[-1].predict(dval))


def test_xgboost_three_trainings_in_a_function_register_the_returned_booster(store) -> None:
    dtrain, dval = xgb_data()

    @tracked.tracked_training(name="pick-first")
    def train() -> xgb.Booster:
        boosters = [
            xgb.train({**XGB_PARAMS, "max_depth": d}, dtrain, 3, evals=[(dval, "val")],
                      verbose_eval=False)
            for d in (1, 2, 3)
        ]  # fmt: skip
        return boosters[0]

    chosen = train()

    run = tracked.last_run()
    assert len(children(store, run.run_id)) == 3
    assert np.array_equal(registered_predictions(run, dval), chosen.predict(dval))


# -- LightGBM -----------------------------------------------------------------------------------


def test_lightgbm_train_with_every_argument_by_position_is_captured(store) -> None:
    dtrain, dval = lgb_data()
    reported: dict[str, Any] = {}
    recorder = lgb.record_evaluation(reported)

    with tracked.run("positional") as run:
        # params, train_set, num_boost_round, valid_sets, valid_names, feval, init_model,
        # keep_training_booster, callbacks: all accepted by position in LightGBM 4
        booster = lgb.train(
            LGB_PARAMS, dtrain, 6, [dtrain, dval], ["train", "val"], None, None, False, [recorder]
        )

    assert_same_curves(store, run.run_id, reported)
    stored = store.run(run.run_id)
    assert stored.data.params["num_boost_round"] == "6"
    assert stored.data.params["num_leaves"] == "4"
    assert np.array_equal(registered_predictions(run, X[180:]), booster.predict(X[180:]))


def test_lightgbm_cv_logs_mean_and_stdv_per_iteration_and_the_fold_count(store) -> None:
    dtrain, _ = lgb_data()

    with tracked.run("lgb-cv") as run:
        result = lgb.cv(LGB_PARAMS, dtrain, 5, nfold=5, seed=0)

    stored = store.run(run.run_id)
    assert stored.data.params["nfold"] == "5"
    assert sorted(result) == [
        "valid auc-mean",
        "valid auc-stdv",
        "valid binary_logloss-mean",
        "valid binary_logloss-stdv",
    ]
    for name, values in result.items():
        key = name.replace(" ", "-")  # LightGBM's "valid auc-mean" -> valid-auc-mean
        assert history(store, run.run_id, key) == list(enumerate(values)), name
    assert run.model_version is None


def test_lightgbm_first_imported_inside_the_block_is_captured(
    store, tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "out.json"
    monkeypatch.setenv("TRACKED_QUIET", "1")
    run_python(
        textwrap.dedent(
            f"""
            import json, sys
            import numpy as np
            import tracked

            tracked.configure(
                tracking_uri={store.uri!r}, experiment={store.experiment!r}, project="proj"
            )
            assert "lightgbm" not in sys.modules
            with tracked.run("lgb-late-import") as run:
                import lightgbm as lgb

                X = np.array({X.tolist()!r})
                y = np.array({Y.tolist()!r})
                dtrain = lgb.Dataset(X[:180], label=y[:180])
                dval = lgb.Dataset(X[180:], label=y[180:], reference=dtrain)
                reported = {{}}
                lgb.train({LGB_PARAMS!r}, dtrain, 4, valid_sets=[dval], valid_names=["val"],
                          callbacks=[lgb.record_evaluation(reported)])
            tracked.flush(60)
            with open({str(out)!r}, "w") as f:
                json.dump({{"run_id": run.run_id, "reported": reported,
                           "version": run.model_version}}, f)
            """
        )
    )
    result = json.loads(out.read_text())
    assert_same_curves(store, result["run_id"], result["reported"])
    assert result["version"] is not None  # its booster was registered


def test_lightgbm_three_trainings_in_a_block_are_three_children_and_the_last_is_registered(
    store,
) -> None:
    dtrain, dval = lgb_data()
    reports, boosters = [], []

    with tracked.run("leaves") as run:
        for leaves in (2, 3, 4):
            reported: dict[str, Any] = {}
            params = {**LGB_PARAMS, "num_leaves": leaves}
            boosters.append(
                lgb.train(params, dtrain, 2 + leaves, valid_sets=[dval], valid_names=["val"],
                          callbacks=[lgb.record_evaluation(reported)])
            )  # fmt: skip
            reports.append(reported)

    kids = children(store, run.run_id)
    assert len(kids) == 3
    for leaves, kid, reported in zip((2, 3, 4), kids, reports, strict=True):
        assert kid.data.params["num_leaves"] == str(leaves)
        assert kid.data.params["num_boost_round"] == str(2 + leaves)
        assert_same_curves(store, kid.info.run_id, reported)
    assert len({kid.data.tags["tracked.model.id"] for kid in kids}) == 3
    assert_parent_holds_no_later_training(store, run.run_id, "val-auc", reports)
    assert np.array_equal(registered_predictions(run, X[180:]), boosters[-1].predict(X[180:]))


def test_lightgbm_three_trainings_in_a_function_register_the_returned_booster(store) -> None:
    dtrain, dval = lgb_data()

    @tracked.tracked_training(name="pick-first")
    def train() -> lgb.Booster:
        boosters = [
            lgb.train({**LGB_PARAMS, "num_leaves": n}, dtrain, 3, valid_sets=[dval])
            for n in (2, 3, 4)
        ]
        return boosters[0]

    chosen = train()

    run = tracked.last_run()
    assert len(children(store, run.run_id)) == 3
    assert np.array_equal(registered_predictions(run, X[180:]), chosen.predict(X[180:]))
