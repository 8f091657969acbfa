"""Dask: `xgboost.dask.train` on a LocalCluster inside a run (the returned history as metrics,
the booster registered), and a decorated function run as a Dask task recording its run from the
worker process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
xgb = pytest.importorskip("xgboost")

import dask.array as da  # noqa: E402
import xgboost.dask as dxgb  # noqa: E402

import tracked  # noqa: E402
from tracked.integrations import scope  # noqa: E402

ORIGINAL = vars(dxgb)["train"]
ROUNDS = 5


@pytest.fixture(autouse=True)
def _unpatched_after() -> Iterator[None]:
    yield
    assert vars(dxgb)["train"] is ORIGINAL
    assert scope.patched() == {}


def _cluster(n_workers: int) -> Any:
    """Worker processes (not threads): what a real cluster is, each with its own interpreter."""
    return distributed.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        worker_dashboard_address=None,
    )


def test_xgboost_dask_train_records_the_returned_history_and_the_booster(store: Any) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    params = {"objective": "binary:logistic", "max_depth": 3, "eval_metric": ["logloss", "auc"]}
    with _cluster(2) as cluster, distributed.Client(cluster) as client:
        dX, dy = da.from_array(X, chunks=(100, 5)), da.from_array(y, chunks=100)
        dtrain = dxgb.DaskDMatrix(client, dX, dy)
        with tracked.run("dask-xgb", model_name=f"dask-{store.experiment}") as run:
            output = dxgb.train(
                client, params, dtrain, num_boost_round=ROUNDS, evals=[(dtrain, "train")]
            )
    history = output["history"]
    assert set(history["train"]) == {"logloss", "auc"}
    for metric, values in history["train"].items():
        points = sorted(
            (m.step, m.value) for m in store.metric_history(run.run_id, f"train-{metric}")
        )
        assert [step for step, _ in points] == list(range(ROUNDS))
        assert [value for _, value in points] == pytest.approx(values)
    stored = store.run(run.run_id).data
    assert stored.params["max_depth"] == "3"
    assert stored.params["num_boost_round"] == str(ROUNDS)
    assert stored.metrics["boosted_rounds"] == ROUNDS
    assert run.model_version == "1"
    loaded = tracked.load_model(run.model_name, run.model_version)
    dmatrix = xgb.DMatrix(X)
    assert np.array_equal(loaded.predict(dmatrix), output["booster"].predict(dmatrix))


@tracked.tracked_training(register=False)
def fit_on_worker(n: int, *, lr: float = 0.1) -> dict[str, float]:
    import os

    return {"loss": 1.0 / n, "lr_seen": lr, "pid": float(os.getpid())}


def test_a_decorated_function_run_as_a_dask_task_records_its_run_from_the_worker(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    # What a user sets in the workers' environment: where runs go (the default would be a
    # mlflow.db in each worker's working directory). Worker processes take the environment
    # they are started with.
    monkeypatch.setenv("TRACKED_TRACKING_URI", store.uri)
    monkeypatch.setenv("TRACKED_EXPERIMENT", store.experiment)
    with _cluster(1) as cluster, distributed.Client(cluster) as client:
        result = client.submit(fit_on_worker, 4, lr=0.5).result()
    assert result["loss"] == 0.25
    assert result["pid"] != os.getpid()  # it ran in the worker process
    runs = store.runs()
    assert len(runs) == 1
    (found,) = runs
    assert found.info.status == "FINISHED"
    assert found.data.params == {"n": "4", "lr": "0.5"}
    assert found.data.metrics["loss"] == 0.25
    assert found.data.metrics["pid"] == result["pid"]
