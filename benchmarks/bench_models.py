"""Model logging + registration overhead, beside hand-written MLflow code and autolog.

    python benchmarks/bench_models.py [--repeat 5]

A decorated scikit-learn training returning a 50-tree random forest (2000 x 20): the time
tracked adds over the bare call on a warm SQLite store, including model logging (skops, explicit
requirements) and registration. Baselines in the same run: hand-written MLflow
(`log_params`, `log_metric`, `sklearn.log_model`, `register_model`) and `mlflow.sklearn.autolog`.
Target (issue #3): under 0.5 s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import mlflow
    import numpy as np
    import skops.io
    from sklearn.ensemble import RandomForestClassifier

    import tracked

    warnings.filterwarnings("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="tracked-bench-models-"))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    tracked.configure(tracking_uri=uri, experiment="bench", project="bench")
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("bench-mlflow")

    rng = np.random.RandomState(0)
    X = rng.rand(2000, 20)
    y = (X[:, 0] + rng.rand(2000) * 0.2 > 0.6).astype(int)

    def bare(X, y, n_estimators=50, max_depth=8):
        model = RandomForestClassifier(
            n_estimators=n_estimators, max_depth=max_depth, random_state=0, n_jobs=1
        ).fit(X, y)
        return model, {"train_acc": model.score(X, y)}

    decorated = tracked.tracked_training(name="rf")(bare)

    def hand_written(X, y, n_estimators=50, max_depth=8):
        with mlflow.start_run():
            mlflow.log_params({"n_estimators": n_estimators, "max_depth": max_depth})
            model, metrics = bare(X, y, n_estimators, max_depth)
            mlflow.log_metric("train_acc", metrics["train_acc"])
            trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
            info = mlflow.sklearn.log_model(model, name="model", skops_trusted_types=trusted)
            mlflow.register_model(info.model_uri, "rf-hand-written")
        return model, metrics

    def autologged(X, y, n_estimators=50, max_depth=8):
        mlflow.sklearn.autolog(registered_model_name="rf-autolog", silent=True)
        try:
            with mlflow.start_run():
                return bare(X, y, n_estimators, max_depth)
        finally:
            mlflow.sklearn.autolog(disable=True)

    def timed(fn, repeat: int) -> float:
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn(X, y)
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    decorated(X, y)  # warm: imports, schema, experiment, registered model
    hand_written(X, y)
    t_bare = timed(bare, args.repeat)
    t_tracked = timed(decorated, args.repeat) - t_bare
    t_hand = timed(hand_written, max(1, args.repeat // 2)) - t_bare
    t_auto = timed(autologged, 1) - t_bare
    run = tracked.last_run()

    print(f"bare fit: {t_bare:.3f} s (median of {args.repeat})")
    print(f"{'time added over the bare call':42} {'seconds':>8} {'vs tracked':>11}")
    for label, value in (
        ("tracked (@tracked_training)", t_tracked),
        ("hand-written MLflow + register", t_hand),
        ("mlflow.sklearn.autolog + register", t_auto),
    ):
        print(f"{label:42} {value:8.3f} {value / t_tracked:10.1f}x")
    print(f"tracked registered {run.model_name} v{run.model_version} ({run.model_uri})")
    print(f"target: tracked < 0.5 s -> {'OK' if t_tracked < 0.5 else 'MISSED'}")


if __name__ == "__main__":
    main()
