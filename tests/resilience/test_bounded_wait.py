"""A store that takes the connection and never answers costs the training seconds, not minutes.

MLflow's own defaults (7 retries with backoff, 120 s per attempt) would hold a run for many
minutes; tracked bounds its calls whatever MLFLOW_HTTP_REQUEST_* say, and the user's own MLflow
calls keep MLflow's settings.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

import tracked
from tracked.writers import mlflow as mlflow_writer
from tracked.writers.spool import SpooledRun, scan

BOUND = 10.0  # seconds a run may add on a store that hangs (the limits give ~3 s and ~5 s)


@pytest.fixture
def silent_socket() -> Iterator[str]:
    """A listening socket that never accepts: connections complete, no byte ever comes back."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def hanging_api() -> Iterator[str]:
    """An HTTP server whose /health answers, and whose API calls never do."""
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/health"):
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")
                return
            release.wait(120)

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def _timed_training(uri: str, baseline_uri: str, monkeypatch: pytest.MonkeyPatch) -> float:
    """Seconds the same training takes longer with the store at `uri` than with a healthy
    local store (so MLflow's import and tracked's own capture are not counted)."""
    # The user's MLflow settings would wait for minutes: tracked must not honour them here.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")

    def train(run: tracked.TrackedRun) -> int:
        total = 0
        for step in range(200):
            total += step
            run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        return total

    def timed(store: str) -> tuple[float, int]:
        started = time.monotonic()
        with tracked.run("hang", tracking_uri=store) as run:
            result = train(run)
        return time.monotonic() - started, result

    timed(baseline_uri)  # warm: MLflow imported, the client built, the schema there
    baseline, expected = timed(baseline_uri)
    elapsed, result = timed(uri)
    assert result == expected  # the training's result is unaffected
    return elapsed - baseline


def _report(name: str, added: float, record_property: Callable[[str, object], None]) -> None:
    record_property(f"{name}_added_seconds", round(added, 2))
    print(f"\n{name}: the hanging store added {added:.2f} s to the training (bound {BOUND} s)")


def _spooled_run() -> SpooledRun:
    (entry,) = scan(Path(tracked.get_config().spool_dir), clean=False)
    assert isinstance(entry, SpooledRun)
    assert [p.step for p in entry.record.metrics if p.key == "loss"] == list(range(200))
    return entry


def test_silent_socket_bounds_the_training(
    silent_socket: str,
    sqlite_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    record_property: Callable[[str, object], None],
) -> None:
    added = _timed_training(silent_socket, sqlite_uri, monkeypatch)
    _report("silent socket", added, record_property)
    assert added < BOUND
    _spooled_run()


def test_server_that_stops_answering_after_health_bounds_the_training(
    hanging_api: str,
    sqlite_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    record_property: Callable[[str, object], None],
) -> None:
    added = _timed_training(hanging_api, sqlite_uri, monkeypatch)
    _report("hanging API", added, record_property)
    assert added < BOUND
    _spooled_run()


def test_the_users_mlflow_settings_are_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    mlflow_writer._bound_mlflow_http()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "6")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "99")
    assert (MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_TIMEOUT.get()) == (6, 99)
    token = mlflow_writer._bounded.set(True)  # what a writer's call sees, in its own context
    try:
        limits = (MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_TIMEOUT.get())
        seen_elsewhere: list[int] = []
        other = threading.Thread(
            target=lambda: seen_elsewhere.append(MLFLOW_HTTP_REQUEST_MAX_RETRIES.get())
        )
        other.start()
        other.join()
    finally:
        mlflow_writer._bounded.reset(token)
    assert limits == (0, 5)
    assert seen_elsewhere == [6]  # another thread, the user's calls: MLflow's settings
    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 6
