"""RunRecord: the plain data a training run produced. No I/O here.

Capturers fill a record; writers (MLflow, the offline spool) send it somewhere. Everything in it
is already sanitised for MLflow: keys valid, values strings of allowed length.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Artifact",
    "DatasetInput",
    "MetricPoint",
    "ModelCapture",
    "RunRecord",
    "context_for",
    "now_ms",
]


def now_ms() -> int:
    """Wall-clock time in milliseconds, MLflow's unit for timestamps."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class MetricPoint:
    """One metric value; `step` 0 for final (unstepped) metrics, as MLflow stores them."""

    key: str
    value: float
    step: int = 0
    timestamp: int = field(default_factory=now_ms)


@dataclass(frozen=True)
class Artifact:
    """A file to attach to the run: either in-memory `content` or an existing `local_path`."""

    path: str  # where it goes inside the run's artifacts, e.g. "tracked/git.diff"
    content: bytes | None = None
    local_path: str | None = None


def context_for(name: str) -> str:
    """The dataset context an argument name suggests: X_val -> validation, y_test -> test."""
    parts = set(name.lower().replace("-", "_").split("_"))
    if parts & {"val", "valid", "validation", "eval", "dev"}:
        return "validation"
    if parts & {"test", "holdout"}:
        return "test"
    return "training"


@dataclass(frozen=True)
class DatasetInput:
    """A training input, identified by a full-content fingerprint (see capture/fingerprint.py)."""

    name: str
    digest: str
    kind: str
    context: str = "training"
    source: str | None = None
    shape: tuple[int, ...] | None = None
    schema: dict[str, str] | None = None
    nbytes: int = 0


@dataclass
class ModelCapture:
    """A model the run produced, to be logged (and registered) when the run ends."""

    obj: Any
    name: str = "model"  # artifact path inside the run
    input_example: Any = None
    register: bool = True
    flavor: str | None = None  # set once saved
    saved_path: str | None = None  # the saved MLflow model directory, while it exists


@dataclass
class RunRecord:
    """Everything about one run, as plain data."""

    name: str
    experiment: str
    project: str
    run_uuid: str = field(default_factory=lambda: uuid.uuid4().hex)
    parent_run_id: str | None = None
    start_time: int = field(default_factory=now_ms)
    end_time: int | None = None
    status: str = "RUNNING"
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[MetricPoint] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)
    inputs: list[DatasetInput] = field(default_factory=list)
    models: list[ModelCapture] = field(default_factory=list)
    model_name: str | None = None  # the registered-model name the run intends to use
    promote: list[Any] = field(default_factory=list)  # PromotionPolicy objects

    def latest_metrics(self) -> dict[str, float]:
        """The last value logged for each key (by step, then time), as MLflow shows them."""
        latest: dict[str, MetricPoint] = {}
        for point in self.metrics:
            seen = latest.get(point.key)
            if seen is None or (point.step, point.timestamp) >= (seen.step, seen.timestamp):
                latest[point.key] = point
        return {key: point.value for key, point in latest.items()}
