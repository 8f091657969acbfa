"""Data arguments become dataset inputs; versions know exactly which data trained them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

import tracked


class Mean:
    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, X):
        return np.full(len(X), self.value)


def frame(rows: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.RandomState(seed)
    return pd.DataFrame({"a": rng.rand(rows), "b": rng.randint(0, 9, rows), "c": ["x"] * rows})


@tracked.tracked_training(model_name="lin-model")
def train(X_train, y_train, X_val, *, depth=3):
    return Mean(float(y_train.mean())), {"val_score": 0.5}


def test_data_arguments_logged_as_dataset_inputs(store) -> None:
    X = frame()
    train(X, X["b"], X.head(100))
    run = tracked.last_run()
    inputs = store.run(run.run_id).inputs.dataset_inputs
    by_name = {i.dataset.name: i for i in inputs}
    assert set(by_name) == {"X_train", "y_train", "X_val"}
    ctx = {
        n: next(t.value for t in i.tags if t.key == "mlflow.data.context")
        for n, i in by_name.items()
    }
    assert ctx == {"X_train": "training", "y_train": "training", "X_val": "validation"}
    x_train = by_name["X_train"].dataset
    full = tracked.fingerprint(X).digest
    assert full.endswith(x_train.digest)
    profile = json.loads(x_train.profile)
    assert profile["tracked.digest"] == full and profile["shape"] == [1000, 3]
    assert [c["name"] for c in json.loads(x_train.schema)["mlflow_colspec"]] == ["a", "b", "c"]
    assert "X_train" not in store.run(run.run_id).data.params  # data is never a param
    assert (
        store.client.get_model_version("lin-model", run.model_version).tags["tracked.data.X_train"]
        == full
    )


def test_file_argument_is_param_and_input(store, tmp_path) -> None:
    path = tmp_path / "train.csv"
    frame(50).to_csv(path, index=False)

    @tracked.tracked_training
    def fit(train_path, lr=0.1):
        return {"ok": 1}

    fit(str(path))
    run = tracked.last_run()
    mlflow_run = store.run(run.run_id)
    assert mlflow_run.data.params["train_path"] == str(path)
    (entry,) = mlflow_run.inputs.dataset_inputs
    assert json.loads(entry.dataset.source)["uri"] == str(path)
    assert json.loads(entry.dataset.profile)["tracked.digest"] == tracked.fingerprint(path).digest


def test_opt_out_and_exclude(store) -> None:
    @tracked.tracked_training(fingerprint=False)
    def fit_plain(X):
        return {}

    @tracked.tracked_training(exclude=["X_secret"])
    def fit_excluded(X, X_secret):
        return {}

    fit_plain(np.ones((3, 3)))
    assert store.run(tracked.last_run().run_id).inputs.dataset_inputs == []
    fit_excluded(np.ones((3, 3)), np.zeros(3))
    names = [i.dataset.name for i in store.run(tracked.last_run().run_id).inputs.dataset_inputs]
    assert names == ["X"]


def test_run_log_input_explicitly(store, tmp_path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"\x00" * 10)
    with tracked.run("block") as run:
        run.log_input(folder, name="images", context="training")
        run.log_input(np.arange(10), name="labels")
    inputs = {i.dataset.name: i for i in store.run(run.run_id).inputs.dataset_inputs}
    assert set(inputs) == {"images", "labels"}
    assert json.loads(inputs["images"].dataset.profile)["kind"] == "directory"


def test_lineage_by_alias_and_version_and_find_versions(store) -> None:
    X = frame(100_000)
    train(X, X["b"], X.head(10))
    first = tracked.last_run()
    edited = X.copy()
    edited.loc[50_000, "a"] += 1.0  # one value in row 50,000: MLflow's sampled digest misses it
    train(edited, edited["b"], edited.head(10))
    second = tracked.last_run()
    store.client.set_registered_model_alias("lin-model", "champion", second.model_version)

    a = tracked.lineage("lin-model", version=first.model_version)
    b = tracked.lineage("lin-model@champion")
    assert (a.run_id, b.run_id) == (first.run_id, second.run_id)
    assert b.aliases == ("champion",)
    assert a.input("X_train").digest != b.input("X_train").digest
    assert a.input("X_val").digest == b.input("X_val").digest  # the first 10 rows are equal
    assert a.input("X_train").shape == (100_000, 3)
    assert a.params == {"depth": "3"}
    assert a.metrics["val_score"] == 0.5
    if first.git is not None:
        assert a.git_commit == first.git.commit and a.git_dirty is first.git.dirty

    matches = tracked.find_versions(digest=a.input("X_train").digest)
    assert [(m.model, m.version, m.input) for m in matches] == [
        ("lin-model", first.model_version, "X_train")
    ]
    short = b.input("X_train").digest.rsplit(":", 1)[-1][:12]
    assert [m.version for m in tracked.find_versions(digest=short)] == [second.model_version]
    shared = tracked.find_versions(digest=a.input("X_val").digest, name="lin-model")
    assert {m.version for m in shared} == {first.model_version, second.model_version}


def test_lineage_survives_a_deleted_run(store) -> None:
    X = frame(10)
    train(X, X["b"], X)
    run = tracked.last_run()
    store.client.delete_run(run.run_id)
    found = tracked.lineage("lin-model", version=run.model_version)
    assert {i.name for i in found.inputs} >= {"X_train"}


def test_finding4_an_unknown_git_state_reads_as_unknown_everywhere(store) -> None:
    """`tracked.git.dirty="unknown"` (a run recorded outside a git tree) is None in lineage,
    in version listings and in the clean-git rule alike, never "clean"."""
    client = store.client
    experiment = client.get_experiment_by_name(store.experiment)
    experiment_id = (
        experiment.experiment_id if experiment else client.create_experiment(store.experiment)
    )
    run = client.create_run(experiment_id, tags={"tracked.git.dirty": "unknown"})
    client.set_terminated(run.info.run_id)
    name = f"lin-unknown-{run.info.run_id[:8]}"
    client.create_registered_model(name)
    client.create_model_version(
        name,
        source=f"{run.info.artifact_uri}/model",
        run_id=run.info.run_id,
        tags={"tracked.git.commit": "abc123", "tracked.git.dirty": "unknown"},
    )

    assert tracked.lineage(name, version=1).git_dirty is None
    (row,) = tracked.list_versions(name)
    assert (row.git_commit, row.git_dirty) == ("abc123", None)
    decision = tracked.promote(name, 1, policy=tracked.PromotionPolicy("c", require_clean_git=True))
    assert not decision.promoted and "git state unknown" in decision.reason
