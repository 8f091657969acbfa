"""Metrics and the model from what a training function returns.

Accepted shapes: a dict of numbers (nested dicts flatten to dotted keys, a `model` key holds the
model), a `(model, metrics)` tuple, an object with `metrics` / `model` fields (dataclass,
NamedTuple, attrs), or the model itself.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tracked.capture.keys import sanitize_key, unique_key

__all__ = ["Outcome", "metric_values", "read_result"]

Report = Callable[[str, str, str], None]
_NO_MODEL = (str, bytes, int, float, bool, type(None), list, set, frozenset, Mapping)


@dataclass
class Outcome:
    metrics: dict[str, float] = field(default_factory=dict)
    model: Any = None


def read_result(result: Any, report: Report | None = None) -> Outcome:
    """Split a training function's return value into metrics and a model candidate."""
    if isinstance(result, Mapping):
        rest = {k: v for k, v in result.items() if k not in ("model", "metrics")}
        # `rest` is a copy: a value that refers back to `result` is a loop all the same.
        metrics = metric_values(rest, report=report, _path=(id(result),))
        if isinstance(result.get("metrics"), Mapping):
            metrics.update(metric_values(result["metrics"], report=report, _path=(id(result),)))
        return Outcome(metrics, _model_candidate(result.get("model")))
    if isinstance(result, tuple) and not hasattr(result, "_fields"):
        metrics_part = next((item for item in result if isinstance(item, Mapping)), None)
        model_part = next((item for item in result if _model_candidate(item) is not None), None)
        metrics = metric_values(metrics_part, report=report) if metrics_part else {}
        return Outcome(metrics, model_part)
    fields = _fields(result)
    if fields is not None:
        given = fields.get("metrics")
        return Outcome(
            metric_values(given, report=report) if isinstance(given, Mapping) else {},
            _model_candidate(fields.get("model")),
        )
    return Outcome({}, _model_candidate(result))


def metric_values(
    values: Mapping[Any, Any],
    prefix: str = "",
    report: Report | None = None,
    *,
    _path: tuple[int, ...] = (),
) -> dict[str, float]:
    """Numeric entries of `values` (nested mappings flattened) under valid MLflow keys."""
    out: dict[str, float] = {}
    for key, value in _numbers(values, prefix, report, _path):
        safe = unique_key(sanitize_key(key), key, out)
        if safe != key and report:
            report("metric-name", key, f"renamed to {safe!r}: MLflow rejects the original")
        if not math.isfinite(value) and report:
            report("non-finite", key, f"value {value} logged as is")
        out[safe] = value
    return out


def _numbers(
    values: Mapping[Any, Any], prefix: str, report: Report | None, path: tuple[int, ...]
) -> Iterator[tuple[str, float]]:
    if id(values) in path:
        if report:
            report("recursive", prefix.rstrip(".") or "metrics", "recursive; not followed")
        return
    for raw_key, value in values.items():
        key = f"{prefix}{_text(raw_key)}"
        if isinstance(value, Mapping):
            yield from _numbers(value, key + ".", report, (*path, id(values)))
        elif isinstance(value, numbers.Real) or _is_scalar_array(value):
            try:
                item = value.item() if _is_scalar_array(value) else value
                if isinstance(item, numbers.Real):
                    yield key, float(item)
            except (TypeError, ValueError, OverflowError):
                if report:
                    report("metric-value", key, "not convertible to float; skipped")


def _is_scalar_array(value: Any) -> bool:
    return getattr(value, "shape", None) == () and hasattr(value, "item")


def _fields(result: Any) -> dict[str, Any] | None:
    if isinstance(result, tuple) and hasattr(result, "_fields"):
        return dict(result._asdict())  # type: ignore[attr-defined]
    names = getattr(type(result), "__dataclass_fields__", None) or {
        a.name: a for a in getattr(type(result), "__attrs_attrs__", ())
    }
    if names and ("metrics" in names or "model" in names):
        return {name: getattr(result, name, None) for name in names}
    return None


def _model_candidate(value: Any) -> Any:
    """`value` if it looks like a model (has predict/predict_proba or is a booster), else None."""
    if value is None or isinstance(value, _NO_MODEL):
        return None
    if callable(getattr(value, "predict", None)) or _is_booster(value):
        return value
    from tracked.models.flavors import detect_flavor

    try:  # a torch module, a Keras model...: no predict, but a flavor tracked can save
        return value if detect_flavor(value) is not None else None
    except Exception:
        return None


def _is_booster(value: Any) -> bool:
    return any(
        cls.__name__ == "Booster" and cls.__module__.split(".")[0] in ("xgboost", "lightgbm")
        for cls in type(value).__mro__
    )


def _text(key: Any) -> str:
    try:
        return key if isinstance(key, str) else str(key)
    except Exception:
        return f"<{type(key).__name__}>"
