"""Resume: a restarted job continues its run (steps after the last one, params kept, one run)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import uuid

import pytest

import tracked
from tracked import tags as T

FIRST_ATTEMPT = textwrap.dedent(
    """
    import sys
    import tracked

    run = tracked.run("long", params={"lr": 0.1}).start()
    for step in range(5):
        run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    assert tracked.flush(60)  # steps 0-4 are in the store
    for step in range(5, 7):
        run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    tracked.flush(0)  # steps 5-6 are in the journal, maybe not yet in the store
    print(run.run_id, flush=True)
    sys.stdin.read()  # killed here
    """
)

SECOND_ATTEMPT = textwrap.dedent(
    """
    import sys
    import tracked

    with tracked.run("long", params={"lr": 0.1}, resume=sys.argv[1], strict=True) as run:
        for step in range(run.next_step, run.next_step + 3):
            run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    print(run.run_id)
    """
)


def _python(code: str, *args: str, **options) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), *sys.path]))}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )


def _killed_first_attempt(store) -> str:
    first = _python(FIRST_ATTEMPT, stdin=subprocess.PIPE)
    run_id = first.stdout.readline().strip()
    assert run_id, first.stderr.read()
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    return run_id


def _second_attempt(run_id: str) -> str:
    second = _python(SECOND_ATTEMPT, run_id)
    out, err = second.communicate(timeout=180)
    assert second.returncode == 0, err[-3000:]
    return out.strip()


@pytest.fixture
def subprocess_store(store, monkeypatch):
    """The store's settings as environment variables, for the attempts' processes."""
    monkeypatch.setenv("TRACKED_TRACKING_URI", store.uri)
    monkeypatch.setenv("TRACKED_EXPERIMENT", store.experiment)
    monkeypatch.setenv("TRACKED_PROJECT", "proj")
    return store


@pytest.mark.slow
def test_resume_after_sigkill_and_sync_continues_the_steps_in_the_same_run(
    subprocess_store,
) -> None:
    store = subprocess_store
    run_id = _killed_first_attempt(store)
    report = tracked.sync()  # `tracked sync`: the dead process's run ends KILLED
    assert [e.state for e in report.entries] == ["sent"]
    assert store.run(run_id).info.status == "KILLED"

    assert _second_attempt(run_id) == run_id

    (run,) = store.runs()  # still one run
    assert run.info.status == "FINISHED"
    assert [m.step for m in store.metric_history(run_id, "loss")] == list(range(10))
    assert run.data.tags[T.RESUMED] == "1"
    assert run.data.params["lr"] == "0.1"


@pytest.mark.slow
def test_resume_sends_what_the_killed_process_left_before_continuing(subprocess_store) -> None:
    store = subprocess_store
    run_id = _killed_first_attempt(store)
    # No `tracked sync`: the second attempt sends the left-behind journal itself first.
    assert _second_attempt(run_id) == run_id
    (run,) = store.runs()
    assert run.info.status == "FINISHED"
    assert [m.step for m in store.metric_history(run_id, "loss")] == list(range(10))
    assert tracked.sync().entries == ()  # nothing left behind to flip its status later


@pytest.mark.slow
def test_resume_auto_continues_an_attempt_killed_before_it_reached_the_store(
    subprocess_store,
) -> None:
    """A job killed in its run's first seconds (the sender had not contacted the store yet)
    left only its journal: the next attempt with the same key sends it first and continues
    that run, instead of starting a second one."""
    store = subprocess_store
    key = f"slurm-{uuid.uuid4().hex[:6]}"
    first = _python(
        textwrap.dedent(
            f"""
            import sys
            import tracked
            import tracked.journal
            import tracked.sender

            tracked.sender.START_HOLD = 3600.0  # the store is never contacted before the kill
            run = tracked.run("job", resume="auto", run_key={key!r}).start()
            for step in range(3):
                run.log_metrics({{"loss": 1.0 / (step + 1)}}, step=step)
            tracked.journal.flush_all()  # in the journal (flush() would wake the sender)
            print("logged", flush=True)
            sys.stdin.read()  # killed here
            """
        ),
        stdin=subprocess.PIPE,
    )
    assert first.stdout.readline().strip() == "logged", first.stderr.read()
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    assert store.runs() == []

    with tracked.run("job", resume="auto", run_key=key) as second:
        second.log_metrics({"loss": 0.25}, step=second.next_step)

    (run,) = store.runs()
    assert run.info.run_id == second.run_id and run.data.tags[T.RESUMED] == "1"
    assert [m.step for m in store.metric_history(run.info.run_id, "loss")] == [0, 1, 2, 3]


def test_resume_auto_finds_the_run_by_its_key(store) -> None:
    key = f"slurm-{uuid.uuid4().hex[:6]}"
    with tracked.run("job", resume="auto", run_key=key) as first:
        first.log_metrics({"loss": 0.5}, step=0)
    with tracked.run("job", resume="auto", run_key=key) as second:
        second.log_metrics({"loss": 0.4}, step=second.next_step)
    assert second.run_id == first.run_id
    (run,) = store.runs()
    assert run.data.tags[T.RUN_KEY] == key
    assert [m.step for m in store.metric_history(run.info.run_id, "loss")] == [0, 1]


def test_a_changed_param_is_one_line_naming_it_and_the_old_value_is_kept(store, caplog) -> None:
    with tracked.run("job", params={"lr": 0.1, "epochs": 3}) as first:
        pass
    resumed = tracked.run("job", params={"lr": 0.2, "epochs": 3}, resume=first.run_id)
    with caplog.at_level(logging.WARNING, logger="tracked"), resumed:
        pass
    lines = [r.message for r in caplog.records]
    assert len(lines) == 1
    assert "'lr'" in lines[0] and "'0.1'" in lines[0] and "'0.2'" in lines[0]
    (run,) = store.runs()
    assert run.data.params == {"lr": "0.1", "epochs": "3"}
    assert run.info.status == "FINISHED"


def test_a_run_written_by_a_live_process_is_not_resumed_unless_forced(store, caplog) -> None:
    with tracked.run("job") as live:
        live.log_metrics({"loss": 0.5}, step=0)
        refused = tracked.run("job", resume=live.run_id)
        with caplog.at_level(logging.WARNING, logger="tracked"), refused:
            pass
        assert refused.run_id != live.run_id
        assert any("not resumed" in r.message for r in caplog.records)
        with tracked.run("job", resume=live.run_id, force_resume=True) as forced:
            forced.log_metrics({"loss": 0.4}, step=forced.next_step)
        assert forced.run_id == live.run_id
    assert len(store.runs()) == 2


def test_a_run_running_elsewhere_is_not_resumed_and_strict_raises(store) -> None:
    client = store.client
    experiment = client.get_experiment_by_name(store.experiment) or None
    experiment_id = (
        experiment.experiment_id if experiment else client.create_experiment(store.experiment)
    )
    elsewhere = client.create_run(experiment_id).info.run_id  # RUNNING, no journal here
    strict = tracked.run("job", resume=elsewhere, strict=True)
    with pytest.raises(tracked.TrackingError, match="RUNNING in the store"), strict:
        pass
    with tracked.run("job", resume=elsewhere, force_resume=True) as forced:
        pass
    assert forced.run_id == elsewhere
    assert store.run(elsewhere).info.status == "FINISHED"


def test_resume_from_the_environment_applies_to_the_first_run_only(store, monkeypatch) -> None:
    with tracked.run("job") as first:
        first.log_metrics({"loss": 0.5}, step=0)
    monkeypatch.setattr(sys.modules["tracked.run"], "_env_resume_used", False)
    monkeypatch.setenv("TRACKED_RESUME_RUN_ID", first.run_id)
    with tracked.run("job") as resumed:
        pass
    with tracked.run("job") as later:
        pass
    assert resumed.run_id == first.run_id
    assert later.run_id != first.run_id


def test_a_framework_counter_that_restarts_continues_after_the_last_step(store) -> None:
    with tracked.run("job") as first:
        for step in range(5):
            first.log_metrics({"loss": 1.0}, step=step)
    with tracked.run("job", resume=first.run_id) as second:
        training = second.begin_training("loop")  # what an integration does; epochs from 0
        for epoch in range(3):
            training.log_metrics({"loss": 0.5}, step=epoch)
        second.log_metrics({"loss": 0.1})  # no step: the latest value
    history = store.metric_history(first.run_id, "loss")
    assert sorted(m.step for m in history) == [0, 1, 2, 3, 4, 5, 6, 7, 7]
    assert store.run(first.run_id).data.metrics["loss"] == 0.1
