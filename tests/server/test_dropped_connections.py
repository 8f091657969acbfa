"""Connections the server closes without an answer (issue 13, finding 7: a busy server is not a
dead one).

Under load a server closes idle keep-alive connections, and a request sent on one at that
moment gets no answer at all (ConnectionResetError, RemoteDisconnected): the 16 x 20 load test
met it a few times per run. The fault proxy (a real HTTP proxy on 127.0.0.1) produces the same
on demand with "drop": it closes the connection without forwarding. A call that MLflow applies
once however often it arrives (a read, tags, a metric batch) is sent again; a call that creates
something is not, because the store may have done it (see test_registry_faults finding 2).
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import uuid4

import numpy as np
import pytest
from fault_proxy import FaultProxy

import tracked
from tracked.store import client_for

API = "/api/2.0/mlflow"

pytestmark = pytest.mark.services


def test_a_metric_batch_whose_connection_closed_unanswered_arrives_without_a_warning(
    server_store: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # tracked's calls ignore it anyway
    with FaultProxy(server_store.uri) as proxy:
        tracked.configure(tracking_uri=proxy.url, experiment=server_store.experiment)
        fault = proxy.fail("POST", f"{API}/runs/log-batch", "drop")
        with caplog.at_level(logging.WARNING, logger="tracked"), tracked.run("dropped") as run:
            for step in range(5):
                run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        assert tracked.flush(timeout=120)
    assert fault.hits == 1
    assert [r.getMessage() for r in caplog.records if r.name.startswith("tracked")] == []
    client = client_for(server_store.uri, server_store.uri)
    assert client.get_run(run.run_id).info.status == "FINISHED"
    history = client.get_metric_history(run.run_id, "loss")
    assert sorted(m.step for m in history) == [0, 1, 2, 3, 4]  # each point once


@pytest.mark.parametrize(
    ("path", "what"),
    [
        ("/runs/create", "run"),
        ("/logged-models", "logged model"),
        ("/registered-models/create", "registered model"),
        ("/model-versions/create", "model version"),
        ("/runs/outputs", "link of the logged model to its run"),
    ],
)
def test_a_create_whose_answer_was_lost_is_found_not_made_twice(
    server_store: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    path: str,
    what: str,
) -> None:
    from sklearn.linear_model import LogisticRegression

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])

    registers = path.startswith(("/registered", "/model"))
    # a second link is refused by the store (a duplicate key): the link is looked for first

    @tracked.tracked_training(name="once", register=registers, model_name=f"once-{uuid4().hex}")
    def train(X: Any, y: Any) -> Any:
        return LogisticRegression().fit(X, y)

    with FaultProxy(server_store.uri) as proxy:
        tracked.configure(tracking_uri=proxy.url, experiment=server_store.experiment)
        # The server makes the thing; its answer is lost on the way back. A second create
        # would be forwarded too, and make a second one.
        fault = proxy.fail("POST", f"{API}{path}", "forward-then-drop", times=2)
        with caplog.at_level(logging.WARNING, logger="tracked"):
            train(X, y)
            assert tracked.flush(timeout=120)
    # A registered model is simply sent again: a second create is answered "already exists".
    sent = 2 if what == "registered model" else 1
    assert fault.hits == sent, f"the {what} was created a second time"
    assert [r.getMessage() for r in caplog.records if r.name.startswith("tracked")] == []
    client = client_for(server_store.uri, server_store.uri)
    experiment = client.get_experiment_by_name(server_store.experiment)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    models = client.search_logged_models([experiment.experiment_id])
    assert [m.source_run_id for m in models] == [runs[0].info.run_id]
    if registers:
        versions = client.search_model_versions(f"run_id = '{runs[0].info.run_id}'")
        assert [v.version for v in versions] == ["1"]
