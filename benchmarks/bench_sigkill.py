"""SIGKILL mid-run, then `tracked sync`: how many points come back (issue 12's target).

    python benchmarks/bench_sigkill.py [--repeat 3] [--steps 2000]

A child process logs `--steps` stepped points over about 10 s (a 5 ms sleep per step stands for
the training's work) inside `tracked.run`, printing each step it logged; at a random step between
10 % and 85 % of the loop it is killed with SIGKILL. `tracked sync` then sends its journal. Each
attempt prints: the step of the kill (the last step the child said it had logged), the points
in the store, the points logged more than 1 s before the kill and whether all of those are there
(the target), the run's status and how many runs the store holds for it (the target: exactly
one, `KILLED`). Beside it, for the same kill, what a hand-written MLflow loop
(`mlflow.log_metric` per step, MLflow's default synchronous logging) leaves: its run stays
`RUNNING` forever with the points it got to send.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CHILDREN = {
    "tracked": """
        import sys, time, tracked
        tracked.configure(tracking_uri=URI, experiment="killed", project="bench")
        with tracked.run("doomed"):
            for i in range(STEPS):
                tracked.log_metrics({"loss": 1.0 / (i + 1)}, step=i)
                print(i, time.time_ns() // 1_000_000, flush=True)
                time.sleep(0.005)
    """,
    "mlflow": """
        import sys, time, mlflow
        mlflow.set_tracking_uri(URI)
        mlflow.set_experiment("killed-mlflow")
        with mlflow.start_run():
            for i in range(STEPS):
                mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
                print(i, time.time_ns() // 1_000_000, flush=True)
                time.sleep(0.005)
    """,
}


def attempt(way: str, steps: int, spool: Path, uri: str, kill_at: int) -> dict[str, object]:
    code = f"URI = {uri!r}\nSTEPS = {steps}\n" + textwrap.dedent(CHILDREN[way])
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TRACKED_SPOOL_DIR": str(spool)},
    )
    assert child.stdout is not None
    logged: dict[int, int] = {}  # step -> when the child said it was logged (ms)
    for line in child.stdout:
        step, stamp = map(int, line.split())
        logged[step] = stamp
        if step >= kill_at:
            break
    killed_at = time.time_ns() // 1_000_000
    child.send_signal(signal.SIGKILL)
    child.wait(30)

    import tracked
    from tracked.store import client_for

    if way == "tracked":
        tracked.sync(tracking_uri=uri, spool_dir=str(spool))
    client = client_for(uri, uri)
    experiment = client.get_experiment_by_name("killed" if way == "tracked" else "killed-mlflow")
    runs = [] if experiment is None else client.search_runs([experiment.experiment_id])
    stored = set()
    for run in runs:
        stored |= {m.step for m in client.get_metric_history(run.info.run_id, "loss")}
    old = {s for s, t in logged.items() if t <= killed_at - 1000}
    return {
        "kill step": max(logged),
        "stored": len(stored),
        "older than 1 s": len(old),
        "all of those": old <= stored,
        "status": ",".join(r.info.status for r in runs) or "-",
        "runs": len(runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random()
    columns = ["kill step", "stored", "older than 1 s", "all of those", "status", "runs"]
    print(f"SIGKILL at a random step of a {args.steps}-step loop (5 ms per step), SQLite store")
    print(f"| {'way':8} | " + " | ".join(f"{c:>14}" for c in columns) + " |")
    print(f"| {'-' * 8} | " + " | ".join("-" * 14 for _ in columns) + " |")
    ok = True
    for _ in range(args.repeat):
        kill_at = rng.randrange(args.steps // 10, args.steps * 85 // 100)
        for way in CHILDREN:
            tmp = Path(tempfile.mkdtemp(prefix="tracked-bench-kill-"))
            uri = f"sqlite:///{tmp / 'mlflow.db'}"
            found = attempt(way, args.steps, tmp / "spool", uri, kill_at)
            if way == "tracked":
                ok = ok and bool(found["all of those"]) and found["runs"] == 1
                ok = ok and found["status"] == "KILLED"
            print(f"| {way:8} | " + " | ".join(f"{found[c]!s:>14}" for c in columns) + " |")
    print(
        "target: after `tracked sync`, exactly one run, KILLED, with every point logged more "
        f"than 1 s before the kill -> {'OK' if ok else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
