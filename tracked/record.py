"""RunRecord: what a run is, as plain data. No I/O here.

A run produces events (params, tags, metric points, inputs, artifacts, models, its end); the
journal (tracked/journal.py) keeps them on disk in order, the sender ships them to the store, and a
`RunRecord` is their fold: what the run looks like now. The live run keeps one in memory; `tracked
sync` rebuilds one by reading a journal. Metric points are not kept: a record holds the latest
value of each metric (what registration and the summary line need), so memory does not grow with
the number of points.

Everything in a record is already sanitised for MLflow: keys valid, values strings of allowed
length.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "Artifact",
    "DatasetInput",
    "Latest",
    "ModelCapture",
    "RunRecord",
    "Slot",
    "context_for",
    "now_ms",
]


def now_ms() -> int:
    """Wall-clock time in milliseconds, MLflow's unit for timestamps."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Artifact:
    """A file or directory attached to a run, already copied into the run's staging area."""

    path: str  # where it goes inside the run's artifacts, e.g. "plots/loss.png"
    file: str  # the staged copy, relative to the journal directory


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "digest": self.digest,
            "kind": self.kind,
            "context": self.context,
            "source": self.source,
            "shape": None if self.shape is None else list(self.shape),
            "schema": self.schema,
            "nbytes": self.nbytes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetInput:
        shape = data.get("shape")
        return cls(
            name=str(data["name"]),
            digest=str(data["digest"]),
            kind=str(data["kind"]),
            context=str(data.get("context", "training")),
            source=data.get("source"),
            shape=None if shape is None else tuple(int(n) for n in shape),
            schema=data.get("schema"),
            nbytes=int(data.get("nbytes", 0)),
        )


@dataclass
class ModelCapture:
    """A model the run produced: the object while the run is live, then its saved directory."""

    obj: Any
    name: str = "model"  # artifact path inside the run
    slot: int = 0  # which run of the journal it belongs to (0: the run, k: its k-th training)
    input_example: Any = None
    register: bool = True
    flavor: str | None = None  # set once saved
    serialization: str | None = None
    directory: str | None = None  # the saved MLflow model, relative to the journal directory
    model_class: str | None = None  # module.qualname of the object
    tokenizer: Any = None  # saved with a Hugging Face model
    logged_model_id: str | None = None  # MLflow already logged it in the run (autolog): reused


_new_tuple = tuple.__new__  # a NamedTuple without its Python-level __new__ (per-point cost)


class Latest(NamedTuple):
    """The latest point of a metric, as MLflow picks it: highest (step, timestamp, value)."""

    value: float
    step: int
    timestamp: int


@dataclass
class Slot:
    """A run inside a journal besides the main one: a captured training (a child run once a
    second training made the trainings separate runs)."""

    index: int
    name: str
    framework: str
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    latest: dict[str, Latest] = field(default_factory=dict)
    child: bool = False  # its own run (True) or logging into the main run (False)
    status: str = "RUNNING"


@dataclass
class RunRecord:
    """Everything about one run, as plain data."""

    name: str
    experiment: str
    project: str
    run_uuid: str = field(default_factory=lambda: uuid.uuid4().hex)
    experiment_id: str | None = None  # when known (an experiment set with mlflow.set_experiment)
    parent_run_id: str | None = None
    parent_uuid: str | None = None  # the parent's journal, when its run id is not known yet
    start_time: int = field(default_factory=now_ms)
    end_time: int | None = None
    status: str = "RUNNING"
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    latest: dict[str, Latest] = field(default_factory=dict)
    points: int = 0  # metric points logged so far (all slots)
    artifacts: list[Artifact] = field(default_factory=list)
    inputs: list[DatasetInput] = field(default_factory=list)
    models: list[ModelCapture] = field(default_factory=list)
    slots: dict[int, Slot] = field(default_factory=dict)
    model_name: str | None = None  # the registered-model name template the run asked for
    promote: list[Any] = field(default_factory=list)  # PromotionPolicy objects (live runs)

    def latest_metrics(self, slot: int = 0) -> dict[str, float]:
        """The latest value of each metric of the run (or of one of its training slots)."""
        latest = self.latest if slot == 0 else self.slots[slot].latest
        return {key: point.value for key, point in latest.items()}

    def note_point(self, slot: int, key: str, value: float, step: int, timestamp: int) -> None:
        """Fold one metric point into the latest values (MLflow's order: step, time, value)."""
        self.points += 1
        if slot == 0:  # the hot path: the run's own point
            seen = self.latest.get(key)
            if (
                seen is None
                or step > seen[1]
                or (step, timestamp, value) >= (seen[1], seen[2], seen[0])
            ):
                self.latest[key] = _new_tuple(Latest, (value, step, timestamp))
            return
        found = self.slots.get(slot)
        targets = [self.latest] if found is None else [found.latest]
        if found is not None and not found.child:  # a lone training logs into the main run
            targets.append(self.latest)
        for latest in targets:
            seen = latest.get(key)
            if seen is None or (step, timestamp, value) >= (seen.step, seen.timestamp, seen.value):
                latest[key] = Latest(value, step, timestamp)
