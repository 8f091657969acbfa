"""System metrics of a run (CPU, memory, disk, network, GPU), sampled by MLflow's own monitors
and written into the run's journal.

MLflow's `SystemMetricsMonitor` writes straight to the store and only starts once the run exists
there; a tracked run is created by the sender in the background, so a run shorter than the store's
start-up (a fresh SQLite database takes seconds) got no point at all, and an outage lost them.
Here sampling starts with the run, the points go through `run.log_metrics` (journal first, sent
with everything else, kept by `tracked sync`), and the samples since the last point are published
when the run ends, so even a short run holds one point per metric.

The names, the aggregation and the settings are MLflow's: `system/<metric>` (`system/<node>/…`
with a node id), `MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL` (default 10 s),
`MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING` (default 1) and `MLFLOW_SYSTEM_METRICS_NODE_ID`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["SystemMonitor", "monitors"]

Sink = Callable[[Mapping[str, float], int], None]


def _env(name: str, kind: type, default: Any) -> Any:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        return default
    return value if value > 0 else default


def monitors() -> list[Any]:
    """MLflow's monitors for this machine: CPU and memory, disk, network, and a GPU's if any."""
    from mlflow.system_metrics.metrics.cpu_monitor import CPUMonitor
    from mlflow.system_metrics.metrics.disk_monitor import DiskMonitor
    from mlflow.system_metrics.metrics.network_monitor import NetworkMonitor

    found: list[Any] = [CPUMonitor(), DiskMonitor(), NetworkMonitor()]
    for module, name in (
        ("mlflow.system_metrics.metrics.gpu_monitor", "GPUMonitor"),
        ("mlflow.system_metrics.metrics.rocm_monitor", "ROCMMonitor"),
    ):
        try:  # each raises when its library or device is missing, as MLflow's own start-up does
            found.append(getattr(__import__(module, fromlist=[name]), name)())
            break
        except Exception:
            continue
    return found


class SystemMonitor:
    """Samples every `interval` seconds on a daemon thread; every `samples` samples, the averages
    go to `sink(metrics, step)` as `system/…` points."""

    def __init__(
        self,
        sink: Sink,
        *,
        node_id: str | None = None,
        first_step: int = 0,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        self.interval = float(_env("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", float, 10.0))
        self.samples = int(_env("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", int, 1))
        node = os.environ.get("MLFLOW_SYSTEM_METRICS_NODE_ID") or node_id
        self.prefix = "system/" + (f"{node}/" if node else "")
        self.step = first_step
        self._sink = sink
        self._on_problem = on_problem
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._monitors: list[Any] = []
        self._pending = 0  # samples taken since the last point

    def start(self) -> SystemMonitor:
        self._thread = threading.Thread(
            target=self._loop, name="tracked-system-metrics", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling and publish what was sampled since the last point (joins the thread)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30.0)  # a sample takes milliseconds; a hung GPU library, not forever
            self._thread = None

    def _loop(self) -> None:
        try:
            self._monitors = monitors()
            for monitor in self._monitors:  # psutil's CPU figure is "since the previous call":
                monitor.collect_metrics()  # the first call says 0.0, so it is not kept
                monitor.clear_metrics()
            while not self._stop.wait(self.interval):
                self._sample()
                if self._pending >= self.samples:
                    self._publish()
            self._sample()  # the end of the run: one last sample, then what is pending
            self._publish()
        except Exception as exc:  # psutil or a GPU library failing: the run goes on without
            if self._on_problem is not None:
                self._on_problem(f"{type(exc).__name__}: {exc}")

    def _sample(self) -> None:
        for monitor in self._monitors:
            monitor.collect_metrics()
        self._pending += 1

    def _publish(self) -> None:
        if not self._pending:
            return
        values: dict[str, float] = {}
        for monitor in self._monitors:
            for key, value in monitor.aggregate_metrics().items():
                values[self.prefix + key] = float(value)
            monitor.clear_metrics()
        self._pending = 0
        if values:
            self._sink(values, self.step)
            self.step += 1
