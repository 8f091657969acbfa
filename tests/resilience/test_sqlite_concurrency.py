"""Eight processes writing to one SQLite store at once: every run and every metric point arrives.

Two races, one after the other. First, the eight start their first run together on a database
that does not exist yet: MLflow creates and migrates the schema on first contact, and without
tracked's lock (writers/mlflow.py `_open_sqlite_store`) concurrent migrations leave the database
half-migrated and unusable for good. Then they run the rest together on the existing store,
where SQLite admits one writer at a time (MLflow's "database is locked" case).
"""

from __future__ import annotations

import multiprocessing
import queue
from pathlib import Path
from typing import Any

import pytest

import tracked

WORKERS = 8
RUNS_PER_WORKER = 3
STEPS = 20
RESULT_TIMEOUT = 240.0  # 8 cold interpreters importing mlflow on 2 shared cores


@tracked.tracked_training(register=False)
def train(worker: int, run_index: int, *, steps: int = STEPS) -> dict[str, float]:
    for step in range(steps):
        tracked.log_metrics({"loss": 1.0 / (step + 1), "acc": step / steps}, step=step)
    return {"final": float(worker * 100 + run_index)}


def _worker(
    uri: str, experiment: str, worker: int, barrier: Any, results: Any
) -> None:  # pragma: no cover - runs in a child process
    try:
        tracked.configure(tracking_uri=uri, experiment=experiment, project="proj")
        import mlflow  # noqa: F401 - imported before the barrier: the runs overlap, not imports

        done = []
        for run_index in range(RUNS_PER_WORKER):
            if run_index < 2:
                barrier.wait(timeout=RESULT_TIMEOUT)  # the fresh-store race, then the writers'
            train(worker, run_index)
            run = tracked.last_run()
            assert run is not None
            done.append((run.run_id, run.status, list(run.problems.seen)))
        results.put((worker, done, None))
    except BaseException as exc:
        results.put((worker, [], f"{type(exc).__name__}: {exc}"))


@pytest.mark.sqlite_only
@pytest.mark.slow
def test_eight_processes_on_one_fresh_sqlite_store_lose_nothing(tmp_path: Path) -> None:
    uri = f"sqlite:///{(tmp_path / 'fresh' / 'mlflow.db').as_posix()}"
    experiment = "concurrent"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    results = context.Queue()
    processes = [
        context.Process(target=_worker, args=(uri, experiment, i, barrier, results))
        for i in range(WORKERS)
    ]
    for process in processes:
        process.start()
    reports = []
    try:
        for _ in range(WORKERS):
            reports.append(results.get(timeout=RESULT_TIMEOUT))
    except queue.Empty:
        pytest.fail(f"only {len(reports)} of {WORKERS} workers reported: {reports}")
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()

    errors = [(w, error) for w, _, error in reports if error]
    assert not errors, errors
    finished = [run for _, done, _ in reports for run in done]
    assert len(finished) == WORKERS * RUNS_PER_WORKER
    problems = [(run_id, seen) for run_id, _, seen in finished if seen]
    assert not problems, problems  # nothing was reported, so nothing went to the spool
    assert all(run_id is not None and status == "FINISHED" for run_id, status, _ in finished)
    spool = tmp_path / "spool"
    assert not spool.exists() or not any(spool.iterdir())

    from tracked.store import client_for

    client = client_for(uri, uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id], max_results=1000)
    assert sorted(r.info.run_id for r in runs) == sorted(run_id for run_id, _, _ in finished)
    finals = set()
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.params["steps"] == str(STEPS)
        finals.add(run.data.metrics["final"])
        for key in ("loss", "acc"):
            history = client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in history) == list(range(STEPS)), (key, run.info.run_id)
    assert finals == {float(w * 100 + r) for w in range(WORKERS) for r in range(RUNS_PER_WORKER)}


def test_a_store_held_open_by_another_process_never_holds_the_training(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process is opening (creating, migrating) the same SQLite database, holding
    tracked's open lock: the run's start checks the store for at most `connect_timeout`, the
    training runs, and the run reaches the store once the lock is let go."""
    import fcntl
    import logging
    import os

    database = tmp_path / "mlflow.db"
    uri = f"sqlite:///{database.as_posix()}"
    lock = os.open(database.with_name(database.name + ".tracked-open.lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)  # another open file description: it blocks tracked's
    said_before: list[str] = []
    monkeypatch.setenv("TRACKED_CONNECT_TIMEOUT", "0.5")

    @tracked.tracked_training(tracking_uri=uri, experiment="held")
    def train() -> dict[str, float]:
        said_before.extend(r.getMessage() for r in caplog.records)
        return {"acc": 0.5}

    try:
        with caplog.at_level(logging.WARNING, logger="tracked"):
            assert train() == {"acc": 0.5}
        assert said_before == []  # not the 60 s lock timeout's line: the start did not wait
    finally:
        os.close(lock)  # let go: the open goes on
    assert tracked.flush(120)
    from tracked.store import client_for

    client = client_for(uri, uri)
    experiment = client.get_experiment_by_name("held")
    [stored] = client.search_runs([experiment.experiment_id])
    assert stored.data.metrics == {"acc": 0.5} and stored.info.status == "FINISHED"
