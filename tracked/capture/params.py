"""Params: a call's bound arguments flattened into valid, redacted MLflow params.

Nested dicts, dataclasses, pydantic models, attrs classes, NamedTuples and argparse Namespaces
flatten to dotted keys (`optimizer.lr`). Data (arrays, DataFrames, files) is not a param: it is
handed back separately for fingerprinting. Callables, modules and open files are skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import fnmatch
import inspect
import io
import os
import types
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

from tracked.capture.keys import (
    MAX_PARAM_LENGTH,
    clean_text,
    sanitize_key,
    short_hash,
    unique_key,
    was_truncated,
)
from tracked.capture.objects import describe, describes
from tracked.capture.secrets import REDACTED, is_secret_name

__all__ = ["CapturedParams", "bind_arguments", "capture_params", "flatten"]

MAX_DEPTH = 12
_SCALARS = (str, int, float, bool, type(None))
# Problem reports go to a callback: (kind, field, reason). The run decides to warn or raise.
Report = Callable[[str, str, str], None]


@dataclass
class CapturedParams:
    params: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # data-like arguments, by name
    skipped: list[str] = field(default_factory=list)


def bind_arguments(
    func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """The call's arguments by parameter name, defaults applied; `**kwargs` merged in flat."""
    try:
        bound = inspect.signature(func).bind(*args, **kwargs)
    except (TypeError, ValueError):
        # The call itself is wrong (the function will raise) or there is no signature: fall back.
        return {**{f"arg{i}": a for i, a in enumerate(args)}, **kwargs}
    bound.apply_defaults()
    values: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            values.update(value)
        elif name not in ("self", "cls"):
            values[name] = value
    return values


def capture_params(
    values: Mapping[str, Any],
    *,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    report: Report | None = None,
) -> CapturedParams:
    """Flatten `values` into MLflow params; data-like values go to `.data` instead."""
    from tracked.capture.fingerprint import is_data_like

    out = CapturedParams()
    for name, value in values.items():
        top = _key_text(name)
        if not _selected(top, include, exclude, leaf=False):
            continue
        if _is_file(value):
            out.data[top] = value  # fingerprinted as data, and its path stays a readable param
        elif _is_data(value, is_data_like):
            out.data[top] = value
            continue
        for key, text in flatten(value, top, report=report):
            if not _selected(key, include, exclude):
                continue
            if text is None:
                out.skipped.append(key)
                continue
            clean = sanitize_key(key)
            safe = unique_key(clean, key, out.params)
            if safe != key and report:
                why = "MLflow rejects the original" if clean != key else "the name is taken"
                report("param-name", key, f"renamed to {safe!r}: {why}")
            out.params[safe] = _redacted(key, text)
    return out


def flatten(
    value: Any, prefix: str, *, report: Report | None = None, _depth: int = 0, _path: tuple = ()
) -> Iterator[tuple[str, str | None]]:
    """(dotted key, string value) pairs for `value`; value None means "not a param, skipped"."""
    if isinstance(value, enum.Enum):
        value = value.value  # `Mode.FAST` is logged as what it stands for ("fast")
    if isinstance(value, (_SCALARS, enum.Enum)):
        yield prefix, _text(value, prefix, report)
        return
    if _is_skipped(value):
        yield prefix, None
        return
    if id(value) in _path:
        if report:
            report("recursive", prefix, "recursive structure; logged as <recursive>")
        yield prefix, "<recursive>"
        return
    children = _children(value)
    if children is None or _depth >= MAX_DEPTH:
        yield prefix, _text(value, prefix, report)
        return
    if not children:
        yield prefix, _text(value, prefix, report)
        return
    path = (*_path, id(value))
    for key, child in children:
        yield from flatten(
            child, f"{prefix}.{_key_text(key)}", report=report, _depth=_depth + 1, _path=path
        )


def _children(value: Any) -> list[tuple[Any, Any]] | None:
    """The named parts of a structured value, or None if it should be logged as one string."""
    if isinstance(value, Mapping):
        return list(value.items())
    if isinstance(value, argparse.Namespace):
        return list(vars(value).items())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(f.name, getattr(value, f.name, None)) for f in dataclasses.fields(value)]
    attrs_fields = getattr(type(value), "__attrs_attrs__", None)
    if attrs_fields is not None:
        return [(a.name, getattr(value, a.name, None)) for a in attrs_fields]
    if _is_pydantic(value):
        dumped = value.model_dump() if hasattr(value, "model_dump") else value.dict()
        return list(dumped.items())
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # NamedTuple
        return list(zip(value._fields, value, strict=False))
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, _SCALARS) for v in value):
            return None  # a list of scalars reads best as one value: "[64, 32]"
        return list(enumerate(value))
    if isinstance(value, Set):
        return None
    return describe(value)  # an optimizer, scheduler, loss...: its class and settings


def _is_pydantic(value: Any) -> bool:
    return any(
        cls.__name__ == "BaseModel" and cls.__module__.startswith("pydantic")
        for cls in type(value).__mro__
    )


def _is_skipped(value: Any) -> bool:
    """Callables, classes, modules, open files and generators are never stringified."""
    return (
        isinstance(value, (types.ModuleType, io.IOBase, types.GeneratorType, type))
        or inspect.isroutine(value)
        or (callable(value) and not _children_candidate(value) and not describes(value))
    )


def _children_candidate(value: Any) -> bool:
    # Callable objects that are also configs (e.g. a dataclass with __call__) still flatten.
    return dataclasses.is_dataclass(value) or hasattr(type(value), "__attrs_attrs__")


def _is_file(value: Any) -> bool:
    """A path argument naming an existing file. Directories are not fingerprinted unasked:
    `output_dir="."` would hash the whole working tree; use `run.log_input(path)` for them."""
    if not isinstance(value, (str, os.PathLike)):
        return False
    try:
        return len(os.fspath(value)) < 4096 and os.path.isfile(value)
    except (OSError, ValueError, TypeError):
        return False


def _is_data(value: Any, is_data_like: Callable[[Any], bool]) -> bool:
    if isinstance(value, (str, os.PathLike)):
        return False
    try:
        return is_data_like(value)
    except Exception:
        return False


def _text(value: Any, key: str, report: Report | None) -> str:
    """The value as param text, cleaned once (`clean_text`: escaped, redacted, then cut)."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bytes):
        text = value.decode("utf-8", "backslashreplace")
    elif isinstance(value, int) and value.bit_length() > 10_000:
        # str() refuses ints over 4300 digits; the size and a hash identify it instead.
        text = f"<int of {value.bit_length()} bits, xxh:{short_hash(hex(value))}>"
    else:
        try:
            text = str(value)
        except Exception as exc:
            try:
                text = repr(value)
            except Exception:
                if report:
                    report("unprintable", key, f"str() and repr() raised {type(exc).__name__}")
                text = f"<unprintable {type(value).__name__}>"
    clean = clean_text(text, limit=MAX_PARAM_LENGTH)
    if report and len(text) > MAX_PARAM_LENGTH and was_truncated(clean):
        report("truncated", key, f"value of {len(text)} characters truncated with a hash suffix")
    return clean


def _redacted(key: str, text: str) -> str:
    """`text` (already cleaned by `_text`), or ``***`` when any part of the dotted key names a
    secret: `db.password` hides the value even though `db` alone is harmless."""
    if any(is_secret_name(part) for part in key.split(".")):
        return REDACTED
    return text


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return key
    try:
        return str(key)
    except Exception:
        return f"<{type(key).__name__}>"


def _selected(
    key: str,
    include: Sequence[str] | None,
    exclude: Sequence[str] | None,
    *,
    leaf: bool = True,
) -> bool:
    """Patterns match a dotted key, anything under it, or (fnmatch) its text."""

    def hit(pattern: str) -> bool:
        return fnmatch.fnmatchcase(key, pattern) or key.startswith(pattern + ".")

    if exclude and any(hit(p) for p in exclude):
        return False
    if include:
        # A parent of an included key passes so that its children get examined; a glob may
        # match any descendant, so a parent passes any glob.
        return any(
            hit(p) or p.startswith(key + ".") or (leaf is False and any(c in p for c in "*?["))
            for p in include
        )
    return True
