"""The offline spool: where a run goes when the tracking store cannot take it (issue #7).

A run whose store was unreachable at its start, or failed on the way, is written whole to
`Settings.spool_dir` when it ends: params, tags, every metric point with its step and timestamp,
dataset inputs, artifacts, the models (saved in their flavor's format), and the intended
registration and promotion. `tracked sync` (tracked/sync.py) replays it later.

One entry is one directory, `<spool_dir>/<run_uuid>/`:

    record.json     the RunRecord (`RunRecord.to_dict`) and what sync needs besides it
    files/<i>       artifact i of the record (a file or a directory)
    models/<i>      model i, an MLflow model directory written by `save_model`
    promote.pkl     the PromotionPolicy objects, cloudpickled (absent when they cannot be)
    manifest.json   sha256 and size of every file above; written last

It is written under `<spool_dir>/.tmp-<hex>`, every file and directory fsync'd, then renamed into
place, so an entry either exists whole or not at all; a leftover `.tmp-*` directory, a missing
manifest or a checksum that does not match marks a torn entry, which sync reports and never
replays. sync removes a replayed entry by renaming it to `.done-<run_uuid>` first, so a crash
in the middle of the removal never looks like a new entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracked.errors import SpoolError, TrackingError
from tracked.problems import logger
from tracked.record import Artifact, ModelCapture, RunRecord, now_ms

__all__ = [
    "FORMAT",
    "SpooledRun",
    "TornEntry",
    "mark_done",
    "read_state",
    "remove_entry",
    "scan",
    "spool_run",
    "write_entry",
    "write_state",
]

FORMAT = 1
RECORD = "record.json"
MANIFEST = "manifest.json"
POLICIES = "promote.pkl"
STATE = "state"  # progress markers sync writes into an entry; not part of the manifest
TMP_PREFIX = ".tmp-"
DONE_PREFIX = ".done-"


@dataclass
class SpooledRun:
    """A complete spool entry, read back: the record (artifact and model paths absolute) and
    what the run intended beyond it."""

    path: Path
    record: RunRecord
    store: str  # the store the run was headed for (credentials redacted)
    naming: str  # the model-name template in force for the run
    register: bool
    policies: list[Any] | None  # the PromotionPolicy objects; None when they were not saved
    policy_text: list[str]  # the policies as text, always kept
    policy_error: str | None  # why the policies could not be saved, when they could not
    spooled_at: int

    @property
    def spool_id(self) -> str:
        return self.path.name

    def registered_model(self) -> ModelCapture | None:
        """The model sync registers: the first saved one marked for registration, as a live run
        registers the first, and only for a run that finished."""
        if not self.register or self.record.status != "FINISHED":
            return None
        for capture in self.record.models:
            if capture.register and capture.saved_path is not None and capture.flavor:
                return capture
        return None


@dataclass(frozen=True)
class TornEntry:
    """A spool entry that cannot be replayed: half written, or changed since."""

    path: Path
    reason: str

    @property
    def spool_id(self) -> str:
        return self.path.name


# -- writing ------------------------------------------------------------------------------------


def spool_run(run: Any) -> Path | None:
    """Write `run` (a TrackedRun whose store failed) to the spool, and say so in one line.

    Never raises: a spool that cannot be written is reported, and the training's result stays
    untouched either way.
    """
    from tracked.capture.secrets import redact_value

    settings = run.settings
    record: RunRecord = run.record
    store = redact_value(settings.tracking_uri)
    notes: list[str] = []
    try:
        path = write_entry(
            Path(settings.spool_dir),
            record,
            store=store,
            naming=settings.naming,
            register=bool(run.register),
            model_example=_example(run),
            notes=notes,
            lock=run._lock,
        )
    except Exception as exc:
        message = (
            f"tracked: the tracking store {store} failed and run {record.name!r} could not be "
            f"spooled to {settings.spool_dir} ({type(exc).__name__}: {exc}); "
            "this run is not recorded"
        )
        run.problems.seen.append(message)
        logger.warning(message)
        return None
    metric_points = len(record.metrics)
    what = [f"{metric_points} metric point{'s' if metric_points != 1 else ''}"]
    models = [m for m in record.models if m.obj is not None]
    if models:
        what.append("model" if len(models) == 1 else f"{len(models)} models")
    extra = "".join(f"; {note}" for note in notes)
    failure = "was unreachable" if run.run_id is None else "failed during the run"
    message = (
        f"tracked: the tracking store {store} {failure}; run {record.name!r} "
        f"({', '.join(what)}) spooled to {path}; send it with `tracked sync`{extra}"
    )
    run.problems.seen.append(message)
    logger.warning(message)
    return path


def write_entry(
    spool_dir: Path,
    record: RunRecord,
    *,
    store: str,
    naming: str,
    register: bool = True,
    model_example: Any = None,
    notes: list[str] | None = None,
    lock: Any = None,
) -> Path:
    """Write `record` as a complete entry under `spool_dir`; returns the entry's directory.

    Models in `record.models` are saved with `tracked.models.flavors.save_model`; a model that
    cannot be saved, or policies that cannot be pickled, are noted in `notes` (for the one line
    the user sees) and the rest of the run is still spooled.
    """
    notes = notes if notes is not None else []
    spool_dir.mkdir(parents=True, exist_ok=True)
    final = spool_dir / record.run_uuid
    if final.exists():
        raise SpoolError(f"tracked: spool entry {final} already exists")
    tmp = spool_dir / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        if lock is not None:
            with lock:  # the training thread may still append points (a run ended by a signal)
                metrics = list(record.metrics)
        else:
            metrics = list(record.metrics)
        artifacts = [_write_artifact(tmp, i, a) for i, a in enumerate(record.artifacts)]
        tags = dict(record.tags)
        models = []
        for i, capture in enumerate(record.models):
            models.append(_write_model(tmp, i, capture, model_example, tags, notes))
        policy_text = [repr(p) for p in record.promote]
        policy_error = _write_policies(tmp, record.promote)
        if policy_error is not None:
            notes.append(
                f"its promotion policy could not be saved ({policy_error}) and is kept as text "
                "only, so sync will not promote"
            )
        spooled = dataclasses.replace(
            record,
            tags=tags,
            metrics=metrics,
            artifacts=artifacts,
            models=models,
            promote=[],
        )
        document = {
            "format": FORMAT,
            "spool_id": record.run_uuid,
            "spooled_at": now_ms(),
            "store": store,
            "naming": naming,
            "register": register,
            "promote": {
                "file": POLICIES if record.promote and policy_error is None else None,
                "policies": policy_text,
                "error": policy_error,
            },
            "record": spooled.to_dict(),
        }
        _write_file(tmp / RECORD, json.dumps(document, indent=1).encode())
        _fsync_tree(tmp)
        manifest: dict[str, Any] = {"format": FORMAT, "files": _file_list(tmp)}
        manifest["record_sha256"] = manifest["files"][RECORD]["sha256"]
        _write_file(tmp / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
        _fsync_dir(tmp)
        os.rename(tmp, final)
        _fsync_dir(spool_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _example(run: Any) -> Any:
    from tracked.models.example import input_example

    try:
        return input_example(getattr(run, "_data_args", {}))
    except Exception:
        return None


def _write_artifact(entry: Path, index: int, artifact: Artifact) -> Artifact:
    relative = f"files/{index}"
    target = entry / relative
    target.parent.mkdir(exist_ok=True)
    if artifact.content is not None:
        _write_file(target, artifact.content)
    elif artifact.local_path and os.path.isdir(artifact.local_path):
        shutil.copytree(artifact.local_path, target)
    elif artifact.local_path:
        shutil.copyfile(artifact.local_path, target)
    else:
        _write_file(target, b"")
    return Artifact(artifact.path, local_path=relative)


def _write_model(
    entry: Path,
    index: int,
    capture: ModelCapture,
    default_example: Any,
    tags: dict[str, str],
    notes: list[str],
) -> ModelCapture:
    """Save one model into the entry; the flavor tags a live run sets go into `tags`."""
    from tracked.models.flavors import save_model

    kept = ModelCapture(None, name=capture.name, register=capture.register)
    if capture.obj is None:
        return kept
    relative = f"models/{index}"
    (entry / "models").mkdir(exist_ok=True)
    example = capture.input_example if capture.input_example is not None else default_example
    try:
        saved = save_model(capture.obj, str(entry / relative), input_example=example)
    except TrackingError as error:
        notes.append(f"model {capture.name!r} could not be saved ({error})")
        return kept
    prefix = "tracked.model." if capture.name == "model" else f"tracked.model.{capture.name}."
    tags[prefix + "flavor"] = saved.flavor
    tags[prefix + "serialization"] = saved.serialization
    kept.flavor, kept.saved_path = saved.flavor, relative
    return kept


def _write_policies(entry: Path, policies: list[Any]) -> str | None:
    """Pickle the policies into the entry; the reason when they cannot be."""
    if not policies:
        return None
    try:
        import cloudpickle

        data = cloudpickle.dumps(list(policies))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    _write_file(entry / POLICIES, data)
    return None


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_tree(root: Path) -> None:
    """fsync every file and directory under `root` (copies and MLflow's writes included)."""
    for directory, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(directory))


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":  # pragma: no cover - directories cannot be opened for fsync there
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_list(entry: Path) -> dict[str, dict[str, Any]]:
    files = {}
    for path in sorted(_files(entry)):
        relative = path.relative_to(entry).as_posix()
        if relative == MANIFEST or relative.startswith(STATE + "/"):
            continue
        files[relative] = {"size": path.stat().st_size, "sha256": _sha256(path)}
    return files


def _files(root: Path) -> Iterator[Path]:
    for directory, _, names in os.walk(root):
        for name in names:
            yield Path(directory, name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- reading --------------------------------------------------------------------------------


def scan(spool_dir: Path, *, clean: bool = True) -> list[SpooledRun | TornEntry]:
    """Every entry in `spool_dir`, oldest first, torn ones (as TornEntry) before them. With
    `clean`, leftovers of a removal that was interrupted (`.done-*`) are deleted."""
    if not spool_dir.is_dir():
        return []
    found: list[SpooledRun | TornEntry] = []
    for path in sorted(spool_dir.iterdir()):
        if not path.is_dir():
            continue
        if path.name.startswith(DONE_PREFIX):
            if clean:
                shutil.rmtree(path, ignore_errors=True)
            continue
        if path.name.startswith(TMP_PREFIX):
            found.append(
                TornEntry(path, "incomplete: still being written, or its writer died mid-way")
            )
            continue
        if path.name.startswith("."):
            continue
        try:
            found.append(read_entry(path))
        except SpoolError as error:
            found.append(TornEntry(path, str(error)))
    found.sort(key=lambda e: e.spooled_at if isinstance(e, SpooledRun) else 0)
    return found


def read_entry(path: Path) -> SpooledRun:
    """Read and verify one entry; SpoolError says what is wrong with a torn or altered one."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise SpoolError("torn: no manifest (the entry was never completed)") from None
    except (OSError, ValueError) as exc:
        raise SpoolError(f"torn: unreadable manifest ({exc})") from None
    listed = manifest.get("files", {})
    if RECORD not in listed or listed[RECORD].get("sha256") != manifest.get("record_sha256"):
        raise SpoolError("torn: the manifest does not vouch for record.json")
    for relative, expected in listed.items():
        file = path / relative
        if not file.is_file():
            raise SpoolError(f"torn: {relative} is missing")
        if file.stat().st_size != expected["size"] or _sha256(file) != expected["sha256"]:
            raise SpoolError(f"torn: checksum mismatch for {relative}")
    try:
        document = json.loads((path / RECORD).read_text())
        if document.get("format") != FORMAT:
            raise SpoolError(f"unknown spool format {document.get('format')!r}")
        record = RunRecord.from_dict(document["record"])
    except SpoolError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpoolError(f"unreadable record.json ({type(exc).__name__}: {exc})") from None
    record.artifacts = [
        Artifact(a.path, local_path=str(path / a.local_path)) if a.local_path else a
        for a in record.artifacts
    ]
    for capture in record.models:
        if capture.saved_path is not None:
            capture.saved_path = str(path / capture.saved_path)
    promote = document.get("promote") or {}
    policies: list[Any] | None = [] if not promote.get("policies") else None
    policy_error = promote.get("error")
    if promote.get("file"):
        try:
            import cloudpickle

            policies = list(cloudpickle.loads((path / promote["file"]).read_bytes()))
        except Exception as exc:
            policies, policy_error = None, f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    return SpooledRun(
        path=path,
        record=record,
        store=document.get("store", ""),
        naming=document.get("naming") or "{project}-{name}",
        register=bool(document.get("register", True)),
        policies=policies,
        policy_text=list(promote.get("policies") or []),
        policy_error=policy_error,
        spooled_at=int(document.get("spooled_at", 0)),
    )


# -- progress and removal -------------------------------------------------------------------


def read_state(entry: SpooledRun, name: str) -> dict[str, Any] | None:
    """A progress marker sync wrote into the entry (e.g. "promoted"), or None."""
    try:
        return dict(json.loads((entry.path / STATE / f"{name}.json").read_text()))
    except (OSError, ValueError):
        return None


def write_state(entry: SpooledRun, name: str, value: dict[str, Any]) -> None:
    """Record that a step of the replay is done, crash-safely (temp file, fsync, rename)."""
    directory = entry.path / STATE
    directory.mkdir(exist_ok=True)
    tmp = directory / f"{TMP_PREFIX}{name}.json"
    _write_file(tmp, json.dumps(value).encode())
    os.replace(tmp, directory / f"{name}.json")
    _fsync_dir(directory)


def mark_done(entry: SpooledRun | TornEntry) -> Path:
    """Take a replayed entry out of the spool (rename to `.done-*`); `remove_entry` deletes it."""
    done = entry.path.with_name(f"{DONE_PREFIX}{entry.path.name}")
    os.rename(entry.path, done)
    _fsync_dir(entry.path.parent)
    return done


def remove_entry(entry: SpooledRun | TornEntry) -> None:
    """Remove a fully replayed entry: renamed first, so a crash mid-delete is no new entry."""
    shutil.rmtree(mark_done(entry), ignore_errors=True)
