"""The sender: ships journals to the tracking store, in the background or from `tracked sync`.

A `Shipment` sends one journal (tracked/journal.py) to one store, from its cursor: it creates the
run (and the child runs of a journal's trainings), sends params, tags, inputs and artifacts as
they come and metric points in large batches, and records how far it got after every batch. A
shipment interrupted anywhere (an outage, a crash, SIGKILL) resumes from its cursor: what it sends
again the store already has and ignores (same key, step, timestamp and value), the run is found
again by its `tracked.run_uuid` tag, so nothing is duplicated.

When a shipment reaches the run's END it hands over to `tracked.finish.complete`: models,
registration, promotion (each done once, marked in the cursor), then the run's status, written
after its last point. Then the journal is removed.

One `Sender` thread per process runs the shipments of the live runs. The training thread never
waits for it; the interpreter's exit does, for at most `Settings.exit_wait` seconds, and what is
left then stays in the journal for `tracked sync`. A live run's journal is left alone for its first
`START_HOLD` seconds (unless it ends, or someone waits for it): the first contact with the store
(opening it, creating the run, its params and tags) is the sender's costliest work, and a short
training would otherwise share the interpreter with it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracked import journal as J
from tracked import tags as T
from tracked.errors import (
    NotFoundError,
    StoreRejectedError,
    StoreUnavailableError,
    TrackingError,
)
from tracked.journal import Kind, Points, Reader
from tracked.problems import logger
from tracked.record import DatasetInput, now_ms

if TYPE_CHECKING:
    from tracked.record import RunRecord
    from tracked.store import Store
    from tracked.writers.mlflow import MlflowWriter

__all__ = ["SEND_INTERVAL", "START_HOLD", "Sender", "Shipment", "sender"]

SEND_INTERVAL = 1.0  # seconds between rounds for a journal that is being written
START_HOLD = 2.0  # seconds a live run is left to its training before the store is first called
COMMIT_POINTS = 50_000  # points sent between two cursor updates (a SQL store)
COMMIT_POINTS_HTTP = 1_000  # a server: one request's worth, so an outage resends little


@dataclass
class _Batch:
    """What one pass collected, per run id, before it is sent."""

    params: dict[str, dict[str, str]] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    points: dict[str, tuple[list[str], list[float], list[int], list[int]]] = field(
        default_factory=dict
    )
    count: int = 0

    def add_points(self, run_id: str, keys: list[str], chunk: Points, mask: Any = None) -> None:
        columns = self.points.setdefault(run_id, ([], [], [], []))
        if mask is None:
            columns[0].extend(keys[k] for k in chunk.keys)
            columns[1].extend(chunk.values)
            columns[2].extend(chunk.steps)
            columns[3].extend(chunk.timestamps)
            self.count += len(chunk)
            return
        for i in mask:
            columns[0].append(keys[chunk.keys[i]])
            columns[1].append(chunk.values[i])
            columns[2].append(chunk.steps[i])
            columns[3].append(chunk.timestamps[i])
            self.count += 1

    def send(self, writer: MlflowWriter, refused: Callable[[str, list[str]], None]) -> None:
        for run_id in dict.fromkeys([*self.params, *self.tags, *self.points]):
            bad_params, bad_tags = writer.log(
                run_id,
                params=self.params.get(run_id),
                tags=self.tags.get(run_id),
                points=self.points.get(run_id),
            )
            if bad_params:
                refused("params", bad_params)
            if bad_tags:
                refused("tags", bad_tags)
        self.params.clear()
        self.tags.clear()
        self.points.clear()
        self.count = 0


class Shipment:
    """Sends one journal to one store; resumable from the journal's cursor. Thread-safe."""

    def __init__(
        self,
        directory: Path,
        store: Store,
        *,
        record: RunRecord | None = None,
        on_problem: Callable[[str, str], None] | None = None,
    ) -> None:
        from tracked.writers.mlflow import MlflowWriter

        self.directory = directory
        self.store = store
        self.writer = MlflowWriter(store, artifact_location=None)
        self.record = record  # the live run's record; None when replaying a journal
        self.reader = Reader(directory)
        self.cursor: dict[str, Any] = J.read_cursor(directory) or {}
        self.cursor.setdefault("offset", 0)
        self.cursor.setdefault("runs", {})
        self.cursor.setdefault("uris", {})
        self.cursor.setdefault("done", {})
        self.header: dict[str, Any] = {}
        self.keys: list[str] = []
        self.children: dict[int, dict[str, Any]] = {}
        self.models: list[dict[str, Any]] = []
        self.intent: dict[str, Any] | None = None
        self.end: dict[str, Any] | None = None  # the END frame of the run itself
        self.finished = False
        self.abandoned = False  # given up by this process (tracked sync took the journal over)
        self.points_sent = 0  # metric points this shipment sent (the store keeps each once)
        self.failure: TrackingError | None = None
        self.retry_at = 0.0
        self.hold_until = 0.0  # time.monotonic() before which the sender leaves a live run be
        self.created = threading.Event()
        self._lock = threading.RLock()  # run creation, the cursor
        self._pump_lock = threading.Lock()  # one pass at a time (the sender, or sync)
        self._scanned = False
        self._attempted = False
        self._commit_every = COMMIT_POINTS_HTTP if store.http else COMMIT_POINTS
        self.journal: Any = None  # the live run's open Journal, removed once all is sent
        self.strict = False  # a live run under strict=True: a parent that is not there raises
        self._on_problem = on_problem or (lambda kind, message: logger.warning(message))
        if self.cursor["runs"].get("0"):
            self.created.set()

    def __repr__(self) -> str:
        return f"<Shipment {self.directory.name} offset={self.cursor['offset']}>"

    @property
    def run_uuid(self) -> str:
        return self.directory.name

    @property
    def run_id(self) -> str | None:
        return self.cursor["runs"].get("0")

    def artifact_uri(self, slot: int = 0) -> str | None:
        return self.cursor["uris"].get(str(slot))

    def held(self, now: float) -> bool:
        """True while the sender leaves this live run to its training (see START_HOLD)."""
        journal = self.journal
        return now < self.hold_until and journal is not None and not journal.closed

    def done(self, step: str) -> Any:
        return self.cursor["done"].get(step)

    def mark(self, step: str, value: Any = True) -> None:
        with self._lock:
            self.cursor["done"][step] = value
            J.write_cursor(self.directory, self.cursor)

    # -- runs -----------------------------------------------------------------------------------

    def ensure_run(self, slot: int = 0) -> str:
        """The store's run id for `slot` (0: the run, k: a training's child run), created first
        if need be. A training that logs into the main run has the main run's id."""
        with self._lock:
            self._scan_metadata()
            found = self.cursor["runs"].get(str(slot))
            if found:
                return str(found)
            if slot != 0 and slot not in self.children:
                return self.ensure_run(0)
            run_id = self._create(slot)
            self.cursor["runs"][str(slot)] = run_id
            J.write_cursor(self.directory, self.cursor)
            if slot == 0:
                self.created.set()
            return run_id

    def _create(self, slot: int) -> str:
        header = self.header
        writer = self.writer
        if slot == 0:
            params = header.get("params") or {}
            experiment_id = self._experiment_id()
            resume = header.get("resume_run_id")
            found = None
            if resume:  # a resumed run: RUNNING again, with this attempt's tags
                found = (str(resume), writer.run_info(str(resume))[1])
                writer.reopen(str(resume))
                bad = writer.set_tags(str(resume), dict(header.get("tags") or {}))
                if bad:
                    self._refused("tags", bad)
            elif self.record is None or self._attempted:
                # A replay, or a create whose answer was lost: the run may exist already.
                found = writer.find_run(experiment_id, self.run_uuid)
            if found is not None:
                run_id, uri = found
            else:
                tags = dict(header.get("tags") or {})
                parent = self._parent_run_id(experiment_id)
                if parent:
                    tags[T.PARENT_RUN_ID] = parent
                self._attempted = True
                run_id, uri, bad = writer.create_run(
                    experiment_id,
                    name=str(header.get("name") or "run"),
                    start_time=int(header.get("start_time") or now_ms()),
                    tags=tags,
                    params=params,
                )
                if bad:
                    self._refused("params", bad)
            if found is not None and params:  # sent again: the store keeps what it has
                bad = writer.log_params(run_id, params)
                if bad:
                    self._refused("params", bad)
            self.cursor["uris"]["0"] = uri
            self.cursor["experiment_id"] = experiment_id
            return run_id
        child = self.children[slot]
        parent = self.ensure_run(0)
        experiment_id = str(self.cursor.get("experiment_id") or self._experiment_id())
        tags = dict(child.get("tags") or {})
        tags[T.PARENT_RUN_ID] = parent
        tags[T.RUN_UUID] = f"{self.run_uuid}-{slot}"
        found = writer.find_run(experiment_id, tags[T.RUN_UUID])
        if found is not None:
            run_id, uri = found
        else:
            run_id, uri, _ = writer.create_run(
                experiment_id,
                name=str(child.get("name") or f"training-{slot}"),
                start_time=int(child.get("start_time") or now_ms()),
                tags=tags,
            )
        self.cursor["uris"][str(slot)] = uri
        return run_id

    def _experiment_id(self) -> str:
        if self.cursor.get("experiment_id"):
            return str(self.cursor["experiment_id"])
        header = self.header
        if header.get("experiment_from_parent"):
            found = self._parent_experiment()
            if found:
                return found
        return self.writer.experiment_id(
            str(header.get("experiment")),
            header.get("experiment_id"),
            artifact_root=header.get("artifact_location"),
        )

    def _parent_experiment(self) -> str | None:
        """The experiment of the run named as parent (a child goes where its parent is)."""
        header = self.header
        if header.get("parent_run_id"):
            return self._parent_info(str(header["parent_run_id"]))
        parent_uuid = header.get("parent_uuid")
        live = sender().shipment(str(parent_uuid)) if parent_uuid else None
        if live is None or live is self:
            return None  # a replay: the header's experiment is the parent's
        live.ensure_run(0)
        found = live.cursor.get("experiment_id")
        return str(found) if found else None

    def _parent_info(self, run_id: str) -> str | None:
        """The experiment id of run `run_id`, or None when the store has no such run (said
        once per process and parent; raised under strict)."""
        key = (self.store.uri, run_id)
        with _parents_lock:
            if key in _parents:
                found = _parents[key]
                if found is None:
                    self._missing_parent(run_id)
                return found
        try:
            found = self.writer.run_info(run_id)[0]
        except (NotFoundError, StoreRejectedError):  # an id MLflow cannot parse is refused
            found = None
        with _parents_lock:
            _parents[key] = found
        if found is None:
            self._missing_parent(run_id)
        return found

    def _missing_parent(self, run_id: str) -> None:
        message = (
            f"tracked: parent run {run_id!r} of run {self.header.get('name')!r} is not in the "
            f"store {self.store}; the run is recorded without a parent"
        )
        if self.strict:
            raise NotFoundError(f"parent run {run_id!r}", "it is not in the store")
        self._on_problem(f"parent:{run_id}", message)

    def _parent_run_id(self, experiment_id: str) -> str | None:
        header = self.header
        if header.get("parent_run_id"):
            run_id = str(header["parent_run_id"])
            return run_id if self._parent_info(run_id) is not None else None
        parent_uuid = header.get("parent_uuid")
        if not parent_uuid:
            return None
        live = sender().shipment(str(parent_uuid))
        if live is not None and live is not self:
            return live.ensure_run(0)
        try:
            found = self.writer.find_run(experiment_id, str(parent_uuid))
        except NotFoundError:
            found = None
        if found is None:
            self._on_problem(
                "parent",
                f"tracked: the parent of run {header.get('name')!r} (journal {parent_uuid}) is "
                "not in the store; the run is recorded without its parent",
            )
            return None
        return found[0]

    # -- sending --------------------------------------------------------------------------------

    def pump(self) -> bool:
        """Send what the journal holds beyond the cursor; True once the journal is done (sent,
        finished and removed). Raises StoreUnavailableError when the store fails."""
        with self._pump_lock:
            if self.finished or self.abandoned:
                return self.finished
            with self._lock:
                self._scan_metadata()
            self.ensure_run(0)
            batch = _Batch()
            offset = int(self.cursor["offset"])
            last = offset
            ended = False
            for found in self.reader.frames(offset):
                ended = self._handle(found, batch) or ended
                last = found.end
                if batch.count >= self._commit_every:
                    self._commit(batch, last)
            self._commit(batch, last)
            if self.end is not None and (ended or self.cursor.get("ended")):
                from tracked.finish import complete

                self.cursor["ended"] = True
                complete(self)
                self.finished = True
            return self.finished

    def _commit(self, batch: _Batch, offset: int) -> None:
        self.points_sent += batch.count
        batch.send(self.writer, self._refused)
        if offset != self.cursor["offset"]:
            with self._lock:
                self.cursor["offset"] = offset
                J.write_cursor(self.directory, self.cursor)

    def _handle(self, found: J.Frame, batch: _Batch) -> bool:
        """Act on one frame (most go into `batch`); True for the run's own END."""
        kind = found.kind
        if kind == Kind.POINTS:
            chunk = Points.decode(found.payload)
            slots = set(chunk.slots)
            if len(slots) == 1:
                batch.add_points(self._run_for(slots.pop()), self.keys, chunk)
            else:
                for slot in slots:
                    mask = [i for i, s in enumerate(chunk.slots) if s == slot]
                    batch.add_points(self._run_for(slot), self.keys, chunk, mask)
            return False
        if kind == Kind.KEYS:
            self._define_keys(found.json())
            return False
        data = found.json()
        slot = int(data.get("slot", 0))
        if kind in (Kind.PARAMS, Kind.TAGS):
            if slot != 0 and slot not in self.children:
                return False  # a lone training's params: re-emitted for the run at its end
            run_id = self.ensure_run(slot)
            target = batch.params if kind == Kind.PARAMS else batch.tags
            target.setdefault(run_id, {}).update(data["params" if kind == Kind.PARAMS else "tags"])
            return False
        if kind == Kind.CHILD:
            self._commit(batch, found.offset)  # what came before goes where it was logged
            self.children[slot] = data
            self.ensure_run(slot)
            if data.get("retro"):
                self._copy_earlier(slot, found.offset)
            return False
        if kind == Kind.INPUTS:
            run_id = self.ensure_run(slot)
            inputs = [DatasetInput.from_dict(d) for d in data.get("inputs") or ()]
            self.writer.log_inputs(run_id, inputs)
            self.writer.log_mlflow_inputs(run_id, data.get("mlflow") or ())
            return False
        if kind == Kind.ARTIFACT:
            run_id = self.ensure_run(slot)
            local = self.directory / str(data["file"])
            try:
                self.writer.upload(
                    run_id, local, str(data["path"]), artifact_uri=self.artifact_uri(slot)
                )
            except StoreRejectedError as error:
                self._on_problem("artifact", f"{error}; artifact {data['path']!r} not stored")
            return False
        if kind == Kind.MODEL:
            self.models.append(data)
            return False
        if kind == Kind.INTENT:
            self.intent = data
            return False
        if kind == Kind.END:
            if slot == 0:
                self.end = data
                return True
            self._commit(batch, found.offset)
            if slot in self.children and not self.done(f"ended:{slot}"):
                run_id = self.ensure_run(slot)
                self.writer.end(run_id, str(data["status"]), int(data["end_time"]))
                self.mark(f"ended:{slot}")
            return False
        return False  # START (read by the scan) or a kind from a newer tracked: skipped

    def _run_for(self, slot: int) -> str:
        run_id = self.cursor["runs"].get(str(slot))
        if run_id:
            return str(run_id)
        return self.ensure_run(slot if slot in self.children else 0)

    def _define_keys(self, data: Mapping[str, Any]) -> None:
        for key_id, key in data.get("keys") or ():
            while len(self.keys) <= int(key_id):
                self.keys.append("")
            self.keys[int(key_id)] = str(key)

    def _copy_earlier(self, slot: int, until: int) -> None:
        """A second training made the first its own child run: send that child what the first
        training logged before (its params, tags and points, which went to the main run)."""
        if self.done(f"copied:{slot}"):
            return
        run_id = self.ensure_run(slot)
        batch = _Batch()
        reader = Reader(self.directory)
        for found in reader.frames(0):
            if found.offset >= until:
                break
            if found.kind == Kind.POINTS:
                chunk = Points.decode(found.payload)
                mask = [i for i, s in enumerate(chunk.slots) if s == slot]
                if mask:
                    batch.add_points(run_id, self.keys, chunk, mask)
            elif found.kind in (Kind.PARAMS, Kind.TAGS):
                data = found.json()
                if int(data.get("slot", 0)) == slot:
                    name = "params" if found.kind == Kind.PARAMS else "tags"
                    target = batch.params if name == "params" else batch.tags
                    target.setdefault(run_id, {}).update(data[name])
        batch.send(self.writer, self._refused)
        self.mark(f"copied:{slot}")

    def _scan_metadata(self) -> None:
        """Read what the frames before the cursor declared (after a restart, or in sync)."""
        if self._scanned:
            return
        self._scanned = True
        reader = Reader(self.directory)
        offset = int(self.cursor["offset"])
        for found in reader.frames(0):
            if found.kind == Kind.START:
                self.header = found.json()
                continue
            if found.offset >= offset:
                break
            if found.kind == Kind.KEYS:
                self._define_keys(found.json())
            elif found.kind == Kind.CHILD:
                data = found.json()
                self.children[int(data["slot"])] = data
            elif found.kind == Kind.MODEL:
                self.models.append(found.json())
            elif found.kind == Kind.INTENT:
                self.intent = found.json()
            elif found.kind == Kind.END and int(found.json().get("slot", 0)) == 0:
                self.end = found.json()
        if not self.header:
            raise J.SpoolError(f"tracked: journal {self.directory} has no START frame")

    def _refused(self, what: str, keys: list[str]) -> None:
        names = ", ".join(repr(k) for k in keys[:5]) + (" ..." if len(keys) > 5 else "")
        self._on_problem(
            f"refused-{what}",
            f"tracked: the store refused {what} {names} of run {self.header.get('name')!r}; "
            "the rest of the run is recorded",
        )


class Sender:
    """The process's background thread that runs the live runs' shipments."""

    def __init__(self) -> None:
        self._shipments: dict[str, Shipment] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._busy = False
        self._reported: set[str] = set()
        self._waiters = 0  # callers of drain/wait_for: held runs are sent for them
        J.on_write(self.wake)

    def add(self, shipment: Shipment) -> None:
        with self._lock:
            self._shipments[shipment.run_uuid] = shipment
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="tracked-sender", daemon=True
                )
                self._thread.start()
        self.wake()

    def shipment(self, run_uuid: str) -> Shipment | None:
        with self._lock:
            return self._shipments.get(run_uuid)

    def pending(self) -> list[Shipment]:
        with self._lock:
            return list(self._shipments.values())

    def wake(self) -> None:
        self._wake.set()

    def drain(self, timeout: float) -> list[Shipment]:
        """Wait until every shipment is done or `timeout` passed; returns the ones left.

        Does not wait for shipments whose store failed: they stay in their journals (the exit
        line says so) instead of holding the process for a store that is down."""
        deadline = time.monotonic() + timeout
        J.flush_all()
        # Not `with self._lock`: at exit, after a signal, the interrupted code may hold it.
        if not self._lock.acquire(timeout=min(timeout, 5.0)):
            return list(self._shipments.values())
        self._waiters += 1
        self.wake()
        try:
            # A run still going counts as sent once what it logged until now is sent.
            targets = {
                key: s.journal.written
                for key, s in self._shipments.items()
                if s.journal is not None and not s.journal.closed
            }
            while True:
                waiting = [
                    s
                    for key, s in self._shipments.items()
                    if s.failure is None
                    and not (key in targets and s.cursor["offset"] >= targets[key])
                ]
                left = deadline - time.monotonic()
                if (not waiting and not self._busy) or left <= 0:
                    break
                self._idle.wait(min(left, 0.25))
                self._wake.set()
            return [s for key, s in self._shipments.items() if key not in targets or s.failure]
        finally:
            self._waiters -= 1
            self._lock.release()

    def note_failure(self, shipment: Shipment, error: TrackingError) -> None:
        """The store failed a call made for `shipment` outside the sender: retry later, and say
        so once per process (the same failure of the same store is counted, not repeated)."""
        shipment.failure = error
        shipment.retry_at = time.monotonic() + _retry_delay(shipment)
        self._report(shipment, error)

    def create_now(self, shipment: Shipment) -> str | None:
        """Create the shipment's run now, in the calling thread (someone needs its id); None,
        with the failure reported once, when the store cannot take it."""
        try:
            return shipment.ensure_run(0)
        except StoreUnavailableError as error:
            shipment.failure = error
            shipment.retry_at = time.monotonic() + _retry_delay(shipment)
            self._report(shipment, error)
        except TrackingError as error:
            shipment.failure = error
            shipment.retry_at = time.monotonic() + 60.0
            self._report(shipment, error)
        return None

    def wait_for(self, shipment: Shipment, timeout: float) -> bool:
        """Wait until `shipment` is done (or its store failed, or `timeout`); True when done."""
        deadline = time.monotonic() + timeout
        J.flush_all()
        with self._lock:
            self._waiters += 1
            self.wake()
            try:
                while shipment.run_uuid in self._shipments and shipment.failure is None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._idle.wait(min(left, 0.25))
                    self._wake.set()
                return shipment.finished
            finally:
                self._waiters -= 1

    def forget(self, shipment: Shipment | None = None) -> None:
        """Stop sending `shipment` (default: every one); its journal stays on disk, given up by
        this process, so `tracked sync` may take it."""
        with self._lock:
            dropped = (
                list(self._shipments.values())
                if shipment is None
                else [s for s in [self._shipments.get(shipment.run_uuid)] if s is not None]
            )
            for found in dropped:
                self._shipments.pop(found.run_uuid, None)
        for found in dropped:
            with found._pump_lock:  # let a pass under way finish; no pass after this one
                found.abandoned = True
            if found.journal is not None and found.journal.closed:
                found.journal.release()

    def _run(self) -> None:
        while True:
            self._wake.wait(SEND_INTERVAL)
            self._wake.clear()
            with self._lock:
                shipments = list(self._shipments.values())
                self._busy = True
            try:
                for shipment in shipments:
                    self._pump(shipment)
            finally:
                with self._lock:
                    self._busy = False
                    self._idle.notify_all()

    def _pump(self, shipment: Shipment) -> None:
        from tracked.store import patient

        now = time.monotonic()
        if shipment.failure is not None and now < shipment.retry_at:
            return
        if not self._waiters and shipment.held(now):
            return
        try:
            with patient():  # off the training thread: a busy server is waited for
                done = shipment.pump()
        except StoreUnavailableError as error:
            shipment.failure = error
            shipment.retry_at = now + _retry_delay(shipment)
            self._report(shipment, error)
            return
        except TrackingError as error:  # a refusal the shipment could not route around
            shipment.failure = error
            shipment.retry_at = now + 60.0
            self._report(shipment, error)
            return
        except Exception as exc:  # a bug: keep the journal, say so once, try again later
            shipment.failure = TrackingError(
                f"tracked: internal error while sending run {shipment.run_uuid} "
                f"({type(exc).__name__}: {exc}); it is kept for `tracked sync`"
            )
            shipment.retry_at = now + 60.0
            self._report(shipment, shipment.failure)
            return
        if shipment.failure is not None:
            shipment.failure = None
            logger.info("tracked: the store %s answers again; sending resumed", shipment.store)
        if done:
            with self._lock:
                self._shipments.pop(shipment.run_uuid, None)

    def _report(self, shipment: Shipment, error: TrackingError) -> None:
        from tracked.problems import report_store_failure

        report_store_failure(error, f"run {shipment.header.get('name')!r} is kept in its journal")


def _retry_delay(shipment: Shipment) -> float:
    from tracked.store import COOL_DOWN

    return COOL_DOWN if shipment.store.http else 5.0


_sender: Sender | None = None
_sender_lock = threading.Lock()
# (store uri, run id) -> the experiment of a run named as parent, None when it is not there:
# 1,000 trials under one parent ask the store once.
_parents: dict[tuple[str, str], str | None] = {}
_parents_lock = threading.Lock()


def sender() -> Sender:
    """The process's sender (created on first use)."""
    global _sender
    with _sender_lock:
        if _sender is None:
            _sender = Sender()
        return _sender


def shipment_for(run_uuid: str) -> Shipment | None:
    with contextlib.suppress(Exception):
        return sender().shipment(run_uuid)
    return None
