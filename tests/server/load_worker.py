"""The load test's client side: `--processes` processes, each running `--runs` decorated
trainings of a tiny scikit-learn model that register under one model name, all at once,
against the tracking server given on the command line.

Everything heavy (MLflow, scikit-learn, tracked, the model flavor) is imported and warmed up
once here, then the processes are forked: 16 fresh interpreters would spend most of the test
importing MLflow. Nothing talks to the server before the fork, so no connection is shared.
The processes start training together (a barrier); each reports one JSON line per run, and
this script prints them all to stdout, then a summary line with the measured wall time.
Run by tests/server/test_load.py; not a test module itself.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
import tempfile
import time
from typing import Any


class Collect(logging.Handler):
    """Every warning tracked logs, so the test can show what went wrong in which run."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def worker(args: argparse.Namespace, worker: int, start: Any, results: Any) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    import tracked

    collect = Collect()
    logging.getLogger("tracked").addHandler(collect)
    # 16 client processes, 4 server workers, PostgreSQL and the S3 endpoint share 2 cores here:
    # at the start, when every process registers at once, a request can queue in the server
    # for more than the default 30 s. A deployed server has cores of its own; this is the
    # documented knob for one that is this busy (README, "Configuration").
    tracked.configure(
        tracking_uri=args.uri, experiment=args.experiment, project="load", http_timeout=120
    )

    @tracked.tracked_training(name="load", model_name=args.model_name)
    def train(X, y, *, worker, index, C):
        model = LogisticRegression(C=C).fit(X, y)
        return model, {"acc": model.score(X, y), "score": worker * 1000 + index}

    rng = np.random.RandomState(worker)
    X = rng.rand(50, 3)
    y = (X[:, 0] + 0.1 * rng.rand(50) > 0.55).astype(int)
    start.wait()
    started = time.monotonic()
    for index in range(args.runs):
        collect.messages.clear()
        try:
            _, metrics = train(X, y, worker=worker, index=index, C=0.5 + index / 10)
        except Exception as exc:  # the training itself must never fail: report it
            results.put({"worker": worker, "index": index, "error": repr(exc)})
            continue
        run = tracked.last_run()
        results.put(
            {
                "worker": worker,
                "index": index,
                "run_id": run.run_id,
                "status": run.status,
                "version": run.model_version,
                "acc": metrics["acc"],
                "problems": list(collect.messages),
            }
        )
    results.put({"worker": worker, "seconds": time.monotonic() - started})


def warm_up() -> None:
    """Import and exercise the model-saving path locally: no server, no client, no sockets."""
    import mlflow.sklearn  # noqa: F401  (what each process's first run would import)
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    import tracked.run  # noqa: F401
    from tracked.models.flavors import save_model

    X = np.random.RandomState(0).rand(20, 3)
    model = LogisticRegression().fit(X, X[:, 0] > 0.5)
    with tempfile.TemporaryDirectory() as tmp:
        save_model(model, f"{tmp}/model", input_example=X)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", required=True)
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--runs", type=int, required=True)
    args = parser.parse_args()
    # MLflow prints a "View run" line per run to stdout: keep stdout for this script's report.
    report, sys.stdout = sys.stdout, sys.stderr
    warm_up()

    context = multiprocessing.get_context("fork")
    start = context.Barrier(args.processes + 1)
    results = context.Queue()
    processes = [
        context.Process(
            target=worker, args=(args, n, start, results), name=f"load-{n}", daemon=True
        )
        for n in range(args.processes)
    ]
    for process in processes:
        process.start()
    start.wait()
    started = time.monotonic()
    lines, finished = [], 0
    while finished < args.processes:
        line = results.get(timeout=600)
        lines.append(line)
        finished += "seconds" in line
    elapsed = time.monotonic() - started
    for process in processes:
        process.join(timeout=60)
    for line in lines:
        print(json.dumps(line), file=report)
    exit_codes = [process.exitcode for process in processes]
    print(json.dumps({"elapsed": elapsed, "exit_codes": exit_codes}), file=report, flush=True)


if __name__ == "__main__":
    main()
