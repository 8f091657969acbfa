"""Ray Tune on a local Ray: each trial, in a Ray worker process, is a child run of the sweep's
run with its config and every reported iteration; the best trial's model is registered."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray.tune")

import ray
import ray.cloudpickle
import ray.tune.tuner
from ray import tune

import tracked
from tracked import PromotionPolicy, metric
from tracked.integrations import scope

ORIGINALS = (vars(ray.tune.tuner.Tuner)["__init__"], vars(ray.tune.tuner.Tuner)["fit"], tune.report)
ITERATIONS = 3
C_VALUES = [0.01, 0.1, 1.0, -1.0]  # C must be positive: the last trial fails


@pytest.fixture(scope="module", autouse=True)
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Two CPUs, no dashboard; the workers' journals in a temporary spool."""
    spool = tmp_path_factory.mktemp("ray-spool")
    # This module's functions travel by value: the workers need not import the tests.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"TRACKED_SPOOL_DIR": str(spool), "TRACKED_QUIET": "1"}},
    )
    yield
    ray.shutdown()
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(autouse=True)
def _unpatched_after() -> Iterator[None]:
    yield
    now = (vars(ray.tune.tuner.Tuner)["__init__"], vars(ray.tune.tuner.Tuner)["fit"], tune.report)
    assert now == ORIGINALS
    assert scope.patched() == {}


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4))
    return X, (X[:, 0] - X[:, 1] + rng.normal(scale=0.8, size=120) > 0).astype(int)


def _fit(c: float) -> Any:
    from sklearn.linear_model import LogisticRegression

    X, y = _data()
    return LogisticRegression(C=c).fit(X[:80], y[:80])


def train_model(config: dict[str, Any]) -> None:
    """A trainable: reports ITERATIONS times, then logs its model (or fails at its first fit)."""
    X, y = _data()
    model = _fit(config["C"])
    score = float(model.score(X[80:], y[80:]))
    for i in range(ITERATIONS):
        tune.report({"score": score - 0.01 * (ITERATIONS - 1 - i), "note": "text is skipped"})
    tracked.log_model(model)


def test_each_trial_in_a_ray_worker_is_a_child_run_of_the_sweep(store: Any, tmp_path: Path) -> None:
    policy = PromotionPolicy(to="champion", when=[metric("score") >= 0.5])
    name = f"ray-{store.experiment}"
    with tracked.run("ray-sweep", model_name=name, promote=policy) as run:
        tuner = tune.Tuner(
            train_model,
            param_space={"C": tune.grid_search(C_VALUES)},
            # reuse_actors: two worker processes for the four trials (each imports MLflow once)
            tune_config=tune.TuneConfig(metric="score", mode="max", reuse_actors=True),
            run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), name="sweep", verbose=0),
        )
        results = tuner.fit()
    assert run.status == "FINISHED"
    assert results.num_errors == 1

    runs = store.runs()
    children = {
        r.data.tags["tracked.trial"]: r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == run.run_id
    }
    assert len(runs) == 5  # the sweep and its four trials, nothing else
    assert len(children) == 4
    failed = [r for r in results if r.error is not None]
    (failed_child,) = [c for c in children.values() if c.info.status == "FAILED"]
    assert failed_child.data.tags["tracked.trial.state"] == "FAIL"
    assert failed_child.data.params["C"] == "-1.0" == str(failed[0].config["C"])
    for result in results:
        if result.error is not None:
            continue
        trial_id = result.metrics["trial_id"]
        child = children[trial_id]
        assert child.info.run_name == f"trial-{trial_id}"
        assert child.info.status == "FINISHED"
        assert child.data.tags["tracked.trial.state"] == "COMPLETE"
        assert child.data.params["C"] == str(result.config["C"])
        points = sorted((m.step, m.value) for m in store.metric_history(child.info.run_id, "score"))
        frame = result.metrics_dataframe
        assert [s for s, _ in points] == list(frame["training_iteration"])
        assert [v for _, v in points] == pytest.approx(list(frame["score"]))
        assert "note" not in child.data.metrics

    best = results.get_best_result()
    stored = store.run(run.run_id).data
    assert stored.tags["tracked.sweep.engine"] == "ray"
    assert stored.tags["tracked.sweep.best_trial"] == best.metrics["trial_id"]
    assert stored.metrics["best_value"] == pytest.approx(best.metrics["score"])
    # the best trial's model, registered from the best trial's run, promoted by the sweep's policy
    assert (run.model_name, run.model_version) == (name, "1")
    assert run.promotion is not None and run.promotion.promoted
    version = store.client.get_model_version(name, "1")
    assert version.run_id == children[best.metrics["trial_id"]].info.run_id
    loaded = tracked.load_model(f"{name}@champion")
    assert np.allclose(loaded.coef_, _fit(best.config["C"]).coef_)
