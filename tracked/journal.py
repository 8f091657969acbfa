"""The journal: every run is first an append-only file on local disk, then sent to the store.

Each run (live or offline) owns a directory under the spool directory, `<spool_dir>/<run_uuid>/`:

    journal       the run's events, in order, as frames (below)
    owner.lock    flock'd by the process that runs it, for its whole life: a journal whose lock
                  can be taken belongs to a process that is gone (exited, crashed, SIGKILL'd)
    cursor.json   how far the sender got: bytes sent, the run ids it created, finish steps done
    files/        artifacts, copied here when they are logged
    models/       models, saved here in their flavor's format when the run ends

The training thread only appends to an in-memory queue: a point to five typed columns (a few
hundred nanoseconds), any other event as its frame; the flusher thread writes the queue to the
file at least every `FLUSH_INTERVAL` seconds (and whenever `HIGH_WATER` points wait), so a
process killed with SIGKILL loses at most the last half second. The sender (tracked/sender.py)
reads the file from its cursor and ships it to the store in large batches; the same sender, run
by `tracked sync`, ships the journals of processes that are gone. A journal is removed once
everything in it is in the store.

The file starts with `MAGIC`, then frames: `<u32 payload length><u32 crc32 of kind+payload><kind>
<payload>`, little-endian. Payloads are JSON except `POINTS`, which is columnar: `<u32 n>` then
n u16 slots, n u32 key ids, n f64 values, n i64 steps, n i64 timestamps (key ids are defined by
`KEYS` frames before their first use). A frame that is cut short or fails its checksum ends the
journal (a torn tail: the writer died mid-write); everything before it is whole.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import shutil
import struct
import sys
import threading
import uuid
import weakref
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracked.errors import SpoolError

__all__ = [
    "FLUSH_INTERVAL",
    "MAGIC",
    "Frame",
    "Journal",
    "Kind",
    "Points",
    "Reader",
    "claim",
    "encode_points",
    "header_of",
    "journal_dirs",
    "read_cursor",
    "write_cursor",
]

MAGIC = b"TRACKED-JOURNAL-2\n"
JOURNAL_FILE = "journal"
LOCK_FILE = "owner.lock"
CURSOR_FILE = "cursor.json"
FILES_DIR = "files"
MODELS_DIR = "models"
FLUSH_INTERVAL = 0.5  # seconds between writes of the queue to the file
HIGH_WATER = 20_000  # queued points that wake the flusher early: memory stays flat
MAX_POINTS_PER_FRAME = 100_000
_HEADER = struct.Struct("<IIc")
_COUNT = struct.Struct("<I")
_LITTLE = sys.byteorder == "little"


class Kind:
    """Frame kinds (one byte each)."""

    START = b"S"  # the run: name, experiment, tags, params, where it goes (JSON)
    PARAMS = b"P"  # {"slot", "params"}
    TAGS = b"T"  # {"slot", "tags"}
    KEYS = b"K"  # {"keys": [[id, key], ...]}: metric keys used by later POINTS frames
    POINTS = b"M"  # columnar metric points (module doc)
    INPUTS = b"I"  # {"slot", "inputs": [DatasetInput.to_dict(), ...], "mlflow": [...]}
    ARTIFACT = b"A"  # {"slot", "path", "file"}: a staged file or directory
    CHILD = b"C"  # {"slot", "name", "framework", "start_time", "retro"}: a training's own run
    MODEL = b"O"  # {"slot", "name", "dir", "flavor", "serialization", "register", ...}
    INTENT = b"R"  # what the run's end should do: registration, promotion policies as data
    END = b"E"  # {"slot", "status", "end_time"}


@dataclass(frozen=True)
class Frame:
    kind: bytes
    payload: bytes
    offset: int  # where the frame starts in the file
    end: int  # where the next one starts

    def json(self) -> dict[str, Any]:
        data = json.loads(self.payload)
        if not isinstance(data, dict):
            raise SpoolError(f"tracked: journal frame at {self.offset} is not an object")
        return data


@dataclass(frozen=True)
class Points:
    """A decoded POINTS frame: five parallel columns."""

    slots: array.array[int]
    keys: array.array[int]
    values: array.array[float]
    steps: array.array[int]
    timestamps: array.array[int]

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def decode(cls, payload: bytes) -> Points:
        (n,) = _COUNT.unpack_from(payload, 0)
        columns: list[Any] = []
        offset = _COUNT.size
        for code, size in (("H", 2), ("I", 4), ("d", 8), ("q", 8), ("q", 8)):
            column = array.array(code)
            column.frombytes(payload[offset : offset + n * size])
            if not _LITTLE:  # pragma: no cover - big-endian machines
                column.byteswap()
            if len(column) != n:
                raise SpoolError("tracked: a POINTS frame is shorter than its count")
            columns.append(column)
            offset += n * size
        return cls(*columns)


class _Columns:
    """Points waiting for the flusher, column by column (what a POINTS frame holds): appending
    to typed arrays is cheap for the training thread, and writing them is a copy of bytes."""

    __slots__ = ("keys", "slots", "steps", "timestamps", "values")

    def __init__(self) -> None:
        self.slots = array.array("H")
        self.keys = array.array("I")
        self.values = array.array("d")
        self.steps = array.array("q")
        self.timestamps = array.array("q")

    def trim(self) -> None:
        """Cut every column to the shortest (a point whose append failed half way)."""
        columns = (self.slots, self.keys, self.values, self.steps, self.timestamps)
        n = min(len(column) for column in columns)
        for column in columns:
            del column[n:]

    def frames(self) -> Iterator[bytes]:
        """POINTS frames of at most MAX_POINTS_PER_FRAME points each."""
        columns = (self.slots, self.keys, self.values, self.steps, self.timestamps)
        total = len(self.values)
        for start in range(0, total, MAX_POINTS_PER_FRAME):
            end = min(start + MAX_POINTS_PER_FRAME, total)
            parts = [_COUNT.pack(end - start)]
            for column in columns:
                part = column[start:end] if (start, end) != (0, total) else column
                if not _LITTLE:  # pragma: no cover - big-endian machines
                    part = array.array(part.typecode, part)
                    part.byteswap()
                parts.append(part.tobytes())
            yield frame(Kind.POINTS, b"".join(parts))


def encode_points(points: Iterable[tuple[int, int, float, int, int]]) -> bytes:
    """POINTS frames for (slot, key id, value, step, timestamp) tuples (`tracked sync`'s
    conversion of old spool entries)."""
    columns = _Columns()
    for slot, key_id, value, step, timestamp in points:
        columns.slots.append(slot)
        columns.keys.append(key_id)
        columns.values.append(value)
        columns.steps.append(step)
        columns.timestamps.append(timestamp)
    return b"".join(columns.frames())


def frame(kind: bytes, payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), zlib.crc32(kind + payload), kind) + payload


def _json(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), allow_nan=True).encode()


# -- writing ----------------------------------------------------------------------------------


class Journal:
    """One run's journal, open for appending by the process that runs it. Thread-safe."""

    def __init__(self, directory: Path, header: Mapping[str, Any]) -> None:
        self.directory = directory
        _private_dir(directory.parent)
        directory.mkdir(mode=0o700)
        self._lock_fd = _take_lock(directory / LOCK_FILE, blocking=True)
        self._fd = os.open(
            directory / JOURNAL_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600
        )
        os.write(self._fd, MAGIC + frame(Kind.START, _json(header)))
        # What waits for the flusher, in order: closed point columns and other events' frames;
        # the points logged since the last event are in `_points`.
        self._pending: list[_Columns | bytes] = []
        self._points = _Columns()
        self._append = self._appenders()
        self._keys: dict[str, int] = {}
        self._queue_lock = threading.Lock()  # appending and taking the queue
        self._flush_lock = threading.Lock()  # writing the file
        self._files = 0
        self._files_lock = threading.Lock()
        self.closed = False
        self.written = len(MAGIC)  # bytes in the file
        _flusher.add(self)

    # -- appending (any thread) ------------------------------------------------------------------

    def _appenders(self) -> tuple[Any, ...]:
        points = self._points
        return (
            points.slots.append,
            points.keys.append,
            points.values.append,
            points.steps.append,
            points.timestamps.append,
        )

    def point(self, slot: int, key: str, value: float, step: int, timestamp: int) -> None:
        """Queue one metric point: the training thread's whole cost of logging it."""
        key_id = self._keys.get(key)
        if key_id is None:
            key_id = self._define(key)
        lock = self._queue_lock
        lock.acquire()  # not `with`: this is the hot path, and acquire/release is cheaper
        try:
            add_slot, add_key, add_value, add_step, add_timestamp = self._append
            add_slot(slot)
            add_key(key_id)
            add_value(value)
            add_step(step)
            add_timestamp(timestamp)
            waiting = len(self._points.values)
        except (OverflowError, TypeError):  # out of its column's range: the columns stay even
            self._points.trim()
            raise
        finally:
            lock.release()
        if waiting >= HIGH_WATER:
            _flusher.wake()

    def event(self, kind: bytes, payload: Mapping[str, Any]) -> None:
        """Queue any other event; it keeps its place among the points."""
        data = frame(kind, _json(payload))
        with self._queue_lock:
            self._close_points()
            self._pending.append(data)

    def _close_points(self) -> None:
        """The points so far go before what is queued next (the queue lock is held)."""
        if len(self._points.values):
            self._pending.append(self._points)
            self._points = _Columns()
            self._append = self._appenders()

    def _define(self, key: str) -> int:
        with self._queue_lock:
            key_id = self._keys.get(key)
            if key_id is None:
                key_id = len(self._keys)
                self._close_points()
                self._pending.append(frame(Kind.KEYS, _json({"keys": [[key_id, key]]})))
                self._keys[key] = key_id
            return key_id

    def stage(self, source: str | os.PathLike[str], name: str | None = None) -> str:
        """Copy a file or directory into the journal now; returns its path in the journal.

        The copy is complete (written under a temporary name, then renamed) before this returns,
        so the source may be deleted right after.
        """
        source = Path(source)
        target, tmp = self._new_file(name or source.name)
        if source.is_dir():
            shutil.copytree(source, tmp, symlinks=False)
        else:
            shutil.copyfile(source, tmp)
        os.replace(tmp, self.directory / target)
        return target

    def stage_bytes(self, data: bytes, name: str) -> str:
        target, tmp = self._new_file(name)
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, self.directory / target)
        return target

    def model_dir(self, slot: int, name: str) -> Path:
        """A directory path (not created) to save the model `name` of `slot` into."""
        (self.directory / MODELS_DIR).mkdir(mode=0o700, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return self.directory / MODELS_DIR / f"{slot}-{safe}-{uuid.uuid4().hex[:8]}"

    def _new_file(self, name: str) -> tuple[str, Path]:
        with self._files_lock:
            self._files += 1
            index = self._files
        (self.directory / FILES_DIR).mkdir(mode=0o700, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[-80:] or "file"
        relative = f"{FILES_DIR}/{index}-{safe}"
        return relative, self.directory / FILES_DIR / f".tmp-{index}"

    # -- writing (the flusher thread, or the run's end) --------------------------------------------

    def flush(self) -> int:
        """Write everything queued to the file; returns the bytes written."""
        with self._flush_lock:
            if self.closed:
                return 0
            with self._queue_lock:
                self._close_points()
                pending, self._pending = self._pending, []
            if not pending:
                return 0
            data = b"".join(
                b"".join(item.frames()) if isinstance(item, _Columns) else item for item in pending
            )
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self.written += len(data)
            return len(data)

    def close(self) -> None:
        """Write the rest and stop appending; the flusher thread fsyncs and closes the file
        (within `FLUSH_INTERVAL`: not the training thread's wait). The owner lock is kept
        (`release`)."""
        self.flush()
        with self._flush_lock:
            if not self.closed:
                self.closed = True
                _flusher.sync_and_close(self._fd)
        _flusher.discard(self)

    def release(self) -> None:
        """Give up ownership: `tracked sync` may take the journal from now on."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def remove(self) -> None:
        """Delete the journal (everything in it is in the store)."""
        if not self.closed:
            self.close()
        remove_dir(self.directory)
        self.release()


def remove_dir(directory: Path) -> None:
    """Remove a finished journal: renamed first, so a crash mid-delete is no journal at all."""
    done = directory.with_name(f".done-{directory.name}")
    with contextlib.suppress(FileNotFoundError):
        os.rename(directory, done)
    shutil.rmtree(done, ignore_errors=True)


class _Flusher:
    """One thread per process: writes every open journal's queue at least every interval."""

    def __init__(self) -> None:
        self._journals: weakref.WeakSet[Journal] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Any] = []
        self._closing: list[int] = []  # closed journals' files, to fsync and close
        self.error: BaseException | None = None

    def add(self, journal: Journal) -> None:
        with self._lock:
            self._journals.add(journal)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="tracked-journal", daemon=True
                )
                self._thread.start()

    def discard(self, journal: Journal) -> None:
        with self._lock:
            self._journals.discard(journal)

    def on_write(self, listener: Any) -> None:
        """Call `listener()` after each round that wrote something (the sender's wake-up)."""
        self._listeners.append(listener)

    def wake(self) -> None:
        self._wake.set()

    def sync_and_close(self, fd: int) -> None:
        """fsync and close a closed journal's file on the flusher thread."""
        with self._lock:
            self._closing.append(fd)
        self._wake.set()

    def _sync_closed(self) -> None:
        with self._lock:
            closing, self._closing = self._closing, []
        for fd in closing:
            with contextlib.suppress(OSError):  # the data is written; only its fsync failed
                os.fsync(fd)
            os.close(fd)

    def flush_all(self) -> None:
        self._sync_closed()
        with self._lock:
            journals = list(self._journals)
        wrote = False
        for journal in journals:
            try:
                wrote = journal.flush() > 0 or wrote
            except OSError as exc:  # a full disk: reported once; the training goes on
                if self.error is None:
                    self.error = exc
                    from tracked.problems import logger

                    logger.warning(
                        "tracked: cannot write the journal %s (%s); points logged from now on "
                        "may be lost if the store is not reachable",
                        journal.directory,
                        exc,
                    )
        if wrote:
            for listener in self._listeners:
                listener()

    def _run(self) -> None:
        while True:
            self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()
            self.flush_all()


_flusher = _Flusher()


def flush_all() -> None:
    """Write every open journal's queue now (at exit, on SIGTERM)."""
    _flusher.flush_all()


def on_write(listener: Any) -> None:
    _flusher.on_write(listener)


# -- reading ----------------------------------------------------------------------------------


class Reader:
    """Reads a journal's frames from an offset; stops at the end or at a torn frame."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / JOURNAL_FILE
        self.torn: str | None = None  # why reading stopped before the end of the file
        self.end = 0  # the offset after the last whole frame read

    def frames(self, start: int = 0) -> Iterator[Frame]:
        """Whole frames from `start` (0: the beginning) to the last complete one."""
        self.torn = None
        if not self.path.exists():
            raise SpoolError(f"tracked: {self.path} is missing")
        with open(self.path, "rb") as fh:
            if start == 0:
                magic = fh.read(len(MAGIC))
                if magic != MAGIC:
                    if MAGIC.startswith(magic):
                        self.torn, self.end = "the journal's first bytes are incomplete", 0
                        return
                    raise SpoolError(f"tracked: {self.path} is not a tracked journal")
                start = len(MAGIC)
            fh.seek(start)
            offset = start
            self.end = start
            while True:
                head = fh.read(_HEADER.size)
                if not head:
                    return
                if len(head) < _HEADER.size:
                    self.torn = f"a frame header cut short at byte {offset}"
                    return
                length, crc, kind = _HEADER.unpack(head)
                payload = fh.read(length)
                if len(payload) < length:
                    self.torn = f"a frame cut short at byte {offset}"
                    return
                if zlib.crc32(kind + payload) != crc:
                    self.torn = f"a frame with a wrong checksum at byte {offset}"
                    return
                end = offset + _HEADER.size + length
                self.end = end
                yield Frame(kind, payload, offset, end)
                offset = end

    def header(self) -> dict[str, Any]:
        for found in self.frames():
            if found.kind != Kind.START:
                break
            return found.json()
        raise SpoolError(f"tracked: {self.path} has no START frame")

    def verify(self) -> int:
        """Bytes of a torn tail (0 when the journal ends on a whole frame). A bad frame with
        whole frames after it is corruption, not a torn write: SpoolError, nothing is cut."""
        for _ in self.frames():
            pass
        size = self.path.stat().st_size
        if self.torn is None or size <= self.end:
            return 0
        with open(self.path, "rb") as fh:
            fh.seek(self.end)
            head = fh.read(_HEADER.size)
        if len(head) == _HEADER.size:
            length = _HEADER.unpack(head)[0]
            if self.end + _HEADER.size + length < size:
                raise SpoolError(
                    f"tracked: journal {self.path} is corrupt at byte {self.end} "
                    f"({self.torn}) with {size - self.end} bytes after it; left as it is"
                )
        return size - self.end

    def cut_torn_tail(self) -> int:
        """Truncate the file after its last whole frame (only for a journal nobody writes);
        returns the bytes removed. Raises SpoolError for a corrupt journal (see `verify`)."""
        torn = self.verify()
        if torn == 0:
            return 0
        with open(self.path, "r+b") as fh:
            fh.truncate(self.end)
            fh.flush()
            os.fsync(fh.fileno())
        return torn


# -- ownership and progress -------------------------------------------------------------------


def _private_dir(path: Path) -> None:
    """Create `path` (and parents) readable by this user only; tighten it if it exists."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)


def _take_lock(path: Path, *, blocking: bool) -> int | None:
    """An fd holding an exclusive flock on `path`, or None if another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: ownership by pid file only
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def claim(directory: Path) -> Iterator[bool]:
    """Take ownership of a journal whose process is gone; yields False if it is still owned."""
    try:
        fd = _take_lock(directory / LOCK_FILE, blocking=False)
    except FileNotFoundError:
        yield False
        return
    if fd is None:
        yield False
        return
    try:
        yield True
    finally:
        os.close(fd)


def journal_dirs(spool_dir: Path, *, clean: bool = False) -> list[Path]:
    """Every journal directory under `spool_dir`, oldest first (by the journal file's mtime).
    With `clean`, leftovers of a removal that was interrupted (`.done-*`) are deleted."""
    if not spool_dir.is_dir():
        return []
    found = []
    for path in spool_dir.iterdir():
        if path.name.startswith("."):
            if clean and path.name.startswith(".done-"):
                shutil.rmtree(path, ignore_errors=True)  # a removal that was interrupted
            continue
        if (path / JOURNAL_FILE).is_file():
            found.append(path)
    return sorted(found, key=lambda p: ((p / JOURNAL_FILE).stat().st_mtime_ns, p.name))


def header_of(directory: Path) -> dict[str, Any]:
    """The START header of the journal in `directory`; {} when it cannot be read (torn, foreign,
    gone: `tracked sync` reports those)."""
    try:
        return Reader(directory).header()
    except (SpoolError, OSError, ValueError):
        return {}


def read_cursor(directory: Path) -> dict[str, Any]:
    """The sender's progress in a journal ({} before anything was sent)."""
    try:
        data = json.loads((directory / CURSOR_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_cursor(directory: Path, cursor: Mapping[str, Any]) -> None:
    """Record progress atomically (a crash leaves the old cursor or the new one, never half).

    Not fsync'd: a cursor that lags after a power cut only makes the sender send again what the
    store already has, and the store ignores duplicates.
    """
    tmp = directory / f".{CURSOR_FILE}.{threading.get_ident()}"
    tmp.write_text(json.dumps(cursor, separators=(",", ":")))
    os.replace(tmp, directory / CURSOR_FILE)
