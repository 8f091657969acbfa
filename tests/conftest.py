"""Fixtures: real MLflow stores (SQLite in a temp dir; the server stack lives in services.py)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import tracked

pytest_plugins = ["services"]

_ENV_PREFIXES = ("TRACKED_", "MLFLOW_TRACKING_", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_")


@dataclass
class Store:
    """A real MLflow store and the experiment this test writes to."""

    uri: str
    experiment: str
    kind: str

    @property
    def client(self) -> Any:
        from tracked.writers.mlflow import client_for

        return client_for(self.uri, self.uri)

    def runs(self) -> list[Any]:
        """Every run of this test's experiment, oldest first."""
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            return []
        return list(
            self.client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
        )

    def run(self, run_id: str) -> Any:
        return self.client.get_run(run_id)

    def metric_history(self, run_id: str, key: str) -> list[Any]:
        return list(self.client.get_metric_history(run_id, key))


@pytest.fixture(autouse=True)
def _clean_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each test starts from defaults: no configure(), no TRACKED_*/MLFLOW_* env, a temp cwd."""
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TRACKED_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.chdir(tmp_path)
    tracked.reset_defaults()
    yield
    tracked.reset_defaults()


@pytest.fixture(scope="session")
def sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the session: creating its schema takes a second or two."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    return f"sqlite:///{path.as_posix()}"


@pytest.fixture
def store(sqlite_uri: str) -> Store:
    """The SQLite store, with an experiment of this test's own, configured as the default."""
    experiment = f"test-{uuid.uuid4().hex[:12]}"
    tracked.configure(tracking_uri=sqlite_uri, experiment=experiment, project="proj")
    return Store(uri=sqlite_uri, experiment=experiment, kind="sqlite")
