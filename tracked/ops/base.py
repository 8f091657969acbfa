"""What every operation shares: parameter declarations, plain results, the store, input errors.

An operation is a plain function; each parameter a surface offers is declared once, in its
signature, as `Annotated[type, Param(help=...)]`. Parameters without a `Param` (`tracking_uri`,
`agent`) are context the surface supplies, not input.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import inspect
import math
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TextIO, TypeVar, get_args, get_origin

from tracked.config import Settings, did_you_mean, get_config, uri_problem
from tracked.errors import ConfigError, NotFoundError, StoreUnavailableError, TrackingError

if TYPE_CHECKING:
    from tracked.store import Store

__all__ = [
    "Declared",
    "InputError",
    "Operation",
    "Param",
    "Result",
    "declared_parameters",
    "guarded",
    "iso",
    "open_store",
    "plain",
    "stdout_to_stderr",
    "with_hint",
]

T = TypeVar("T")


class InputError(TrackingError, ValueError):
    """What the caller gave is wrong: a malformed reference, a metric no version logged, a bad
    filter or number. Never a store failure; the command line exits 2 for it."""

    def __init__(self, what: str, value: object, fix: str) -> None:
        self.what, self.value, self.fix = what, value, fix
        super().__init__(f"tracked: {what} {value!r}: {fix}")


# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Param:
    """One parameter, described once for people (CLI help) and agents (MCP input schema).

    `flags` spells the CLI option (`("--metric", "-m")`, or `("--a/--b",)` for an on/off
    switch); without flags a required parameter is a positional argument and an optional one
    `--its-name`. `tool=False` keeps it off the MCP tools (the operation's default applies).
    `check` validates a CLI value at parse time, so a bad one is a usage error (exit 2).
    """

    help: str
    flags: tuple[str, ...] = ()
    tool: bool = True
    check: Callable[[Any], object] | None = None


@dataclass(frozen=True)
class Declared:
    """A parameter as both surfaces see it: name, type (without `Annotated`), default, Param."""

    name: str
    annotation: Any
    default: Any  # inspect.Parameter.empty when required
    param: Param

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


def declared_parameters(fn: Callable[..., Any]) -> list[Declared]:
    """The parameters of `fn` that carry a `Param`, in signature order."""
    out = []
    for p in inspect.signature(fn, eval_str=True).parameters.values():
        if get_origin(p.annotation) is not Annotated:
            continue
        base, *metadata = get_args(p.annotation)
        param = next((m for m in metadata if isinstance(m, Param)), None)
        if param is not None:
            out.append(Declared(p.name, base, p.default, param))
    return out


@dataclass(frozen=True)
class Operation:
    """An operation and its names: `command` on the CLI, `tool` on the MCP server."""

    fn: Callable[..., Any]
    command: str | None
    tool: str | None
    writes: bool = False

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.fn) or ""

    @property
    def summary(self) -> str:
        return self.doc.split("\n", 1)[0]

    def parameters(self) -> list[Declared]:
        return declared_parameters(self.fn)

    def takes(self, name: str) -> bool:
        """Whether the operation accepts the context parameter `name` (`agent`, ...)."""
        return name in inspect.signature(self.fn).parameters


# --------------------------------------------------------------------------- plain results


def plain(value: Any) -> Any:
    """JSON-safe data: dataclasses and `to_dict()` objects as dicts, tuples as lists, no NaN."""
    if hasattr(value, "to_dict") and not isinstance(value, type):
        return plain(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


class Result:
    """A dataclass result whose `to_dict()` is its fields as plain data; fields named in
    `_TIMES` (milliseconds since the epoch) become ISO 8601 UTC text."""

    _TIMES: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        assert dataclasses.is_dataclass(self)
        out = {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        for name in self._TIMES:
            out[name] = iso(out.get(name))
        return out


def iso(ms: float | None, *, seconds: bool = False) -> str | None:
    """ISO 8601 UTC with milliseconds (`2026-12-02T13:29:00.123Z`) for a time in ms since the
    epoch (or in seconds with `seconds=True`); None stays None. The one time format of --json."""
    if ms is None or isinstance(ms, str):
        return ms
    stamp = datetime.datetime.fromtimestamp(ms if seconds else ms / 1000, tz=datetime.timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------- the store


@contextlib.contextmanager
def open_store(
    tracking_uri: str | None, *, must_exist: bool = True
) -> Iterator[tuple[Settings, Store]]:
    """The settings and the store for one operation.

    A URI no store understands is a ConfigError; an embedded SQLite database that does not exist
    is reported (never created) unless the operation writes (`must_exist=False`).
    """
    from tracked.run import flush
    from tracked.store import shown_uri, sqlite_path, store_for

    # Runs this process logged are sent in the background: an operation sees them all.
    flush(get_config().http_timeout)
    settings = get_config().replace(tracking_uri=tracking_uri)
    for name in ("tracking_uri", "registry_uri"):
        problem = uri_problem(getattr(settings, name))
        if problem is not None:
            raise ConfigError(name, shown_uri(getattr(settings, name)), problem)
    path = sqlite_path(settings.tracking_uri)
    if must_exist and path is not None and not path.exists():
        raise StoreUnavailableError(
            shown_uri(settings.tracking_uri),
            f"no database at {path}",
            "record a run first, or point --tracking-uri or TRACKED_TRACKING_URI at your store",
        )
    yield settings, store_for(settings)


def guarded(store: Store, what: str, fn: Callable[[], T]) -> T:
    """`fn()` for code that talks to MLflow itself (the registry lifecycle): whatever MLflow
    raised becomes one of tracked's errors, as `Store.call` does."""
    from tracked.store import translate

    try:
        return fn()
    except TrackingError:
        raise
    except Exception as exc:
        if not type(exc).__module__.startswith("mlflow"):
            raise
        raise translate(exc, uri=store.shown, what=what) from exc


def with_hint(error: NotFoundError, word: str, choices: Iterable[str]) -> NotFoundError:
    """`error` (same class) with "did you mean ...?" when one of `choices` is close to `word`:
    "... not found (did you mean 'churn'? list them with `tracked models`)"."""
    close = did_you_mean(word, list(choices)).strip(" ()")
    if close:
        message = str(error)
        head, sep, tail = message.rpartition(" (")
        if sep and message.endswith(")"):
            error.args = (f"{head} ({close} {tail}",)
        else:
            error.args = (f"{message} ({close})",)
    return error


def model_names(store: Store) -> list[str]:
    """Every registered model's name (for suggestions)."""
    found = store.pages(
        lambda c, token: c.search_registered_models(max_results=1000, page_token=token),
        what="list registered models",
    )
    return [m.name for m in found]


_redirect_lock = threading.Lock()
_redirect_depth = 0
_redirect_saved: TextIO | None = None


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Python's stdout points at stderr while an operation runs, for every thread at once.

    Nested and concurrent uses (MCP tool calls in worker threads) share one redirect: the
    first to enter saves stdout, the last to leave restores it, so a print in user code
    (a policy module, a model's repr) never lands in a command's output or a protocol stream.
    """
    global _redirect_depth, _redirect_saved
    with _redirect_lock:
        if _redirect_depth == 0:
            _redirect_saved = sys.stdout
            sys.stdout = sys.stderr
        _redirect_depth += 1
    try:
        yield
    finally:
        with _redirect_lock:
            _redirect_depth -= 1
            if _redirect_depth == 0 and _redirect_saved is not None:
                sys.stdout = _redirect_saved
                _redirect_saved = None
