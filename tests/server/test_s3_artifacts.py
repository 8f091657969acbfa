"""Artifacts of a tracked run on the server store land in its S3 bucket and load back from it.

The server proxies artifacts (`--artifacts-destination s3://...`), so tracked's process holds no
S3 credentials at all (the `server_store` fixture removes them): the bucket is checked with
the S3 endpoint's own boto3 client.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import uuid
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import tracked

TRAIN_PY = """\
import tracked
from sklearn.linear_model import LogisticRegression


@tracked.tracked_training(model_name="{model_name}")
def train(X, y, *, C=1.0):
    model = LogisticRegression(C=C).fit(X, y)
    return model, {{"acc": model.score(X, y)}}
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)


@pytest.fixture
def dirty_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A training script committed to a fresh git repository, then edited (so a diff exists)."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "-c", "init.defaultBranch=main", "init", "-q")
    git(repo, "config", "user.name", "Test User")
    git(repo, "config", "user.email", "test@example.com")
    script = repo / "train.py"
    script.write_text(TRAIN_PY.format(model_name=f"s3-{uuid.uuid4().hex[:10]}"))
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "first")
    script.write_text(script.read_text() + "# tuned C\n")
    spec = importlib.util.spec_from_file_location(f"train_{uuid.uuid4().hex}", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def s3_keys(store, run, *, model_id: str | None = None) -> dict[str, bytes]:
    """Every object under the run's prefix in the bucket (or its logged model's, with
    `model_id`): relative artifact path -> content."""
    s3 = store.server.s3.client()
    owner = f"models/{model_id}" if model_id else run.info.run_id
    prefix = f"mlflow/{run.info.experiment_id}/{owner}/artifacts/"
    listing = s3.list_objects_v2(Bucket=store.server.bucket, Prefix=prefix)
    assert not listing["IsTruncated"]
    return {
        entry["Key"][len(prefix) :]: s3.get_object(Bucket=store.server.bucket, Key=entry["Key"])[
            "Body"
        ].read()
        for entry in listing.get("Contents", [])
    }


def test_model_requirements_and_git_diff_land_in_s3_and_the_model_loads_back(
    server_store, dirty_training
) -> None:
    # The client holds no S3 credentials or endpoint: everything goes through the server.
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"} & set(
        os.environ
    )
    rng = np.random.RandomState(0)
    X = rng.rand(50, 3)
    y = (X[:, 0] > 0.5).astype(int)

    model, _ = dirty_training.train(X, y, C=0.5)

    done = tracked.last_run()
    assert done.status == "FINISHED" and done.model_version == "1"
    run = server_store.run(done.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # proxied by the server
    assert run.data.tags["tracked.git.dirty"] == "true"
    objects = s3_keys(server_store, run)
    assert b"# tuned C" in objects["tracked/git.diff"]
    assert b"mlflow==" in objects["tracked/requirements.txt"]
    # The model is MLflow 3's logged model of the run, stored in S3 under its own prefix.
    model_id = run.data.tags["tracked.model.id"]
    stored_model = s3_keys(server_store, run, model_id=model_id)
    assert {"MLmodel", "requirements.txt"} <= set(stored_model)
    assert any(path.endswith(".skops") for path in stored_model)

    # The registered version points at the logged model, which the server reads from S3.
    version = server_store.client.get_model_version(done.model_name, "1")
    assert version.source == f"models:/{model_id}"
    loaded = tracked.load_model(f"{done.model_name}@latest")
    assert type(loaded) is type(model)
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))
    import mlflow.artifacts

    location = server_store.client.get_logged_model(model_id).artifact_location
    downloaded = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{location}/MLmodel", tracking_uri=server_store.uri
    )
    assert Path(downloaded).read_bytes() == stored_model["MLmodel"]


def test_a_failed_run_keeps_its_error_in_s3(server_store) -> None:
    @tracked.tracked_training
    def train():
        raise ValueError("diverged at epoch 3")

    with pytest.raises(ValueError):
        train()
    run = server_store.run(tracked.last_run().run_id)
    assert run.info.status == "FAILED"
    assert b"ValueError: diverged at epoch 3" in s3_keys(server_store, run)["tracked/error.txt"]
