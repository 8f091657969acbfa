"""A real mlflow server killed before, during and at the end of an XGBoost training; then synced.

Every test ends the same way: the training returned its normal value, the run stayed in its
journal, the server was started again, `sync()` ran, and the server holds exactly one run with
every metric point, a model that loads and predicts the same, and one registered version.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb
from journals import JournalView, journals
from restartable_server import RestartableServer
from services import wait_until

import tracked
from tracked.store import client_for
from tracked.sync import sync

ROUNDS = 300
KILL_AT = 100
AUX_KEYS = 9  # extra metrics per iteration: 10 points an iteration fill a 1000-point batch


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(400, 5))
    return X, X @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + rng.normal(scale=0.1, size=400)


class _PerIteration(xgb.callback.TrainingCallback):
    """Logs every iteration's metrics from the training loop; `hook(run, epoch)` injects the
    fault."""

    def __init__(self, run: tracked.TrackedRun, hook: Any = None) -> None:
        self.run, self.hook = run, hook

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        rmse = float(evals_log["train"]["rmse"][-1])
        values = {"train_rmse": rmse, **{f"aux_{j}": rmse * j for j in range(AUX_KEYS)}}
        self.run.log_metrics(values, step=epoch)
        if self.hook is not None:
            self.hook(self.run, epoch)
        return False


def _train(model_name: str, hook: Any = None) -> tuple[Any, tracked.TrackedRun]:
    """300 rounds of XGBoost inside a run block, per-iteration metrics, the model, a policy."""
    X, y = _data()
    policy = tracked.PromotionPolicy(to="champion", when=[tracked.metric("train_rmse") <= 100])
    with tracked.run("xgb-train", model_name=model_name, promote=policy) as run:
        booster = xgb.train(
            {"max_depth": 3, "eta": 0.1, "nthread": 1},
            xgb.DMatrix(X, label=y),
            num_boost_round=ROUNDS,
            evals=[(xgb.DMatrix(X, label=y), "train")],
            callbacks=[_PerIteration(run, hook)],
            verbose_eval=False,
        )
        run.log_model(booster)
    return booster, run


@pytest.fixture
def experiment(live_server: RestartableServer) -> str:
    name = f"faults-{uuid.uuid4().hex[:8]}"
    tracked.configure(tracking_uri=live_server.url, experiment=name, project="proj")
    return name


def _spooled() -> list[JournalView]:
    """The journals left in the spool (this process's sender stops trying: sync takes over)."""
    from tracked.sender import sender

    tracked.flush(0)
    sender().forget()
    return journals()


def _assert_synced(
    server: RestartableServer,
    experiment: str,
    run: tracked.TrackedRun,
    booster: Any,
    expected: dict[str, list[tuple[int, int, float]]],
) -> None:
    """Exactly one run with every point, the model predicting the same, one version."""
    client = client_for(server.url, server.url)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    stored = runs[0]
    record = run.record
    assert stored.data.tags["tracked.run_uuid"] == record.run_uuid
    assert stored.info.status == record.status == "FINISHED"
    assert (stored.info.start_time, stored.info.end_time) == (record.start_time, record.end_time)

    assert len(expected["train_rmse"]) == ROUNDS
    for key, points in expected.items():
        history = client.get_metric_history(stored.info.run_id, key)
        assert sorted((m.step, m.timestamp, m.value) for m in history) == sorted(points), key

    model_name = stored.data.tags["tracked.model.name"]
    versions = client.search_model_versions(f"name = '{model_name}'")
    assert [(v.version, v.run_id) for v in versions] == [("1", stored.info.run_id)]
    loaded = tracked.load_model(model_name, version=1)
    X, _ = _data()
    np.testing.assert_array_equal(loaded.predict(xgb.DMatrix(X)), booster.predict(xgb.DMatrix(X)))
    champion = client.get_model_version_by_alias(model_name, "champion")
    assert champion.version == "1"


def _spool_then_sync(
    server: RestartableServer, experiment: str, run: tracked.TrackedRun, booster: Any
) -> int:
    """Restart the server, sync, check everything; returns how many points sync sent."""
    (entry,) = _spooled()
    assert entry.record.run_uuid == run.record.run_uuid
    expected = entry.points
    server.start()
    report = sync()
    assert report.ok, report.lines()
    (sent,) = report.entries
    assert sent.state == "sent" and sent.model == f"{experiment}-model/1", report.lines()
    assert _spooled() == []
    _assert_synced(server, experiment, run, booster, expected)
    assert sync().entries == ()  # nothing left; running it again sends nothing
    return sent.sent_points


def test_server_killed_before_the_run_starts(
    live_server: RestartableServer, experiment: str, caplog: pytest.LogCaptureFixture
) -> None:
    live_server.kill()
    with caplog.at_level(logging.WARNING, logger="tracked"):
        booster, run = _train(f"{experiment}-model")
    assert booster.num_boosted_rounds() == ROUNDS  # the training's own result
    warnings = [r.getMessage() for r in caplog.records if r.name == "tracked"]
    assert len(warnings) == 1, warnings  # the store failed: said once, the run kept
    assert "not reachable" in warnings[0] and "kept in its journal" in warnings[0]
    assert _spool_then_sync(live_server, experiment, run, booster) == run.record.points


def test_server_killed_in_the_middle_of_training(
    live_server: RestartableServer, experiment: str
) -> None:
    client = client_for(live_server.url, live_server.url)

    def kill_at(run: tracked.TrackedRun, epoch: int) -> None:
        if epoch == KILL_AT:
            # Deterministic: the first full batch (1000 points) is on the server, then the kill.
            wait_until(
                lambda: client.get_metric_history(run.run_id, "train_rmse"), 60, "the first batch"
            )
            live_server.kill()

    booster, run = _train(f"{experiment}-model", kill_at)
    assert booster.num_boosted_rounds() == ROUNDS
    assert run.run_id is not None  # the partial run on the server, completed by sync
    sent = _spool_then_sync(live_server, experiment, run, booster)
    # The partial run was completed, not duplicated (checked above); what the server had
    # already taken was sent again only if its batch had not been committed to the cursor.
    assert 0 < sent <= run.record.points


def test_server_killed_during_the_model_upload(
    live_server: RestartableServer, experiment: str
) -> None:
    # Patched only to trigger the kill at the right moment: right before the model's files go.
    import tracked.finish

    upload = tracked.finish._log_model

    def kill_before_model(*args: Any, **kwargs: Any) -> Any:
        live_server.kill()
        return upload(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tracked.finish, "_log_model", kill_before_model)
        booster, run = _train(f"{experiment}-model")
    assert booster.num_boosted_rounds() == ROUNDS
    assert run.model_version is None  # the model waits in the journal
    _spool_then_sync(live_server, experiment, run, booster)


def test_sync_killed_midway_then_run_again(
    live_server: RestartableServer, experiment: str, tmp_path: Path
) -> None:
    """SIGKILL `tracked sync` once the first entry's run is on the server; sync again."""
    X, y = _data()
    dead = "http://127.0.0.1:9"  # nothing listens: every run below is spooled
    boosters = {}
    for i in range(3):
        with tracked.run(f"spooled-{i}", tracking_uri=dead, model_name=f"{experiment}-m") as run:
            for step in range(400):
                run.log_metrics({"loss": 1.0 / (step + 1), "lr": 0.1 * i}, step=step)
            booster = xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(X, label=y), 5)
            run.log_model(booster)
        boosters[run.record.run_uuid] = (booster, run)
    entries = _spooled()
    assert len(entries) == 3
    expected = {e.record.run_uuid: e.points for e in entries}
    first = entries[0].record.run_uuid
    client = client_for(live_server.url, live_server.url)

    env = {**os.environ, "TRACKED_TRACKING_URI": live_server.url}
    command = [sys.executable, "-m", "tracked.cli", "sync"]  # the `tracked sync` command
    process = subprocess.Popen(command, cwd=tmp_path, env=env)
    try:

        def first_run_on_server() -> bool:
            assert process.poll() is None, "sync finished before it could be killed"
            found = client.get_experiment_by_name(experiment)
            if found is None:
                return False
            query = f"tags.`tracked.run_uuid` = '{first}'"
            return bool(client.search_runs([found.experiment_id], filter_string=query))

        wait_until(first_run_on_server, 120, "the first spooled run on the server", 0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert len(_spooled()) >= 1  # killed mid-way: something is left to send

    report = sync(tracking_uri=live_server.url)
    assert report.ok, report.lines()

    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id])
    assert sorted(r.data.tags["tracked.run_uuid"] for r in runs) == sorted(boosters)
    versions = client.search_model_versions(f"name = '{experiment}-m'")
    assert sorted(v.run_id for v in versions) == sorted(r.info.run_id for r in runs)
    for stored in runs:
        booster, run = boosters[stored.data.tags["tracked.run_uuid"]]
        assert stored.info.status == "FINISHED"
        for key in ("loss", "lr"):
            history = client.get_metric_history(stored.info.run_id, key)
            points = expected[run.record.run_uuid][key]
            assert sorted((m.step, m.timestamp, m.value) for m in history) == sorted(points)
        version = next(v for v in versions if v.run_id == stored.info.run_id)
        loaded = tracked.load_model(f"{experiment}-m", version=version.version)
        np.testing.assert_array_equal(
            loaded.predict(xgb.DMatrix(X)), booster.predict(xgb.DMatrix(X))
        )
    assert _spooled() == []
