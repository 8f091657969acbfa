"""`tracked ui` owns its processes: SIGTERM or Ctrl-C ends the server and everything it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from services import free_port, wait_until

REPOSITORY = Path(__file__).resolve().parents[2]


def group_members(group: int) -> list[int]:
    """Pids of the live processes whose process group is `group` (from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended while we looked
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == group:  # state, ppid, pgrp
            members.append(int(entry.name))
    return members


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_stopping_tracked_ui_leaves_no_process_of_its_group(tmp_path: Path, stop: int) -> None:
    port = free_port()
    log = tmp_path / "ui.log"
    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    with log.open("w") as sink:
        tracked_ui = subprocess.Popen(
            [sys.executable, "-m", "tracked.cli", "ui", "--port", str(port), "--tracking-uri", uri],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    try:
        found = wait_until(
            lambda: re.search(r"server process group (\d+)", log.read_text()),
            timeout=60,
            what="tracked ui to start the server",
        )
        group = int(found.group(1))
        wait_until(
            lambda: answers(f"http://127.0.0.1:{port}/health"),
            timeout=120,
            what="the UI to answer",
        )
        assert group_members(group), "the server's group is empty while it answers"

        tracked_ui.send_signal(stop)
        assert tracked_ui.wait(timeout=60) == 0, log.read_text()
    finally:
        if tracked_ui.poll() is None:
            tracked_ui.kill()
            tracked_ui.wait()

    assert group_members(group) == [], log.read_text()[-2000:]
    assert not answers(f"http://127.0.0.1:{port}/health")
