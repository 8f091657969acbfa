"""Metrics and the model from whatever a training function returns."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from mlflow.utils.validation import _validate_metric_name
from strategies import metric_dicts

from tracked.capture.keys import is_valid_key
from tracked.capture.metrics import Outcome, metric_values, read_result


class Model:
    """Anything with a callable `predict` is a model candidate."""

    def predict(self, X: Any) -> Any:
        return X


class Reports:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, kind: str, key: str, reason: str) -> None:
        self.calls.append((kind, key, reason))


class Result(NamedTuple):
    model: Any
    metrics: dict[str, float]


class Plain(NamedTuple):
    lr: float
    depth: int


@dataclass
class Fitted:
    model: Any
    metrics: dict[str, Any]
    notes: str = ""


def test_dict_of_numbers_is_metrics_without_model() -> None:
    assert read_result({"auc": 0.9, "loss": 1, "name": "x"}) == Outcome({"auc": 0.9, "loss": 1.0})


def test_nested_dict_flattens_and_model_and_metrics_keys_are_read() -> None:
    model = Model()

    outcome = read_result(
        {"val": {"auc": 0.8, "f1": {"macro": 0.5}}, "model": model, "metrics": {"loss": 0.2}}
    )

    assert outcome.metrics == {"val.auc": 0.8, "val.f1.macro": 0.5, "loss": 0.2}
    assert outcome.model is model


def test_model_metrics_tuple_in_either_order() -> None:
    model = Model()

    assert read_result((model, {"acc": 0.7})) == Outcome({"acc": 0.7}, model)
    assert read_result(({"acc": 0.7}, model)) == Outcome({"acc": 0.7}, model)


def test_namedtuple_with_model_and_metrics_fields() -> None:
    model = Model()

    assert read_result(Result(model, {"acc": 0.6})) == Outcome({"acc": 0.6}, model)


def test_namedtuple_without_those_fields_gives_nothing() -> None:
    assert read_result(Plain(0.1, 3)) == Outcome()


def test_dataclass_with_model_and_metrics_fields() -> None:
    model = Model()

    outcome = read_result(Fitted(model, {"rmse": 1.5, "tag": "x"}))

    assert outcome == Outcome({"rmse": 1.5}, model)


def test_attrs_class_with_metrics_field() -> None:
    attrs = pytest.importorskip("attrs")

    @attrs.define
    class Done:
        metrics: dict[str, float]

    assert read_result(Done({"mae": 0.3})) == Outcome({"mae": 0.3})


def test_plain_model_object_is_the_model() -> None:
    model = Model()

    assert read_result(model) == Outcome({}, model)


@pytest.mark.parametrize("result", ["done", None, [1, 2, 3], [Model()], 0.5, {1, 2}, b"x"])
def test_values_that_are_neither_model_nor_metrics(result: Any) -> None:
    assert read_result(result) == Outcome()


def test_numpy_scalars_zero_d_arrays_and_bools_are_metrics() -> None:
    outcome = read_result(
        {
            "f32": np.float32(0.5),
            "i64": np.int64(3),
            "zero_d": np.array(2.5),
            "np_bool": np.bool_(True),
            "flag": False,
            "vector": np.array([1.0, 2.0]),  # not a scalar: not a metric
        }
    )

    assert outcome.metrics == {
        "f32": 0.5,
        "i64": 3.0,
        "zero_d": 2.5,
        "np_bool": 1.0,
        "flag": 0.0,
    }
    assert all(type(v) is float for v in outcome.metrics.values())


def test_non_numeric_numpy_scalar_is_skipped_not_fatal() -> None:
    outcome = read_result({"acc": 0.9, "label": np.str_("cat"), "when": np.datetime64("2024")})

    assert outcome.metrics == {"acc": 0.9}


def test_metric_values_renames_invalid_keys_and_reports() -> None:
    reports = Reports()

    metrics = metric_values({"acc@1": 0.5, "val/auc": 0.7}, report=reports)

    assert metrics == {"acc_1": 0.5, "val/auc": 0.7}
    assert [(kind, key) for kind, key, _ in reports.calls] == [("metric-name", "acc@1")]
    assert "acc_1" in reports.calls[0][2]


def test_non_finite_values_are_kept_and_reported() -> None:
    reports = Reports()

    metrics = metric_values({"loss": float("nan"), "grad": float("inf")}, report=reports)

    assert math.isnan(metrics["loss"]) and metrics["grad"] == math.inf
    assert [(kind, key) for kind, key, _ in reports.calls] == [
        ("non-finite", "loss"),
        ("non-finite", "grad"),
    ]


def test_an_int_too_large_for_float_is_skipped_and_reported() -> None:
    reports = Reports()

    assert metric_values({"big": 10**400, "ok": 1}, report=reports) == {"ok": 1.0}
    assert [(kind, key) for kind, key, _ in reports.calls] == [("metric-value", "big")]


def test_recursive_metrics_dict_does_not_loop() -> None:
    values: dict[str, Any] = {"acc": 1.0}
    values["again"] = values

    assert metric_values(values) == {"acc": 1.0}


@settings(max_examples=100, deadline=None)
@given(metric_dicts())
def test_any_metric_dict_gives_valid_keys_and_floats(values: dict[Any, Any]) -> None:
    metrics = metric_values(values, report=Reports())

    for key, value in metrics.items():
        assert is_valid_key(key)
        _validate_metric_name(key)
        assert type(value) is float


def test_metric_names_that_sanitize_alike_keep_both_values() -> None:
    metrics = metric_values({"acc@1": 0.5, "acc_1": 0.7})

    assert sorted(metrics.values()) == [0.5, 0.7]
