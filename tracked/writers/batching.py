"""Metric points written in batches off the training thread.

1000 `log_metric` calls take seconds on SQLite; one `log_batch` of 1000 takes a tenth of one.
The training loop only appends to a list under a lock; a background thread drains it whenever a
batch is full or `interval` seconds passed. The thread starts on the first point, so a run that
logs no stepped metrics costs no thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from tracked.record import MetricPoint

__all__ = ["MetricBuffer"]

BATCH_SIZE = 1000  # MLflow's limit of metrics per log_batch call


class MetricBuffer:
    """Buffers points and hands them to `write` in batches on a daemon thread."""

    def __init__(
        self,
        write: Callable[[list[MetricPoint]], None],
        *,
        batch_size: int = BATCH_SIZE,
        interval: float = 2.0,
        name: str = "tracked-metrics",
    ) -> None:
        self._write = write
        self._batch_size = batch_size
        self._interval = interval
        self._name = name
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: list[MetricPoint] = []
        self._thread: threading.Thread | None = None
        self._closing = False
        self.error: BaseException | None = None  # first write failure; writing stops after it

    def add(self, points: Iterable[MetricPoint]) -> None:
        """Queue points; cheap enough for every training iteration."""
        with self._lock:
            self._pending.extend(points)
            full = len(self._pending) >= self._batch_size
            if self._thread is None and not self._closing and self.error is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        if full:
            self._wake.set()

    def close(self, timeout: float | None = 60.0) -> list[MetricPoint]:
        """Stop the thread and return the points it did not write (the caller writes them)."""
        with self._lock:
            self._closing = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            rest, self._pending = self._pending, []
        return rest

    def _take(self) -> list[MetricPoint]:
        with self._lock:
            batch = self._pending[: self._batch_size]
            del self._pending[: self._batch_size]
            return batch

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            with self._lock:
                closing = self._closing
            if closing:
                return  # close() writes the rest on the caller's thread, in order
            batch = self._take()
            while batch:
                try:
                    self._write(batch)
                except BaseException as exc:
                    with self._lock:
                        self._pending[:0] = batch
                        self.error = exc
                    return
                batch = self._take() if self._has_full_batch() else []

    def _has_full_batch(self) -> bool:
        with self._lock:
            return len(self._pending) >= self._batch_size
