"""Artifacts from files deleted right after logging, signatures that keep the label out, and the
git commit of code that has no source file (`exec`, `python -c`)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import textwrap
from pathlib import Path

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from fidelity_checks import artifact_files
from python_process import run_python
from sklearn.linear_model import LogisticRegression

import tracked
from tracked import tags as T

BOTH_STORES = pytest.mark.parametrize(
    "store", ["sqlite", pytest.param("server", marks=pytest.mark.services)], indirect=True
)

RNG = np.random.default_rng(3)
FRAME = pd.DataFrame(RNG.normal(size=(60, 3)), columns=["tenure", "spend", "visits"])
FRAME["churn"] = (FRAME["tenure"] + FRAME["spend"] > 0).astype(int)
FEATURES = FRAME.drop(columns="churn")


# -- artifacts ----------------------------------------------------------------------------------


@BOTH_STORES
def test_artifacts_of_temp_files_removed_right_after_the_call_are_kept(store, tmp_path) -> None:
    with tracked.run("temp-artifacts") as run:
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "by-run.txt"
            path.write_text("logged with run.log_artifact")
            run.log_artifact(path)
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "by-mlflow.txt"
            path.write_text("logged with mlflow.log_artifact")
            mlflow.log_artifact(str(path), "plots")
        assert not path.exists()
        run.log_metrics({"after": 1.0})  # the run goes on after the files are gone

    assert run.status == "FINISHED"
    client = store.client
    files = artifact_files(client, run.run_id)
    assert {"by-run.txt", "plots/by-mlflow.txt", "tracked/requirements.txt"} <= set(files)
    for name, text in (
        ("by-run.txt", "logged with run.log_artifact"),
        ("plots/by-mlflow.txt", "logged with mlflow.log_artifact"),
    ):
        local = client.download_artifacts(run.run_id, name, str(tmp_path))
        assert Path(local).read_text() == text
    assert client.get_run(run.run_id).info.status == "FINISHED"


def test_an_artifact_path_climbing_out_of_the_run_is_not_written_outside_it(store) -> None:
    """A file placed straight into the embedded store's artifact directory goes where MLflow's
    own repository would put it, and nowhere MLflow would refuse to."""
    with tracked.run("climb") as run:
        tracked.log_text("stays", "notes/ok.txt")
        tracked.log_text("escapes?", "../../escape.txt")
    run.flush()

    info = store.client.get_run(run.run_id).info
    root = Path(info.artifact_uri.removeprefix("file://"))
    assert (root / "notes" / "ok.txt").read_text() == "stays"
    assert not (root / ".." / ".." / "escape.txt").resolve().exists()
    assert "escape.txt" not in artifact_files(store.client, run.run_id)


def test_a_file_system_that_refuses_hard_links_gets_a_copy(store, monkeypatch, tmp_path) -> None:
    """Same device, but the link is refused (two mounts of one file system, SMB): copied. The
    refusal is injected by patching `os.link`: no real part here refuses links on demand."""
    import errno
    import os

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", refuse)
    with tracked.run("no-links") as run:
        tracked.log_text("copied", "notes/c.txt")
    assert run.flush(60)

    local = store.client.download_artifacts(run.run_id, "notes/c.txt", str(tmp_path))
    assert Path(local).read_text() == "copied"


def test_an_artifact_root_with_a_percent_sign_is_where_mlflow_reads(
    store, monkeypatch, tmp_path
) -> None:
    root = tmp_path / "art%41facts dir"
    monkeypatch.setenv("TRACKED_ARTIFACT_LOCATION", root.as_uri())
    with tracked.run("percent", experiment=f"pct-{os.getpid()}-{id(root)}") as run:
        tracked.log_text("found", "notes/p.txt")
    assert run.flush(60)

    local = store.client.download_artifacts(run.run_id, "notes/p.txt", str(tmp_path / "out"))
    assert Path(local).read_text() == "found"
    assert list(root.rglob("p.txt"))  # under the directory the URI names


# -- signatures: the model's own view of its inputs ---------------------------------------------


def load_registered_pyfunc(store, run, monkeypatch) -> mlflow.pyfunc.PyFuncModel:
    """The registered version as MLflow serves it: `mlflow.pyfunc.load_model("models:/...")`."""
    from mlflow.tracking._tracking_service import utils

    assert run.model_name and run.model_version
    tracked.flush(60)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    monkeypatch.setattr(utils, "_tracking_uri", store.uri)
    return mlflow.pyfunc.load_model(f"models:/{run.model_name}/{run.model_version}")


def test_a_frame_with_the_target_inside_gives_a_signature_of_the_features_only(
    store, monkeypatch
) -> None:
    @tracked.tracked_training(name="churn-frame")
    def train(df: pd.DataFrame, cfg: dict) -> LogisticRegression:
        target = cfg["target"]
        return LogisticRegression(C=cfg["C"]).fit(df.drop(columns=target), df[target])

    model = train(FRAME, {"target": "churn", "C": 0.5})

    served = load_registered_pyfunc(store, tracked.last_run(), monkeypatch)
    assert served.metadata.get_input_schema().input_names() == ["tenure", "spend", "visits"]
    predicted = served.predict(FRAME.drop(columns="churn"))
    assert np.array_equal(np.asarray(predicted), model.predict(FEATURES))


def test_a_booster_names_its_features_so_the_label_stays_out(store, monkeypatch) -> None:
    @tracked.tracked_training(name="churn-booster")
    def train(df: pd.DataFrame, rounds: int = 3) -> xgb.Booster:
        data = xgb.DMatrix(df.drop(columns="churn"), label=df["churn"])
        return xgb.train({"max_depth": 2, "nthread": 1}, data, rounds)

    booster = train(FRAME)

    served = load_registered_pyfunc(store, tracked.last_run(), monkeypatch)
    assert served.metadata.get_input_schema().input_names() == ["tenure", "spend", "visits"]
    predicted = np.asarray(served.predict(FRAME.drop(columns="churn")))
    assert np.allclose(predicted, booster.predict(xgb.DMatrix(FEATURES)))


# MLflow's pyfunc hands the model a DataFrame; scikit-learn notes that it was fitted on an array
@pytest.mark.filterwarnings("ignore:X has feature names:UserWarning")
def test_label_on_the_decorator_keeps_it_out_for_a_model_that_does_not_know_its_features(
    store, monkeypatch
) -> None:
    @tracked.tracked_training(name="churn-array", label="churn")
    def train(df: pd.DataFrame) -> LogisticRegression:
        # fitted on an array: the model has no feature_names_in_ to say which columns it takes
        return LogisticRegression().fit(df.drop(columns="churn").to_numpy(), df["churn"])

    model = train(FRAME)

    served = load_registered_pyfunc(store, tracked.last_run(), monkeypatch)
    assert served.metadata.get_input_schema().input_names() == ["tenure", "spend", "visits"]
    predicted = served.predict(FRAME.drop(columns="churn"))
    assert np.array_equal(np.asarray(predicted), model.predict(FEATURES.to_numpy()))


# -- git state of code without a source file ----------------------------------------------------


@pytest.fixture
def git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A repository with one commit, as the working directory; (its path, the commit)."""
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    git("init", "-q")
    (repo / "train.txt").write_text("the code lives in a notebook\n")
    git("add", "train.txt")
    git("commit", "-q", "-m", "first")
    monkeypatch.chdir(repo)
    return repo, git("rev-parse", "HEAD")


def test_a_function_defined_through_exec_records_the_working_directorys_commit(
    store, git_repo
) -> None:
    _, commit = git_repo
    namespace: dict = {"tracked": tracked}
    source = textwrap.dedent(
        """
        @tracked.tracked_training(name="from-exec")
        def train(alpha=0.1):
            return {"loss": alpha}
        """
    )
    exec(compile(source, "<notebook cell>", "exec"), namespace)

    namespace["train"]()

    stored = store.run(tracked.last_run().run_id)
    assert stored.data.tags[T.GIT_COMMIT] == commit
    assert stored.data.tags[T.GIT_DIRTY] == "false"


def test_a_function_defined_with_python_c_records_the_working_directorys_commit(
    store, git_repo, tmp_path
) -> None:
    _, commit = git_repo
    out = tmp_path / "run_id.txt"
    run_python(
        textwrap.dedent(
            f"""
            import tracked

            tracked.configure(
                tracking_uri={store.uri!r}, experiment={store.experiment!r}, project="proj"
            )

            @tracked.tracked_training(name="from-python-c")
            def train(alpha=0.1):
                return {{"loss": alpha}}

            train()
            tracked.flush(60)
            open({str(out)!r}, "w").write(tracked.last_run().run_id)
            """
        )
    )
    stored = store.run(out.read_text())
    assert stored.data.tags[T.GIT_COMMIT] == commit
