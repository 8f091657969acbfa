"""Fixtures: real MLflow stores (SQLite in a temp dir; the server stack lives in services.py).

`store` is the embedded SQLite store everywhere. In the scenario modules listed in
`SERVER_SCENARIO_MODULES` it is parametrised: each test runs once on SQLite (`[sqlite]`) and
once on an `mlflow server` backed by PostgreSQL with artifacts proxied to S3 (`[server]`,
marked `services`). `@pytest.mark.sqlite_only` keeps a test that needs a local store (a file
path, fault injection into MLflow's SQL store) off the server.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import tracked

pytest_plugins = ["services"]

_ENV_PREFIXES = ("TRACKED_", "MLFLOW_TRACKING_", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_")
# What would let tracked's own process reach S3 directly. The server store removes them: with
# proxied artifacts (`--artifacts-destination`) a client needs the server URL and nothing else.
_S3_CLIENT_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "MLFLOW_S3_ENDPOINT_URL",
)
# Scenario modules that run against both stores (paths relative to the repository root).
# The rest of the suite runs on SQLite only: every test twice would not fit CI's time budget.
SERVER_SCENARIO_MODULES = frozenset(
    {
        "tests/test_decorator.py",
        "tests/models/test_registration.py",
        "tests/registry/test_lineage.py",
        "tests/registry/test_lifecycle.py",
        "tests/integrations/test_torch_loop.py",
        "tests/integrations/test_lightning.py",
        "tests/integrations/test_keras.py",
        "tests/integrations/test_transformers.py",
        "tests/integrations/test_catboost.py",
        "tests/sweeps/test_ray.py",  # trials in Ray worker processes write to the server too
    }
)
STORE_KINDS = ("sqlite", "server")


@dataclass
class Store:
    """A real MLflow store and the experiment this test writes to."""

    uri: str
    experiment: str
    kind: str  # "sqlite" or "server"
    server: Any = None  # the services.MlflowServer behind a "server" store

    @property
    def client(self) -> Any:
        """The raw MLflow client, once everything the test's runs logged is in the store."""
        from tracked.store import client_for

        tracked.flush(60)
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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run `store` tests of the scenario modules on both stores, unless marked sqlite_only."""
    if "store" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("sqlite_only") is not None:
        return
    module = Path(metafunc.definition.path)
    try:
        relative = module.relative_to(metafunc.config.rootpath).as_posix()
    except ValueError:
        return
    if relative in SERVER_SCENARIO_MODULES:
        metafunc.parametrize(
            "store",
            ["sqlite", pytest.param("server", marks=pytest.mark.services)],
            indirect=True,
        )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Show in CI's log that the service-backed tests ran (not skipped), and the load figures."""
    groups = {
        "server store scenarios": lambda nodeid: "[server" in nodeid,
        "S3 artifacts": lambda nodeid: "tests/server/test_s3_artifacts.py" in nodeid,
        "basic auth": lambda nodeid: "tests/server/test_auth.py" in nodeid,
        "load": lambda nodeid: "tests/server/test_load.py" in nodeid,
    }
    counts: dict[str, dict[str, int]] = {"all": {}, **{name: {} for name in groups}}
    figures = []
    for outcome in ("passed", "failed", "error", "skipped", "xfailed"):
        for report in terminalreporter.stats.get(outcome, []):
            if "services" not in getattr(report, "keywords", {}):
                continue
            if outcome in ("passed", "xfailed") and report.when != "call":
                continue
            for name, belongs in (("all", lambda _: True), *groups.items()):
                if belongs(report.nodeid):
                    counts[name][outcome] = counts[name].get(outcome, 0) + 1
            props = dict(getattr(report, "user_properties", []))
            if "load_runs_per_second" in props:
                figures.append(props)
    if not counts["all"]:
        return
    terminalreporter.section("PostgreSQL + S3 + mlflow server tests")
    for name, outcomes in counts.items():
        text = ", ".join(f"{n} {o}" for o, n in outcomes.items()) or "none"
        terminalreporter.write_line(f"{'services (all)' if name == 'all' else name}: {text}")
    for props in figures:
        spooled = props.get("load_runs_spooled_then_synced", 0)
        terminalreporter.write_line(
            f"load: {props['load_runs']} registered runs in {props['load_seconds']} s"
            f" = {props['load_runs_per_second']} runs/s ({spooled} spooled, then synced)"
        )


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
    if "tracked.sender" in sys.modules:  # runs a test left unsent are that test's business
        from tracked.sender import sender

        sender().forget()
    from tracked.problems import reset_store_failures

    reset_store_failures()  # each test sees its own first store failure in full
    if "tracked.store" in sys.modules:  # a store one test saw down is not down for the next
        for found in list(sys.modules["tracked.store"]._stores.values()):
            found.mark_up()


@pytest.fixture(scope="session")
def sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the session: creating its schema takes a second or two."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    return f"sqlite:///{path.as_posix()}"


@pytest.fixture
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Store:
    """A store with an experiment of this test's own, configured as tracked's default.

    SQLite unless the test is parametrised with "server" (see `pytest_generate_tests`).
    """
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        return _configured(request.getfixturevalue("sqlite_uri"), "sqlite")
    if kind == "server":
        return _server(request.getfixturevalue("mlflow_server"), monkeypatch)
    raise ValueError(f"unknown store kind {kind!r}; expected one of {STORE_KINDS}")


@pytest.fixture
def server_store(mlflow_server: Any, monkeypatch: pytest.MonkeyPatch) -> Store:
    """The server store alone, for server-only tests (tests/server/)."""
    return _server(mlflow_server, monkeypatch)


def _server(server: Any, monkeypatch: pytest.MonkeyPatch) -> Store:
    for name in _S3_CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)
    return _configured(server.url, "server", server)


def _configured(uri: str, kind: str, server: Any = None) -> Store:
    experiment = f"test-{uuid.uuid4().hex[:12]}"
    tracked.configure(tracking_uri=uri, experiment=experiment, project="proj")
    return Store(uri=uri, experiment=experiment, kind=kind, server=server)
