"""What the flavor modules share: class checks without imports, pins, quiet MLflow, error text."""

from __future__ import annotations

import importlib.metadata
import logging
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

# Written into the MLmodel file's metadata: marks a model saved by tracked, and how.
METADATA_KEY = "tracked_serialization"

# MLflow's log lines about choices made here on purpose (SavedModel.serialization reports them).
_KNOWN_NOISE = (
    "Passing a Python object as `python_model`",
    "Saving scikit-learn models in the pickle or cloudpickle format",
    "Saving the models in the pickle or cloudpickle format",
    "Saving pytorch model by Pickle or CloudPickle format",
    "Validating input example against model signature",
    "Inferring model signature from input example",
    "You are saving a Keras model without specifying model signature",
    "Found torch version",
)
_NOISY_LOGGERS = (
    "mlflow.pyfunc",
    "mlflow.sklearn",
    "mlflow.lightgbm",
    "mlflow.xgboost",
    "mlflow.pytorch",
    "mlflow.keras.save",
    "mlflow.catboost",
    "mlflow.models.model",
    "mlflow.utils.requirements_utils",
)


def class_pairs(obj: Any) -> set[tuple[str, str]]:
    """(top-level module, class name) of every class in type(obj)'s MRO."""
    return {(cls.__module__.partition(".")[0], cls.__name__) for cls in type(obj).__mro__}


def has_class(obj: Any, module: str, name: str) -> bool:
    return (module, name) in class_pairs(obj)


def type_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def public_version(version: str) -> str:
    """`2.13.0+cpu` -> `2.13.0`: a local version label is not on PyPI, and PEP 440 lets
    `==2.13.0` match the installed `2.13.0+cpu` build (the exact build is recorded apart)."""
    return version.partition("+")[0]


def pins(names: Iterable[str]) -> list[str]:
    """`name==version` for each installed distribution in `names`; missing ones are left out."""
    out = []
    for name in names:
        try:
            out.append(f"{name}=={public_version(importlib.metadata.version(name))}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def one_line(exc: BaseException, *, stale: BaseException | None = None) -> str:
    """The innermost cause, in one line: MLflow wraps e.g. "cannot pickle '_thread.lock'".

    `stale` is the exception that was already being handled when the failing call began: Python
    makes it the `__context__` of whatever is raised next, and a library that leaves one behind
    (CatBoost does, after a callback raised) would otherwise be named as every later cause."""
    seen = {id(exc)}
    while True:
        inner = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if inner is None or inner is stale or id(inner) in seen:
            break
        seen.add(id(inner))
        exc = inner
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class _DropKnownNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.WARNING and str(record.msg).startswith(_KNOWN_NOISE))


@contextmanager
def quiet_mlflow() -> Iterator[None]:
    """Hide MLflow's warnings and its log lines about the choices save_model makes on purpose."""
    noise = _DropKnownNoise()
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    for logger in loggers:
        logger.addFilter(noise)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(noise)
