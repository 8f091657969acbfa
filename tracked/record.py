"""RunRecord: the plain data a training run produced. No I/O here.

Capturers fill a record; writers (MLflow, the offline spool) send it somewhere. Everything in it
is already sanitised for MLflow: keys valid, values strings of allowed length.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping
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

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (the spool's record.json); `from_dict` reads it back.

        Metric points are `[key, value, step, timestamp]` lists; in-memory artifact content is
        base64. Models are kept by name, flavor and saved path, not as objects, and promotion
        policies are left out: they are Python objects (the spool pickles them separately).
        """
        return {
            "name": self.name,
            "experiment": self.experiment,
            "project": self.project,
            "run_uuid": self.run_uuid,
            "parent_run_id": self.parent_run_id,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "status": self.status,
            "params": dict(self.params),
            "tags": dict(self.tags),
            "metrics": [[p.key, p.value, p.step, p.timestamp] for p in self.metrics],
            "artifacts": [_artifact_dict(a) for a in self.artifacts],
            "inputs": [_input_dict(i) for i in self.inputs],
            "models": [
                {"name": m.name, "register": m.register, "flavor": m.flavor, "path": m.saved_path}
                for m in self.models
            ],
            "model_name": self.model_name,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """The record `to_dict` wrote; models come back without their objects (`obj` None)."""
        return cls(
            name=data["name"],
            experiment=data["experiment"],
            project=data["project"],
            run_uuid=data["run_uuid"],
            parent_run_id=data.get("parent_run_id"),
            start_time=int(data["start_time"]),
            end_time=None if data.get("end_time") is None else int(data["end_time"]),
            status=data.get("status", "RUNNING"),
            params={str(k): str(v) for k, v in data.get("params", {}).items()},
            tags={str(k): str(v) for k, v in data.get("tags", {}).items()},
            metrics=[
                MetricPoint(str(k), float(v), int(s), int(t)) for k, v, s, t in data["metrics"]
            ],
            artifacts=[
                Artifact(
                    a["path"],
                    content=base64.b64decode(a["content"]) if "content" in a else None,
                    local_path=a.get("local_path"),
                )
                for a in data.get("artifacts", [])
            ],
            inputs=[
                DatasetInput(
                    **{**i, "shape": None if i.get("shape") is None else tuple(i["shape"])}
                )
                for i in data.get("inputs", [])
            ],
            models=[
                ModelCapture(
                    None,
                    name=m["name"],
                    register=bool(m.get("register", True)),
                    flavor=m.get("flavor"),
                    saved_path=m.get("path"),
                )
                for m in data.get("models", [])
            ],
            model_name=data.get("model_name"),
        )


def _artifact_dict(artifact: Artifact) -> dict[str, Any]:
    out: dict[str, Any] = {"path": artifact.path}
    if artifact.content is not None:
        out["content"] = base64.b64encode(artifact.content).decode("ascii")
    if artifact.local_path is not None:
        out["local_path"] = artifact.local_path
    return out


def _input_dict(data: DatasetInput) -> dict[str, Any]:
    return {
        "name": data.name,
        "digest": data.digest,
        "kind": data.kind,
        "context": data.context,
        "source": data.source,
        "shape": None if data.shape is None else list(data.shape),
        "schema": data.schema,
        "nbytes": data.nbytes,
    }
