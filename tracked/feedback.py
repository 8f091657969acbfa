"""What tracked tells a person: one line when a run ends, one line at exit for what is left.

Lines go to stderr, so a program's own stdout stays its own. `TRACKED_QUIET=1` (or
`tracked.configure(quiet=True)`) turns the run-end line off; warnings about problems always show.
Nested runs (a training's child, an Optuna trial) print nothing: their parent's line speaks.
"""

from __future__ import annotations

import os
import sys
import urllib.parse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracked.run import TrackedRun

__all__ = ["exit_line", "run_ended", "run_link"]


def _quiet(settings: Any) -> bool:
    if getattr(settings, "quiet", False):
        return True
    return os.environ.get("TRACKED_QUIET", "").strip().lower() in ("1", "true", "yes", "on")


def run_link(tracking_uri: str, experiment_id: str | None, run_id: str | None) -> str | None:
    """The run's page in MLflow's UI, for a store that has one (an HTTP server)."""
    parsed = urllib.parse.urlsplit(tracking_uri)
    if parsed.scheme not in ("http", "https") or not experiment_id or not run_id:
        return None
    host = parsed.hostname or ""
    netloc = f"{host}:{parsed.port}" if parsed.port else host  # never the credentials
    base = urllib.parse.urlunsplit((parsed.scheme, netloc, parsed.path.rstrip("/"), "", ""))
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def run_ended(run: TrackedRun) -> None:
    """One line about a top-level run that just ended (stderr)."""
    record = run.record
    if record.parent_uuid or record.parent_run_id or _quiet(run.settings):
        return
    shipment = run._shipment
    # The store's run id when the sender has created the run already (a run that registered a
    # model, or ran longer than the sender's hold); never waited for: a short run's line says
    # it is being sent (the run's `run_id` attribute creates it on demand).
    run_id = shipment.run_id if shipment is not None else None
    parts = [f"{len(record.latest)} metric{'s' if len(record.latest) != 1 else ''}"]
    if record.points > len(record.latest):
        parts[0] += f" ({record.points:,} points)"
    if run.model_version:
        parts.append(f"model {run.model_name} v{run.model_version}")
    for decision in run.decisions:
        parts.append(f"{decision.to}: {'promoted' if decision.promoted else 'refused'}")
    if run_id:
        where = f"run {run_id}"
    elif shipment is not None and shipment.failure is not None:
        from tracked.errors import AuthenticationError, StoreUnavailableError

        failure = shipment.failure
        why = (
            "the store refused the credentials"
            if isinstance(failure, AuthenticationError)
            else "the store is unreachable"
            if isinstance(failure, StoreUnavailableError)
            else "the store refused it"
        )
        where = f"kept in {shipment.directory} for `tracked sync` ({why})"
    elif shipment is not None:
        where = f"being sent to {shipment.store.shown} in the background"
    else:
        where = "not recorded"
    line = f"tracked: {record.name!r} {record.status} -> {where} ({', '.join(parts)})"
    experiment_id = shipment.cursor.get("experiment_id") if shipment is not None else None
    link = run_link(run.settings.tracking_uri, experiment_id, run_id)
    if link:
        line += f"\n  {link}"
    sys.stderr.write(line + "\n")


def exit_line(left: int, spool_dir: str, reason: str | None) -> str:
    """The line printed at exit when runs are still in their journals."""
    runs = f"{left} run{'s' if left != 1 else ''}"
    why = f" ({reason})" if reason else ""
    return (
        f"tracked: {runs} not fully sent to the store{why}; kept in {spool_dir}: "
        "`tracked sync` sends them"
    )
