"""`tracked doctor` leaves the user's store as it found it: nothing created, nothing written."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner

import tracked
from tracked.cli import cli


def doctor(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["doctor", "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def snapshot(folder: Path) -> dict[str, object]:
    """Every file under `folder` (path, size) and the rows of the store's main tables."""
    # SQLite's own transient files, and the open lock tracked/store.py keeps beside the database
    # (made by the first tracked process that opens it, a run as much as the doctor)
    transient = (".db-journal", ".db-wal", ".db-shm", ".tracked-open.lock")
    files = sorted(
        (str(p.relative_to(folder)), p.stat().st_size if p.is_file() else -1)
        for p in folder.rglob("*")
        if not p.name.endswith(transient)
    )
    tables = {}
    database = folder / "mlflow.db"
    if database.exists():
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            for table in ("experiments", "runs", "registered_models", "model_versions", "tags"):
                tables[table] = db.execute(f"SELECT * FROM {table}").fetchall()
    return {"files": files, "tables": tables}


def test_doctor_does_not_create_a_missing_sqlite_database(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    uri = f"sqlite:///{(folder / 'mlflow.db').as_posix()}"

    code, report = doctor("--tracking-uri", uri)

    assert code == 0
    checks = {c["name"]: c for c in report["checks"]}
    assert "does not exist yet" in checks["tracking store"]["detail"]
    assert list(folder.iterdir()) == []


def test_doctor_writes_nothing_into_an_existing_store(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    uri = f"sqlite:///{(folder / 'mlflow.db').as_posix()}"
    tracked.configure(tracking_uri=uri, experiment="work")
    with tracked.run("before-doctor", register=False) as run:
        run.log_metrics({"acc": 0.5})
    assert run.flush(60)  # the run is in the store: its artifacts too
    before = snapshot(folder)
    assert before["tables"]["runs"]  # the store holds the user's run

    code, report = doctor()

    assert code == 0, report["checks"]
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["experiment"]["detail"].startswith("'work'")
    assert checks["artifact store"]["ok"] is True
    assert snapshot(folder) == before


def test_doctor_flags_a_misspelt_setting_and_a_bad_scheme(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.tracked]\ntrackng_uri = "http://x:1"\n')
    monkeypatch.setenv("TRACKED_EXPERIMNT", "exp")

    code, report = doctor("--tracking-uri", "htp://127.0.0.1:5000")

    assert code == 1
    checks = {c["name"]: c for c in report["checks"]}
    problems = checks["configuration"]["detail"]
    assert "trackng_uri" in problems and "did you mean 'tracking_uri'?" in problems
    assert "TRACKED_EXPERIMNT" in problems and "did you mean 'TRACKED_EXPERIMENT'?" in problems
    store = checks["tracking store"]
    assert store["ok"] is False and "did you mean 'http'?" in store["detail"]
    assert "not reachable" not in store["detail"]  # a typo, not an outage
