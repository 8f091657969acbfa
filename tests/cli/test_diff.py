"""`tracked diff A B` and `tracked.diff(a, b)` on a real store, with two commits of a git repo."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import numpy as np
from click.testing import CliRunner

import tracked
from tracked import tags as T
from tracked.cli import cli
from tracked.store import client_for


def git(repo: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(command, cwd=repo, check=True, capture_output=True, text=True).stdout


def train(source: Path, model: str, X: np.ndarray, params: dict, auc: float, loss: float) -> str:
    from sklearn.linear_model import LogisticRegression

    with tracked.run("fit", model_name=model, params=params, source=str(source)) as run:
        run.log_input(X, "X")
        run.log_metrics({"val_auc": auc, "val_loss": loss})
        run.log_model(LogisticRegression().fit(X, X[:, 0] > 0.5))
    return str(run.run_id)


def test_diff_names_params_data_commits_and_metric_directions(store, tmp_path: Path) -> None:
    repo = tmp_path  # the working directory: `git log` runs here
    git(repo, "init", "-q")
    source = repo / "train.py"
    source.write_text("# version one\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "first model")
    model = f"diff-{uuid.uuid4().hex[:8]}"
    rng = np.random.RandomState(0)
    X1, X2 = rng.rand(40, 2), rng.rand(40, 2)
    run_a = train(source, model, X1, {"C": 1.0, "depth": 3}, auc=0.80, loss=0.40)
    source.write_text("# version two\n")
    git(repo, "commit", "-q", "-am", "tune the regulariser")
    run_b = train(source, model, X2, {"C": 2.0, "lr": 0.1}, auc=0.85, loss=0.45)
    # the estimator class, as the run pipeline records it on a version
    client = client_for(store.uri, store.uri)
    client.set_model_version_tag(model, "2", T.MODEL_CLASS, "sklearn.linear_model.Ridge")

    diff = tracked.diff(f"{model}/1", f"{model}/2")

    assert (diff.a.run_id, diff.b.run_id) == (run_a, run_b)
    changes = {c.name: (c.change, c.a, c.b) for c in diff.params}
    assert changes == {
        "C": ("changed", "1.0", "2.0"),
        "depth": ("removed", "3", None),
        "lr": ("added", None, "0.1"),
    }
    assert {c.name: c.change for c in diff.data} == {"X": "changed"}
    head = git(repo, "rev-parse", "HEAD").strip()
    assert diff.code.b == head and diff.code.a != head and diff.code.same is False
    assert diff.code.log is not None and len(diff.code.log) == 1
    assert diff.code.log[0].endswith("tune the regulariser")
    metrics = {m.name: m for m in diff.metrics}
    assert metrics["val_auc"].verdict == "better" and metrics["val_auc"].higher_is_better
    assert metrics["val_loss"].verdict == "worse" and not metrics["val_loss"].higher_is_better
    assert diff.key_metric is not None and diff.metrics[0].name == diff.key_metric.name
    assert diff.model is not None and diff.model.b == "sklearn.linear_model.Ridge"

    result = CliRunner().invoke(cli, ["diff", f"{model}/1", "2"])
    assert result.exit_code == 0, result.stderr
    assert "tune the regulariser" in result.stdout
    assert "1 commits from a to b" in result.stdout
    lines = result.stdout.splitlines()
    assert any(line.startswith("val_loss\t") and "\tworse\tlower" in line for line in lines)

    runs = tracked.diff(run_a, run_b)  # the same two, as runs
    assert runs.a.kind == runs.b.kind == "run"
    assert {c.name for c in runs.params} == {"C", "depth", "lr"}


def test_diff_of_a_commit_not_in_this_repository(store, tmp_path: Path) -> None:
    model = f"diff-far-{uuid.uuid4().hex[:8]}"
    X = np.random.RandomState(1).rand(20, 2)
    train(tmp_path / "train.py", model, X, {"C": 1.0}, auc=0.7, loss=0.5)
    train(tmp_path / "train.py", model, X, {"C": 1.0}, auc=0.7, loss=0.5)
    client = client_for(store.uri, store.uri)
    for version, commit in (("1", "a" * 40), ("2", "b" * 40)):
        client.set_model_version_tag(model, version, T.VERSION_GIT_COMMIT, commit)

    diff = tracked.diff(f"{model}/1", f"{model}/2")

    assert diff.code.log is None and "is not in this repository" in diff.code.log_note
    assert diff.params == [] and diff.unchanged_params == 1
    assert [c.change for c in diff.data] == ["same"]
    assert {m.verdict for m in diff.metrics} == {"same"}
