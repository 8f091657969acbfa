"""Fixtures for capture-fidelity tests: MLflow's in-process state left as each test found it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import closing

import pytest


@pytest.fixture(autouse=True)
def _mlflow_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A test may call mlflow.set_tracking_uri / set_experiment / <flavor>.autolog: undone after,
    so that no later test reads them (tracked honours them when it is not configured)."""
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._tracking_service import utils

    uri, experiment = utils._tracking_uri, fluent._active_experiment_id
    yield
    for flavor in ("sklearn", "xgboost", "lightgbm"):
        module = getattr(mlflow, flavor, None)
        if module is not None and hasattr(module, "autolog"):
            module.autolog(disable=True)
    while mlflow.active_run() is not None:
        mlflow.end_run()
    utils._tracking_uri, fluent._active_experiment_id = uri, experiment
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def closed_port_uri() -> str:
    """An http store on 127.0.0.1 where nothing listens: connections are refused at once."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
