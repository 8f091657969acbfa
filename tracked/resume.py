"""Resuming a run: a restarted job continues its run instead of starting a new one.

`TrackedRun(resume=RUN_ID)` (or `TRACKED_RESUME_RUN_ID`, or `resume="auto"` with a `run_key=`
that names the job, such as a SLURM job id) is decided here when the run starts, in the training
thread, with the store asked once or twice:

- the run must exist; with `resume="auto"` the latest run tagged `tracked.run_key=<key>` is it,
  and with none, a new run is started with that tag (the first attempt of a job); earlier
  attempts not in the store yet (a run of this process the sender has not created, a journal a
  killed process left in this spool) are put there first, so that the look-up finds them;
- what the run's earlier process left in this machine's spool is sent first (`tracked sync` for
  that one journal: a run whose process was SIGKILLed is ended KILLED with everything it logged);
- a run still being written, by a live process here (its journal is owned) or RUNNING in the store
  with no journal here (another machine, maybe), is not resumed unless `force_resume=True`: two
  processes writing one run's history would interleave it;
- the run's params are kept (MLflow params are immutable): a value that differs now is one
  warning line naming the param, its old and its new value;
- the step of each metric's latest point is known, so steps can continue after it (run.py).

A resume that cannot be done is one warning line and the run is recorded as a new run, or raises
under `strict=True`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracked import tags as T
from tracked.errors import NotFoundError, StoreUnavailableError, TrackingError

if TYPE_CHECKING:
    from tracked.run import TrackedRun
    from tracked.writers.mlflow import MlflowWriter

__all__ = ["Resumed", "resume_point"]


@dataclass
class Resumed:
    """The run being continued."""

    run_id: str
    experiment_id: str
    params: dict[str, str]
    times: int  # how many times it was resumed before this one
    last_steps: dict[str, int] = field(default_factory=dict)  # metric key -> latest point's step

    @property
    def next_step(self) -> int:
        """The first step after every step the run logged (system metrics aside)."""
        steps = [s for k, s in self.last_steps.items() if not k.startswith("system/")]
        return max(steps) + 1 if steps else 0


def resume_point(run: TrackedRun, target: str, run_key: str | None) -> Resumed | None:
    """The run to continue, or None (a new run): `target` is a run id or "auto"."""
    from tracked.store import store_for
    from tracked.writers.mlflow import MlflowWriter

    settings = run.settings
    writer = MlflowWriter(store_for(settings), artifact_location=settings.artifact_location)
    try:
        if target == "auto":
            if not run_key:
                run.problems.capture(
                    "resume", "resume", '"auto" needs run_key= (a job id); a new run is started'
                )
                return None
            _store_earlier_attempts(run, run_key)
            experiment_id = writer.experiment_id(settings.experiment, settings.experiment_id)
            found = writer.find_by_tag(experiment_id, T.RUN_KEY, run_key)
            if found is None:
                return None  # the job's first attempt
            target = found
        return _prepare(run, writer, target.strip())
    except StoreUnavailableError as error:
        run.problems.failed(error, consequence=f"run {target} is not resumed; a new run is kept")
        return None


def _prepare(run: TrackedRun, writer: MlflowWriter, run_id: str) -> Resumed | None:
    try:
        state = writer.run_state(run_id)
    except NotFoundError:
        run.problems.failed(
            NotFoundError(f"run {run_id!r} to resume", "it is not in the store"),
            consequence="a new run is recorded instead",
        )
        return None
    refused, sent = _left_behind(run, state["tags"].get(T.RUN_UUID), state["status"])
    if refused is not None and state["status"] == "RUNNING":
        # Read before this process's sender ended the run, checked after it let go of it: the
        # store says FINISHED now (the sender lets go of a run only once it is ended there).
        state = writer.run_state(run_id)
        refused, sent = _left_behind(run, state["tags"].get(T.RUN_UUID), state["status"])
    if refused is not None:
        run.problems.failed(
            TrackingError(f"tracked: run {run_id} is not resumed: {refused}"),
            consequence="a new run is recorded instead (force_resume=True continues it anyway)",
        )
        return None
    if sent:
        state = writer.run_state(run_id)  # what the journal of its dead process just sent
    try:
        times = int(state["tags"].get(T.RESUMED, "0"))
    except ValueError:
        times = 0
    return Resumed(
        run_id=run_id,
        experiment_id=state["experiment_id"],
        params=state["params"],
        times=times,
        last_steps=state["last_steps"],
    )


def _left_behind(run: TrackedRun, run_uuid: str | None, status: str) -> tuple[str | None, bool]:
    """Send what the run's earlier process left in this spool: (why the run cannot be resumed
    now or None, whether a journal was sent)."""
    from tracked.sender import sender, shipment_for

    mine = shipment_for(run_uuid) if run_uuid else None
    if mine is not None:  # a run of this process
        if mine.journal is not None and not mine.journal.closed:
            if run.force_resume:
                return None, False
            return "it is still going in this process", False
        sender().wait_for(mine, run.settings.exit_wait)  # what it logged, in the store first
        return None, True
    directory = Path(run.settings.spool_dir) / run_uuid if run_uuid else None
    if directory is not None and directory.is_dir():
        entry = _sync_journal(directory, run)
        if entry.state == "live":
            if run.force_resume:
                return None, False
            return f"it is being written by a live process ({entry.detail})", False
        if entry.state == "failed" and not run.force_resume:
            reason = f"what its earlier process logged could not be sent first ({entry.detail})"
            return reason, False
        return None, True
    if status == "RUNNING" and not run.force_resume:
        return "it is RUNNING in the store and its journal is not here (running elsewhere?)", False
    return None, False


def _store_earlier_attempts(run: TrackedRun, run_key: str) -> None:
    """Put the job's earlier attempts that are not in the store yet into it, so the look-up by
    key finds them: a run of this process the sender has not created yet (a short run, still in
    its first seconds' hold or queued behind others) is created now; a journal a dead process
    left in this spool with the key is sent (`tracked sync` for it)."""
    from tracked import journal as J
    from tracked.sender import sender

    mine = set()
    for shipment in sender().pending():
        if (shipment.header.get("tags") or {}).get(T.RUN_KEY) == run_key:
            mine.add(shipment.run_uuid)
            if shipment.run_id is None:
                sender().create_now(shipment)
    root = Path(run.settings.spool_dir)
    for directory in J.journal_dirs(root) if root.is_dir() else ():
        if directory.name in mine:
            continue
        if (J.header_of(directory).get("tags") or {}).get(T.RUN_KEY) == run_key:
            _sync_journal(directory, run)


def _sync_journal(directory: Path, run: TrackedRun) -> Any:
    from tracked.sync import sync_journal

    return sync_journal(directory, run.settings)
