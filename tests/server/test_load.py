"""Load: 16 processes x 20 decorated trainings, each registering a version of one model, against
a server at once. Everything must arrive: every run with its params and metrics, and versions
1..320 with no gap and no duplicate. The server has several worker processes (mlflow's default),
so the version numbering races across processes as it does in a real deployment."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

PROCESSES = 16
RUNS_PER_PROCESS = 20
CLIENT = Path(__file__).with_name("load_worker.py")

pytestmark = [pytest.mark.load, pytest.mark.services, pytest.mark.slow]
# Read-only requests that make each server worker open its tracking and registry stores.
WARM_UP = (
    "/api/2.0/mlflow/experiments/search?max_results=1",
    "/api/2.0/mlflow/registered-models/search?max_results=1",
    "/api/2.0/mlflow/model-versions/search?max_results=1",
)


def warm_up(url: str) -> None:
    """Each worker of a fresh server connects to the database on its first requests, which
    takes seconds; a deployed server has long done that. One connection per request, so the
    requests spread over the workers."""

    def get(path: str) -> None:
        with urllib.request.urlopen(url + path, timeout=60) as response:
            assert response.status == 200

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(get, WARM_UP * 16))


@pytest.mark.timeout(600)
def test_concurrent_trainings_all_arrive_with_gapless_versions(
    multi_worker_server, record_property, tmp_path: Path
) -> None:
    from tracked.store import client_for

    uri = multi_worker_server.url
    warm_up(uri)
    experiment, model_name = f"load-{uuid.uuid4().hex[:10]}", f"load-{uuid.uuid4().hex[:10]}"
    log = tmp_path / "load-clients.log"
    with log.open("w") as stderr:
        done = subprocess.run(
            [
                sys.executable,
                str(CLIENT),
                f"--uri={uri}",
                f"--experiment={experiment}",
                f"--model-name={model_name}",
                f"--processes={PROCESSES}",
                f"--runs={RUNS_PER_PROCESS}",
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            timeout=540,
        )
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:])
    assert done.returncode == 0, tail
    *lines, summary = (json.loads(line) for line in done.stdout.splitlines() if line)
    assert summary["exit_codes"] == [0] * PROCESSES, tail
    errors = [line for line in lines if "error" in line]
    assert not errors, errors[:5]
    reported = [line for line in lines if "run_id" in line]
    assert len(reported) == PROCESSES * RUNS_PER_PROCESS
    assert all(r["status"] == "FINISHED" for r in reported)
    # A busy server is not a dead one (issue 13): every run reached it, none was left in its
    # journal for `tracked sync`, and no process had anything to say about the store.
    spooled = [r for r in reported if r["problems"]]
    assert spooled == [], [problem for r in spooled[:3] for problem in r["problems"]]
    assert not list((tmp_path / "spool").glob("*/journal"))
    record_property("load_runs_spooled_then_synced", len(spooled))

    # Every run is in the store, with the params and metrics its process reported.
    client = client_for(uri, uri)
    exp = client.get_experiment_by_name(experiment)
    runs = {
        run.info.run_id: run
        for run in client.search_runs([exp.experiment_id], max_results=PROCESSES * 100)
    }
    by_key = {(r.data.params.get("worker"), r.data.params.get("index")): r for r in runs.values()}
    assert len(runs) == len(by_key) == PROCESSES * RUNS_PER_PROCESS  # no run twice
    for r in reported:
        run = by_key[(str(r["worker"]), str(r["index"]))]
        if r["run_id"]:
            assert run.info.run_id == r["run_id"]
        assert run.info.status == "FINISHED"
        assert run.data.params == {
            "worker": str(r["worker"]),
            "index": str(r["index"]),
            "C": str(0.5 + r["index"] / 10),
        }
        assert run.data.metrics == {"acc": r["acc"], "score": r["worker"] * 1000 + r["index"]}
        if not r["problems"]:
            assert run.data.tags["tracked.model.version"] == r["version"]

    # One version per run, numbered 1..320 without gap or duplicate.
    versions = client.search_model_versions(f"name = '{model_name}'", max_results=1000)
    numbers = sorted(int(v.version) for v in versions)
    assert numbers == list(range(1, PROCESSES * RUNS_PER_PROCESS + 1))
    assert {v.run_id for v in versions} == set(runs)  # one version per run, every run
    assert {(v.run_id, str(v.version)) for v in versions} == {
        (run_id, run.data.tags["tracked.model.version"]) for run_id, run in runs.items()
    }

    total, elapsed = len(reported), summary["elapsed"]
    slowest = max(line["seconds"] for line in lines if "seconds" in line)
    rate = total / elapsed
    record_property("load_runs", total)
    record_property("load_seconds", round(elapsed, 1))
    record_property("load_runs_per_second", round(rate, 2))
    print(
        f"load: {total} registered runs from {PROCESSES} processes in {elapsed:.1f} s"
        f" = {rate:.2f} runs/s (slowest process {slowest:.1f} s; {len(spooled)} spooled and"
        " synced)"
    )
