"""Processes that die without a word: SIGKILL mid-run, a sync killed mid-batch, and a run of a
million points (memory flat, everything in the store by the time the process has exited).

Each case is a real subprocess killed with a real signal; nothing is patched.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from journals import only_journal
from services import wait_until

import tracked
from tracked.store import client_for

STEPS = 2000


def _child(script: str, cwd: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def _runs(uri: str, experiment: str) -> list[object]:
    client = client_for(uri, uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else list(client.search_runs([found.experiment_id]))


@pytest.mark.slow
def test_sigkill_mid_run_then_sync_gives_one_killed_run_with_every_point_older_than_a_second(
    tmp_path: Path, fresh_sqlite: str, record_property: Callable[[str, object], None]
) -> None:
    # The loop logs 2,000 points over about 10 s (the sleep is the simulated training's work).
    child = _child(
        f"""
        import sys, time, tracked
        tracked.configure(tracking_uri={fresh_sqlite!r}, experiment="killed", project="p")
        with tracked.run("doomed") as run:
            for i in range({STEPS}):
                run.log_metrics({{"loss": 1.0 / (i + 1)}}, step=i)
                if i % 50 == 0:
                    print(i, flush=True)
                time.sleep(0.005)
        """,
        tmp_path,
    )
    assert child.stdout is not None
    kill_after = random.randrange(200, STEPS - 300, 50)  # a random point of the loop
    for line in child.stdout:
        if int(line) >= kill_after:
            break
    killed_at = time.time_ns() // 1_000_000
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    assert child.returncode == -signal.SIGKILL

    report = tracked.sync(tracking_uri=fresh_sqlite)
    (entry,) = report.entries
    assert entry.state == "sent" and entry.status == "KILLED", entry.line()
    (run,) = _runs(fresh_sqlite, "killed")
    assert run.info.status == "KILLED"
    history = client_for(fresh_sqlite, fresh_sqlite).get_metric_history(run.info.run_id, "loss")
    steps = sorted(m.step for m in history)
    assert steps == list(range(len(steps)))  # no hole: the journal holds a prefix of the run
    last = max(history, key=lambda m: m.step)
    assert last.timestamp >= killed_at - 1000  # every point logged over a second before is in
    record_property("sigkill_points_recovered", len(steps))
    record_property("sigkill_killed_after_step", kill_after)
    assert tracked.sync(tracking_uri=fresh_sqlite).entries == ()  # nothing left, nothing twice


@pytest.mark.slow
def test_a_sync_killed_mid_batch_resumes_without_duplicates(
    tmp_path: Path, fresh_sqlite: str
) -> None:
    spool = tmp_path / "spool"
    # A run of 300,000 points whose store is down: it stays in its journal.
    writer = _child(
        f"""
        import tracked
        tracked.configure(tracking_uri="http://127.0.0.1:9", experiment="resumed", project="p",
                          spool_dir={str(spool)!r})
        with tracked.run("big") as run:
            for i in range(100_000):
                run.log_metrics({{"a": float(i), "b": -float(i), "c": 0.5}}, step=i)
        """,
        tmp_path,
    )
    assert writer.wait(300) == 0, writer.stderr.read() if writer.stderr else ""
    # `tracked sync` in a process of its own, killed as soon as the run exists in the store.
    syncer = subprocess.Popen(
        [sys.executable, "-m", "tracked.cli", "sync", "--tracking-uri", fresh_sqlite],
        cwd=tmp_path,
        env={**os.environ, "TRACKED_SPOOL_DIR": str(spool)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = client_for(fresh_sqlite, fresh_sqlite)
    journal = next(p for p in spool.iterdir() if not p.name.startswith("."))
    # The first batch committed (the cursor file appears), or the sync already done.
    wait_until(
        lambda: syncer.poll() is not None or (journal / "cursor.json").exists(),
        120,
        "the sync's first committed batch",
        interval=0.01,
    )
    syncer.send_signal(signal.SIGKILL)
    syncer.wait(30)
    first = _runs(fresh_sqlite, "resumed")
    assert len(first) == 1 or syncer.returncode == 0

    report = tracked.sync(spool_dir=str(spool), tracking_uri=fresh_sqlite)
    assert all(e.state == "sent" for e in report.entries) and report.entries
    (run,) = _runs(fresh_sqlite, "resumed")
    for key in ("a", "b", "c"):
        history = client.get_metric_history(run.info.run_id, key)
        assert len(history) == 100_000
        assert len({m.step for m in history}) == 100_000
    assert run.info.status == "FINISHED"


@pytest.mark.slow
def test_a_million_points_memory_stays_flat_and_all_reach_the_store(
    tmp_path: Path, fresh_sqlite: str, record_property: Callable[[str, object], None]
) -> None:
    child = _child(
        f"""
        import resource, time, tracked
        tracked.configure(tracking_uri={fresh_sqlite!r}, experiment="million", project="p")

        def rss_mb():
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS"):
                        return int(line.split()[1]) / 1024

        @tracked.tracked_training
        def train(n=1_000_000):
            started = time.perf_counter()
            for i in range(n):
                tracked.log_metrics({{"loss": 1.0 / (i + 1)}}, step=i)
            return time.perf_counter() - started

        train(n=1000)  # warm: MLflow imported, the store open
        tracked.flush()
        base = rss_mb()
        peak = [base]
        import threading
        stop = threading.Event()
        def watch():
            while not stop.wait(0.05):
                peak.append(rss_mb())
        threading.Thread(target=watch, daemon=True).start()
        loop = train()
        returned = time.perf_counter()
        stop.set()
        print("growth", max(peak) - base)
        print("per_point_us", loop / 1_000_000 * 1e6)
        """,
        tmp_path,
    )
    out, err = child.communicate(timeout=900)
    assert child.returncode == 0, err[-3000:]
    wanted = ("growth", "per_point_us")
    figures = dict(line.split() for line in out.splitlines() if line.split()[0] in wanted)
    growth = float(figures["growth"])
    record_property("million_points_rss_growth_mb", round(growth, 1))
    record_property("million_points_us_per_point", round(float(figures["per_point_us"]), 2))
    assert growth < 256  # loose: the queue is flushed to disk every 20,000 points
    (run,) = [r for r in _runs(fresh_sqlite, "million") if r.data.params.get("n") == "1000000"]
    client = client_for(fresh_sqlite, fresh_sqlite)
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 1_000_000
    assert run.info.status == "FINISHED"
    assert not list((tmp_path / "spool").glob("*/journal"))  # sent, and removed


def test_a_process_killed_before_its_run_reached_the_store_leaves_a_journal(
    tmp_path: Path,
) -> None:
    child = _child(
        """
        import tracked
        tracked.configure(tracking_uri="http://127.0.0.1:9", experiment="gone", project="p")
        run = tracked.run("gone").start()
        run.log_metrics({"loss": 0.5}, step=3)
        import tracked.journal
        tracked.journal.flush_all()
        print("logged", flush=True)
        import time
        time.sleep(600)  # killed long before
        """,
        tmp_path,
        TRACKED_SPOOL_DIR=str(tmp_path / "spool"),
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "logged"
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    view = only_journal(tmp_path / "spool")
    assert view.record.name == "gone" and view.steps("loss") == [3]
    assert view.record.status == "RUNNING"  # no END: sync will end it KILLED
