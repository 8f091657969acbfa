"""tracked against an `mlflow server --app-name basic-auth`: credentials come from MLflow's own
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, a refusal is one clear line (or, strict,
`tracked.AuthenticationError`), and the credentials never end up in what a run records."""

from __future__ import annotations

import base64
import logging
import secrets
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tracked
from tracked.registry.versions import client


@pytest.fixture
def user(auth_server: Any) -> tuple[str, str]:
    """A fresh user on the auth server, with a distinctive password."""
    username = f"trainer-{secrets.token_hex(4)}"
    password = f"Pw-{secrets.token_urlsafe(18)}-not-in-any-log"
    auth_server.create_user(username, password)
    return username, password


def use_server(
    monkeypatch: pytest.MonkeyPatch, server: Any, username: str | None, password: str | None
) -> str:
    """Point tracked at `server` with these credentials; returns the experiment name."""
    for name, value in (
        ("MLFLOW_TRACKING_USERNAME", username),
        ("MLFLOW_TRACKING_PASSWORD", password),
    ):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    experiment = f"auth-{uuid.uuid4().hex[:12]}"
    tracked.configure(tracking_uri=server.url, experiment=experiment, project="auth")
    return experiment


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    X = rng.rand(50, 3)
    return X, (X[:, 0] > 0.5).astype(int)


def make_training(model_name: str) -> Any:
    @tracked.tracked_training(model_name=model_name)
    def train(X, y, *, C=1.0):
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=C).fit(X, y)
        return model, {"acc": model.score(X, y)}

    return train


REFUSED = {
    "wrong-password": lambda user: (user[0], "not-the-password"),
    "unknown-user": lambda user: (f"nobody-{secrets.token_hex(4)}", user[1]),
    "no-credentials": lambda user: (None, None),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_credentials_training_completes_with_one_clear_line(
    auth_server, user, monkeypatch, caplog, case, tmp_path: Path
) -> None:
    username, password = REFUSED[case](user)
    use_server(monkeypatch, auth_server, username, password)
    X, y = data()
    train = make_training(f"refused-{uuid.uuid4().hex[:8]}")

    with caplog.at_level(logging.WARNING, logger="tracked"):
        model, metrics = train(X, y)
        tracked.flush(60)  # the run is sent in the background: wait for the store's answer

    assert metrics["acc"] == model.score(X, y)  # the training's own result, untouched
    assert tracked.last_run().run_id is None
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("tracked")]
    assert all("\n" not in line for line in lines)
    refusals = [line for line in lines if "401" in line]
    assert len(refusals) == 1, lines
    assert auth_server.url in refusals[0]
    assert "HTTP 401 Unauthorized" in refusals[0]
    assert "MLFLOW_TRACKING_USERNAME" in refusals[0]  # says how to fix it
    # The run was kept on disk for `tracked sync`, without the credentials it was refused with.
    spooled = [p for p in (tmp_path / "spool").rglob("*") if p.is_file()]
    assert spooled
    if password is not None:
        assert not [p for p in spooled if password.encode() in p.read_bytes()]


def test_a_refusing_server_is_never_called_unreachable(
    auth_server, user, monkeypatch, caplog, capsys
) -> None:
    use_server(monkeypatch, auth_server, user[0], "not-the-password")

    @tracked.tracked_training
    def train():
        return {"acc": 1.0}

    with caplog.at_level(logging.WARNING, logger="tracked"):
        train()
        tracked.flush(60)
    said = caplog.text + capsys.readouterr().err
    assert "401" in said and "unreachable" not in said


def test_refused_credentials_under_strict_raise_before_training(
    auth_server, user, monkeypatch
) -> None:
    use_server(monkeypatch, auth_server, user[0], "not-the-password")
    calls = []

    @tracked.tracked_training(strict=True)
    def train():
        calls.append(1)
        return {"acc": 1.0}

    with pytest.raises(tracked.AuthenticationError) as info:
        train()
    assert isinstance(info.value, tracked.TrackingError)
    assert info.value.status == 401
    assert auth_server.url in str(info.value) and "401" in str(info.value)
    assert "\n" not in str(info.value)
    assert "not-the-password" not in str(info.value)
    assert calls == []


def test_runs_registers_promotes_and_never_records_the_credentials(
    auth_server, user, monkeypatch, caplog, capfd, tmp_path: Path
) -> None:
    # One test for both: every request to a basic-auth server checks the password hash, which
    # costs about half a second here, so each run against it is slow.
    username, password = user
    use_server(monkeypatch, auth_server, username, password)
    name = f"auth-model-{uuid.uuid4().hex[:8]}"
    X, y = data()

    with caplog.at_level(logging.DEBUG):
        model, metrics = make_training(name)(X, y, C=0.5)
        run = tracked.last_run()
        assert run.flush(120)
        decision = tracked.promote(name, run.model_version)
        loaded = tracked.load_model(f"{name}@champion")

    assert run.status == "FINISHED" and run.model_version == "1"
    assert decision.promoted
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))
    registry = client()
    recorded = registry.get_run(run.run_id)
    assert recorded.data.params["C"] == "0.5"
    assert recorded.data.metrics["acc"] == metrics["acc"]
    assert registry.get_model_version_by_alias(name, "champion").version == "1"

    # Credentials in any form: the password, user:password, the Basic header's base64.
    basic = base64.b64encode(f"{username}:{password}".encode()).decode()
    secrets_ = (password, f"{username}:{password}", basic)
    version = registry.get_model_version(name, run.model_version)
    model_entry = registry.get_registered_model(name)
    artifacts = Path(registry.download_artifacts(run.run_id, "", dst_path=str(tmp_path / "dl")))
    import mlflow.artifacts

    logged = registry.get_logged_model(recorded.data.tags["tracked.model.id"])
    mlflow.artifacts.download_artifacts(  # the model itself: a logged model of MLflow 3
        artifact_uri=logged.artifact_location,
        dst_path=str(artifacts / "model"),
        tracking_uri=auth_server.url,
    )
    files = [p for p in artifacts.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"requirements.txt", "MLmodel"} <= names
    assert any(n.endswith(".json") for n in names)  # the promotion decision
    out, err = capfd.readouterr()
    assert not [p for p in (tmp_path / "spool").rglob("*") if p.is_file()]  # nothing spooled
    texts = {
        "params": repr(recorded.data.params),
        "tags": repr(recorded.data.tags),
        "metric names": repr(sorted(recorded.data.metrics)),
        "run name": recorded.info.run_name,
        "version": repr((version.tags, version.source, version.description)),
        "registered model": repr((model_entry.tags, model_entry.description)),
        "log records": caplog.text,
        "stdout and stderr": out + err,
        **{f"artifact {p.relative_to(artifacts)}": p.read_bytes().decode("latin-1") for p in files},
    }
    for what, text in texts.items():
        for secret in secrets_:
            assert secret not in text, f"credentials found in {what}"
