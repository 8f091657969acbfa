"""`tracked sync`: send every spooled run to the tracking store, exactly once.

Each complete entry of the spool (tracked/writers/spool.py) is replayed through the same code a
live run uses: `MlflowWriter` creates the run with its original start time, tags and params,
sends every metric point, the artifacts and the models, ends it with its original status and
end time; `register_run_model` registers the model and `apply_policies` evaluates the promotion
policies against the store's current alias holders.

Idempotent and resumable: a run is looked up by its `tracked.run_uuid` tag before one is created
(a store that failed mid-run may hold a partial run: it is completed, not duplicated), only the
metric points the store lacks are sent, a registered version is reused, promotion is marked done
in the entry, and the entry is removed only after all of it. A sync killed at any point and run
again creates no duplicate run, version or metric point. Torn entries are reported, never
replayed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracked.config import Settings, resolve
from tracked.errors import SpoolError, TrackingError
from tracked.record import Artifact, now_ms
from tracked.writers.spool import (
    SpooledRun,
    TornEntry,
    read_state,
    remove_entry,
    scan,
    write_state,
)

__all__ = ["SyncEntry", "SyncReport", "sync"]

SPOOL_ID_TAG = "tracked.spool_id"
_LOCK_FILE = ".sync.lock"


@dataclass(frozen=True)
class SyncEntry:
    """What happened to one spool entry.

    `state` is "sent", "would send" (dry run), "torn" (never replayed, left in place) or
    "failed" (kept for the next sync; `detail` says why).
    """

    spool_id: str
    state: str
    path: str
    name: str | None = None
    experiment: str | None = None
    store: str | None = None  # the store the run was spooled for
    run_id: str | None = None
    metric_points: int = 0  # points in the spooled run
    sent_points: int = 0  # of them, sent by this sync (the rest were already stored)
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
            "metric_points": self.metric_points,
            "sent_points": self.sent_points,
            "artifacts": self.artifacts,
            "model": self.model,
            "promotion": list(self.promotion),
            "detail": self.detail,
        }

    def line(self) -> str:
        """One line for the CLI."""
        run = f"run {self.name!r}" if self.name is not None else "entry"
        if self.state == "torn":
            return f"skipped {self.spool_id}: torn entry ({self.detail}); left at {self.path}"
        if self.state == "failed":
            return (
                f"failed  {self.spool_id}: {run}: {self.detail}; kept for the next `tracked sync`"
            )
        parts = [_count(self.metric_points, "metric point")]
        if self.state == "sent":
            parts = [f"{self.sent_points} of {_count(self.metric_points, 'metric point')} sent"]
        parts.append(_count(self.artifacts, "artifact"))
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
    """The outcome of one `sync()`: one SyncEntry per spool entry, oldest first."""

    spool_dir: str
    tracking_uri: str
    dry_run: bool
    entries: tuple[SyncEntry, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when every entry was sent (or, in a dry run, could be) and none is torn."""
        return all(e.state in ("sent", "would send") for e in self.entries)

    def summary(self) -> str:
        """One line over all entries."""
        if not self.entries:
            return f"nothing to sync in {self.spool_dir}"
        counts: dict[str, int] = {}
        for entry in self.entries:
            counts[entry.state] = counts.get(entry.state, 0) + 1
        text = ", ".join(f"{n} {state}" for state, n in counts.items())
        target = "would go to" if self.dry_run else "to"
        spooled = f"{len(self.entries)} spooled in {self.spool_dir}"
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


def sync(
    *, dry_run: bool = False, spool_dir: str | None = None, tracking_uri: str | None = None
) -> SyncReport:
    """Replay every spooled run to the configured store (or `tracking_uri`).

    With `dry_run`, nothing is sent or removed and the store is not contacted: the report lists
    what would be sent. Raises SpoolError when another sync is running on the same spool.
    """
    from tracked.capture.secrets import redact_value

    settings = resolve().replace(tracking_uri=tracking_uri, spool_dir=spool_dir)
    root = Path(settings.spool_dir)
    store = redact_value(settings.tracking_uri)
    results: list[SyncEntry] = []
    with _exclusive(root, dry_run):
        down: TrackingError | None = None
        for entry in scan(root, clean=not dry_run):
            if isinstance(entry, TornEntry):
                results.append(
                    SyncEntry(entry.spool_id, "torn", str(entry.path), detail=entry.reason)
                )
            elif dry_run:
                results.append(_preview(entry, store))
            elif down is not None:
                results.append(_failed(entry, f"not sent: {down}"))
            else:
                outcome, down = _send(entry, settings)
                results.append(outcome)
    return SyncReport(str(root), store, dry_run, tuple(results))


def _send(entry: SpooledRun, settings: Settings) -> tuple[SyncEntry, TrackingError | None]:
    """Replay one entry; the error that says the store is down, so the rest are not tried."""
    from tracked.writers.mlflow import MlflowWriter

    writer = MlflowWriter(settings)
    try:
        return _replay(entry, writer), None
    except TrackingError as error:
        return _failed(entry, str(error)), error if writer.down is not None else None
    except Exception as exc:  # a bug, or a broken entry: report it and go on with the others
        return _failed(entry, f"{type(exc).__name__}: {exc}"), None


def _replay(entry: SpooledRun, writer: Any) -> SyncEntry:
    from tracked.registry.versions import register_run_model

    record = entry.record
    record.tags[SPOOL_ID_TAG] = entry.spool_id
    run_id = writer.find_run(record)
    if run_id is None:
        run_id = writer.start(record)  # the spool id tag is set at creation, with the uuid
        writer.log_metrics(run_id, record.metrics)
        sent = len(record.metrics)
    else:
        sent = writer.complete(run_id, record)
    writer.log_artifacts(run_id, record.artifacts)
    for saved in record.models:
        if saved.saved_path is not None:
            writer.log_artifacts(run_id, [Artifact(saved.name, local_path=saved.saved_path)])
    writer.end(run_id, record.status, record.end_time or now_ms())

    model: str | None = None
    promotion: tuple[str, ...] = ()
    capture = entry.registered_model()
    if capture is not None:
        version = writer.call(
            lambda: register_run_model(
                writer.client,
                record,
                run_id=run_id,
                source=f"{writer.artifact_uri}/{capture.name}",
                flavor=str(capture.flavor),
                naming=entry.naming,
                reuse_existing=True,
            )
        )
        writer.set_tags(
            run_id,
            {"tracked.model.name": version.name, "tracked.model.version": str(version.version)},
        )
        model = f"{version.name}/{version.version}"
        promotion = _promote(entry, writer, version.name, str(version.version))
    elif entry.policy_text and record.status == "FINISHED":
        promotion = ("not promoted: no model was registered",)
    remove_entry(entry)
    return _entry(
        entry,
        "sent",
        run_id=run_id,
        sent_points=sent,
        artifacts=len(record.artifacts) + sum(m.saved_path is not None for m in record.models),
        model=model,
        promotion=promotion,
        detail=_elsewhere(entry, writer.uri),
    )


def _promote(entry: SpooledRun, writer: Any, name: str, version: str) -> tuple[str, ...]:
    """Evaluate the run's policies against the store's current holders, once per entry."""
    if not entry.policy_text:
        return ()
    done = read_state(entry, "promoted")
    if done is not None:
        return tuple(done.get("decisions", []))
    if entry.policies is None:
        return (
            f"not promoted: the policy could not be kept ({entry.policy_error}): "
            + ", ".join(entry.policy_text),
        )
    from tracked.registry.lifecycle import apply_policies

    try:
        decisions = writer.call(
            lambda: apply_policies(writer.client, name, version, entry.policies)
        )
        lines = [
            f"{d.to}: {'promoted' if d.promoted else 'refused'} ({d.reason})" for d in decisions
        ]
    except TrackingError as error:
        if writer.down is not None:
            raise
        lines = [f"not promoted: {error}"]
    write_state(entry, "promoted", {"decisions": lines})
    return tuple(lines)


def _preview(entry: SpooledRun, store: str) -> SyncEntry:
    record = entry.record
    capture = entry.registered_model()
    model = None
    if capture is not None:
        from tracked.registry.versions import model_name_for

        try:
            model = f"{model_name_for(record, entry.naming, str(capture.flavor))} (to register)"
        except TrackingError as error:
            model = f"not registrable: {error}"
    promotion = tuple(f"promotion {text}" for text in entry.policy_text)
    return _entry(
        entry,
        "would send",
        artifacts=len(record.artifacts) + sum(m.saved_path is not None for m in record.models),
        model=model,
        promotion=promotion,
        detail="; ".join(filter(None, [f"status {record.status}", _elsewhere(entry, store)])),
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _elsewhere(entry: SpooledRun, store: str) -> str:
    """A note when the run was spooled for another store than the one it is sent to."""
    from tracked.capture.secrets import redact_value

    elsewhere = entry.store and entry.store != redact_value(store)
    return f"spooled for {entry.store}" if elsewhere else ""


def _failed(entry: SpooledRun, detail: str) -> SyncEntry:
    return _entry(entry, "failed", detail=detail)


def _entry(entry: SpooledRun, status: str, **details: Any) -> SyncEntry:
    """A report line for `entry`: what every status says about the run, plus `details`."""
    record = entry.record
    return SyncEntry(
        entry.spool_id,
        status,
        str(entry.path),
        name=record.name,
        experiment=record.experiment,
        store=entry.store,
        metric_points=len(record.metrics),
        **details,
    )


@contextlib.contextmanager
def _exclusive(root: Path, dry_run: bool) -> Iterator[None]:
    """One sync at a time per spool: two would race to create the same runs."""
    if dry_run or not root.is_dir():
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks, run one sync at a time
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
