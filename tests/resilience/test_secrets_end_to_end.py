"""Secrets stay out (issue #7, item 5), end to end against the real SQLite store.

Every entry of the corpus (tests/data/secrets.json) reaches one decorated training every way a
secret can: as a param by its own name, as a tag, inside a nested config, in the git remote of
the repository the training's module lives in, in an uncommitted change to that repository (the
run's git.diff), and in the message of an exception it raises.
Then nothing the run wrote may contain a corpus `secret`: params, tags, metric names, every
artifact file, the registered version, the log output and, with the store unreachable, every
file of the journal (the spool). Environment variables are never captured wholesale.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tracked
from tracked.capture.secrets import REDACTED

pytestmark = [
    pytest.mark.sqlite_only,
    pytest.mark.skipif(
        subprocess.run(["git", "--version"], capture_output=True).returncode != 0,
        reason="needs the git CLI",
    ),
]

CORPUS = json.loads((Path(__file__).parents[1] / "data" / "secrets.json").read_text())
SECRETS: list[dict[str, str]] = CORPUS["secrets"]
CLEAN: list[dict[str, str]] = CORPUS["clean"]
DEAD = "http://127.0.0.1:9"  # nothing listens: connection refused at once
REMOTE_PASSWORD = next(e["value"] for e in SECRETS if e["name"] == "db_password")

# The training's module, written into a git repository whose remote carries a password.
MODULE = '''\
"""A training module in a repository whose remote URL holds credentials."""

import tracked
from sklearn.linear_model import LinearRegression


def train(X, y, config, *, fail=False, **params):
    tracked.log_metrics({"loss": 0.5}, step=1)
    if fail:
        raise RuntimeError(f"training failed with config {config!r} and params {params!r}")
    return LinearRegression().fit(X, y), {"score": 1.0}
'''


def test_the_corpus_is_large_enough() -> None:
    assert len(SECRETS) >= 30 and len(CLEAN) >= 10
    for entry in SECRETS:
        assert entry["secret"] and entry["secret"] in entry["value"], entry["name"]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)


@pytest.fixture
def training_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The module above, committed in a fresh repository with a credentialled origin, and an
    uncommitted change that writes every corpus secret into a settings file."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(
        ["git", "-c", "init.defaultBranch=main", "init", "-q", str(repo)],
        capture_output=True,
        check=True,
    )
    for key, value in (("user.name", "T"), ("user.email", "t@example.com")):
        _git(repo, "config", key, value)
    _git(repo, "config", "commit.gpgsign", "false")
    _git(repo, "remote", "add", "origin", f"https://user:{REMOTE_PASSWORD}@github.com/o/r.git")
    path = repo / "secret_training.py"
    path.write_text(MODULE)
    settings = repo / "settings.py"
    settings.write_text("lr = 0.1\n")
    _git(repo, "add", "secret_training.py", "settings.py")
    _git(repo, "commit", "-q", "-m", "training")
    # An uncommitted edit: the run's tracked/git.diff artifact carries it.
    with settings.open("a") as fh:
        fh.writelines(f"{entry['name']} = {entry['value']!r}\n" for entry in SECRETS)
    spec = importlib.util.spec_from_file_location(f"secret_training_{uuid.uuid4().hex}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def env_marker(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Environment values no run may contain: one under a secret name, one under a plain one."""
    values = [f"env-{uuid.uuid4().hex}", f"plain-{uuid.uuid4().hex}"]
    monkeypatch.setenv("TRACKED_TEST_SECRET_ENV", values[0])
    monkeypatch.setenv("TRACKED_TEST_PLAIN_ENV", values[1])
    return values


def _forbidden(env_values: list[str]) -> list[tuple[str, str]]:
    """(label, text) pairs that must appear nowhere; JSON-escaped forms too."""
    found = [(entry["name"], entry["secret"]) for entry in SECRETS]
    found += [("environment variable", value) for value in env_values]
    escaped = [(label, json.dumps(text)[1:-1]) for label, text in found]
    return found + [pair for pair in escaped if pair not in found]


def _leaks(where: str, blob: str | bytes, forbidden: list[tuple[str, str]]) -> list[str]:
    text = blob.decode("utf-8", "replace") if isinstance(blob, bytes) else blob
    return [f"{label} in {where}" for label, secret in forbidden if secret in text]


def _call_everywhere(train: Callable[..., Any], *, fail: bool = False) -> Any:
    """One call that carries every corpus entry as a param, in a nested config, and (with
    fail=True) in the message of the exception the training raises."""
    X = np.arange(20.0).reshape(10, 2)
    y = X.sum(axis=1)
    params = {entry["name"]: entry["value"] for entry in SECRETS}
    config = {
        "db": {entry["name"]: entry["value"] for entry in SECRETS},
        "clean": {entry["name"]: entry["value"] for entry in CLEAN},
    }
    return train(X, y, config, fail=fail, **params)


def _artifact_paths(client: Any, run_id: str, path: str = "") -> Iterator[str]:
    for info in client.list_artifacts(run_id, path or None):
        if info.is_dir:
            yield from _artifact_paths(client, run_id, info.path)
        else:
            yield info.path


def _run_texts(store: Any, run_id: str, dst: Path) -> Iterator[tuple[str, str | bytes]]:
    """Everything the store holds for `run_id`: the run, its metric names, every artifact."""
    client = store.client
    run = client.get_run(run_id)
    yield "run", json.dumps(run.to_dictionary(), default=str)
    yield "metric names", "\n".join(run.data.metrics)
    paths = list(_artifact_paths(client, run_id))
    yield "artifact paths", "\n".join(paths)
    assert {"tracked/git.diff", "tracked/requirements.txt"} <= set(paths), paths
    root = Path(client.download_artifacts(run_id, "", str(dst)))
    for path in paths:
        yield f"artifact {path}", (root / path).read_bytes()


def _tags() -> dict[str, str]:
    tags = {entry["name"]: entry["value"] for entry in SECRETS}
    tags["team"] = "risk"
    return tags


WITH_TAGS = [
    pytest.param(False, id="params-config-remote-error"),
    pytest.param(True, id="and-tags"),
]


@pytest.mark.parametrize("secret_tags", WITH_TAGS)
def test_no_secret_reaches_the_store_the_registry_or_the_logs(
    secret_tags: bool,
    store: Any,
    training_module: Any,
    env_marker: list[str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    forbidden = _forbidden(env_marker)
    model_name = f"secrets-{uuid.uuid4().hex[:8]}"
    tags = _tags() if secret_tags else {"team": "risk"}
    train = tracked.tracked_training(model_name=model_name, tags=tags)(training_module.train)

    with caplog.at_level(logging.DEBUG):
        _call_everywhere(train)
        finished = tracked.last_run()
        with pytest.raises(RuntimeError, match="training failed"):
            _call_everywhere(train, fail=True)
        failed = tracked.last_run()
    assert finished is not None and failed is not None
    assert finished.run_id and failed.run_id and finished.model_version == "1"

    leaks: list[str] = []
    for run_id in (finished.run_id, failed.run_id):
        for where, blob in _run_texts(store, run_id, tmp_path / "download" / run_id):
            leaks += _leaks(f"{run_id[:6]} {where}", blob, forbidden)
    client = store.client
    registered = client.get_registered_model(model_name)
    leaks += _leaks("registered model", repr((registered.tags, registered.description)), forbidden)
    for version in client.search_model_versions(f"name = '{model_name}'"):
        text = repr((version.tags, version.description, version.source, version.run_link))
        leaks += _leaks(f"version {version.version}", text, forbidden)
    out, err = capfd.readouterr()
    leaks += _leaks("log records", caplog.text, forbidden)
    leaks += _leaks("stdout/stderr", out + err, forbidden)
    assert not leaks, leaks

    # What was redacted is still there, as ***; what is not secret is untouched.
    stored = store.run(finished.run_id)
    params = stored.data.params
    assert params["db_password"] == params["config.db.db_password"] == REDACTED
    assert stored.data.tags["mlflow.source.git.repoURL"] == "https://github.com/o/r.git"
    assert stored.data.tags["team"] == "risk"
    for entry in CLEAN:
        assert params[f"config.clean.{entry['name']}"] == entry["value"], entry["name"]
    error = client.download_artifacts(failed.run_id, "tracked/error.txt", str(tmp_path / "e"))
    assert "training failed with config" in Path(error).read_text()


def test_tags_are_redacted_by_name(store: Any) -> None:
    forbidden = _forbidden([])
    with tracked.run("tags", tags=_tags()) as run:
        pass
    stored = store.run(run.run_id)
    assert not _leaks("tags", json.dumps(stored.data.tags), forbidden)
    assert stored.data.tags["db_password"] == REDACTED


@pytest.mark.parametrize("secret_tags", WITH_TAGS)
def test_no_secret_reaches_the_spool_when_the_store_is_unreachable(
    secret_tags: bool,
    store: Any,
    training_module: Any,
    env_marker: list[str],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    forbidden = _forbidden(env_marker)
    tags = _tags() if secret_tags else {"team": "risk"}
    train = tracked.tracked_training(tracking_uri=DEAD, tags=tags)(training_module.train)

    with caplog.at_level(logging.DEBUG):
        _call_everywhere(train)
        with pytest.raises(RuntimeError, match="training failed"):
            _call_everywhere(train, fail=True)

    spool = Path(tracked.get_config().spool_dir)
    files = [p for p in spool.rglob("*") if p.is_file()]
    assert len([p for p in files if p.name == "journal"]) == 2
    assert any(p.parent.name == "models" or "models" in p.parts for p in files)
    leaks: list[str] = []
    for file in files:
        leaks += _leaks(f"spool {file.relative_to(spool)}", file.read_bytes(), forbidden)
    out, err = capfd.readouterr()
    leaks += _leaks("log records", caplog.text, forbidden)
    leaks += _leaks("stdout/stderr", out + err, forbidden)
    assert not leaks, leaks
