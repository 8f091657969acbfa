"""Operations on this machine: send the spool (`tracked sync`), run MLflow's UI (`tracked ui`)."""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

from tracked.errors import TrackingError
from tracked.ops.base import Param, Result, open_store, plain

if TYPE_CHECKING:
    import subprocess

__all__ = ["SyncResult", "UiPlan", "serve_ui", "sync", "ui_plan"]

_HTTP = ("http", "https")
STOP_GRACE = 10.0  # seconds the UI's processes get to stop before they are killed


@dataclass(frozen=True)
class UiPlan(Result):
    url: str
    command: list[str] | None  # None: the store is a server already; open its URL
    env: dict[str, str] = field(default_factory=dict)  # set for the UI's processes


@dataclass(frozen=True)
class SyncResult(Result):
    report: Any  # tracked.sync.SyncReport
    streamed: bool = False  # each entry was shown as it happened (the progress callback)

    @property
    def ok(self) -> bool:
        return bool(getattr(self.report, "ok", True))

    def to_dict(self) -> dict[str, Any]:
        return dict(plain(self.report))

    def lines(self) -> list[str]:
        """One line per spooled run (unless already shown as it happened), then the summary."""
        summary = getattr(self.report, "summary", None)
        entries = [] if self.streamed else list(self.report.lines())
        return [*entries, *([summary()] if summary is not None else [])]


def ui_plan(
    host: Annotated[str, Param("interface for the UI to listen on", flags=("--host",))] = (
        "127.0.0.1"
    ),
    port: Annotated[int, Param("port for the UI", flags=("--port",))] = 5000,
    *,
    tracking_uri: str | None = None,
) -> UiPlan:
    """MLflow's UI on the configured store: a server's own URL, or a local `mlflow server`
    (one worker, no job runner) that `tracked ui` runs until Ctrl-C or SIGTERM."""
    from tracked.store import shown_uri, sqlite_path

    with open_store(tracking_uri, must_exist=False) as (settings, _):
        uri = settings.tracking_uri
    if urllib.parse.urlsplit(uri).scheme in _HTTP:
        return UiPlan(shown_uri(uri), None)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri]
    if settings.registry_uri != uri:
        command += ["--registry-store-uri", settings.registry_uri]
    path = sqlite_path(uri)
    if path is not None:  # artifacts of experiments made in the UI: beside the database
        command += ["--artifacts-destination", (path.parent / "mlartifacts").as_uri()]
    command += ["--host", host, "--port", str(port), "--workers", "1"]
    shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return UiPlan(f"http://{shown_host}:{port}", command, env)


class _Stop(Exception):
    """SIGTERM arrived: stop the UI's processes, then exit."""


def serve_ui(plan: UiPlan, *, started: Callable[[int], None] | None = None) -> int:
    """Run the plan's command in a process group of its own and wait; on Ctrl-C or SIGTERM
    (and on any exit) end the whole group: the server, its worker and anything they started.

    Returns the server's exit code (0 when stopped by Ctrl-C or SIGTERM).
    """
    import subprocess

    assert plan.command is not None
    env = {**os.environ, **plan.env}
    process = subprocess.Popen(plan.command, env=env, start_new_session=True)
    if started is not None:
        started(process.pid)
    with _stop_on_sigterm():
        try:
            return process.wait()
        except (KeyboardInterrupt, _Stop):
            return 0
        finally:
            _end_group(process)


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    import signal

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _end_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to every process of the group, SIGKILL to what is left after STOP_GRACE."""
    import signal
    import subprocess

    group = process.pid  # start_new_session: the server leads its own group
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_GRACE)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)  # workers that outlived their parent, or a stuck one
    process.wait()


def sync(
    dry_run: Annotated[
        bool, Param("only say what would be sent", flags=("--dry-run/--send",))
    ] = False,
    *,
    tracking_uri: str | None = None,
    progress: Any = None,
) -> SyncResult:
    """Send runs kept on disk while the store was unreachable (the spool) to the store.

    `progress` (the surface supplies it) gets `start(total)` and `advance(entry)` per entry
    when tracked.sync supports it.
    """
    try:
        from tracked.sync import sync as sync_spool
    except ImportError as exc:
        if exc.name not in ("tracked.sync", None):
            raise
        raise TrackingError(
            "tracked: `tracked sync` is not available in this version of tracked "
            "(tracked.sync is missing)"
        ) from None
    accepted = inspect.signature(sync_spool).parameters
    kwargs: dict[str, Any] = {"dry_run": dry_run}
    if tracking_uri is not None:
        kwargs["tracking_uri"] = tracking_uri
    streamed = progress is not None and "progress" in accepted
    if streamed:
        kwargs["progress"] = progress
    return SyncResult(sync_spool(**kwargs), streamed)
