"""A training function that already calls MLflow, decorated: one run holds everything it logs.

The function is what existing code looks like: its own `mlflow.log_*` calls, a matplotlib
figure, `mlflow.sklearn.autolog()`, the fitted estimator returned. Real SQLite stores; the
store-down case uses a closed port on 127.0.0.1 and MLflow's default HTTP retry settings.
"""

from __future__ import annotations

import json
import os
import tempfile

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import mlflow
import mlflow.sklearn
import numpy as np
import pytest
from fidelity_checks import artifact_files
from sklearn.linear_model import LogisticRegression

import tracked
from tracked import tags as T

RNG = np.random.default_rng(0)
X = RNG.normal(size=(80, 3))
Y = (X[:, 0] > 0).astype(int)

USER_FILES = ["config/settings.json", "notes.txt", "plots/curve.png", "scratch.txt"]


def existing_training(X, y, *, C=1.0, autolog=True):
    """A training function as found in a code base that already uses MLflow."""
    if autolog:
        mlflow.sklearn.autolog(log_input_examples=False, log_post_training_metrics=False)
    mlflow.log_param("solver_note", "lbfgs")
    mlflow.set_tag("team", "risk")
    model = LogisticRegression(C=C).fit(X, y)
    for step, value in enumerate((0.9, 0.6, 0.4)):
        mlflow.log_metric("user_loss", value, step=step)
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    mlflow.log_figure(fig, "plots/curve.png")
    plt.close(fig)
    mlflow.log_dict({"C": C}, "config/settings.json")
    mlflow.log_text("trained", "notes.txt")
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "scratch.txt")
        with open(path, "w") as f:
            f.write("kept")
        mlflow.log_artifact(path)
    return model


def assert_holds_the_users_logging(store, run) -> None:
    assert run.data.params["solver_note"] == "lbfgs"
    assert run.data.tags["team"] == "risk"
    history = sorted((m.step, m.value) for m in store.metric_history(run.info.run_id, "user_loss"))
    assert history == [(0, 0.9), (1, 0.6), (2, 0.4)]
    files = artifact_files(store.client, run.info.run_id)
    assert set(USER_FILES) <= set(files), files
    assert "tracked/requirements.txt" in files


@pytest.mark.filterwarnings("ignore::FutureWarning")  # scikit-learn's, from autolog's metrics
def test_existing_mlflow_calls_and_autolog_land_in_one_run_with_one_model(store) -> None:
    train = tracked.tracked_training(name="existing")(existing_training)

    model = train(X, Y, C=0.5)

    run = tracked.last_run()
    assert isinstance(model, LogisticRegression) and run.status == "FINISHED"
    [stored] = store.runs()  # one run holds everything: no second run from the MLflow calls
    assert stored.info.run_id == run.run_id
    assert_holds_the_users_logging(store, stored)
    assert stored.data.params["C"] == "0.5"  # tracked's bound arguments and autolog's, together
    assert "training_score" in stored.data.metrics  # autolog's own metric
    client = store.client
    logged = client.search_logged_models([stored.info.experiment_id])
    assert len(logged) == 1  # autolog's model; tracked did not log the same estimator again
    versions = client.search_model_versions(f"name = '{run.model_name}'")
    assert [str(v.version) for v in versions] == ["1"]
    listed = json.loads(logged[0].tags["mlflow.modelVersions"])  # registered from it
    assert listed == [{"name": run.model_name, "version": "1"}]
    assert logged[0].tags[T.FLAVOR] == "sklearn"  # tracked's tags added to it
    assert stored.data.tags["tracked.model.id"] == logged[0].model_id


def test_a_returned_model_autolog_did_not_log_is_logged_by_tracked(store) -> None:
    @tracked.tracked_training(name="own-model")
    def train(X, y):
        mlflow.sklearn.autolog(log_models=False)
        return LogisticRegression().fit(X, y)

    train(X, Y)

    [stored] = store.runs()
    [logged] = store.client.search_logged_models([stored.info.experiment_id])
    assert logged.tags["tracked.model.serialization"] == "skops"  # tracked's own save
    assert tracked.last_run().model_version == "1"


def test_inside_the_users_start_run_it_becomes_a_child_in_that_experiment(store) -> None:
    mlflow.set_tracking_uri(store.uri)
    outer_experiment = mlflow.set_experiment(f"{store.experiment}-outer")
    train = tracked.tracked_training(name="nested")(existing_training)

    with mlflow.start_run() as outer:
        train(X, Y, autolog=False)
        assert mlflow.active_run().info.run_id == outer.info.run_id  # the user's run again

    run = tracked.last_run()
    client = store.client
    child = client.get_run(run.run_id)
    assert child.data.tags["mlflow.parentRunId"] == outer.info.run_id
    assert child.info.experiment_id == outer_experiment.experiment_id
    assert_holds_the_users_logging(store, child)
    parent = client.get_run(outer.info.run_id)
    assert "user_loss" not in parent.data.metrics
    assert artifact_files(client, outer.info.run_id) == []


def test_set_experiment_before_the_call_is_honoured(sqlite_uri) -> None:
    tracked.configure(tracking_uri=sqlite_uri, project="proj")  # no experiment for tracked
    mlflow.set_tracking_uri(sqlite_uri)
    chosen = mlflow.set_experiment(f"chosen-{os.getpid()}-{RNG.integers(1 << 30)}")
    train = tracked.tracked_training(name="set-experiment")(existing_training)

    train(X, Y, autolog=False)

    run = tracked.last_run()
    tracked.flush(60)
    assert mlflow.MlflowClient(sqlite_uri).get_run(run.run_id).info.experiment_id == (
        chosen.experiment_id
    )


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_with_the_store_down_everything_is_spooled_and_synced_to_one_run(
    store, closed_port_uri, capfd
) -> None:
    train = tracked.tracked_training(name="offline", tracking_uri=closed_port_uri)(
        existing_training
    )

    model = train(X, Y)  # MLflow's default retries would hold autolog's calls for minutes

    run = tracked.last_run()
    assert isinstance(model, LogisticRegression) and run.status == "FINISHED"
    assert run.journal_path is not None and run.journal_path.is_dir()
    # autolog's calls to the dead store were refused at once, not retried (MLflow says so)
    assert "MLflow's request was not sent" in capfd.readouterr().err
    assert store.runs() == []

    report = tracked.sync(tracking_uri=store.uri)

    assert [e.state for e in report.entries] == ["sent"]
    [stored] = store.runs()
    assert_holds_the_users_logging(store, stored)
    assert stored.data.params["C"] == "1.0" and stored.info.status == "FINISHED"
    # one version of the run (the registry is shared by the session's tests: not always v1)
    versions = store.client.search_model_versions(f"run_id = '{stored.info.run_id}'")
    assert [v.name for v in versions] == ["proj-offline"]


def test_log_image_and_log_table_and_the_module_level_verbs_land_in_the_run(store) -> None:
    import pandas as pd

    @tracked.tracked_training(name="verbs")
    def train():
        mlflow.log_image(np.zeros((4, 4, 3), dtype=np.uint8), "images/blank.png")
        mlflow.log_table(pd.DataFrame({"a": [1, 2]}), "tables/t.json")
        tracked.log_text("hello", "notes/n.txt")
        tracked.log_dict({"k": 1}, "notes/d.json")
        tracked.set_tags({"stage": "dev"})
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        tracked.log_figure(fig, "plots/f.png")
        plt.close(fig)
        return {"acc": 0.5}

    train()

    [stored] = store.runs()
    files = set(artifact_files(store.client, stored.info.run_id))
    expected = {"images/blank.png", "tables/t.json", "notes/n.txt", "notes/d.json", "plots/f.png"}
    assert expected <= files, files
    assert stored.data.tags["stage"] == "dev"


def test_an_async_decorated_training_and_its_tasks_log_into_their_run(store) -> None:
    import asyncio

    @tracked.tracked_training(name="async-train")
    async def train():
        async def evaluate() -> str:
            mlflow.log_metric("from_task", 2.0)
            return mlflow.active_run().info.run_id

        await asyncio.sleep(0)
        mlflow.log_metric("from_coroutine", 1.0)
        task_run = await asyncio.create_task(evaluate())
        return {"acc": 1.0, "task_saw_run": float(task_run == mlflow.active_run().info.run_id)}

    result = asyncio.run(train())

    assert result["task_saw_run"] == 1.0
    [stored] = store.runs()
    assert stored.info.run_id == tracked.last_run().run_id
    assert {"from_task", "from_coroutine", "acc"} <= set(stored.data.metrics)


def test_another_thread_keeps_its_own_mlflow_state_while_a_run_is_active(store, tmp_path) -> None:
    import threading

    other_uri = f"sqlite:///{(tmp_path / 'other.db').as_posix()}"
    seen: dict[str, object] = {}

    def unrelated_worker() -> None:  # a thread the training did not start, with its own run
        seen["active"] = mlflow.active_run()
        client = mlflow.MlflowClient(other_uri)
        experiment = client.create_experiment("elsewhere")
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "worker_metric", 3.0)
        seen["run_id"] = run.info.run_id

    with tracked.run("main-thread") as run:
        mlflow.log_metric("main_metric", 1.0)
        worker = threading.Thread(target=unrelated_worker)
        worker.start()
        worker.join()

    assert seen["active"] is None  # the tracked run is not the other thread's active run
    [stored] = store.runs()
    assert stored.info.run_id == run.run_id and set(stored.data.metrics) == {"main_metric"}
    other = mlflow.MlflowClient(other_uri).get_run(str(seen["run_id"]))
    assert other.data.metrics == {"worker_metric": 3.0}
