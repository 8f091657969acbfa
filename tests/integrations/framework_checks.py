"""What every framework's capture test checks the same way: a metric's points as stored, and the
registered model loaded back both through tracked and through MLflow's pyfunc."""

from __future__ import annotations

from typing import Any

import pytest

import tracked


def history(store: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) of every stored point of `key`, in step order."""
    return sorted((m.step, m.value) for m in store.metric_history(run_id, key))


def load_registered(store: Any, run: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """The run's registered version as tracked loads it (native) and as MLflow serves it."""
    import mlflow.pyfunc

    assert run.model_name and run.model_version, "the run registered no model"
    native = tracked.load_model(run.model_name, run.model_version)
    # MLflow resolves models:/ in its own registry: the test's store, for this test only (also
    # over a URI some earlier code set with mlflow.set_tracking_uri, as MLFlowLogger does).
    from mlflow.tracking._tracking_service import utils

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    monkeypatch.setattr(utils, "_tracking_uri", store.uri)
    served = mlflow.pyfunc.load_model(f"models:/{run.model_name}/{run.model_version}")
    return native, served
