"""Core overhead: import time, and the time a decorated no-op training adds per call.

    python benchmarks/bench_overhead.py [--runs 30]

Prints tracked's figures beside MLflow's own in the same run, as ratios (the machine is shared).
Targets (issue #2): `import tracked` under 0.1 s; added time per run under 0.15 s on a warm
SQLite store, excluding model logging.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def import_time(module: str, repeat: int = 5) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    times = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(repeat)
    ]
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    t_tracked = import_time("tracked")
    t_mlflow = import_time("mlflow")
    leaks = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, tracked; print(sorted(m for m in "
            "('mlflow', 'sklearn', 'xgboost', 'pandas', 'numpy') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    import mlflow

    import tracked

    tmp = Path(tempfile.mkdtemp(prefix="tracked-bench-"))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    tracked.configure(tracking_uri=uri, experiment="bench", project="bench")

    def bare(X=None, *, depth=3, lr=0.1):
        return {"acc": 0.5, "loss": 0.25}

    decorated = tracked.tracked_training(bare)

    def hand_written_mlflow(X=None, *, depth=3, lr=0.1):
        with mlflow.start_run(experiment_id=exp_id):
            mlflow.log_params({"depth": depth, "lr": lr})
            result = bare(X, depth=depth, lr=lr)
            mlflow.log_metrics(result)
        return result

    mlflow.set_tracking_uri(uri)
    exp_id = mlflow.set_experiment("bench-mlflow").experiment_id
    decorated()  # warm: schema created, MLflow imported, experiment cached
    hand_written_mlflow()

    def per_call(fn) -> float:
        samples = []
        for _ in range(args.runs):
            t = time.perf_counter()
            fn(depth=4)
            samples.append(time.perf_counter() - t)
        return statistics.median(samples)

    t_bare = per_call(bare)
    t_tracked_run = per_call(decorated) - t_bare
    t_mlflow_run = per_call(hand_written_mlflow) - t_bare

    def row(label: str, ours: float, theirs: float) -> None:
        print(f"{label:44} {ours:10.3f} {theirs:10.3f} {ours / theirs:7.2f}")

    print(f"{'measure':44} {'tracked':>10} {'mlflow':>10} {'ratio':>7}")
    row("import time (s, best of 5)", t_tracked, t_mlflow)
    row(f"added per no-op run (s, median of {args.runs})", t_tracked_run, t_mlflow_run)
    print(f"heavy modules after `import tracked`: {leaks}")
    print("mlflow column: `import mlflow`; a hand-written start_run + log_params + log_metrics.")
    print("tracked's run also records git state, environment tags and requirements.txt.")
    print(
        f"targets: import < 0.1 s -> {'OK' if t_tracked < 0.1 else 'MISSED'}; "
        f"added per run < 0.15 s -> {'OK' if t_tracked_run < 0.15 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
