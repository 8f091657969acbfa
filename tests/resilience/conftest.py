"""Fixtures for the fault-injection tests: a SQLite-backed mlflow server that can be killed."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from restartable_server import RestartableServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestartableServer]:
    """One server per test module; each test starts it if an earlier one left it killed."""
    process = RestartableServer(tmp_path_factory.mktemp("mlflow-server"))
    process.start()
    try:
        yield process
    finally:
        process.kill()


@pytest.fixture
def live_server(server: RestartableServer) -> RestartableServer:
    """The module's server, running."""
    server.start()
    return server


@pytest.fixture
def fresh_sqlite(sqlite_uri: str, tmp_path: Path) -> str:
    """A SQLite store whose MLflow schema is already there (a copy of the session's store), so
    a subprocess does not spend seconds creating it."""
    from tracked.store import client_for

    client_for(sqlite_uri, sqlite_uri).search_experiments(max_results=1)
    target = tmp_path / "copied-mlflow.db"
    shutil.copyfile(sqlite_uri.removeprefix("sqlite:///"), target)
    return f"sqlite:///{target}"
