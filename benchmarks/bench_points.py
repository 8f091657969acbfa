"""A million stepped metric points: the training thread's cost, memory, and the end of the run.

    python benchmarks/bench_points.py [--points 1000000] [--repeat 3]

Each way runs in a fresh interpreter on a fresh SQLite store (warmed by one small run), logging
`{"loss": ...}` with `step=i` in a tight loop, and reports, best of `--repeat`:

- us per point on the training thread (the loop's time / points);
- RSS growth during the loop (sampled every 50 ms);
- how long after the loop the decorated call / `with` block returned;
- how long until every point was in the store.

Beside tracked: MLflow's `log_metric` in the same loop with `MLFLOW_ENABLE_ASYNC_LOGGING=true`
(its own background logging; it is so slow that it runs `--mlflow-points`, 20,000 by default,
and its per-point figures are compared), and one `log_batch` of all points after the loop (the
cheapest hand-written way). Targets (issue 12): <= 3 us per point, RSS growth <= 64 MB, the
call returns <= 1 s after the loop, every point in the store by the time the process exited.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

WAYS = {
    "tracked": """
        import tracked
        tracked.configure(tracking_uri=URI, experiment="points", project="bench")

        @tracked.tracked_training
        def train(n):
            for i in range(n):
                tracked.log_metrics({"loss": 1.0 / (i + 1)}, step=i)
            mark("loop")

        def warm():
            train(100)
            tracked.flush()

        def loop(n):
            train(n)
            mark("returned")
            tracked.flush()
            mark("stored")
            return tracked.last_run().run_id
    """,
    "mlflow async log_metric": """
        import os
        os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "true"
        import mlflow
        mlflow.set_tracking_uri(URI)
        mlflow.set_experiment("points-mlflow")

        def warm():
            with mlflow.start_run():
                mlflow.log_metric("loss", 1.0, step=0)
            mlflow.flush_async_logging()

        def loop(n):
            with mlflow.start_run() as run:
                for i in range(n):
                    mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
                mark("loop")
            mark("returned")
            mlflow.flush_async_logging()
            mark("stored")
            return run.info.run_id
    """,
    "mlflow log_batch after the loop": """
        import mlflow
        from mlflow.entities import Metric
        mlflow.set_tracking_uri(URI)
        mlflow.set_experiment("points-batch")
        client = mlflow.MlflowClient()

        def warm():
            with mlflow.start_run():
                mlflow.log_metric("loss", 1.0, step=0)

        def loop(n):
            points = []
            with mlflow.start_run() as run:
                stamp = int(now() * 1000)
                for i in range(n):
                    points.append(Metric("loss", 1.0 / (i + 1), stamp, i))
                mark("loop")
                for start in range(0, n, 1000):
                    client.log_batch(run.info.run_id, metrics=points[start : start + 1000])
            mark("returned")
            mark("stored")
            return run.info.run_id
    """,
}

HARNESS = """
import json, sys, threading, time
URI = sys.argv[1]
N = int(sys.argv[2])
now = time.perf_counter
marks = {}

def mark(name):
    marks[name] = now()

def rss_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024

WAY

warm()
base = rss_mb()
peak = [base]
stop = threading.Event()

def watch():
    while not stop.wait(0.05):
        peak.append(rss_mb())

threading.Thread(target=watch, daemon=True).start()
started = now()
run_id = loop(N)
stop.set()
from mlflow import MlflowClient
stored = len(MlflowClient(URI).get_metric_history(run_id, "loss"))
print(json.dumps({
    "us_per_point": (marks["loop"] - started) / N * 1e6,
    "rss_growth_mb": max(peak) - base,
    "returned_after_loop_s": marks["returned"] - marks["loop"],
    "stored_after_loop_s": marks["stored"] - marks["loop"],
    "stored": stored,
}))
"""


def run_way(way: str, points: int) -> dict[str, float]:
    """One way in a fresh interpreter; its figures."""
    tmp = tempfile.mkdtemp(prefix="tracked-bench-points-")
    uri = f"sqlite:///{tmp}/mlflow.db"
    script = HARNESS.replace("WAY", textwrap.dedent(WAYS[way]))
    done = subprocess.run(
        [sys.executable, "-c", script, uri, str(points)],
        capture_output=True,
        text=True,
        cwd=tmp,
        env={**os.environ, "TRACKED_SPOOL_DIR": f"{tmp}/spool", "TRACKED_QUIET": "1"},
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{way} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mlflow-points", type=int, default=20_000)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {way: [] for way in WAYS}
    counts = {way: args.points for way in WAYS}
    counts["mlflow async log_metric"] = min(args.points, args.mlflow_points)
    for _ in range(args.repeat):  # interleaved: drift on a shared machine hits every way alike
        for way in WAYS:
            results[way].append(run_way(way, counts[way]))
    print(f"{args.points:,} points with step=i in a loop, best of {args.repeat}, SQLite store")
    print(f"(MLflow's async log_metric: {counts['mlflow async log_metric']:,} points)")
    header = ("us/point", "RSS +MB", "returns after loop", "all stored after loop", "stored")
    print(f"| {'way':<34} | " + " | ".join(f"{h:>20}" for h in header) + " |")
    print(f"| {'-' * 34} | " + " | ".join("-" * 20 for _ in header) + " |")
    for way, samples in results.items():
        best = {
            key: min(s[key] for s in samples)
            for key in ("us_per_point", "rss_growth_mb", "returned_after_loop_s")
        }
        best["stored_after_loop_s"] = min(s["stored_after_loop_s"] for s in samples)
        stored = min(int(s["stored"]) for s in samples)
        print(
            f"| {way:<34} | {best['us_per_point']:>20.2f} | {best['rss_growth_mb']:>20.1f} | "
            f"{best['returned_after_loop_s']:>19.3f}s | {best['stored_after_loop_s']:>19.2f}s | "
            f"{stored:>20,} |"
        )
    tracked = {k: min(s[k] for s in results["tracked"]) for k in results["tracked"][0]}
    print(
        "targets: <= 3 us/point -> "
        f"{'OK' if tracked['us_per_point'] <= 3 else 'MISSED'}; RSS growth <= 64 MB -> "
        f"{'OK' if tracked['rss_growth_mb'] <= 64 else 'MISSED'}; returns <= 1 s after the "
        f"loop -> {'OK' if tracked['returned_after_loop_s'] <= 1 else 'MISSED'}; every point "
        f"stored -> {'OK' if tracked['stored'] >= counts['tracked'] else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
