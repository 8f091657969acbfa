"""Keras 3 models (torch backend, no TensorFlow) in the `.keras` format, loaded with safe_mode."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from numpy.testing import assert_allclose

# The backend is chosen when keras is first imported; this machine's keras.json says tensorflow,
# which is not installed. Set before any import of keras in this process.
os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("keras was imported with another backend first", allow_module_level=True)

import mlflow.pyfunc  # noqa: E402

from tracked.models.flavors import (  # noqa: E402
    UnsafeModelError,
    detect_flavor,
    load_model,
    requirements_for,
    save_model,
)

# Keras' torch backend hands numpy an object without the numpy 2 `__array__(copy=)` keyword.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 4)).astype("float32")
Y = (X[:, :1] * 2 - X[:, 1:2]).astype("float32")


def regressor() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, Y, epochs=3, batch_size=16, verbose=0)
    return model


def test_keras_round_trip_natively_and_as_pyfunc(tmp_path: Path, monkeypatch) -> None:
    model = regressor()
    assert detect_flavor(model) == "keras"  # a torch Module too, but saved as Keras
    saved = save_model(model, str(tmp_path / "m"), input_example=X)

    assert (saved.flavor, saved.serialization, saved.signature) == ("keras", "keras-v3", True)
    assert Path(saved.path, "data", "model.keras").is_file()
    conf = yaml.safe_load(Path(saved.path, "MLmodel").read_text())
    assert conf["flavors"]["keras"]["keras_backend"] == "torch"
    assert f"keras=={importlib.metadata.version('keras')}" in saved.requirements
    assert any(pin.startswith("torch==") for pin in saved.requirements)  # the backend

    expected = model.predict(X, verbose=0)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    native = load_model(saved.path)
    assert isinstance(native, keras.Model)
    assert_allclose(native.predict(X, verbose=0), expected, rtol=1e-6)
    assert_allclose(mlflow.pyfunc.load_model(saved.path).predict(X), expected, rtol=1e-6)
    assert_allclose(load_model(saved.path, as_pyfunc=True).predict(X), expected, rtol=1e-6)


def test_a_lambda_layer_needs_allow_pickle(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2.0), keras.layers.Dense(1)]
    )
    saved = save_model(model, str(tmp_path / "m"), input_example=X)

    with pytest.raises(UnsafeModelError, match="Lambda"):
        load_model(saved.path)
    loaded = load_model(saved.path, allow_pickle=True)  # safe_mode off: the bytecode runs
    assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-6)


def test_keras_requirements_name_the_backend() -> None:
    pins = requirements_for("keras")
    assert [p.partition("==")[0] for p in pins] == ["mlflow", "numpy", "keras", "torch"]
