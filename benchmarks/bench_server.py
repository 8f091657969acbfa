"""Throughput against a real `mlflow server` on PostgreSQL (artifacts proxied to a moto S3).

    python benchmarks/bench_server.py [--points 100000] [--repeat 2]

Starts the same stack the tests use (a fresh PostgreSQL database at 127.0.0.1:5432, a moto S3
server, `mlflow server` with 2 workers; see tests/services.py), then, each way in a fresh
interpreter, logs `--points` stepped points in a loop and reports points per second from the
first point until every point is in the store, best of `--repeat`:

- tracked: `tracked.log_metrics(..., step=i)` in a decorated function, then `tracked.flush()`;
- MLflow's own asynchronous logging: `mlflow.log_metric` with `MLFLOW_ENABLE_ASYNC_LOGGING=true`,
  then `mlflow.flush_async_logging()`;
- a hand-written `log_batch` of 1,000 points per call after the loop (the best MLflow can do).

The issue (12) asks for tracked's figure beside MLflow's async logging in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

WAYS = {
    "tracked": """
        import tracked
        tracked.configure(tracking_uri=URI, experiment="throughput", project="bench", quiet=True)

        @tracked.tracked_training
        def train(n):
            for i in range(n):
                tracked.log_metrics({"loss": 1.0 / (i + 1)}, step=i)

        def warm():
            train(10)
            tracked.flush()

        def loop(n):
            train(n)
            mark("returned")
            tracked.flush()
            return tracked.last_run().run_id
    """,
    "mlflow async logging": """
        import os
        os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "true"
        import mlflow
        mlflow.set_tracking_uri(URI)
        mlflow.set_experiment("throughput-async")

        def warm():
            with mlflow.start_run():
                mlflow.log_metric("loss", 1.0, step=0)
            mlflow.flush_async_logging()

        def loop(n):
            with mlflow.start_run() as run:
                for i in range(n):
                    mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
            mark("returned")
            mlflow.flush_async_logging()
            return run.info.run_id
    """,
    "mlflow log_batch, 1,000 a call": """
        import time
        import mlflow
        from mlflow.entities import Metric
        mlflow.set_tracking_uri(URI)
        mlflow.set_experiment("throughput-batch")
        client = mlflow.MlflowClient()

        def warm():
            with mlflow.start_run():
                mlflow.log_metric("loss", 1.0, step=0)

        def loop(n):
            stamp = int(time.time() * 1000)
            points = [Metric("loss", 1.0 / (i + 1), stamp, i) for i in range(n)]
            with mlflow.start_run() as run:
                for start in range(0, n, 1000):
                    client.log_batch(run.info.run_id, metrics=points[start : start + 1000])
            mark("returned")
            return run.info.run_id
    """,
}

HARNESS = """
import json, sys, time
URI = sys.argv[1]
N = int(sys.argv[2])
now = time.perf_counter
marks = {}

def mark(name):
    marks[name] = now()

WAY

warm()
started = now()
run_id = loop(N)
done = now()
from mlflow import MlflowClient
stored = len(MlflowClient(URI).get_metric_history(run_id, "loss"))
print(json.dumps({"points_per_second": N / (done - started), "stored": stored,
                  "returned_s": marks["returned"] - started, "stored_s": done - started}))
"""


def run_way(way: str, uri: str, points: int) -> dict[str, float]:
    tmp = tempfile.mkdtemp(prefix="tracked-bench-server-")
    script = HARNESS.replace("WAY", textwrap.dedent(WAYS[way]))
    done = subprocess.run(
        [sys.executable, "-c", script, uri, str(points)],
        capture_output=True,
        text=True,
        cwd=tmp,
        env={**os.environ, "TRACKED_SPOOL_DIR": f"{tmp}/spool"},
        check=False,
        timeout=3600,
    )
    if done.returncode != 0:
        raise SystemExit(f"{way} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    import services

    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--mlflow-async-points", type=int, default=5_000)
    args = parser.parse_args()
    counts = {way: args.points for way in WAYS}
    counts["mlflow async logging"] = min(args.points, args.mlflow_async_points)

    postgres = services.PostgresServer(
        os.environ.get("TRACKED_TEST_POSTGRES_URL", services.DEFAULT_POSTGRES_URL)
    )
    work = Path(tempfile.mkdtemp(prefix="tracked-bench-stack-"))
    port = services.free_port()
    moto = services._start(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        work / "moto.log",
        dict(os.environ),
    )
    server_process = None
    try:
        url = f"http://127.0.0.1:{port}"
        services._wait_for_server(moto, url + "/", work / "moto.log", "moto", 60)
        s3 = services.S3Endpoint(
            url=url,
            bucket=services.BUCKET,
            env={
                "MLFLOW_S3_ENDPOINT_URL": url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
            },
            log_path=work / "moto.log",
        )
        s3.client().create_bucket(Bucket=services.BUCKET)
        server_process, server = services._start_mlflow_server(
            postgres.create_database(), s3, work, workers=2
        )
        results: dict[str, list[dict[str, float]]] = {way: [] for way in WAYS}
        for _ in range(args.repeat):  # interleaved: drift on a shared machine hits each alike
            for way in WAYS:
                results[way].append(run_way(way, server.url, counts[way]))
    finally:
        if server_process is not None:
            services._stop(server_process)
        services._stop(moto)
        postgres.drop_created()

    print(
        f"{args.points:,} stepped points against mlflow server (2 workers) on PostgreSQL, "
        f"best of {args.repeat}"
    )
    print(f"(MLflow's async logging: {counts['mlflow async logging']:,} points: it is slow)")
    head = ("points/s", "call returned", "all stored", "stored of logged")
    print(f"| {'way':<32} | " + " | ".join(f"{h:>16}" for h in head) + " |")
    print(f"| {'-' * 32} | " + " | ".join("-" * 16 for _ in head) + " |")
    for way, samples in results.items():
        best = max(samples, key=lambda s: s["points_per_second"])
        stored = f"{int(min(s['stored'] for s in samples)):,} of {counts[way]:,}"
        print(
            f"| {way:<32} | {best['points_per_second']:>16,.0f} | "
            f"{best['returned_s']:>15.2f}s | {best['stored_s']:>15.2f}s | {stored:>16} |"
        )


if __name__ == "__main__":
    main()
