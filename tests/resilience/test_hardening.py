"""Issue 13's findings about the run pipeline, each pinned by a test named after it: a store
that refuses one value, the SQLite open lock, credentials in URIs, the spool holding data and
never code. (The registry's findings are in tests/registry/test_registry_faults.py; the drip and
busy servers, findings 6 and 7, in test_bounded_wait.py.)"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from journals import only_journal, spool_dir

import tracked
from tracked.store import client_for, sqlite_path


def test_finding8_a_store_that_refuses_one_value_keeps_the_rest_of_the_run(
    store, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tracked"), tracked.run("refused-one") as run:
        run_id = run.run_id
        assert run_id is not None
        # A real refusal from the real store: the param exists with another value already
        # (as when someone else wrote to the run), and MLflow params are immutable.
        store.client.log_param(run_id, "depth", "99")
        run.log_params({"depth": 3, "lr": 0.1, "layers": "[64, 32]"})
        run.log_metrics({"acc": 0.9})
    stored = store.run(run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.params == {"depth": "99", "lr": "0.1", "layers": "[64, 32]"}
    assert stored.data.metrics == {"acc": 0.9}
    refusals = [r.getMessage() for r in caplog.records if "refused params" in r.getMessage()]
    assert len(refusals) == 1 and "'depth'" in refusals[0]


def test_finding8_a_lone_surrogate_param_is_stored_escaped_and_the_run_is_whole(store) -> None:
    weird = os.fsdecode(b"/data/caf\xe9.csv")  # a non-UTF-8 file name: a lone surrogate
    with tracked.run("surrogate", params={"path": weird, "n": 3}) as run:
        run.log_metrics({"acc": 0.5})
    stored = store.run(run.run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.params["path"] == "/data/caf\\udce9.csv"
    assert stored.data.params["n"] == "3" and stored.data.metrics == {"acc": 0.5}


def test_finding9_two_spellings_of_one_sqlite_database_share_one_open_lock(
    tmp_path: Path,
) -> None:
    database = tmp_path / "db" / "mlflow.db"
    database.parent.mkdir()
    absolute = f"sqlite:///{database.as_posix()}"
    relative = "sqlite:///" + os.path.relpath(database, tmp_path).replace(os.sep, "/")
    assert sqlite_path(absolute) == sqlite_path(relative) == database.resolve()
    # Eight processes, half naming the database one way, half the other, all on a fresh file.
    script = textwrap.dedent(
        """
        import sys, tracked
        tracked.configure(tracking_uri=sys.argv[1], experiment="spellings", project="p")
        with tracked.run("r") as run:
            run.log_metrics({"x": 1.0})
        assert tracked.flush(120)
        """
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script, uri], cwd=tmp_path)
        for uri in [absolute, relative] * 4
    ]
    assert [p.wait(300) for p in processes] == [0] * 8
    client = client_for(absolute, absolute)
    experiment = client.get_experiment_by_name("spellings")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 8 and all(r.info.status == "FINISHED" for r in runs)
    lock = database.with_name("mlflow.db.tracked-open.lock")
    assert lock.exists()  # beside the database, not in a shared /tmp keyed on the URI text


def test_finding11_a_password_in_the_tracking_uri_is_never_printed(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    uri = "http://trainer:S3cret-Pw-9@127.0.0.1:9"  # nothing listens there
    with caplog.at_level(logging.DEBUG):

        @tracked.tracked_training(tracking_uri=uri)
        def train() -> dict[str, float]:
            return {"acc": 1.0}

        train()
        tracked.flush(30)
        tracked.sync(dry_run=True, tracking_uri=uri)
    out, err = capfd.readouterr()
    said = out + err + caplog.text
    assert "127.0.0.1:9" in said  # the store is named...
    assert "S3cret-Pw-9" not in said  # ...without its password
    for path in spool_dir().rglob("*"):
        if path.is_file():
            assert b"S3cret-Pw-9" not in path.read_bytes(), path


def test_finding12_the_spool_holds_data_never_code_and_is_private(store, tmp_path: Path) -> None:
    policy = tracked.PromotionPolicy(to="champion", when=[tracked.metric("acc") >= 0.5])
    with tracked.run("offline", tracking_uri="http://127.0.0.1:9", promote=policy) as run:
        run.log_metrics({"acc": 0.9})
    view = only_journal()
    assert stat.S_IMODE(spool_dir().stat().st_mode) == 0o700
    assert stat.S_IMODE(view.directory.stat().st_mode) == 0o700
    assert view.intent is not None and view.intent["policies"][0]["format"] == 1  # data
    assert not [p for p in view.directory.rglob("*") if p.suffix in (".pkl", ".pickle")]
    # A pickle planted in the spool, as tracked 0.1 wrote them, is never loaded: not by a dry
    # run, not by a sync. Loading it would create the marker file.
    marker = tmp_path / "code-ran"
    legacy = spool_dir() / "0123456789abcdef0123456789abcdef"
    (legacy / "files").mkdir(parents=True)
    (legacy / "promote.pkl").write_bytes(_pickle_that_touches(marker))
    (legacy / "record.json").write_text("{}")
    tracked.sync(dry_run=True)
    tracked.sync()
    assert not marker.exists()


def _pickle_that_touches(marker: Path) -> bytes:
    import pickle

    class Touch:
        def __reduce__(self) -> tuple[object, tuple[str, ...]]:
            return (os.system, (f"touch {marker}",))

    return pickle.dumps(Touch())
