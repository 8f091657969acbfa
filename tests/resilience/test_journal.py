"""The journal on disk and `tracked sync` against a local store: torn and corrupt journals, dry
runs, what the user is told, strict mode, policies kept as data, one sync at a time."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journals import journals, only_journal, read_journal, spool_dir
from sklearn.linear_model import LinearRegression

import tracked
from tracked import journal as J
from tracked.errors import SpoolError
from tracked.journal import Journal, Kind, Reader
from tracked.sync import sync

DEAD = "http://127.0.0.1:9"  # nothing listens: connection refused at once


def _offline_run(name: str = "offline", *, model: bool = False, promote: object = None) -> Path:
    """A run whose store is down: it stays in its journal."""
    with tracked.run(name, tracking_uri=DEAD, params={"depth": 3}, promote=promote) as run:
        for step in range(20):
            run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        run.log_text("hello", "notes/hello.txt")
        if model:
            X = np.arange(20.0).reshape(10, 2)
            run.log_model(LinearRegression().fit(X, X.sum(axis=1)))
    directory = run.journal_path
    assert directory is not None
    return directory


# -- the format ---------------------------------------------------------------------------------

events = st.lists(
    st.one_of(
        st.tuples(
            st.just("point"),
            st.integers(0, 3),
            st.text(min_size=1, max_size=20),
            st.floats(allow_nan=True, allow_infinity=True),
            st.integers(-(2**63), 2**63 - 1),
        ),
        st.tuples(
            st.just("params"),
            st.integers(0, 3),
            st.dictionaries(st.text(max_size=10), st.text(max_size=50), max_size=5),
        ),
    ),
    max_size=200,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=events)
def test_what_a_journal_was_given_it_reads_back_in_order(tmp_path: Path, events: list) -> None:
    directory = tmp_path / os.urandom(8).hex()
    journal = Journal(directory, {"name": "r", "experiment": "e", "project": "p"})
    expected = []
    for event in events:
        if event[0] == "point":
            _, slot, key, value, step = event
            journal.point(slot, key, value, step, 1234)
            expected.append(("point", slot, key, value, step))
        else:
            journal.event(Kind.PARAMS, {"slot": event[1], "params": event[2]})
            expected.append(("params", event[1], event[2]))
        if len(expected) % 37 == 0:
            journal.flush()  # frames of every size, points split around other events
    journal.close()
    keys: dict[int, str] = {}
    seen = []
    reader = Reader(directory)
    for found in reader.frames():
        if found.kind == Kind.KEYS:
            keys.update({i: k for i, k in found.json()["keys"]})
        elif found.kind == Kind.POINTS:
            chunk = J.Points.decode(found.payload)
            for slot, key, value, step in zip(
                chunk.slots, chunk.keys, chunk.values, chunk.steps, strict=True
            ):
                seen.append(("point", slot, keys[key], value, step))
        elif found.kind == Kind.PARAMS:
            data = found.json()
            seen.append(("params", data["slot"], data["params"]))
    assert reader.torn is None
    assert len(seen) == len(expected)
    for got, want in zip(seen, expected, strict=True):
        if got[0] == "point" and math.isnan(want[3]):
            assert math.isnan(got[3]) and got[:3] == want[:3] and got[4] == want[4]
        else:
            assert got == want


def test_a_point_out_of_its_columns_range_is_refused_and_the_columns_stay_even(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "j", {"name": "r", "experiment": "e", "project": "p"})
    journal.point(0, "loss", 0.5, 1, 1234)
    with pytest.raises(OverflowError):
        journal.point(70_000, "loss", 0.25, 2, 1234)  # a slot is a u16 in the POINTS frame
    journal.point(0, "loss", 0.125, 3, 1234)
    journal.close()

    chunks = [
        J.Points.decode(f.payload) for f in Reader(tmp_path / "j").frames() if f.kind == Kind.POINTS
    ]
    assert [(v, s) for c in chunks for v, s in zip(c.values, c.steps, strict=True)] == [
        (0.5, 1),
        (0.125, 3),
    ]


def test_a_torn_tail_is_cut_and_the_rest_is_whole(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j", {"name": "r", "experiment": "e", "project": "p"})
    for step in range(100):
        journal.point(0, "loss", float(step), step, 1)
    journal.close()
    path = tmp_path / "j" / J.JOURNAL_FILE
    whole = path.stat().st_size
    with open(path, "ab") as fh:  # a process killed while writing: half a frame
        fh.write(J.frame(Kind.PARAMS, b'{"slot":0,"params":{"a":"1"}}')[:-7])
    reader = Reader(tmp_path / "j")
    assert sum(1 for _ in reader.frames()) == 3  # START, KEYS, POINTS
    assert reader.torn is not None and "cut short" in reader.torn
    appended = path.stat().st_size - whole
    assert reader.cut_torn_tail() == appended
    assert path.stat().st_size == whole
    assert read_journal(tmp_path / "j").steps("loss") == list(range(100))


def test_a_corrupt_frame_before_the_end_is_not_cut_away(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j", {"name": "r", "experiment": "e", "project": "p"})
    journal.event(Kind.PARAMS, {"slot": 0, "params": {"a": "1"}})
    journal.flush()
    journal.event(Kind.PARAMS, {"slot": 0, "params": {"b": "2"}})
    journal.close()
    path = tmp_path / "j" / J.JOURNAL_FILE
    data = bytearray(path.read_bytes())
    data[len(J.MAGIC) + 40] ^= 0xFF  # a flipped bit in an early frame, whole frames after it
    path.write_bytes(bytes(data))
    with pytest.raises(SpoolError, match="corrupt"):
        Reader(tmp_path / "j").cut_torn_tail()
    assert path.read_bytes() == bytes(data)  # nothing cut: the data after it is kept


# -- what the user sees, and sync -----------------------------------------------------------------


def test_an_unreachable_store_is_one_warning_and_the_run_stays_in_its_journal(
    store, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.WARNING, logger="tracked"):
        directory = _offline_run(model=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "tracked"]
    assert len(lines) == 1, lines
    assert "127.0.0.1:9" in lines[0] and "not reachable" in lines[0]
    assert f"kept in {directory}" in capsys.readouterr().err
    view = only_journal()
    assert view.steps("loss") == list(range(20))
    assert view.record.status == "FINISHED" and view.record.params == {"depth": "3"}
    assert "notes/hello.txt" in view.artifacts and view.models[0]["flavor"] == "sklearn"


def test_sync_sends_good_journals_and_reports_torn_ones(store) -> None:
    good = _offline_run("good", model=True)
    corrupt = _offline_run("corrupt")
    headless = _offline_run("headless")
    tracked.flush(0)
    path = corrupt / J.JOURNAL_FILE
    data = bytearray(path.read_bytes())
    data[len(J.MAGIC) + 3] ^= 0xFF  # the START frame's checksum no longer matches
    path.write_bytes(bytes(data))
    (headless / J.JOURNAL_FILE).write_bytes(J.MAGIC[:5])  # died before its first frame
    leftover = spool_dir() / ".done-4567"  # a removal that was interrupted
    leftover.mkdir()

    preview = sync(dry_run=True)
    assert [e.state for e in preview.entries].count("would send") == 1
    assert good.exists() and leftover.exists()  # a dry run changes nothing

    report = sync()
    states = {Path(e.path).name: e.state for e in report.entries}
    assert states == {good.name: "sent", corrupt.name: "torn", headless.name: "torn"}
    assert not report.ok
    assert len(report.lines()) == 3 and all("\n" not in line for line in report.lines())
    json.dumps(report.to_dict())
    assert not good.exists() and not leftover.exists()
    assert corrupt.exists() and headless.exists()
    (run,) = store.runs()
    assert run.data.tags["tracked.run_uuid"] == good.name
    assert run.data.params == {"depth": "3"}
    assert len(store.metric_history(run.info.run_id, "loss")) == 20
    assert run.data.tags["tracked.model.version"] == "1"
    assert run.info.status == "FINISHED"


def test_strict_raises_and_leaves_no_journal(store) -> None:
    with pytest.raises(tracked.StoreUnavailableError):
        tracked.run("x", tracking_uri=DEAD, strict=True).start()
    assert journals() == []


def test_a_custom_check_is_kept_as_data_and_refuses_when_replayed(store) -> None:
    policy = tracked.PromotionPolicy(to="champion", when=[lambda candidate: True])
    _offline_run(model=True, promote=policy)
    (view,) = journals()
    assert view.intent is not None and view.intent["policies"][0]["when"]
    assert not list(view.directory.rglob("*.pkl"))  # data, never a pickle
    (sent,) = sync().entries
    assert sent.state == "sent" and sent.model is not None
    assert "cannot be evaluated when replayed" in sent.promotion[0]


def test_only_one_sync_at_a_time(store) -> None:
    import fcntl

    _offline_run()
    with open(spool_dir() / ".sync.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(SpoolError, match="another `tracked sync`"):
            sync()
    (entry,) = sync().entries
    assert entry.state == "sent"


def test_store_down_at_sync_keeps_every_journal(tmp_path: Path) -> None:
    tracked.configure(experiment="down", project="proj")
    _offline_run("one")
    _offline_run("two")
    report = sync(tracking_uri=DEAD)
    assert [e.state for e in report.entries] == ["failed", "failed"]
    assert all("not reachable" in e.detail for e in report.entries)
    assert len(journals()) == 2


def test_a_journal_still_owned_by_a_live_process_is_left_alone(store, tmp_path: Path) -> None:
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import sys, tracked
        tracked.configure(tracking_uri={DEAD!r}, spool_dir={str(spool_dir())!r})
        run = tracked.run("elsewhere").start()
        run.log_metrics({{"x": 1.0}})
        import tracked.journal
        tracked.journal.flush_all()
        print("ready", flush=True)
        sys.stdin.readline()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        (entry,) = sync().entries
        assert entry.state == "live" and str(child.pid) in entry.detail
    finally:
        child.kill()
        child.wait()
    (entry,) = sync().entries  # its process is gone: the run ends KILLED, with its point
    assert entry.state == "sent" and entry.status == "KILLED" and entry.metric_points == 1


def test_an_unwritable_spool_falls_back_and_the_run_is_recorded(
    store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    tracked.configure(spool_dir=str(blocker / "spool"))

    @tracked.tracked_training
    def train(x: int = 1) -> dict[str, int]:
        return {"ok": x}

    with caplog.at_level(logging.WARNING, logger="tracked"):
        assert train(x=3) == {"ok": 3}
    assert any("cannot create" in r.getMessage() for r in caplog.records)
    (run,) = store.runs()
    assert run.data.metrics == {"ok": 3.0}


# -- the sender's hold --------------------------------------------------------------------------


def test_a_live_run_is_left_to_its_training_until_it_ends_or_someone_waits(
    store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender's first contact with the store (the run, its params and tags) waits
    START_HOLD seconds into a run, so that a short training does not share the interpreter
    with it; `flush()` and the run's end send what is held."""
    from mlflow import MlflowClient

    from tracked import sender as S

    monkeypatch.setattr(S, "START_HOLD", 3600.0)  # the whole test is "early in the run"
    raw = MlflowClient(tracking_uri=store.uri)  # not `store.client`: that one flushes first
    with tracked.run("held", params={"depth": 3}) as run:
        run.log_metrics({"loss": 0.5}, step=0)
        [shipment] = S.sender().pending()
        S.sender()._pump(shipment)  # one round of the sender, run here: no waiting on it
        experiment = raw.get_experiment_by_name(store.experiment)
        assert experiment is None or raw.search_runs([experiment.experiment_id]) == []

        tracked.flush()  # someone waits for the store: what is held is sent for them

        [live] = store.runs()
        assert live.info.status == "RUNNING" and live.data.metrics == {"loss": 0.5}
        run.log_metrics({"loss": 0.25}, step=1)
    run.flush()

    [stored] = store.runs()
    assert stored.info.status == "FINISHED" and stored.data.params["depth"] == "3"
    assert sorted(m.value for m in store.metric_history(stored.info.run_id, "loss")) == [
        0.25,
        0.5,
    ]
