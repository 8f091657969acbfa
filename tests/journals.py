"""Reading the journals a test's runs left in the spool directory (what sync would send)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tracked
from tracked import journal as J
from tracked.finish import fold
from tracked.journal import Kind, Points, Reader
from tracked.record import RunRecord


@dataclass
class JournalView:
    """One journal, read whole: its run as a record, and every metric point by key."""

    directory: Path
    record: RunRecord
    # key -> [(step, timestamp, value)], in the order logged
    points: dict[str, list[tuple[int, int, float]]] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)  # artifact path -> staged file
    models: list[dict[str, object]] = field(default_factory=list)
    intent: dict[str, object] | None = None

    def steps(self, key: str) -> list[int]:
        return [step for step, _, _ in self.points.get(key, [])]


def spool_dir() -> Path:
    return Path(tracked.get_config().spool_dir)


def journals(directory: Path | None = None) -> list[JournalView]:
    """Every journal in the spool directory (the configured one by default), oldest first."""
    return [read_journal(path) for path in J.journal_dirs(directory or spool_dir())]


def read_journal(directory: Path) -> JournalView:
    view = JournalView(directory, fold(directory))
    keys: list[str] = []
    for found in Reader(directory).frames(0):
        if found.kind == Kind.KEYS:
            for key_id, key in found.json()["keys"]:
                keys.extend([""] * (key_id + 1 - len(keys)))
                keys[key_id] = key
        elif found.kind == Kind.POINTS:
            chunk = Points.decode(found.payload)
            for key, value, step, stamp in zip(
                chunk.keys, chunk.values, chunk.steps, chunk.timestamps, strict=True
            ):
                view.points.setdefault(keys[key], []).append((step, stamp, value))
        elif found.kind == Kind.ARTIFACT:
            data = found.json()
            view.artifacts[str(data["path"])] = str(data["file"])
        elif found.kind == Kind.MODEL:
            view.models.append(found.json())
        elif found.kind == Kind.INTENT:
            view.intent = found.json()
    return view


def only_journal(directory: Path | None = None) -> JournalView:
    (view,) = journals(directory)
    return view
