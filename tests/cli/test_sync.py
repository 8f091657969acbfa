"""`tracked sync` shows progress: a bar on a terminal, one line per run as it goes when piped."""

from __future__ import annotations

import io
import re

import pytest
from click.testing import CliRunner

import tracked
from tracked.cli import cli
from tracked.render import sync_progress
from tracked.sync import SyncEntry
from tracked.tables import Output

DEAD = "http://127.0.0.1:9"  # nothing listens: connection refused at once


def entries(n: int) -> list[SyncEntry]:
    return [
        SyncEntry(f"spool-{i}", "sent", f"/spool/spool-{i}", name=f"run-{i}", run_id=f"{i:032x}")
        for i in range(n)
    ]


def test_piped_progress_is_one_line_per_run_as_it_is_sent(capsys: pytest.CaptureFixture) -> None:
    stream = io.StringIO()
    progress = sync_progress(Output(stream, terminal=False))
    sent = entries(3)

    progress.start(len(sent))
    for i, entry in enumerate(sent):
        progress.advance(entry)
        assert stream.getvalue().splitlines() == [e.line() for e in sent[: i + 1]]
    progress.close()

    assert capsys.readouterr().err.strip() == "sending 3 spooled runs"


def test_terminal_progress_is_a_bar_with_each_run_above_it() -> None:
    stream = io.StringIO()
    progress = sync_progress(Output(stream, terminal=True))
    sent = entries(4)

    progress.start(len(sent))
    for entry in sent:
        progress.advance(entry)
    progress.close()

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())
    words = " ".join(text.split())  # the console wraps long lines at its width
    for entry in sent:
        assert " ".join(entry.line().split()) in words
    assert re.search(r"sync .*\d/4", text)  # the bar, with its count


def test_sync_of_spooled_runs_piped(store) -> None:
    for name in ("offline-a", "offline-b", "offline-c"):
        with tracked.run(name, tracking_uri=DEAD, register=False) as run:
            run.log_metrics({"loss": 0.5})

    result = CliRunner().invoke(cli, ["sync"])

    assert result.exit_code == 0, (result.stdout, result.stderr)
    lines = result.stdout.strip().splitlines()
    sent = [line for line in lines if line.startswith("sent")]
    assert len(sent) == 3 and {"offline-a", "offline-b", "offline-c"} == {
        re.search(r"run '([^']+)'", line).group(1) for line in sent
    }
    assert lines[-1].startswith("3 sent")
    assert len({r.info.run_name for r in store.runs()}) == 3
