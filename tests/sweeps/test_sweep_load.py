"""Load: a sweep of 200 decorated trials in 2 worker processes, children of one parent run named
through TRACKED_PARENT_RUN_ID, against an mlflow server on PostgreSQL with artifacts on S3.
Nothing may be lost: 200 child runs, each with every param, metric and point. Prints runs/s
(docs/scaling.md quotes it)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

import tracked
from tracked import tags as T

pytestmark = [pytest.mark.load, pytest.mark.services, pytest.mark.slow]

TRIALS = 200
PROCESSES = 2
STEPS = 5

WORKER = textwrap.dedent(
    """
    import sys

    import tracked


    @tracked.tracked_training(name="trial", register=False)
    def trial(index, lr, depth):
        for step in range(STEPS):
            tracked.log_metrics({"loss": lr / (step + 1)}, step=step)
        return {"score": index / 1000}


    first, count = int(sys.argv[1]), int(sys.argv[2])
    for index in range(first, first + count):
        trial(index, lr=round(0.01 * (index % 7 + 1), 2), depth=index % 5 + 2)
    assert tracked.flush(120), "runs left in the journal"
    """
).replace("STEPS", str(STEPS))


@pytest.mark.timeout(300)
def test_200_trials_in_2_processes_all_arrive_under_their_parent(
    server_store, record_property, capsys
) -> None:
    store = server_store
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), *sys.path])),
        "TRACKED_TRACKING_URI": store.uri,
        "TRACKED_EXPERIMENT": "elsewhere",  # the trials go to their parent's experiment
        "TRACKED_PROJECT": "proj",
        "OMP_NUM_THREADS": "1",
    }
    per_process = TRIALS // PROCESSES
    with tracked.run("sweep", register=False) as sweep:
        env["TRACKED_PARENT_RUN_ID"] = parent_id = sweep.run_id
        began = time.monotonic()
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(k * per_process), str(per_process)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for k in range(PROCESSES)
        ]
        outcomes = [w.communicate(timeout=280) for w in workers]
        seconds = time.monotonic() - began
    for worker, (_, err) in zip(workers, outcomes, strict=True):
        assert worker.returncode == 0, err[-3000:]
        assert "tracked: " not in err.replace("tracked: 'trial' FINISHED", ""), err[-3000:]

    client = store.client
    experiment_id = store.run(parent_id).info.experiment_id
    children = client.search_runs(
        [experiment_id], filter_string=f"tags.`{T.PARENT_RUN_ID}` = '{parent_id}'", max_results=1000
    )
    assert len(children) == TRIALS
    seen = set()
    for child in children:
        index = int(child.data.params["index"])
        seen.add(index)
        lr = round(0.01 * (index % 7 + 1), 2)
        assert child.info.status == "FINISHED"
        assert child.data.params == {
            "index": str(index),
            "lr": str(lr),
            "depth": str(index % 5 + 2),
        }
        assert child.data.metrics == {"loss": lr / STEPS, "score": index / 1000}
        history = client.get_metric_history(child.info.run_id, "loss")
        assert sorted((m.step, m.value) for m in history) == [
            (step, lr / (step + 1)) for step in range(STEPS)
        ]
    assert seen == set(range(TRIALS))

    rate = TRIALS / seconds
    record_property("load_runs", TRIALS)
    record_property("load_seconds", round(seconds, 1))
    record_property("load_runs_per_second", round(rate, 1))
    with capsys.disabled():
        print(
            f"\nsweep load: {TRIALS} trial runs in {PROCESSES} processes, {seconds:.1f} s "
            f"= {rate:.1f} runs/s (server on PostgreSQL + S3, 1 worker)"
        )
