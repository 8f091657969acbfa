"""A store that takes the connection and never answers, answers a byte a second, or is merely
busy: the training never waits on it, every call tracked makes has an overall deadline, and a
slow answer within the deadline is an answer, not an outage.

MLflow's own defaults (7 retries with backoff, 120 s per attempt) would hold a call for many
minutes; tracked bounds its calls whatever MLFLOW_HTTP_REQUEST_* say, and the user's own MLflow
calls keep MLflow's settings. Timings are reported (record_property), never asserted: the
deadline is proven by the error that names it.
"""

from __future__ import annotations

import contextlib
import http.server
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from journals import only_journal

import tracked
from tracked.errors import StoreUnavailableError
from tracked.store import Store


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

    with _serving(Handler, release) as uri:
        yield uri


def _training(uri: str, monkeypatch: pytest.MonkeyPatch) -> tuple[float, int]:
    """The same training with the store at `uri`: seconds it took, and its result."""
    # The user's MLflow settings would wait for minutes: tracked must not honour them here.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
    started = time.monotonic()
    total = 0
    with tracked.run("hang", tracking_uri=uri) as run:
        for step in range(200):
            total += step
            run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    return time.monotonic() - started, total


@pytest.mark.parametrize("kind", ["silent socket", "hanging API"])
def test_a_store_that_never_answers_never_holds_the_training(
    kind: str,
    silent_socket: str,
    hanging_api: str,
    monkeypatch: pytest.MonkeyPatch,
    record_property: Callable[[str, object], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    uri = silent_socket if kind == "silent socket" else hanging_api
    tracked.configure(http_timeout=3.0)  # a real call's deadline, short for the test
    with caplog.at_level(logging.WARNING, logger="tracked"):
        elapsed, result = _training(uri, monkeypatch)
        record_property(f"{kind.replace(' ', '_')}_seconds", round(elapsed, 2))
        assert not tracked.flush(60)  # the sender gives up on the store: nothing sent
    assert result == sum(range(200))  # the training's result is unaffected
    view = only_journal()  # everything it logged is kept for `tracked sync`
    assert view.steps("loss") == list(range(200)) and view.record.status == "FINISHED"
    messages = [r.getMessage() for r in caplog.records if r.name == "tracked"]
    assert len(messages) == 1 and uri in messages[0] and "kept in its journal" in messages[0]


def test_a_server_that_drips_bytes_is_cut_off_at_the_overall_deadline() -> None:
    with _drip_server() as uri:
        store = Store(uri, connect_timeout=1.0, http_timeout=2.0)
        store._probed = True  # its /health drips too: this is about a real call
        with pytest.raises(
            StoreUnavailableError, match="no complete answer to list experiments within 2 s"
        ):
            store.call(lambda c: c.search_experiments(max_results=1), what="list experiments")
        assert store.down() is not None  # later calls fail at once for a while


def test_a_busy_server_that_answers_within_the_deadline_is_not_down(tmp_path: Path) -> None:
    with _slow_proxy(delay=3.0) as (uri, served):
        store = Store(uri, connect_timeout=1.0, http_timeout=30.0)
        found = store.call(lambda c: c.search_experiments(max_results=1), what="list experiments")
        assert isinstance(found, list) and served  # a slow answer is an answer
        assert store.down() is None


def test_the_users_mlflow_settings_are_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    from tracked import store as door

    door._install_mlflow_bounds()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "6")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "99")
    assert (MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_TIMEOUT.get()) == (6, 99)
    token, limit = door._inside.set(True), door._http_timeout.set(30.0)  # inside a store call
    try:
        limits = (MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_TIMEOUT.get())
        seen_elsewhere: list[int] = []
        other = threading.Thread(
            target=lambda: seen_elsewhere.append(MLFLOW_HTTP_REQUEST_MAX_RETRIES.get())
        )
        other.start()
        other.join()
    finally:
        door._http_timeout.reset(limit)
        door._inside.reset(token)
    assert limits == (0, 30)
    assert seen_elsewhere == [6]  # another thread, the user's calls: MLflow's settings
    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 6


@contextlib.contextmanager
def _drip_server() -> Iterator[str]:
    """An HTTP server that answers every request one byte a second, forever."""
    stop = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            while not stop.wait(1.0):
                try:
                    self.wfile.write(b"X")
                    self.wfile.flush()
                except OSError:
                    return

        do_POST = do_GET

    with _serving(Handler, stop) as uri:
        yield uri


@contextlib.contextmanager
def _slow_proxy(delay: float) -> Iterator[tuple[str, list[str]]]:
    """An MLflow-speaking server that waits `delay` seconds before each answer: a busy one.
    It answers the search with an empty list of experiments, as a server with none would."""
    served: list[str] = []
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            if not self.path.endswith("/health"):  # its health check is trivial, even busy
                release.wait(delay)  # the busy server's delay, not a test's synchronisation
            body = b"{}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            served.append(self.path)

        do_GET = do_POST = _answer

    with _serving(Handler, release) as uri:
        yield uri, served


@contextlib.contextmanager
def _serving(
    handler: type[http.server.BaseHTTPRequestHandler], done: threading.Event
) -> Iterator[str]:
    """Serve `handler` on 127.0.0.1 in a thread; set `done` (its handlers' release) at the end."""
    handler.log_message = lambda self, *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        done.set()
        server.shutdown()
        server.server_close()
