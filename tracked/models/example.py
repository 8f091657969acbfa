"""Which argument is the training data, and a few rows of it as the model's input example."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["input_example"]

_PREFERRED = ("X", "data", "X_train", "x", "x_train", "features")
ROWS = 5


def input_example(data_args: Mapping[str, Any]) -> Any:
    """The first rows of `X=`/`data=` or the first 2-D array/DataFrame argument, else None."""
    ordered = [data_args[k] for k in _PREFERRED if k in data_args]
    ordered += [v for k, v in data_args.items() if k not in _PREFERRED]
    for value in ordered:
        if hasattr(value, "iloc") and getattr(value, "ndim", 0) == 2:
            return value.iloc[:ROWS]
        if getattr(value, "ndim", 0) == 2 and hasattr(value, "__getitem__"):
            try:
                return value[:ROWS]
            except Exception:
                continue
    return None
