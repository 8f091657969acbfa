"""The spool on disk and `sync()` against a local store: torn entries, dry runs, the record's
JSON form, what the user is told, and what is never spooled."""

from __future__ import annotations

import json
import logging
import math
import threading
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

import tracked
from tracked.errors import SpoolError
from tracked.record import Artifact, DatasetInput, MetricPoint, RunRecord
from tracked.sync import sync
from tracked.writers.spool import SpooledRun, TornEntry, scan

DEAD = "http://127.0.0.1:9"  # nothing listens: connection refused at once


def _spool_dir() -> Path:
    return Path(tracked.get_config().spool_dir)


def _spool_a_run(name: str = "offline", *, model: bool = False, promote: object = None) -> Path:
    with tracked.run(name, tracking_uri=DEAD, params={"depth": 3}, promote=promote) as run:
        for step in range(20):
            run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        run.log_text("hello", "notes/hello.txt")
        if model:
            X = np.arange(20.0).reshape(10, 2)
            run.log_model(LinearRegression().fit(X, X.sum(axis=1)))
    return _spool_dir() / run.record.run_uuid


def test_record_round_trips_through_json() -> None:
    record = RunRecord(name="r", experiment="e", project="p", status="FINISHED", end_time=5)
    record.params["a"] = "1"
    record.tags["t"] = "x"
    record.metrics += [MetricPoint("loss", 0.5, 1, 10), MetricPoint("odd", math.nan, 2, 11)]
    record.artifacts += [Artifact("a.txt", content=b"\x00bytes"), Artifact("d", local_path="/x")]
    record.inputs.append(DatasetInput("X", "xxh:ab", "numpy", shape=(3, 2), schema={"dtype": "f"}))
    back = RunRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert back.to_dict() == json.loads(json.dumps(record.to_dict()))
    assert back.inputs[0].shape == (3, 2) and back.artifacts[0].content == b"\x00bytes"
    assert math.isnan(back.metrics[1].value) and back.metrics[0] == record.metrics[0]


def test_unreachable_store_spools_with_at_most_two_lines(
    store, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tracked"):
        entry = _spool_a_run(model=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "tracked"]
    assert len(lines) == 2, lines
    assert DEAD in lines[0]
    assert lines[1].endswith("send it with `tracked sync`")
    assert f"spooled to {entry}" in lines[1] and "20 metric points, model" in lines[1]
    assert {"manifest.json", "record.json", "files", "models"} <= {p.name for p in entry.iterdir()}


def test_sync_sends_good_entries_and_reports_torn_ones(store) -> None:
    good = _spool_a_run("good", model=True)
    altered = _spool_a_run("altered")
    record_json = altered / "record.json"
    record_json.write_text(record_json.read_text().replace('"depth": "3"', '"depth": "4"'))
    no_manifest = _spool_a_run("no-manifest")
    (no_manifest / "manifest.json").unlink()
    half_written = _spool_dir() / ".tmp-0123"
    half_written.mkdir()
    leftover = _spool_dir() / ".done-4567"  # a removal that was interrupted
    leftover.mkdir()

    preview = sync(dry_run=True)
    assert [e.state for e in preview.entries].count("would send") == 1
    assert good.exists() and leftover.exists()  # a dry run changes nothing

    report = sync()
    states = {Path(e.path).name: e.state for e in report.entries}
    assert states == {
        good.name: "sent",
        altered.name: "torn",
        no_manifest.name: "torn",
        half_written.name: "torn",
    }
    assert not report.ok
    assert len(report.lines()) == 4 and all("\n" not in line for line in report.lines())
    json.dumps(report.to_dict())
    assert not good.exists() and not leftover.exists()
    assert altered.exists() and no_manifest.exists() and half_written.exists()
    (run,) = store.runs()
    assert run.data.tags["tracked.spool_id"] == good.name
    assert run.data.params == {"depth": "3"}
    assert len(store.metric_history(run.info.run_id, "loss")) == 20
    assert run.data.tags["tracked.model.version"] == "1"


def test_strict_raises_and_spools_nothing(store) -> None:
    with pytest.raises(tracked.StoreUnavailableError):
        tracked.run("x", tracking_uri=DEAD, strict=True).start()
    assert scan(_spool_dir()) == []


def test_a_policy_that_cannot_be_pickled_keeps_its_intent(
    store, caplog: pytest.LogCaptureFixture
) -> None:
    lock = threading.Lock()
    policy = tracked.PromotionPolicy(to="champion", when=[lambda candidate: lock is not None])
    with caplog.at_level(logging.WARNING, logger="tracked"):
        _spool_a_run(model=True, promote=policy)
    assert "promotion policy could not be saved" in caplog.records[-1].getMessage()
    (entry,) = scan(_spool_dir())
    assert isinstance(entry, SpooledRun) and entry.policies is None and entry.policy_text
    (sent,) = sync().entries
    assert sent.state == "sent" and sent.model is not None
    assert sent.promotion[0].startswith("not promoted: the policy could not be kept")


def test_only_one_sync_at_a_time(store) -> None:
    import fcntl

    _spool_a_run()
    with open(_spool_dir() / ".sync.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(SpoolError, match="another `tracked sync`"):
            sync()
    (entry,) = sync().entries
    assert entry.state == "sent"


def test_store_down_at_sync_keeps_every_entry(tmp_path: Path) -> None:
    tracked.configure(experiment="down", project="proj")
    _spool_a_run("one")
    _spool_a_run("two")
    report = sync(tracking_uri=DEAD)
    assert [e.state for e in report.entries] == ["failed", "failed"]
    assert all("not reachable" in e.detail for e in report.entries)
    assert len([e for e in scan(_spool_dir()) if not isinstance(e, TornEntry)]) == 2


def test_an_unwritable_spool_is_reported_and_the_result_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    tracked.configure(spool_dir=str(blocker / "spool"))

    @tracked.tracked_training(tracking_uri=DEAD)
    def train(x: int = 1) -> dict[str, int]:
        return {"ok": x}

    with caplog.at_level(logging.WARNING, logger="tracked"):
        assert train(x=3) == {"ok": 3}
    last = caplog.records[-1].getMessage()
    assert "could not be spooled" in last and "not recorded" in last
