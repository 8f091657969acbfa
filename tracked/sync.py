"""`tracked sync`: send every journal whose process is gone to the tracking store, exactly once.

The spool directory holds one journal per run (tracked/journal.py). A journal still owned by a
live process (its `owner.lock` is held) is left alone: that process's sender is sending it. Every
other journal belongs to a process that exited before it could send everything (the store was
down, the exit wait ran out) or that died (a crash, SIGKILL): `sync` cuts a torn tail (the frame
the process was writing when it died), ends a run that has no END as `KILLED`, and ships it with
the same `Shipment` a live process uses, through the same finish (models, registration,
promotion, status). A journal is removed once all of it is in the store.

Idempotent and resumable: a shipment resumes from the journal's cursor, finds a run it already
created by its `tracked.run_uuid` tag, sends again only what the store may lack (the store ignores
points it has), registers a version once and promotes once. A sync killed at any point and run
again creates no duplicate run, version or metric point.

Journals written by tracked 0.1 (directories with `record.json` and `manifest.json`) are converted
first (tracked/legacy_spool.py); their promotion policies were pickles and are not loaded.
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tracked import journal as J
from tracked.config import Settings, resolve
from tracked.errors import RegistryLockedError, SpoolError, StoreUnavailableError, TrackingError
from tracked.journal import Kind, Reader
from tracked.record import now_ms

__all__ = ["SyncEntry", "SyncProgress", "SyncReport", "sync", "sync_journal"]

_LOCK_FILE = ".sync.lock"


@dataclass(frozen=True)
class SyncEntry:
    """What happened to one journal.

    `state` is "sent", "would send" (dry run), "live" (its process is still running and sending
    it), "torn" (unreadable, left in place) or "failed" (kept for the next sync; `detail` says
    why).
    """

    spool_id: str
    state: str
    path: str
    name: str | None = None
    experiment: str | None = None
    store: str | None = None  # the store the run was headed for (credentials redacted)
    run_id: str | None = None
    status: str | None = None  # the run's status (KILLED for a process that died)
    metric_points: int = 0  # points in the journal
    sent_points: int = 0  # of them, sent by this sync (a partly sent run resumes where it was)
    artifacts: int = 0
    model: str | None = None  # "name/version" once registered, or what would be registered
    promotion: tuple[str, ...] = ()  # one line per policy: its decision, or why none
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "spool_id": self.spool_id,
            "state": self.state,
            "path": self.path,
            "name": self.name,
            "experiment": self.experiment,
            "store": self.store,
            "run_id": self.run_id,
            "status": self.status,
            "metric_points": self.metric_points,
            "sent_points": self.sent_points,
            "artifacts": self.artifacts,
            "model": self.model,
            "promotion": list(self.promotion),
            "detail": self.detail,
        }

    def line(self) -> str:
        """One line for the CLI."""
        run = f"run {self.name!r}" if self.name is not None else "journal"
        if self.state == "torn":
            return (
                f"skipped {self.spool_id}: unreadable journal ({self.detail}); left at {self.path}"
            )
        if self.state == "live":
            return f"skipped {self.spool_id}: {run}: {self.detail}"
        if self.state == "failed":
            return (
                f"failed  {self.spool_id}: {run}: {self.detail}; kept for the next `tracked sync`"
            )
        points = _count(self.metric_points, "metric point")
        if self.state == "sent" and self.sent_points != self.metric_points:
            points = f"{self.sent_points} of {points} sent"
        parts = [points, _count(self.artifacts, "artifact")]
        if self.status and self.status != "FINISHED":
            parts.insert(0, self.status)
        if self.model:
            parts.append(f"model {self.model}")
        parts += list(self.promotion)
        if self.detail:
            parts.append(self.detail)
        if self.state == "sent":
            return f"sent    {self.spool_id}: {run} -> run {self.run_id} ({'; '.join(parts)})"
        where = f"in experiment {self.experiment!r}"
        return f"would send {self.spool_id}: {run} {where} ({'; '.join(parts)})"


@dataclass(frozen=True)
class SyncReport:
    """The outcome of one `sync()`: one SyncEntry per journal, oldest first."""

    spool_dir: str
    tracking_uri: str
    dry_run: bool
    entries: tuple[SyncEntry, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when every journal was sent (or, in a dry run, could be), none failed or is
        torn. Journals still owned by a live process don't count against it."""
        return all(e.state in ("sent", "would send", "live") for e in self.entries)

    def summary(self) -> str:
        """One line over all entries."""
        if not self.entries:
            return f"nothing to sync in {self.spool_dir}"
        counts: dict[str, int] = {}
        for entry in self.entries:
            counts[entry.state] = counts.get(entry.state, 0) + 1
        text = ", ".join(f"{n} {state}" for state, n in counts.items())
        target = "would go to" if self.dry_run else "to"
        spooled = f"{len(self.entries)} in {self.spool_dir}"
        return f"{text} ({spooled}, {target} {self.tracking_uri})"

    def lines(self) -> list[str]:
        """One line per entry, for the CLI."""
        return [entry.line() for entry in self.entries]

    def to_dict(self) -> dict[str, Any]:
        return {
            "spool_dir": self.spool_dir,
            "tracking_uri": self.tracking_uri,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "entries": [e.to_dict() for e in self.entries],
        }


class SyncProgress(Protocol):
    """What a surface shows while a sync runs (the CLI draws a bar, or one line per run)."""

    def start(self, total: int) -> None: ...

    def advance(self, entry: SyncEntry) -> None: ...


def sync(
    *,
    dry_run: bool = False,
    spool_dir: str | None = None,
    tracking_uri: str | None = None,
    progress: SyncProgress | None = None,
) -> SyncReport:
    """Send every journal whose process is gone to the configured store (or `tracking_uri`).

    With `dry_run`, nothing is sent or changed and the store is not contacted: the report lists
    what would be sent. Raises SpoolError when another sync is running on the same spool.
    """
    from tracked.capture.secrets import redact_value
    from tracked.legacy_spool import convert_legacy

    settings = resolve().replace(tracking_uri=tracking_uri, spool_dir=spool_dir)
    root = Path(settings.spool_dir)
    store = redact_value(settings.tracking_uri)
    results: list[SyncEntry] = []
    if not dry_run:  # an explicit sync asks the store again, whatever this process saw before
        from tracked.store import store_for

        store_for(settings).mark_up()
    with _exclusive(root, dry_run):
        legacy = [] if dry_run or not root.is_dir() else convert_legacy(root)
        directories = J.journal_dirs(root, clean=not dry_run) if root.is_dir() else []
        if progress is not None:
            progress.start(len(directories) + len(legacy))
        for entry in legacy:  # entries of tracked 0.1 that could not be converted
            results.append(entry)
            if progress is not None:
                progress.advance(entry)
        down: TrackingError | None = None
        for directory in directories:
            entry, down = _one(directory, settings, store, dry_run=dry_run, down=down)
            results.append(entry)
            if progress is not None:
                progress.advance(entry)
    return SyncReport(str(root), store, dry_run, tuple(results))


def sync_journal(directory: Path, settings: Settings) -> SyncEntry:
    """Send one journal as `sync` does (a run about to be resumed first gets what its dead
    process left); state "live" when a running process still owns it."""
    from tracked.capture.secrets import redact_value

    entry, _ = _one(
        directory, settings, redact_value(settings.tracking_uri), dry_run=False, down=None
    )
    return entry


def _one(
    directory: Path, settings: Settings, store: str, *, dry_run: bool, down: TrackingError | None
) -> tuple[SyncEntry, TrackingError | None]:
    mine = _own_finished_shipment(directory)
    if mine is not None and not dry_run:
        from tracked.sender import sender

        sender().forget(mine)  # a run of this process whose store failed: sync takes it over
    with J.claim(directory) as owned:
        if not owned and mine is None:
            pid = J.header_of(directory).get("pid")
            detail = f"still being written and sent by process {pid}" if pid else "in use"
            return SyncEntry(directory.name, "live", str(directory), detail=detail), down
        try:
            summary = _summary(directory)
        except (SpoolError, OSError, ValueError) as exc:
            return SyncEntry(directory.name, "torn", str(directory), detail=str(exc)), down
        if dry_run:
            return _entry(summary, "would send", store=store), down
        if down is not None:
            return _entry(summary, "failed", detail=f"not sent: {down}"), down
        return _send(directory, summary, settings)


@dataclass
class _Summary:
    directory: Path
    name: str
    experiment: str
    store: str
    status: str
    points: int
    artifacts: int
    model: str | None
    policies: int
    cut: int = 0


def _summary(directory: Path) -> _Summary:
    """What a journal holds (one pass over it, points counted, not decoded)."""
    from tracked.journal import Points

    reader = Reader(directory)
    reader.verify()  # a corrupt journal is reported, never sent half
    header: dict[str, Any] = {}
    status = None
    points = artifacts = policies = 0
    model = None
    for found in reader.frames(0):
        if found.kind == Kind.START:
            header = found.json()
        elif found.kind == Kind.POINTS:
            points += len(Points.decode(found.payload))
        elif found.kind == Kind.ARTIFACT:
            artifacts += 1
        elif found.kind == Kind.END and int(found.json().get("slot", 0)) == 0:
            status = str(found.json().get("status"))
        elif found.kind == Kind.INTENT:
            data = found.json()
            policies = len(data.get("policies") or [])
            if data.get("model") and data.get("register", True):
                model = "to register"
    if not header:
        raise SpoolError(reader.torn or "no START frame")
    return _Summary(
        directory,
        name=str(header.get("name")),
        experiment=str(header.get("experiment")),
        store=str(header.get("store", "")),
        status=status or "KILLED",
        points=points,
        artifacts=artifacts,
        model=model,
        policies=policies,
    )


def _send(
    directory: Path, summary: _Summary, settings: Settings
) -> tuple[SyncEntry, TrackingError | None]:
    from tracked.sender import Shipment
    from tracked.store import store_for

    reader = Reader(directory)
    summary.cut = reader.cut_torn_tail()
    if summary.status == "KILLED" and not _has_end(directory):
        _append_end(directory)  # its process died: the run ends KILLED, with all it logged
    store = store_for(settings)
    notes: list[str] = []
    shipment = Shipment(directory, store, on_problem=lambda kind, message: notes.append(message))
    try:
        shipment.pump()
    except RegistryLockedError as error:
        return _entry(summary, "failed", detail=f"promotion waits: {error}"), None
    except StoreUnavailableError as error:
        return _entry(summary, "failed", detail=str(error)), error
    except TrackingError as error:
        return _entry(summary, "failed", detail=str(error)), None
    except Exception as exc:  # a bug, or a broken journal: report it, go on with the others
        return _entry(summary, "failed", detail=f"{type(exc).__name__}: {exc}"), None
    registered = shipment.done("registered")
    model = f"{registered['name']}/{registered['version']}" if registered else None
    promotion = tuple(shipment.done("promoted") or ())
    if summary.cut:
        notes.insert(0, f"a torn tail of {summary.cut} bytes was cut")
    elsewhere = _elsewhere(summary.store, settings.tracking_uri)
    if elsewhere:
        notes.append(elsewhere)
    return (
        _entry(
            summary,
            "sent",
            run_id=shipment.run_id,
            sent_points=shipment.points_sent,
            model=model,
            promotion=promotion,
            detail="; ".join(notes),
        ),
        None,
    )


def _own_finished_shipment(directory: Path) -> Any:
    """This process's own shipment of `directory`, if its run has ended."""
    import sys

    if "tracked.sender" not in sys.modules:
        return None
    from tracked.sender import sender

    found = sender().shipment(directory.name)
    if found is None or found.journal is None or not found.journal.closed:
        return None
    return found


def _has_end(directory: Path) -> bool:
    reader = Reader(directory)
    return any(f.kind == Kind.END and int(f.json().get("slot", 0)) == 0 for f in reader.frames(0))


def _append_end(directory: Path) -> None:
    """End the run of a process that died: KILLED, at the time of its journal's last write."""
    path = directory / J.JOURNAL_FILE
    end_time = int(path.stat().st_mtime * 1000) or now_ms()
    payload = J._json({"slot": 0, "status": "KILLED", "end_time": end_time})
    with open(path, "ab") as fh:
        fh.write(J.frame(Kind.END, payload))
        fh.flush()
        os.fsync(fh.fileno())


def _entry(summary: _Summary, state: str, **details: Any) -> SyncEntry:
    if state == "would send" and summary.model:
        details.setdefault("model", summary.model)
    if state == "would send" and summary.policies:
        details.setdefault("promotion", (f"{_count(summary.policies, 'promotion policy')}",))
    details.pop("store", None)
    return SyncEntry(
        summary.directory.name,
        state,
        str(summary.directory),
        name=summary.name,
        experiment=summary.experiment,
        store=summary.store,
        status=summary.status,
        metric_points=summary.points,
        artifacts=summary.artifacts,
        **details,
    )


def _count(n: int, noun: str) -> str:
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n} {noun if n == 1 else plural}"


def _elsewhere(spooled_for: str, store: str) -> str:
    """A note when the run was spooled for another store than the one it is sent to."""
    from tracked.capture.secrets import redact_value

    if spooled_for and spooled_for != redact_value(store):
        return f"spooled for {spooled_for}"
    return ""


@contextlib.contextmanager
def _exclusive(root: Path, dry_run: bool) -> Iterator[None]:
    """One sync at a time per spool: two would race over the same journals."""
    if dry_run or not root.is_dir():
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: run one sync at a time
        yield
        return
    fd = os.open(root / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SpoolError(
                f"tracked: another `tracked sync` is running on {root}; wait for it to finish"
            ) from None
        yield
    finally:
        os.close(fd)  # closing releases the lock, as the kernel does when a sync is killed


class _CallableModule(types.ModuleType):
    """Importing this module (the CLI does, so do tests) sets the package's attribute `sync` to
    the module, which would hide the function `tracked.sync()`: calling the module calls it."""

    def __call__(self, **options: Any) -> SyncReport:
        return sync(**options)


sys.modules[__name__].__class__ = _CallableModule
