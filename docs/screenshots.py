"""Screenshots of MLflow's UI showing what tracked records, for the README.

    python docs/screenshots.py [--out docs/images]

Trains two versions of a small model with a promotion policy into a fresh embedded store (in a
temp dir), starts MLflow's UI on it (`mlflow server`, one worker, its own process group), and
takes headless-Chromium screenshots of the registered version's page and of the run's page
(Debian's `chromium` package: `apt-get install chromium`). Anyone can rerun it; nothing outside
the temp dir and `--out` is touched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

TRAIN = """
import numpy as np
from sklearn.ensemble import RandomForestClassifier
import tracked

tracked.configure(tracking_uri={uri!r}, experiment="churn", project="examples", quiet=True)
policy = tracked.PromotionPolicy(
    to="champion",
    when=[tracked.metric("val_auc") >= 0.7, tracked.metric("val_auc").beats("champion", by=0.005)],
)
rng = np.random.default_rng(0)
X = rng.normal(size=(2000, 8))
y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.7, size=2000) > 0).astype(int)
X_train, X_val, y_train, y_val = X[:1500], X[1500:], y[:1500], y[1500:]


@tracked.tracked_training(name="churn", key_metric="val_auc", promote=policy)
def train(X_train, y_train, X_val, y_val, *, n_estimators=100, max_depth=6):
    from sklearn.metrics import roc_auc_score

    model = RandomForestClassifier(
        n_estimators=n_estimators, max_depth=max_depth, random_state=0
    ).fit(X_train, y_train)
    for step, trees in enumerate(range(10, n_estimators + 1, 10)):
        partial = RandomForestClassifier(n_estimators=trees, max_depth=max_depth, random_state=0)
        partial.fit(X_train, y_train)
        tracked.log_metrics(
            {{"val_auc": roc_auc_score(y_val, partial.predict_proba(X_val)[:, 1])}}, step=step
        )
    return model, {{"val_auc": roc_auc_score(y_val, model.predict_proba(X_val)[:, 1])}}


train(X_train, y_train, X_val, y_val, max_depth=3)
train(X_train, y_train, X_val, y_val, max_depth=8)
run = tracked.last_run()
tracked.flush()
print(run.run_id, run.model_name, run.model_version, run.settings.experiment)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def shoot(chromium: str, url: str, target: Path, profile: Path) -> None:
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--hide-scrollbars",
            "--window-size=1440,1100",
            "--virtual-time-budget=15000",
            f"--screenshot={target}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    print(f"wrote {target}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(Path(__file__).parent / "images"))
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Chromium: apt-get install chromium")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tracked-screenshots-"))
    uri = f"sqlite:///{work / 'mlflow.db'}"
    env = {**os.environ, "TRACKED_SPOOL_DIR": str(work / "spool")}
    trained = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(TRAIN.format(uri=uri))],
        cwd=Path(__file__).resolve().parents[1],  # inside the project's git repository
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    run_id, model, version = trained.stdout.split()[-4:-1]

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=work,
        env={**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: ended whole below
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("mlflow server did not start") from None
                time.sleep(0.5)  # waiting for a server to come up
        from mlflow import MlflowClient

        client = MlflowClient(uri)
        experiment_id = client.get_run(run_id).info.experiment_id
        profile = work / "chromium"
        shoot(chromium, f"{base}/#/models/{model}/versions/{version}", out / "version.png", profile)
        shoot(
            chromium,
            f"{base}/#/experiments/{experiment_id}/runs/{run_id}",
            out / "run.png",
            profile,
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
