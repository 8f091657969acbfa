"""A real `mlflow server` on SQLite that a test can kill (SIGKILL) and start again on its port."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from services import free_port, log_tail, wait_until

START_TIMEOUT = 120.0  # a cold start on a busy 2-core machine takes 15-30 s


class RestartableServer:
    """`mlflow server` with a SQLite backend and proxied artifacts, both under `root`.

    `kill()` is a SIGKILL of its process group (no shutdown, like a crash); `start()` starts it
    again on the same port, on the same database and artifact directory.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = root / "mlflow.db"
        self.artifacts = root / "artifacts"
        self.log_path = root / "mlflow-server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> float:
        """Start the server and wait until /health answers; returns the seconds it took."""
        if self.running:
            return 0.0
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.db}",
            "--artifacts-destination",
            str(self.artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        for name in list(env):
            if name.startswith(("MLFLOW_TRACKING_", "TRACKED_")):
                env.pop(name)
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self.starts += 1
        process = self.process

        def healthy() -> bool:
            if process.poll() is not None:
                raise ChildProcessError(
                    f"mlflow server exited with {process.returncode}:\n{log_tail(self.log_path)}"
                )
            return _answers(self.url + "/health")

        wait_until(healthy, START_TIMEOUT, f"mlflow server at {self.url}", interval=0.1)
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL the server and its workers, and wait until they are gone."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        wait_until(lambda: not _answers(self.url + "/health"), 10, "the killed server to go")


def _answers(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False
