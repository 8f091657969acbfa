"""CatBoost models in the native `.cbm` format."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

catboost = pytest.importorskip("catboost")

import mlflow.pyfunc  # noqa: E402

from tracked.models.example import input_example  # noqa: E402
from tracked.models.flavors import detect_flavor, load_model, save_model  # noqa: E402

RNG = np.random.default_rng(0)
FRAME = pd.DataFrame(RNG.normal(size=(80, 3)), columns=["a", "b", "c"])
FRAME["target"] = (FRAME["a"] + FRAME["b"] > 0).astype(int)
FEATURES = FRAME.drop(columns="target")


@pytest.mark.parametrize(
    ("cls", "predict"),
    [
        (catboost.CatBoostClassifier, lambda m, x: m.predict_proba(x)),
        (catboost.CatBoostRegressor, lambda m, x: m.predict(x)),
    ],
)
def test_catboost_round_trip(tmp_path: Path, monkeypatch, cls, predict) -> None:
    model = cls(
        iterations=10,
        depth=2,
        verbose=False,
        random_seed=0,
        thread_count=1,
        allow_writing_files=False,
    )
    model.fit(FEATURES, FRAME["target"])
    assert detect_flavor(model) == "catboost"
    saved = save_model(model, str(tmp_path / "m"), input_example=FRAME)  # target inside

    assert (saved.flavor, saved.serialization, saved.signature) == (
        "catboost",
        "catboost-cbm",
        True,
    )
    assert Path(saved.path, "model.cb").is_file()  # CatBoost's own binary format
    assert f"catboost=={importlib.metadata.version('catboost')}" in saved.requirements
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    native = load_model(saved.path)
    assert type(native) is cls
    assert_allclose(predict(native, FEATURES), predict(model, FEATURES))
    pyfunc = mlflow.pyfunc.load_model(saved.path)
    assert list(pyfunc.metadata.get_input_schema().input_names()) == ["a", "b", "c"]
    assert_allclose(np.asarray(pyfunc.predict(FEATURES)).ravel(), model.predict(FEATURES).ravel())


def test_input_example_takes_catboosts_feature_names() -> None:
    model = catboost.CatBoostRegressor(
        iterations=2, verbose=False, thread_count=1, allow_writing_files=False
    )
    model.fit(FEATURES, FRAME["target"])
    example = input_example({"df": FRAME}, model=model)
    assert list(example.columns) == ["a", "b", "c"] and len(example) == 5
