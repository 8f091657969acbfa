"""A process that ends mid-run (SIGTERM, SIGKILL, normal exit, uncaught exception) loses no
metric point it had logged.

Each case is a real subprocess; the run's points end up in the store, or stay in its journal when
the store is down (and `tracked sync` sends them), or after SIGKILL the journal holds everything
older than half a second and sync ends the run KILLED.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from journals import only_journal

import tracked
from tracked.store import client_for

STEPS = 100  # the point at which the process is told to stop

PRELUDE = """
import os, signal, sys, threading
import tracked, tracked.shutdown
tracked.configure(tracking_uri={uri!r}, experiment="shutdown", project="proj")
"""

SIGTERM_IN_LOOP = """
with tracked.run("sigterm") as run:
    for i in range(10 * {steps}):
        run.log_metrics({{"loss": 1.0 / (i + 1)}}, step=i)
        if i == {steps}:
            os.kill(os.getpid(), signal.SIGTERM)
print("after the block")
"""

SIGTERM_IN_THREAD = """
tracked.shutdown.install()  # runs start only in another thread: install from the main one
ready = threading.Event()
def train():
    with tracked.run("sigterm-thread") as run:
        for i in range(10 * {steps}):
            run.log_metrics({{"loss": 1.0 / (i + 1)}}, step=i)
            if i == {steps}:
                ready.set()
                threading.Event().wait(60)  # parked: the signal ends the run from the main thread
worker = threading.Thread(target=train)
worker.start()
ready.wait()
os.kill(os.getpid(), signal.SIGTERM)
worker.join()
print("after the join")
"""

LEFT_OPEN = """
run = tracked.run("left-open").start()
for i in range({steps} + 1):
    run.log_metrics({{"loss": 1.0 / (i + 1)}}, step=i)
{ending}
"""


def _run_script(
    body: str, uri: str, cwd: Path, **values: object
) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(PRELUDE.format(uri=uri)) + textwrap.dedent(
        body.format(steps=STEPS, **values)
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _stored_run(uri: str) -> tuple[str, list[int]]:
    client = client_for(uri, uri)
    experiment = client.get_experiment_by_name("shutdown")
    (run,) = client.search_runs([experiment.experiment_id])
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss"))
    return run.info.status, steps


@pytest.mark.parametrize("body", [SIGTERM_IN_LOOP, SIGTERM_IN_THREAD], ids=["main", "thread"])
def test_sigterm_ends_the_run_killed_with_every_point(
    tmp_path: Path, fresh_sqlite: str, body: str
) -> None:
    uri = fresh_sqlite
    done = _run_script(body, uri, tmp_path)
    assert done.returncode == -signal.SIGTERM, done.stderr[-3000:]
    assert "after the" not in done.stdout  # it died as SIGTERM kills, after the run ended
    status, steps = _stored_run(uri)
    assert status == "KILLED"
    assert steps == list(range(len(steps))) and len(steps) >= STEPS + 1


def test_sigterm_with_the_store_down_keeps_the_run_in_its_journal(tmp_path: Path) -> None:
    done = _run_script(SIGTERM_IN_LOOP, "http://127.0.0.1:9", tmp_path)
    assert done.returncode == -signal.SIGTERM, done.stderr[-3000:]
    assert "`tracked sync`" in done.stderr
    view = only_journal(Path(tracked.get_config().spool_dir))
    assert view.record.status == "KILLED"
    steps = view.steps("loss")
    assert steps == list(range(len(steps))) and len(steps) >= STEPS + 1


@pytest.mark.parametrize(
    ("ending", "status", "code"),
    [("pass", "FINISHED", 0), ("raise RuntimeError('boom')", "FAILED", 1)],
    ids=["normal-exit", "uncaught-exception"],
)
def test_a_run_left_open_is_ended_at_exit(
    tmp_path: Path, fresh_sqlite: str, ending: str, status: str, code: int
) -> None:
    uri = fresh_sqlite
    done = _run_script(LEFT_OPEN, uri, tmp_path, ending=ending)
    assert done.returncode == code, done.stderr[-3000:]
    assert _stored_run(uri) == (status, list(range(STEPS + 1)))


def test_a_handler_the_user_installed_is_kept(monkeypatch: pytest.MonkeyPatch, store) -> None:
    from tracked import shutdown

    monkeypatch.setitem(shutdown._installed, "sigterm", False)
    calls: list[int] = []

    def users(signum: int, frame: object) -> None:
        calls.append(signum)

    previous = signal.signal(signal.SIGTERM, users)
    try:
        with tracked.run("with-a-handler"):
            assert signal.getsignal(signal.SIGTERM) is users
        assert signal.getsignal(signal.SIGTERM) is users
    finally:
        signal.signal(signal.SIGTERM, previous)
