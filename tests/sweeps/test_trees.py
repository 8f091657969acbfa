"""Explicit run trees: `parent=`, TRACKED_PARENT_RUN_ID, threads, a parent's count of children."""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

import tracked
from tracked import tags as T
from tracked.errors import NotFoundError


def _children(store, parent_id: str) -> list:
    return [r for r in store.runs() if r.data.tags.get(T.PARENT_RUN_ID) == parent_id]


def test_parent_run_in_another_thread_whose_id_is_not_known_yet(store) -> None:
    with tracked.run("sweep") as sweep:
        # The sweep's run id may not exist yet: the child names the TrackedRun itself.
        worker = threading.Thread(
            target=lambda: tracked.run("trial", parent=sweep).__enter__().end()
        )
        worker.start()
        worker.join()
    (child,) = _children(store, sweep.run_id)
    assert child.data.tags[T.NAME] == "trial"
    assert child.info.experiment_id == store.run(sweep.run_id).info.experiment_id


def test_parent_run_id_puts_the_child_in_the_parents_experiment(store) -> None:
    with tracked.run("sweep") as sweep:
        parent_id = sweep.run_id
    tracked.configure(experiment=f"elsewhere-{uuid.uuid4().hex[:8]}")

    @tracked.tracked_training(parent=parent_id)
    def train(lr=0.1):
        return {"acc": 0.5}

    train()
    (child,) = _children(store, parent_id)  # store.runs(): the parent's experiment
    assert child.data.params == {"lr": "0.1"}
    assert child.data.metrics == {"acc": 0.5}


def test_an_explicit_experiment_wins_over_the_parents(store) -> None:
    with tracked.run("sweep") as sweep:
        parent_id = sweep.run_id
    other = f"other-{uuid.uuid4().hex[:8]}"
    with tracked.run("trial", parent=parent_id, experiment=other) as trial:
        pass
    assert _children(store, parent_id) == []
    moved = store.run(trial.run_id)
    assert moved.data.tags[T.PARENT_RUN_ID] == parent_id
    assert store.client.get_experiment(moved.info.experiment_id).name == other


def test_parent_from_the_environment_when_nothing_else_names_one(store, monkeypatch) -> None:
    with tracked.run("launcher") as launcher:
        parent_id = launcher.run_id
    monkeypatch.setenv("TRACKED_PARENT_RUN_ID", parent_id)

    @tracked.tracked_training
    def train():
        return {"acc": 1.0}

    train()
    (child,) = _children(store, parent_id)
    assert child.data.metrics == {"acc": 1.0}


def test_explicit_parent_beats_the_active_scope_which_beats_the_environment(
    store, monkeypatch
) -> None:
    with tracked.run("from-env") as env_parent:
        pass
    monkeypatch.setenv("TRACKED_PARENT_RUN_ID", env_parent.run_id)
    with tracked.run("other") as other:
        pass
    with tracked.run("scope") as scope:
        with tracked.run("explicit", parent=other) as explicit:
            pass
        with tracked.run("nested") as nested:
            pass
    tags = {r.info.run_id: r.data.tags.get(T.PARENT_RUN_ID) for r in store.runs()}
    assert tags[explicit.run_id] == other.run_id
    assert tags[nested.run_id] == scope.run_id
    assert tags[scope.run_id] == env_parent.run_id  # the outermost run: the launcher's
    assert tags[env_parent.run_id] is None  # started before the variable was set


def test_a_parent_that_does_not_exist_costs_one_line_and_the_run_is_top_level(
    store, caplog
) -> None:
    missing = uuid.uuid4().hex
    with caplog.at_level(logging.WARNING, logger="tracked"):
        with tracked.run("orphan", parent=missing) as orphan:
            orphan.log_metrics({"loss": 0.5}, step=1)
        assert orphan.flush(60)
    lines = [r.message for r in caplog.records if missing in r.message]
    assert len(lines) == 1 and "not in the store" in lines[0]
    (run,) = store.runs()
    assert T.PARENT_RUN_ID not in run.data.tags
    assert run.data.metrics == {"loss": 0.5}


def test_a_parent_that_does_not_exist_raises_under_strict(store) -> None:
    orphan = tracked.run("orphan", parent=uuid.uuid4().hex, strict=True)
    with pytest.raises(NotFoundError, match="parent run"), orphan:
        pass
    assert store.runs() == []


def test_runs_in_pool_threads_are_children_of_the_scope_that_submitted_them(store) -> None:
    @tracked.tracked_training
    def trial(lr):
        tracked.log_metrics({"loss": 1 - lr}, step=1)
        return {"score": lr}

    with tracked.run("sweep") as sweep, ThreadPoolExecutor(max_workers=2) as pool:
        scores = list(pool.map(trial, [0.1, 0.2, 0.3, 0.4]))
        pool.submit(tracked.log_metrics, {"from_pool": 1.0}).result()
    assert scores == [{"score": lr} for lr in (0.1, 0.2, 0.3, 0.4)]
    children = _children(store, sweep.run_id)
    assert sorted(float(c.data.params["lr"]) for c in children) == [0.1, 0.2, 0.3, 0.4]
    assert all(c.data.metrics["score"] == float(c.data.params["lr"]) for c in children)
    # tracked.log_metrics in a pool thread logs into the submitting scope's run
    assert store.run(sweep.run_id).data.metrics == {"from_pool": 1.0}


def test_pool_threads_outside_any_scope_stay_top_level_and_submit_is_restored(store) -> None:
    original = vars(ThreadPoolExecutor)["submit"]

    @tracked.tracked_training
    def trial(lr):
        return {"score": lr}

    with tracked.run("sweep"):
        assert vars(ThreadPoolExecutor)["submit"] is not original  # wrapped while a run is on
    assert vars(ThreadPoolExecutor)["submit"] is original
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(trial, [0.1, 0.2]))
    trials = [r for r in store.runs() if r.data.tags[T.NAME] == "trial"]
    assert len(trials) == 2
    assert all(T.PARENT_RUN_ID not in r.data.tags for r in trials)


def test_a_plain_thread_does_not_inherit_the_scope_parent_does(store) -> None:
    """Python 3.11 starts a threading.Thread with an empty context: `parent=` names the run."""
    made: dict[str, tracked.TrackedRun] = {}

    def work(key, **options):
        with tracked.run(key, **options) as run:
            made[key] = run

    with tracked.run("sweep") as sweep:
        for key, options in (("plain", {}), ("named", {"parent": sweep})):
            thread = threading.Thread(target=work, args=(key,), kwargs=options)
            thread.start()
            thread.join()
    tags = {r.data.tags[T.NAME]: r.data.tags.get(T.PARENT_RUN_ID) for r in store.runs()}
    assert tags["plain"] is None
    assert tags["named"] == sweep.run_id


def test_a_parent_counts_its_failed_children_and_keeps_its_own_status(store) -> None:
    @tracked.tracked_training
    def trial(lr):
        if lr > 0.25:
            raise ValueError("diverged")
        return {"score": lr}

    with tracked.run("sweep") as sweep:
        for lr in (0.1, 0.2, 0.3):
            with contextlib.suppress(ValueError):
                trial(lr)
    parent = store.run(sweep.run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[T.CHILDREN_TOTAL] == "3"
    assert parent.data.tags[T.CHILDREN_FAILED] == "1"
    assert parent.data.tags[T.CHILDREN_KILLED] == "0"
    assert T.CHILDREN_RUNNING not in parent.data.tags
    statuses = sorted(c.info.status for c in _children(store, sweep.run_id))
    assert statuses == ["FAILED", "FINISHED", "FINISHED"]


def test_a_run_without_children_has_no_count(store) -> None:
    with tracked.run("alone") as alone:
        pass
    assert T.CHILDREN_TOTAL not in store.run(alone.run_id).data.tags
