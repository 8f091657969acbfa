"""Optuna's `study.optimize` inside a run: the study's run, one child run per trial (complete,
pruned and failed ones), in Optuna's own thread pool too, and the best trial's model registered."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

import tracked  # noqa: E402
from tracked import PromotionPolicy, metric  # noqa: E402
from tracked.integrations import scope  # noqa: E402

ORIGINALS = (vars(optuna.study.Study)["optimize"], vars(optuna.trial.Trial)["report"])
STEPS = 3


@pytest.fixture(autouse=True)
def _quiet_and_unpatched() -> Iterator[None]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    assert (vars(optuna.study.Study)["optimize"], vars(optuna.trial.Trial)["report"]) == ORIGINALS
    assert scope.patched() == {}


def _objective(trial: Any) -> float:
    """Trial 2 is pruned after its reports, 3 raises, 4 returns NaN; the others complete."""
    x = trial.suggest_float("x", -2.0, 2.0)
    depth = trial.suggest_int("depth", 1, 4)
    for step in range(STEPS):
        trial.report((x - step) ** 2, step)
    if trial.number == 2:
        raise optuna.TrialPruned()
    if trial.number == 3:
        raise ValueError("diverged")
    if trial.number == 4:
        return math.nan
    return x**2 + depth


def _children(store: Any, parent_id: str) -> dict[int, Any]:
    runs = [r for r in store.runs() if r.data.tags.get("mlflow.parentRunId") == parent_id]
    return {int(r.data.tags["tracked.trial"]): r for r in runs}


def _history(store: Any, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in store.metric_history(run_id, key)}


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_each_trial_is_a_child_run_of_the_study_run(store: Any, n_jobs: int) -> None:
    study = optuna.create_study(study_name="tune", sampler=optuna.samplers.RandomSampler(seed=0))
    with tracked.run("study") as run:
        study.optimize(_objective, n_trials=6, n_jobs=n_jobs, catch=(ValueError,))
    assert run.status == "FINISHED"
    stored = store.run(run.run_id).data
    assert stored.params["optuna.study_name"] == "tune"
    assert stored.params["optuna.sampler"] == "RandomSampler"
    assert stored.params["optuna.pruner"] == "MedianPruner"
    assert stored.params["optuna.direction"] == "minimize"
    assert stored.metrics["best_value"] == study.best_value
    assert stored.tags["tracked.sweep.best_trial"] == str(study.best_trial.number)
    assert stored.tags["tracked.sweep.engine"] == "optuna"

    children = _children(store, run.run_id)
    assert sorted(children) == list(range(6))
    for trial in study.trials:
        child = children[trial.number]
        assert child.info.run_name == f"trial-{trial.number}"
        assert child.data.tags["tracked.trial.state"] == trial.state.name
        assert child.data.params == {k: str(v) for k, v in trial.params.items()}
        assert _history(store, child.info.run_id, "intermediate_value") == pytest.approx(
            trial.intermediate_values
        )
        if trial.state.name == "COMPLETE":
            assert child.data.metrics["value"] == trial.value
        else:
            assert "value" not in child.data.metrics
    state = "tracked.trial.state"
    states = {n: (children[n].info.status, children[n].data.tags[state]) for n in (2, 3, 4)}
    assert states == {2: ("FINISHED", "PRUNED"), 3: ("FAILED", "FAIL"), 4: ("FAILED", "FAIL")}
    assert {children[n].info.status for n in (0, 1, 5)} == {"FINISHED"}


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4))
    return X, (X[:, 0] - X[:, 1] + rng.normal(scale=0.8, size=120) > 0).astype(int)


@pytest.mark.parametrize("decorated", [False, True], ids=["plain", "decorated"])
def test_only_the_best_trials_model_is_registered_and_promoted(store: Any, decorated: bool) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = _data()
    models: dict[int, Any] = {}

    def objective(trial: Any) -> float:
        model = LogisticRegression(C=trial.suggest_float("C", 1e-3, 10.0, log=True))
        model.fit(X[:80], y[:80])
        models[trial.number] = model
        tracked.log_model(model)
        return float(model.score(X[80:], y[80:]))

    if decorated:
        objective = tracked.tracked_training(objective)
    policy = PromotionPolicy(to="champion", when=[metric("best_value") >= 0.5])
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    name = f"optuna-best-{'decorated' if decorated else 'plain'}-{store.experiment}"
    with tracked.run("search", model_name=name, promote=policy) as run:
        study.optimize(objective, n_trials=4, n_jobs=2)

    assert (run.model_name, run.model_version) == (name, "1")
    assert run.promotion is not None and run.promotion.promoted
    client = store.client
    assert len(client.search_model_versions(f"name='{name}'")) == 1
    loaded = tracked.load_model(f"{name}@champion")
    best = study.best_trial
    assert np.array_equal(loaded.coef_, models[best.number].coef_)
    stored = store.run(run.run_id).data
    assert stored.params["C"] == str(best.params["C"])
    children = _children(store, run.run_id)
    assert sorted(children) == [0, 1, 2, 3]  # a decorated objective's run is the trial's own
    for child in children.values():
        assert "trial" not in child.data.params
        grandchildren = [
            r for r in store.runs() if r.data.tags.get("mlflow.parentRunId") == child.info.run_id
        ]
        assert grandchildren == []


def test_multi_objective_study_tags_its_pareto_front(store: Any) -> None:
    def objective(trial: Any) -> tuple[float, float]:
        x = trial.suggest_float("x", 0.0, 1.0)
        return x, 1.0 - x

    study = optuna.create_study(
        directions=["minimize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0)
    )
    with tracked.run("pareto") as run:
        study.optimize(objective, n_trials=3)
    stored = store.run(run.run_id).data
    assert stored.params["optuna.directions"] == "['minimize', 'minimize']"
    front = sorted(t.number for t in study.best_trials)
    assert stored.tags["tracked.sweep.best_trial"] == ",".join(map(str, front))
    children = _children(store, run.run_id)
    for trial in study.trials:
        assert children[trial.number].data.metrics["value_0"] == trial.values[0]
        assert children[trial.number].data.metrics["value_1"] == trial.values[1]
    assert run.model_version is None


def test_optimize_outside_a_run_is_left_alone(store: Any) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert store.runs() == []
