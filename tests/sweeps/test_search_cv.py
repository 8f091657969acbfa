"""scikit-learn's searches inside a run: one child run per candidate, read from `cv_results_`
whatever ran the fits, the search's settings on the run, `best_estimator_` registered, and no
trainings of their own for the fits inside the search."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sklearn.exceptions import FitFailedWarning
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    RandomizedSearchCV,
)
from sklearn.model_selection._search import BaseSearchCV

import tracked
from tracked.integrations import scope

ORIGINAL = vars(BaseSearchCV)["fit"]


@pytest.fixture(autouse=True)
def _unpatched_after() -> Iterator[None]:
    yield
    assert vars(BaseSearchCV)["fit"] is ORIGINAL
    assert scope.patched() == {}


def _data(n: int = 150) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4))
    return X, (X[:, 0] - X[:, 1] + rng.normal(scale=0.7, size=n) > 0).astype(int)


def _children(store: Any, parent_id: str) -> dict[int, Any]:
    runs = [r for r in store.runs() if r.data.tags.get("mlflow.parentRunId") == parent_id]
    return {int(r.data.tags["tracked.trial"]): r for r in runs}


def test_grid_search_n_jobs_2_gives_one_child_run_per_candidate_with_its_scores(
    store: Any,
) -> None:
    X, y = _data()
    grid = {"C": [0.01, 0.1, 1.0], "fit_intercept": [True, False], "tol": [1e-4, 1e-2]}
    search = GridSearchCV(LogisticRegression(), grid, cv=3, n_jobs=2, return_train_score=True)
    with tracked.run("grid", model_name=f"grid-{store.experiment}") as run:
        assert search.fit(X, y) is search
    results = search.cv_results_
    assert len(results["params"]) == 12

    children = _children(store, run.run_id)
    assert sorted(children) == list(range(12))
    for i, params in enumerate(results["params"]):
        child = children[i]
        assert child.info.run_name == f"candidate-{i}"
        assert child.info.status == "FINISHED"
        assert child.data.tags["tracked.trial.state"] == "COMPLETE"
        assert child.data.params == {k: str(v) for k, v in params.items()}
        for key in (
            "mean_test_score",
            "std_test_score",
            "mean_train_score",
            "std_train_score",
            "mean_fit_time",
            "rank_test_score",
        ):
            assert child.data.metrics[key] == pytest.approx(float(results[key][i])), key

    stored = store.run(run.run_id).data
    assert stored.params["search.class"] == "GridSearchCV"
    assert stored.params["search.estimator"] == "LogisticRegression"
    assert stored.params["search.cv"] == "3"
    assert stored.params["search.scoring"] == "None"
    assert stored.params["search.refit"] == "True"
    assert stored.params["search.n_candidates"] == "12"
    assert stored.params["C"] == str(search.best_params_["C"])
    assert stored.metrics["best_score"] == pytest.approx(search.best_score_)
    assert stored.tags["tracked.sweep.best_trial"] == str(search.best_index_)
    assert run.model_version == "1"
    loaded = tracked.load_model(run.model_name, run.model_version)
    assert np.array_equal(loaded.predict(X), search.best_estimator_.predict(X))


def test_fits_inside_the_search_are_not_trainings_of_their_own(store: Any) -> None:
    xgb = pytest.importorskip("xgboost")
    X, y = _data(90)
    model = xgb.XGBClassifier(n_estimators=3, max_depth=2, n_jobs=1)
    search = GridSearchCV(model, {"learning_rate": [0.1, 0.3]}, cv=2, n_jobs=1)
    with tracked.run("xgb-grid", register=False) as run:
        search.fit(X, y)
    assert [t.framework for t in run.trainings] == ["sklearn"]
    children = _children(store, run.run_id)
    assert sorted(children) == [0, 1]
    every = store.runs()
    assert len(every) == 3  # the run and its two candidates: no run per XGBoost fit
    assert run.record.models[0].obj is search.best_estimator_


def test_randomized_search_candidates(store: Any) -> None:
    X, y = _data()
    search = RandomizedSearchCV(
        LogisticRegression(), {"C": [0.01, 0.1, 1.0, 10.0]}, n_iter=3, cv=2, random_state=0
    )
    with tracked.run("random", register=False) as run:
        search.fit(X, y)
    children = _children(store, run.run_id)
    assert sorted(children) == [0, 1, 2]
    for i, params in enumerate(search.cv_results_["params"]):
        assert children[i].data.params["C"] == str(params["C"])
        assert children[i].data.metrics["mean_test_score"] == pytest.approx(
            search.cv_results_["mean_test_score"][i]
        )


def test_halving_search_gives_each_candidate_one_point_per_iteration(store: Any) -> None:
    X, y = _data(200)
    search = HalvingGridSearchCV(
        LogisticRegression(), {"C": [0.001, 0.01, 0.1, 1.0]}, cv=2, factor=2, random_state=0
    )
    with tracked.run("halving", register=False) as run:
        search.fit(X, y)
    results = search.cv_results_
    children = _children(store, run.run_id)
    by_c = {c.data.params["C"]: c for c in children.values()}
    assert sorted(by_c) == sorted(str(c) for c in (0.001, 0.01, 0.1, 1.0))
    for row, params in enumerate(results["params"]):
        child = by_c[str(params["C"])]
        points = {
            m.step: m.value for m in store.metric_history(child.info.run_id, "mean_test_score")
        }
        assert points[int(results["iter"][row])] == pytest.approx(results["mean_test_score"][row])
    assert store.run(run.run_id).data.params["search.class"] == "HalvingGridSearchCV"


def test_a_candidate_whose_fits_all_fail_ends_failed(store: Any) -> None:
    X, y = _data(60)
    search = GridSearchCV(
        LogisticRegression(), {"C": [1.0, -1.0]}, cv=2, error_score=np.nan
    )  # C must be positive: the second candidate's fits raise
    # scikit-learn warns that fits failed (FitFailedWarning) and that scores are not finite
    with (
        pytest.warns((FitFailedWarning, UserWarning)),
        tracked.run("failing", register=False) as run,
    ):
        search.fit(X, y)
    children = _children(store, run.run_id)
    assert (children[0].info.status, children[0].data.tags["tracked.trial.state"]) == (
        "FINISHED",
        "COMPLETE",
    )
    assert (children[1].info.status, children[1].data.tags["tracked.trial.state"]) == (
        "FAILED",
        "FAIL",
    )
    assert "mean_test_score" not in children[1].data.metrics
