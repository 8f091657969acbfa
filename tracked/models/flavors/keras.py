"""Keras 3 models in the `.keras` format (config JSON + weights), loaded with `safe_mode`.

Any backend works (torch, jax, tensorflow); the requirements pin the backend's package, and the
MLmodel file records which one was used (`keras_backend`): a loader sets KERAS_BACKEND to an
installed backend before importing keras. `safe_mode` (Keras' default) refuses to load the
Python bytecode a `Lambda` layer carries; `allow_pickle=True` turns it off.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from tracked.models.flavors._common import METADATA_KEY

NAME = "keras"
MARKERS = frozenset({("keras", "Model")})  # before "pytorch": with torch, a Model is a Module
_BACKEND_PACKAGES = {"torch": "torch", "jax": "jax", "tensorflow": "tensorflow"}


def requirements() -> tuple[str, ...]:
    keras = sys.modules.get("keras")
    backend = keras.backend.backend() if keras is not None else None
    extra = (_BACKEND_PACKAGES[backend],) if backend in _BACKEND_PACKAGES else ()
    return ("mlflow", "numpy", "keras", *extra)


def save(obj: Any, path: str, options: dict[str, Any]) -> str:
    import mlflow.keras

    serialization = "keras-v3"
    # MLflow writes the input example before it creates the directory.
    os.makedirs(path)
    mlflow.keras.save_model(obj, path, metadata={METADATA_KEY: serialization}, **options)
    return serialization


def predict(obj: Any, example: Any) -> Any:
    return obj.predict(example, verbose=0)


def prepare_example(example: Any) -> Any:
    """MLflow's Keras flavor takes tensor signatures only: a DataFrame becomes its values."""
    if hasattr(example, "columns") and hasattr(example, "to_numpy"):
        return example.to_numpy()
    return example


def load(path: str, conf: Any, allow_pickle: bool) -> Any:
    import mlflow.keras

    from tracked.models.flavors.safety import UnsafeModelError

    try:
        return mlflow.keras.load_model(path, load_model_kwargs={"safe_mode": not allow_pickle})
    except ValueError as exc:
        if "safe_mode" not in str(exc):
            raise
        reason = "a Lambda layer in it holds Python bytecode, which Keras' safe_mode refuses"
        raise UnsafeModelError(path, reason) from None
