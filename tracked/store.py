"""The one door to MLflow: every call tracked makes to a tracking store or model registry.

`store_for(settings)` gives the `Store` for a (tracking URI, registry URI) pair, shared in the
process. `Store.call(fn, what=...)` runs `fn(client)` against MLflow's client with tracked's
bounds and turns whatever MLflow raised into one of tracked's errors:

- `StoreUnavailableError`: the store could not be reached or gave no complete answer in time
  (`AuthenticationError` for 401/403). The store is then "down" for `COOL_DOWN` seconds: later
  calls fail at once instead of waiting again.
- `NotFoundError`: the store answered that the thing asked for does not exist.
- `StoreRejectedError`: the store answered and refused the request (a bad value, a conflict);
  `.code` is MLflow's error code (`RESOURCE_ALREADY_EXISTS`, `INVALID_PARAMETER_VALUE`, ...).

Bounds, from `Settings` (README "Configuration"): `connect_timeout` (TRACKED_CONNECT_TIMEOUT,
default 3 s) is how long "is it up" may take: the first contact in a process, and connecting;
`http_timeout` (TRACKED_HTTP_TIMEOUT, default 30 s) is the overall deadline of one real call:
connection plus the whole answer, not per socket read, so a server that drips a byte a second
cannot hold a call longer. A connection refused is retried within `connect_timeout`. MLflow's own
retry settings (MLFLOW_HTTP_REQUEST_*) apply to the user's MLflow calls and not to tracked's: no
environment variable is changed.

Inside tracked's calls MLflow does not print its "View run" lines or log its schema-creation
lines: tracked says what happened itself.

An embedded SQLite store is opened once per process under a lock that lives beside the database
file (one lock per database, however its URI is spelled): MLflow creates and migrates a new
database's schema without one, and two processes doing it at once leave it unusable.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import functools
import hashlib
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tracked.errors import (
    AuthenticationError,
    NotFoundError,
    StoreRejectedError,
    StoreUnavailableError,
    TrackingError,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from tracked.config import Settings

__all__ = [
    "COOL_DOWN",
    "Store",
    "client_for",
    "quiet_mlflow",
    "shown_uri",
    "sqlite_path",
    "store_for",
]

T = TypeVar("T")

COOL_DOWN = 30.0  # seconds a store that failed to answer is treated as down without asking
DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_HTTP_TIMEOUT = 30.0
SQLITE_LOCK_TIMEOUT = 60.0  # seconds to wait for another process opening the same database
_RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)
_BUSY_DATABASE = "QueuePool limit of size"  # SQLAlchemy's pool timeout, in a server's answer
_RESENDS = 2  # times an idempotent call whose connection closed without an answer is sent again
_WORKERS = 8
# A call the sender makes off the training thread may take this many `http_timeout`s: giving up
# on a busy server only sends the same work again after COOL_DOWN, adding to its load.
BACKGROUND_PATIENCE = 4

_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("tracked_store_call", default=False)
_http_timeout: contextvars.ContextVar[float] = contextvars.ContextVar(
    "tracked_http_timeout", default=DEFAULT_HTTP_TIMEOUT
)
_patient: contextvars.ContextVar[bool] = contextvars.ContextVar("tracked_patient", default=False)
_install_lock = threading.Lock()
_installed = False


@contextlib.contextmanager
def patient() -> Iterator[None]:
    """Calls made inside wait BACKGROUND_PATIENCE times `http_timeout` for their answer (the
    sender's: nobody waits on them; the exit drain has its own bound, `exit_wait`)."""
    token = _patient.set(True)
    try:
        yield
    finally:
        _patient.reset(token)


def shown_uri(uri: str) -> str:
    """`uri` as it may be printed: credentials removed."""
    from tracked.capture.secrets import redact_value

    return redact_value(uri)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:` URI, resolved; None for other stores or in-memory."""
    if not uri.startswith("sqlite:"):
        return None
    raw = urllib.parse.unquote(uri[len("sqlite:") :].split("?", 1)[0])
    raw = raw[3:] if raw.startswith("///") else raw.lstrip("/")
    if raw in ("", ":memory:"):
        return None
    return Path(raw).expanduser().resolve()


_mlflow_lock = threading.Lock()
_mlflow_loaded = False


def load_mlflow() -> None:
    """Import MLflow (and what tracked's threads use of it) once, in the calling thread.

    Two threads importing parts of MLflow at the same time can each see the other's modules
    half-initialised (MLflow's modules import each other); so the first run imports it before
    its sender thread starts, and every other path waits for that import here.
    """
    global _mlflow_loaded
    if _mlflow_loaded:
        return
    with _mlflow_lock:
        if _mlflow_loaded:
            return
        import mlflow
        import mlflow.entities
        import mlflow.models
        import mlflow.tracking
        import mlflow.tracking.fluent

        del mlflow
        _mlflow_loaded = True


@functools.lru_cache(maxsize=32)
def client_for(tracking_uri: str, registry_uri: str) -> MlflowClient:
    """The raw MlflowClient for a store pair (cached: building one re-reads the schema). Calls on
    it are not bounded; tracked's own code goes through `Store.call`."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)


_stores: dict[tuple[str, str], Store] = {}
_stores_lock = threading.Lock()


def store_for(settings: Settings | None = None, *, tracking_uri: str | None = None) -> Store:
    """The process's `Store` for `settings` (default: the configuration in force now)."""
    if settings is None:
        from tracked.config import get_config

        settings = get_config()
    if tracking_uri is not None:
        settings = settings.replace(tracking_uri=tracking_uri)
    key = (settings.tracking_uri, settings.registry_uri)
    connect = float(getattr(settings, "connect_timeout", DEFAULT_CONNECT_TIMEOUT))
    http = float(getattr(settings, "http_timeout", DEFAULT_HTTP_TIMEOUT))
    with _stores_lock:
        found = _stores.get(key)
        if found is None:
            found = _stores[key] = Store(*key, connect_timeout=connect, http_timeout=http)
        else:
            found.connect_timeout, found.http_timeout = connect, http
        return found


def forget_stores() -> None:
    """Drop every cached store and client (tests; a process that changed its credentials)."""
    with _stores_lock:
        _stores.clear()
    client_for.cache_clear()


@dataclass
class _Down:
    error: StoreUnavailableError
    until: float


class Store:
    """One tracking store (and its registry) with tracked's bounds. Thread-safe."""

    def __init__(
        self,
        tracking_uri: str,
        registry_uri: str | None = None,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        http_timeout: float = DEFAULT_HTTP_TIMEOUT,
    ) -> None:
        self.uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.shown = shown_uri(tracking_uri)
        scheme = urllib.parse.urlsplit(tracking_uri).scheme
        self.http = scheme in ("http", "https")
        self.connect_timeout = connect_timeout
        self.http_timeout = http_timeout
        self._down: _Down | None = None
        self._probed = False
        self._opened = False  # a local database opened once by `ready`
        self._lock = threading.Lock()
        self._experiments: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<Store {self.shown}>"

    # -- state ----------------------------------------------------------------------------------

    @property
    def client(self) -> MlflowClient:
        """The raw client. Use it only inside a function handed to `call`."""
        return client_for(self.uri, self.registry_uri)

    def down(self) -> StoreUnavailableError | None:
        """The failure that makes this store "down" now, or None."""
        with self._lock:
            down = self._down
        if down is None or time.monotonic() >= down.until:
            return None
        return down.error

    def mark_down(self, error: StoreUnavailableError) -> None:
        with self._lock:
            self._down = _Down(error, time.monotonic() + COOL_DOWN)
            self._probed = False
            self._opened = False

    def mark_up(self) -> None:
        with self._lock:
            self._down = None

    # -- calls ----------------------------------------------------------------------------------

    def call(
        self,
        fn: Callable[[MlflowClient], T],
        *,
        what: str,
        timeout: float | None = None,
        idempotent: bool = True,
        found: Callable[[MlflowClient], T | None] | None = None,
    ) -> T:
        """`fn(client)` under tracked's bounds; MLflow's errors become tracked's (module doc).

        `what` names the call in error messages ("create the run", "list versions of 'm'").
        An `idempotent` call (a read, a tag, a batch MLflow de-duplicates) whose connection was
        closed before any answer is sent again: that is how a server closing an idle
        keep-alive connection under load looks, and also a proxy that dropped the request. A
        call that creates something passes False: it may have been done. With `found` (how to
        find what it creates), such a call looks first and sends again only if it is not
        there; without, its caller finds out (the registry lock by its owner tag).
        """
        if _inside.get():  # a call made from inside another: already bounded, in its worker
            try:
                return fn(self.client)
            except TrackingError:
                raise
            except Exception as exc:
                raise self._translate(exc, what) from exc
        down = self.down()
        if down is not None:
            raise down
        if not self.http:
            return self._local_call(fn, what)
        self.probe()
        if timeout is None:
            timeout = self.http_timeout * (BACKGROUND_PATIENCE if _patient.get() else 1)
        return self._http_call(fn, what, timeout, idempotent, found)

    def pages(
        self,
        fetch: Callable[[MlflowClient, str | None], Any],
        *,
        what: str,
        limit: int | None = None,
    ) -> list[Any]:
        """Every item of a paged MLflow listing: `fetch(client, page_token)` returns a page."""
        items: list[Any] = []
        token: str | None = None
        while True:
            page = self.call(functools.partial(_fetch_page, fetch, token), what=what)
            items.extend(page)
            token = getattr(page, "token", None)
            if not token or (limit is not None and len(items) >= limit):
                return items if limit is None else items[:limit]

    def get_or_none(self, fn: Callable[[MlflowClient], T], *, what: str) -> T | None:
        """`call`, with None when the store answers that the thing does not exist."""
        try:
            return self.call(fn, what=what)
        except NotFoundError:
            return None

    def probe(self) -> None:
        """Fail within `connect_timeout` when an HTTP server does not answer its health check.

        Done once per process (and again after the store was down); an answer of any HTTP
        status counts as "up": auth and other errors surface on the real call, with context.
        """
        if not self.http or self._probed:
            return
        down = self.down()
        if down is not None:
            raise down
        import urllib.error
        import urllib.request

        parsed = urllib.parse.urlsplit(self.uri)
        netloc = parsed.hostname or ""
        if parsed.port:
            netloc += f":{parsed.port}"
        health = urllib.parse.urlunsplit(
            (parsed.scheme, netloc, parsed.path.rstrip("/") + "/health", "", "")
        )

        def ask() -> None:
            try:
                with urllib.request.urlopen(health, timeout=self.connect_timeout) as answer:
                    answer.read(64)
            except urllib.error.HTTPError:
                return

        try:
            _deadline(ask, self.connect_timeout + 0.5)
        except concurrent.futures.TimeoutError:
            error = StoreUnavailableError(
                self.shown, f"server gave no answer within {self.connect_timeout:g} s"
            )
            self.mark_down(error)
            raise error from None
        except Exception as exc:
            error = StoreUnavailableError(self.shown, f"server not reachable ({_reason(exc)})")
            self.mark_down(error)
            raise error from None
        with self._lock:
            self._probed = True

    def backend(self) -> Any:
        """MLflow's tracking store object behind the client (a SqlAlchemyStore for a database,
        a RestStore for a server), opened if need be: a database's schema is created or
        migrated then."""
        return self.call(lambda client: client._tracking_client.store, what="open the store")

    def ready(self) -> None:
        """Raise now when the store cannot be reached: an HTTP server's health check (`probe`),
        a local database opened (its schema created or migrated); each once per process, and
        again after the store was down; never longer than `connect_timeout`. A run's start
        calls it, so that a dead store is said before the training instead of after it; the
        rest of the first contact (the run, its params and tags) is the sender's.

        Opening a database can take longer than that (MLflow retries a database server for
        about 100 s, a SQLite file may wait for another process's lock): the open then goes on
        in the background and the sender meets its outcome."""
        if self.http:
            self.probe()
            return
        down = self.down()
        if down is not None:
            raise down
        if self._opened:
            return
        try:
            _deadline(self.backend, self.connect_timeout)
        except concurrent.futures.TimeoutError:
            return
        self._opened = True

    def experiment_id(self, name: str, *, create: bool = True, location: str | None = None) -> str:
        """The id of experiment `name`, restored if deleted, created if missing (`create`)."""
        with self._lock:
            if name in self._experiments:
                return self._experiments[name]

        def find(client: MlflowClient) -> str | None:
            found = client.get_experiment_by_name(name)
            if found is None:
                return None
            if found.lifecycle_stage == "deleted":
                client.restore_experiment(found.experiment_id)
            return str(found.experiment_id)

        experiment_id = self.call(find, what=f"look up experiment {name!r}")
        if experiment_id is None:
            if not create:
                raise NotFoundError(f"experiment {name!r}")
            try:
                experiment_id = self.call(
                    lambda c: str(c.create_experiment(name, artifact_location=location)),
                    what=f"create experiment {name!r}",
                    idempotent=False,
                )
            except StoreRejectedError:
                # Another process created it between our look-up and create: use theirs.
                experiment_id = self.call(find, what=f"look up experiment {name!r}")
                if experiment_id is None:
                    raise
        with self._lock:
            self._experiments[name] = experiment_id
        return experiment_id

    # -- internals ------------------------------------------------------------------------------

    def _local_call(self, fn: Callable[[MlflowClient], T], what: str) -> T:
        token = _inside.set(True)
        try:
            _install_mlflow_bounds()
            _open_sqlite_once(self.uri, self.registry_uri)
            return fn(self.client)
        except TrackingError:
            raise
        except Exception as exc:
            raise self._translate(exc, what) from exc
        finally:
            _inside.reset(token)

    def _http_call(
        self,
        fn: Callable[[MlflowClient], T],
        what: str,
        timeout: float,
        idempotent: bool,
        found: Callable[[MlflowClient], T | None] | None,
    ) -> T:
        _install_mlflow_bounds()
        started = time.monotonic()
        delays = iter(_RETRY_DELAYS)
        resends = _RESENDS if idempotent or found is not None else 0
        while True:
            try:
                left = timeout - (time.monotonic() - started)
                return _deadline(functools.partial(_bounded, fn, self.client, left), left)
            except concurrent.futures.TimeoutError:
                error = StoreUnavailableError(
                    self.shown, f"no complete answer to {what} within {timeout:g} s"
                )
                self.mark_down(error)
                raise error from None
            except TrackingError:
                raise
            except Exception as exc:
                kind = _failure_kind(exc)
                delay = next(delays, None)
                if (
                    kind == "refused"
                    and delay is not None
                    and time.monotonic() + delay - started < self.connect_timeout
                ):
                    time.sleep(delay)  # a back-off before asking again, not a synchronisation
                    continue
                if kind == "busy" and time.monotonic() + (delay or 2.0) - started < timeout / 2:
                    time.sleep(delay or 2.0)  # a back-off while the server is saturated
                    continue
                if (
                    kind == "closed"
                    and resends > 0
                    and delay is not None
                    and time.monotonic() + delay - started < timeout / 2
                ):
                    resends -= 1
                    time.sleep(delay)  # a back-off before sending again, not a synchronisation
                    if found is None:
                        continue
                    ok, existing = self._look(found, started, timeout)
                    if ok and existing is not None:
                        return existing
                    if ok:
                        continue  # not there: the create did not happen, send it again
                    # the look-up failed too: the create may or may not be done; say so below
                translated = self._translate(exc, what)
                if isinstance(translated, StoreUnavailableError) and kind is not None:
                    self.mark_down(translated)
                raise translated from exc

    def _look(
        self, found: Callable[[MlflowClient], T | None], started: float, timeout: float
    ) -> tuple[bool, T | None]:
        """(True, what a create whose answer was lost made, or None if it is not there), or
        (False, None) when the look-up failed as well."""
        left = timeout - (time.monotonic() - started)
        try:
            return True, _deadline(functools.partial(_bounded, found, self.client, left), left)
        except Exception:
            return False, None

    def _translate(self, exc: BaseException, what: str) -> TrackingError:
        return translate(exc, uri=self.shown, what=what)


def _fetch_page(
    fetch: Callable[[MlflowClient, str | None], Any], token: str | None, client: MlflowClient
) -> Any:
    return fetch(client, token)


def translate(exc: BaseException, *, uri: str, what: str) -> TrackingError:
    """One of tracked's errors for whatever an MLflow call raised."""
    from tracked.capture.secrets import redact_value

    if isinstance(exc, TrackingError):
        return exc
    code = getattr(exc, "error_code", None)
    text = redact_value(_reason(exc))
    status = _http_status(exc, text)
    if status in (401, 403):
        return AuthenticationError(uri, status)
    if code == "RESOURCE_DOES_NOT_EXIST" or status == 404:
        return NotFoundError(what, text)
    if code in (
        "INVALID_PARAMETER_VALUE",
        "RESOURCE_ALREADY_EXISTS",
        "INVALID_STATE",
        "BAD_REQUEST",
        "RESOURCE_LIMIT_EXCEEDED",
        "PERMISSION_DENIED",
    ) or (status is not None and 400 <= status < 500 and status != 429):
        return StoreRejectedError(what, text, code=code or f"HTTP {status}")
    return StoreUnavailableError(uri, f"{what}: {text}")


def _reason(exc: BaseException) -> str:
    """The first line of an exception, at most 300 characters, never cut mid-word."""
    text = str(exc).strip() or type(exc).__name__
    first = text.splitlines()[0]
    if len(first) > 300:
        first = first[:300].rsplit(" ", 1)[0] + " ..."
    return first if first.startswith(type(exc).__name__) else f"{type(exc).__name__}: {first}"


def _http_status(exc: BaseException, text: str) -> int | None:
    import re

    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return status
    match = re.search(r"(?:error code|status(?: code)?|HTTP)[^0-9]{0,12}([1-5][0-9]{2})\b", text)
    return int(match.group(1)) if match else None


def _deadline(fn: Callable[[], T], timeout: float) -> T:
    """`fn()` in a worker thread, given up after `timeout` seconds (the worker finishes alone:
    a stuck socket read cannot be interrupted, but the caller no longer waits for it).

    One daemon thread per call, not a pool: a call costs milliseconds against a server, and
    `concurrent.futures` pools refuse work once the interpreter starts exiting, which is when
    the last points are sent.
    """
    context = contextvars.copy_context()
    done = threading.Event()
    outcome: list[Any] = []

    def work() -> None:
        try:
            outcome.append((True, context.run(fn)))
        except BaseException as exc:
            outcome.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=work, name="tracked-store-call", daemon=True).start()
    if not done.wait(timeout):
        raise concurrent.futures.TimeoutError
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    # Raising here chains the worker's error onto whatever this thread is handling (a user's
    # `except` block, or an exception a C extension left set: CatBoost does), replacing its own
    # __context__, the chain `_failure_kind` reads to tell a refused call from an answered one.
    own_context = value.__context__
    try:
        raise value
    finally:
        value.__context__ = own_context


def _bounded(fn: Callable[[MlflowClient], T], client: MlflowClient, timeout: float) -> T:
    """Runs in the worker: MLflow's HTTP settings answer tracked's limits here."""
    inside, limit = _inside.set(True), _http_timeout.set(timeout)
    try:
        return fn(client)
    finally:
        _http_timeout.reset(limit)
        _inside.reset(inside)


def _install_mlflow_bounds() -> None:
    """Let MLflow's settings answer tracked's bounds inside tracked's calls, and only there.

    MLflow reads MLFLOW_HTTP_REQUEST_* and MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT through
    `_EnvironmentVariable.get()` on every request; each of those objects' `get` is wrapped once
    to return tracked's value in a context where `call` runs, and MLflow's everywhere else. A
    logging filter drops MLflow's INFO lines (schema creation, migrations) in that context.
    """
    global _installed
    with _install_lock:
        if _installed:
            return
        import mlflow.environment_variables as variables

        limits: dict[str, Callable[[], Any]] = {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": lambda: 0,
            "MLFLOW_HTTP_REQUEST_TIMEOUT": lambda: max(1, int(_http_timeout.get() + 0.999)),
            "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": lambda: True,
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": lambda: False,
        }
        for name, limit in limits.items():
            variable = getattr(variables, name, None)
            if variable is None:  # pragma: no cover - an MLflow without this setting
                continue
            original = variable.get

            def get(
                original: Callable[[], Any] = original, limit: Callable[[], Any] = limit
            ) -> Any:
                return limit() if _inside.get() else original()

            variable.get = get
        quiet = _QuietInside()
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).addFilter(quiet)
            for handler in logging.getLogger(name).handlers:
                handler.addFilter(quiet)
        for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
            logging.getLogger(name).addFilter(quiet)
        _installed = True


class _QuietInside(logging.Filter):
    """Drops MLflow's INFO lines logged inside tracked's own calls (`quiet_mlflow` too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.INFO and (_inside.get() or _quiet.get()))


_quiet: contextvars.ContextVar[bool] = contextvars.ContextVar("tracked_quiet", default=False)


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow's INFO lines and "View run" prints off for MLflow calls tracked makes itself
    outside `Store.call` (saving a model with `mlflow.<flavor>.save_model`, say)."""
    _install_mlflow_bounds()
    token, inside = _quiet.set(True), _inside.set(True)
    try:
        yield
    finally:
        _inside.reset(inside)
        _quiet.reset(token)


def _failure_kind(exc: BaseException) -> str | None:
    """How a call failed: "refused" when the request never reached the server (no connection,
    or a transient 429/5xx answer: safe to send again), "busy" when the server's database pool
    timed out before the call did anything (sent again while time is left), "closed" when the
    connection was closed or reset before any answer (safe to send again only when the call is
    idempotent), "unanswered" when the server took the connection but did not answer in time,
    None for an error the server answered with."""
    import http.client

    import requests.exceptions
    import urllib3.exceptions

    kind = None
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        error = stack.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        if _BUSY_DATABASE in str(error):
            # The server's database pool timed out before the call touched anything; MLflow
            # answers it as BAD_REQUEST, but the server is saturated, not refusing the call.
            return "busy"
        if isinstance(
            error,
            (
                ConnectionRefusedError,
                urllib3.exceptions.NewConnectionError,
                urllib3.exceptions.ConnectTimeoutError,
                urllib3.exceptions.ResponseError,
                requests.exceptions.ConnectTimeout,
            ),
        ):
            return "refused"
        if isinstance(
            error,
            (ConnectionResetError, ConnectionAbortedError, http.client.RemoteDisconnected),
        ):
            kind = "closed"
        elif kind is None and isinstance(
            error,
            (
                TimeoutError,
                urllib3.exceptions.ReadTimeoutError,
                urllib3.exceptions.ProtocolError,
                requests.exceptions.Timeout,
                requests.exceptions.ConnectionError,
            ),
        ):
            kind = "unanswered"
        stack.extend((error.__cause__, error.__context__, getattr(error, "reason", None)))
        stack.extend(error.args)
    return kind


# -- the embedded SQLite store ------------------------------------------------------------------

_sqlite_open: set[tuple[str, str]] = set()
_sqlite_lock = threading.Lock()


def _open_sqlite_once(tracking_uri: str, registry_uri: str) -> None:
    """Create/migrate a SQLite store's schema once per process, one process at a time.

    The lock file is tracked's own, `<database>.tracked-open.lock` beside the database (the same
    file for every spelling of its URI), or in the user's cache directory when the database's
    directory is not writable. MLflow's own `db_init_lock` is taken inside this one; on the same
    file a second flock would block this very process forever.
    """
    if (tracking_uri, registry_uri) in _sqlite_open:
        return
    path = sqlite_path(tracking_uri)
    if path is None:
        return
    with _sqlite_lock:
        if (tracking_uri, registry_uri) in _sqlite_open:
            return
        with _file_lock(path):
            client = client_for(tracking_uri, registry_uri)
            client.search_experiments(max_results=1)  # creates the tracking schema
            if registry_uri.startswith("sqlite:"):
                client.search_registered_models(max_results=1)
        _sqlite_open.add((tracking_uri, registry_uri))


@contextlib.contextmanager
def _file_lock(database: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no flock; MLflow's own behaviour
        yield
        return
    candidates = [database.with_name(database.name + ".tracked-open.lock")]
    from tracked.config import default_cache_dir

    digest = hashlib.sha256(str(database).encode()).hexdigest()[:24]
    candidates.append(default_cache_dir() / "locks" / f"sqlite-open-{digest}.lock")
    fd, errors = None, []
    for candidate in candidates:
        try:
            candidate.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(candidate, os.O_RDWR | os.O_CREAT, 0o600)
            break
        except OSError as exc:
            errors.append(f"{candidate}: {exc.strerror or exc}")
    if fd is None:
        raise StoreUnavailableError(
            f"sqlite:///{database}",
            "cannot create the lock file that serialises opening the database ("
            + "; ".join(errors)
            + ")",
            "make the database's directory writable",
        )
    deadline = time.monotonic() + SQLITE_LOCK_TIMEOUT
    try:
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreUnavailableError(
                        f"sqlite:///{database}",
                        f"another process has held the open lock for over "
                        f"{SQLITE_LOCK_TIMEOUT:g} s",
                        "look for a stuck process using this database",
                    ) from None
                time.sleep(delay)  # back-off between attempts at a non-blocking lock
                delay = min(delay * 2, 0.25)
        yield
    finally:
        os.close(fd)  # releases the lock, as the kernel does when the process dies
