"""Spool entries written by tracked 0.1, converted to journals so `tracked sync` sends them.

A 0.1 entry is a directory `<spool_dir>/<run_uuid>/` with `record.json` (the whole run),
`manifest.json` (checksums), `files/<i>`, `models/<i>` and perhaps `promote.pkl`. Each complete
entry becomes a journal in place: the run's events written as frames, its files and models moved
into the journal's own folders. The pickled promotion policies are never loaded (nothing in the
spool runs code): the converted run is registered but not promoted, and sync says so. A torn
entry (no manifest, a checksum that does not match) is reported and left as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from tracked import journal as J
from tracked.journal import Kind

__all__ = ["convert_legacy"]

RECORD = "record.json"
MANIFEST = "manifest.json"


def convert_legacy(spool_dir: Path) -> list[Any]:
    """Convert every 0.1 entry in `spool_dir`; returns SyncEntry lines for those that can't be."""
    from tracked.sync import SyncEntry

    problems = []
    for path in sorted(spool_dir.iterdir()):
        if path.name.startswith(".") or not (path / RECORD).exists():
            continue
        if (path / J.JOURNAL_FILE).exists():
            continue
        reason = _verify(path)
        if reason is not None:
            problems.append(SyncEntry(path.name, "torn", str(path), detail=reason))
            continue
        try:
            _convert(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            detail = f"a tracked 0.1 entry that cannot be converted ({type(exc).__name__}: {exc})"
            problems.append(SyncEntry(path.name, "torn", str(path), detail=detail))
    return problems


def _verify(path: Path) -> str | None:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        return "torn: no manifest (the entry was never completed)"
    except (OSError, ValueError) as exc:
        return f"torn: unreadable manifest ({exc})"
    for relative, expected in manifest.get("files", {}).items():
        file = path / relative
        if not file.is_file():
            return f"torn: {relative} is missing"
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        if file.stat().st_size != expected.get("size") or digest != expected.get("sha256"):
            return f"torn: checksum mismatch for {relative}"
    return None


def _convert(path: Path) -> None:
    document = json.loads((path / RECORD).read_text())
    record = document["record"]
    header = {
        "format": 2,
        "converted_from": 1,
        "name": record["name"],
        "base_name": record["name"],
        "experiment": record["experiment"],
        "project": record["project"],
        "parent_run_id": record.get("parent_run_id"),
        "start_time": record["start_time"],
        "tags": record.get("tags") or {},
        "params": record.get("params") or {},
        "model_name": record.get("model_name"),
        "store": document.get("store", ""),
        "naming": document.get("naming") or "{project}-{name}",
    }
    frames = [J.MAGIC, J.frame(Kind.START, J._json(header))]
    keys: dict[str, int] = {}
    points = []
    for key, value, step, timestamp in record.get("metrics") or ():
        if key not in keys:
            keys[key] = len(keys)
        points.append((0, keys[key], float(value), int(step), int(timestamp)))
    if keys:
        frames.append(J.frame(Kind.KEYS, J._json({"keys": [[i, k] for k, i in keys.items()]})))
    if points:
        frames.append(J.encode_points(points))
    if record.get("inputs"):
        frames.append(J.frame(Kind.INPUTS, J._json({"slot": 0, "inputs": record["inputs"]})))
    for artifact in record.get("artifacts") or ():
        if artifact.get("local_path"):
            frames.append(
                J.frame(
                    Kind.ARTIFACT,
                    J._json({"slot": 0, "path": artifact["path"], "file": artifact["local_path"]}),
                )
            )
    chosen = None
    for model in record.get("models") or ():
        if not model.get("path") or not model.get("flavor"):
            continue
        frame = {
            "slot": 0,
            "name": model["name"],
            "dir": model["path"],
            "flavor": model["flavor"],
            "serialization": None,
            "register": bool(model.get("register", True)),
        }
        frames.append(J.frame(Kind.MODEL, J._json(frame)))
        if chosen is None and frame["register"]:
            chosen = [0, model["name"]]
    promote = document.get("promote") or {}
    intent = {
        "register": bool(document.get("register", True)),
        "model": chosen,
        "naming": header["naming"],
        "model_name": record.get("model_name"),
        "policies": [
            {"format": 0, "text": text, "reason": "stored as a pickle by tracked 0.1, not loaded"}
            for text in promote.get("policies") or ()
        ],
    }
    frames.append(J.frame(Kind.INTENT, J._json(intent)))
    end = {
        "slot": 0,
        "status": record.get("status", "FINISHED"),
        "end_time": record.get("end_time"),
    }
    frames.append(J.frame(Kind.END, J._json(end)))
    tmp = path / f".{J.JOURNAL_FILE}.converting"
    with open(tmp, "wb") as fh:
        fh.write(b"".join(frames))
        fh.flush()
        os.fsync(fh.fileno())
    for name in ("promote.pkl", "state"):  # pickles are never loaded; 0.1 progress markers
        target = path / name
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists():
            target.unlink()
    os.replace(tmp, path / J.JOURNAL_FILE)
    (path / J.LOCK_FILE).touch(mode=0o600)
    (path / RECORD).rename(path / "record-0.1.json")
    (path / MANIFEST).unlink()
