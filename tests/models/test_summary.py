"""describe_model: parameter counts and a one-screen architecture for torch and Keras models."""

from __future__ import annotations

import os

import pytest
from sklearn.linear_model import LogisticRegression

from tracked.models.summary import MAX_LINES, describe_model

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402


def test_a_module_is_counted_and_summarised() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    model[0].requires_grad_(False)
    found = describe_model(model)
    assert found["class"] == "torch.nn.modules.container.Sequential"
    assert (found["parameters"], found["trainable_parameters"]) == (58, 18)
    assert found["parameter_bytes"] == 58 * 4
    assert found["summary"] == str(model)


def test_a_shared_weight_counts_once() -> None:
    embed = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = embed.weight
    assert describe_model(nn.ModuleList([embed, head]))["parameters"] == 40


def test_a_deep_module_fits_one_screen() -> None:
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(200)])
    lines = describe_model(model)["summary"].splitlines()
    assert len(lines) == MAX_LINES
    assert lines[0] == "Sequential("
    assert lines[-1] == f"... {len(str(model).splitlines()) - MAX_LINES + 1} more lines " + (
        f"({len(str(model).splitlines())} in all) not shown"
    )


@pytest.mark.filterwarnings(  # Keras' torch backend and numpy 2's __array__(copy=) keyword
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
def test_a_keras_model_uses_its_own_summary() -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("keras was imported with another backend first")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.layers[0].trainable = False
    found = describe_model(model)
    assert (found["parameters"], found["trainable_parameters"]) == (19, 4)
    assert "dense" in found["summary"] and "Total params" in found["summary"]


def test_other_models_and_classes_are_not_described() -> None:
    assert describe_model(LogisticRegression()) == {}
    assert describe_model(nn.Linear) == {}
