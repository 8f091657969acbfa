"""Per-rank system metrics of a distributed training (`all_ranks=True`).

Rank 0 owns the run; with `all_ranks=True` every rank, rank 0 included, records system metrics
under its rank as the node id, so the run holds `system/rank<N>/cpu_utilization_percentage` and
so on for each process (MLflow's own multi-node naming). Rank 0 samples into its own journal
(tracked.capture.system); every other rank runs MLflow's monitor, writing into rank 0's run,
which it finds by the launch's shared id (torchrun's run id, a SLURM job step, the rendezvous
address: `tracked.capture.ranks.launch_key`) that rank 0 tags its run with; it asks the store
until the run is there or the rank's block ends. That is the only store traffic of a rank other
than 0, and only with `all_ranks=True`.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from tracked import tags as T

if TYPE_CHECKING:
    from tracked.run import TrackedRun

__all__ = ["RankMetrics"]

_POLL = 1.0  # seconds between two looks for rank 0's run


class RankMetrics:
    """This rank's monitor, started in the background once rank 0's run is known."""

    def __init__(self, run: TrackedRun) -> None:
        self._run = run
        self._stop = threading.Event()
        self._monitor: Any = None
        self._thread = threading.Thread(
            target=self._begin, name="tracked-rank-metrics", daemon=True
        )

    def start(self) -> RankMetrics:
        self._thread.start()
        return self

    def _begin(self) -> None:
        run_id = _run_id(self._run, self._stop)
        if run_id is not None:
            self._monitor = start_monitor(self._run, run_id, node_id=self._run.rank.label)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        if self._monitor is not None:
            with contextlib.suppress(Exception):  # MLflow's monitor failing to stop
                self._monitor.finish()


def _run_id(run: TrackedRun, stop: threading.Event) -> str | None:
    """Rank 0's run, found by the launch's id (rank 0 samples into its own journal)."""
    from tracked.capture.ranks import launch_key

    key = launch_key()
    if key is None:
        run.problems.note(
            "all-ranks",
            "tracked: all_ranks=True, but the launcher gives no shared id (TORCHELASTIC_RUN_ID, "
            f"SLURM_JOB_ID, MASTER_ADDR/MASTER_PORT); {run.rank.label} records no system metrics",
        )
        return None
    from tracked.store import store_for

    store = store_for(run.settings)

    def find(client: Any) -> str | None:
        experiment = client.get_experiment_by_name(run.settings.experiment)
        if experiment is None:
            return None
        found = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{T.LAUNCH}` = '{key}' and attributes.status = 'RUNNING'",
            max_results=1,
            order_by=["attributes.start_time DESC"],
        )
        return str(found[0].info.run_id) if found else None

    while not stop.is_set():
        try:
            found = store.call(find, what="find rank 0's run")
        except Exception:
            found = None
        if found is not None:
            return found
        stop.wait(_POLL)
    return None


def start_monitor(run: TrackedRun, run_id: str, node_id: str | None = None) -> Any:
    """MLflow's system-metrics monitor writing into `run_id` as `node_id`'s, or None with one
    line naming why it could not start."""
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(
            run_id, node_id=node_id, tracking_uri=run.settings.tracking_uri
        )
        monitor.start()
    except Exception as exc:
        run.problems.capture("system-metrics", "system metrics", f"{type(exc).__name__}: {exc}")
        return None
    return monitor
