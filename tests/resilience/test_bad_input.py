"""Bad input never crashes training (issue #7, item 4).

Whatever a training function is given or returns, tracked logs what it can under names MLflow
accepts, warns once per kind of problem, and hands back the user's own object. Under
`strict=True` the same problems raise a `TrackingError` subclass whose message names the field.
Every check reads the real SQLite store, not tracked's in-memory record.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import sys
import threading
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow.utils.validation import (
    MAX_ENTITY_KEY_LENGTH,
    MAX_PARAM_VAL_LENGTH,
    MAX_TAG_VAL_LENGTH,
    _validate_length_limit,
    _validate_metric_name,
    _validate_param_name,
    _validate_tag_name,
)
from strategies import Unprintable, hostile_param_trees, metric_dicts, names, param_trees

import tracked
from tracked.errors import CaptureError, ModelLoggingError, TrackingError

pytestmark = pytest.mark.sqlite_only

_TRUNCATED = re.compile(r"\.\.\.\[xxh:[0-9a-f]{8}\]\Z")


class Hostile:
    """Every attribute look-up raises something other than AttributeError."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"hostile {name}")


class BadItems(dict):
    def items(self) -> Any:
        raise RuntimeError("items() raised")


class NoCompare:
    def __eq__(self, other: object) -> bool:
        raise RuntimeError("__eq__ raised")

    def __bool__(self) -> bool:
        raise RuntimeError("__bool__ raised")

    __hash__ = object.__hash__


class LockedModel:
    """Has `predict`, so tracked tries to save it; holds a lock, so it cannot be pickled."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def predict(self, X: Any) -> Any:
        return X


class Scores(NamedTuple):
    metrics: Any
    model: Any


@dataclasses.dataclass
class Outcome:
    metrics: Any
    model: Any = None


def _recursive_dict() -> dict[str, Any]:
    d: dict[str, Any] = {"acc": 0.5}
    d["self"] = d
    return d


def _recursive_list() -> list[Any]:
    items: list[Any] = [1, 2]
    items.append(items)
    return items


def _tracked_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "tracked" and r.levelno >= logging.WARNING
    ]


def _assert_valid_for_mlflow(stored: Any) -> None:
    """Every key the store holds passes MLflow's own validators, and every value its limits."""
    for key, value in stored.data.params.items():
        _validate_param_name(key)
        _validate_length_limit("Param key", MAX_ENTITY_KEY_LENGTH, key)
        _validate_length_limit("Param value", MAX_PARAM_VAL_LENGTH, value)
    for key in stored.data.metrics:
        _validate_metric_name(key)
        _validate_length_limit("Metric name", MAX_ENTITY_KEY_LENGTH, key)
    for key, value in stored.data.tags.items():
        _validate_tag_name(key)
        _validate_length_limit("Tag key", MAX_ENTITY_KEY_LENGTH, key)
        _validate_length_limit("Tag value", MAX_TAG_VAL_LENGTH, value)


def _finished(store: Any) -> tuple[tracked.TrackedRun, Any]:
    run = tracked.last_run()
    assert run is not None and run.run_id is not None, "the run was not recorded"
    stored = store.run(run.run_id)
    assert stored.info.status == "FINISHED"
    return run, stored


def _same_metric(stored: float, logged: float) -> bool:
    if math.isnan(logged):
        return math.isnan(stored)
    if math.isinf(logged):  # MLflow's SQL store keeps +-inf as +-DBL_MAX
        return stored == logged or abs(stored) == sys.float_info.max
    return stored == logged


# -- arbitrary input: nothing escapes, everything stored is valid --------------------------------


_KWARG_NAMES = names().filter(lambda n: n not in ("config", "step_metrics", "result"))


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    config=hostile_param_trees(),
    extra=st.dictionaries(_KWARG_NAMES, param_trees(), max_size=3),
    result=metric_dicts(),
    step_metrics=metric_dicts(),
)
def test_arbitrary_params_and_metrics_never_escape_and_are_stored_under_valid_keys(
    store: Any, config: Any, extra: dict[str, Any], result: Any, step_metrics: Any
) -> None:
    @tracked.tracked_training(register=False)
    def train(config: Any, step_metrics: Any, **kwargs: Any) -> Any:
        tracked.log_metrics(step_metrics, step=3)
        tracked.log_params({"late": config})
        return result

    assert train(config, step_metrics, **extra) is result

    run, stored = _finished(store)
    _assert_valid_for_mlflow(stored)
    assert stored.data.params == run.params  # all arrived, none cut by MLflow itself
    assert set(stored.data.metrics) == set(run.metrics)
    for key, value in run.metrics.items():
        assert _same_metric(stored.data.metrics[key], value), key


# -- the user's exact object comes back --------------------------------------------------------

RETURNS: dict[str, Any] = {
    "none": lambda: None,
    "int": lambda: 7,
    "huge-int": lambda: 10**5000,
    "nan": lambda: math.nan,
    "text": lambda: "done",
    "bytes": lambda: b"\x00\xff",
    "list": lambda: [1, {"acc": 2}],
    "set": lambda: {1, 2},
    "generator": lambda: (i for i in range(3)),
    "metrics": lambda: {"acc": 0.9, "nested": {"f1": 0.8}},
    "hostile-metrics": lambda: {"acc@1": math.nan, "x" * 300: math.inf, 3: 1, None: 2},
    "recursive-dict": _recursive_dict,
    "recursive-list": _recursive_list,
    "model-and-metrics-tuple": lambda: (object(), {"acc": 0.5}),
    "metrics-first-tuple": lambda: ({"acc": 0.5}, "not a model"),
    "namedtuple": lambda: Scores({"acc": 0.4}, None),
    "dataclass": lambda: Outcome({"acc": 0.3}),
    "dataclass-bad-metrics": lambda: Outcome(BadItems(a=1)),
    "hostile-object": Hostile,
    "items-raise": lambda: BadItems(acc=1.0),
    "eq-and-bool-raise": NoCompare,
    "unprintable": Unprintable,
    "numpy": lambda: np.arange(6.0).reshape(2, 3),
    "numpy-scalars": lambda: {"a": np.float32("nan"), "b": np.array(3), "c": np.array([1, 2])},
    "dataframe": lambda: pd.DataFrame({"a": [1, 2]}),
    "exception-object": lambda: ValueError("returned, not raised"),
    "class": lambda: dict,
    "lambda": lambda: lambda: 1,
}


@pytest.mark.parametrize("make", RETURNS.values(), ids=list(RETURNS))
def test_the_users_exact_object_comes_back(store: Any, make: Any) -> None:
    value = make()

    @tracked.tracked_training(register=False)
    def train() -> Any:
        return value

    assert train() is value
    _finished(store)


def test_an_unpicklable_model_is_skipped_with_one_warning_and_the_run_finishes(
    store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    model = LockedModel()

    @tracked.tracked_training
    def train() -> Any:
        tracked.current_run().log_model(LockedModel(), name="another")  # the same problem twice
        tracked.log_metrics({"loss": 0.5}, step=1)
        return model, {"acc": 0.9}

    with caplog.at_level(logging.WARNING, logger="tracked"):
        result = train()

    assert result[0] is model and result[1] == {"acc": 0.9}
    lines = _tracked_lines(caplog)
    assert len(lines) == 1, lines
    assert "LockedModel" in lines[0] and "cannot pickle" in lines[0]
    run, stored = _finished(store)
    assert stored.data.metrics == {"acc": 0.9, "loss": 0.5}
    assert not any(k.startswith("tracked.model.") for k in stored.data.tags)
    assert run.model_version is None
    assert {a.path for a in store.client.list_artifacts(run.run_id)} == {"tracked"}


# -- each kind of bad value ----------------------------------------------------------------------


def test_objects_whose_str_and_repr_raise_are_logged_by_type(
    store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    @tracked.tracked_training
    def train(lr: Any, cfg: Any) -> dict[str, float]:
        return {"acc": 1.0}

    with caplog.at_level(logging.WARNING, logger="tracked"):
        assert train(Unprintable(), {"inner": Unprintable(), Unprintable(): 3}) == {"acc": 1.0}

    _, stored = _finished(store)
    assert stored.data.params["lr"] == "<unprintable Unprintable>"
    assert stored.data.params["cfg.inner"] == "<unprintable Unprintable>"
    assert "3" in stored.data.params.values()  # under a key made from the type name
    _assert_valid_for_mlflow(stored)
    unprintable = [line for line in _tracked_lines(caplog) if "str() and repr() raised" in line]
    assert len(unprintable) == 1 and "'lr'" in unprintable[0]


def test_huge_strings_are_truncated_with_a_hash_and_stay_distinct(
    store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    head = "w" * 7000

    @tracked.tracked_training(tags={"note": "t" * 20_000})
    def train(a: str, b: str, cfg: Any) -> None:
        return None

    with caplog.at_level(logging.WARNING, logger="tracked"):
        train(head + "a", head + "b", {"deep": "x" * 100_000})

    _, stored = _finished(store)
    params = stored.data.params
    for key in ("a", "b", "cfg.deep"):
        assert len(params[key]) == MAX_PARAM_VAL_LENGTH and _TRUNCATED.search(params[key])
    assert params["a"] != params["b"]
    assert len(stored.data.tags["note"]) == MAX_TAG_VAL_LENGTH
    assert _TRUNCATED.search(stored.data.tags["note"])
    truncated = [line for line in _tracked_lines(caplog) if "truncated" in line]
    assert len(truncated) == 1 and "'a'" in truncated[0]


def test_bytes_are_logged_as_readable_text(store: Any) -> None:
    @tracked.tracked_training
    def train(blob: bytes, cfg: Any) -> None:
        return None

    train(b"\xff\xfeab", {b"raw-key": b"v", "big": b"z" * 7000, "ba": bytearray(b"q")})

    run, stored = _finished(store)
    assert stored.data.params["blob"] == "\\xff\\xfeab"
    assert stored.data.params["cfg.big"].startswith("zzz")
    assert len(stored.data.params["cfg.big"]) == MAX_PARAM_VAL_LENGTH
    assert "v" in stored.data.params.values()
    assert stored.data.params == run.params
    _assert_valid_for_mlflow(stored)


def test_recursive_structures_are_cut_where_they_loop(
    store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    a: dict[str, Any] = {"name": "a"}
    b: dict[str, Any] = {"name": "b", "a": a}
    a["b"] = b

    @tracked.tracked_training
    def train(cfg: Any, items: Any, loop: Any) -> Any:
        return _recursive_dict()

    with caplog.at_level(logging.WARNING, logger="tracked"):
        train(_recursive_dict(), _recursive_list(), a)

    _, stored = _finished(store)
    params = stored.data.params
    assert params["cfg.self"] == params["items.2"] == params["loop.b.a"] == "<recursive>"
    assert params["cfg.acc"] == "0.5" and params["loop.b.name"] == "b"
    assert stored.data.metrics == {"acc": 0.5}  # the returned dict's loop is not followed
    lines = _tracked_lines(caplog)
    assert len(lines) == 1 and "'cfg.self': recursive" in lines[0]


def test_nan_and_inf_metrics_are_stored(store: Any, caplog: pytest.LogCaptureFixture) -> None:
    @tracked.tracked_training
    def train(alpha: float, beta: float) -> dict[str, float]:
        tracked.log_metrics({"grad": math.nan}, step=0)
        return {"loss": math.nan, "up": math.inf, "down": -math.inf, "ok": 1.0}

    with caplog.at_level(logging.WARNING, logger="tracked"):
        train(math.nan, math.inf)

    _, stored = _finished(store)
    assert stored.data.params == {"alpha": "nan", "beta": "inf"}
    metrics = stored.data.metrics
    assert set(metrics) == {"grad", "loss", "up", "down", "ok"}
    assert math.isnan(metrics["grad"]) and math.isnan(metrics["loss"]) and metrics["ok"] == 1.0
    assert _same_metric(metrics["up"], math.inf) and _same_metric(metrics["down"], -math.inf)
    non_finite = [line for line in _tracked_lines(caplog) if "nan logged as is" in line]
    assert len(non_finite) == 1 and "'grad'" in non_finite[0]


BAD_METRIC_NAMES = ["acc@1", "acc_1", "a//b", "/lead", "..", "", "x" * 300, "été", "k:v", "a\nb"]


def test_metric_names_mlflow_rejects_are_sanitised_and_none_is_lost(
    store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    @tracked.tracked_training
    def train() -> dict[str, float]:
        tracked.log_metrics({name: float(i) for i, name in enumerate(BAD_METRIC_NAMES)}, step=1)
        return {f"final {name}": 1.0 for name in BAD_METRIC_NAMES}

    with caplog.at_level(logging.WARNING, logger="tracked"):
        train()

    _, stored = _finished(store)
    _assert_valid_for_mlflow(stored)
    assert len(stored.data.metrics) == 2 * len(BAD_METRIC_NAMES)
    assert stored.data.metrics["acc_1"] in (0.0, 1.0)  # one of the two that met there
    renamed = [line for line in _tracked_lines(caplog) if "MLflow rejects" in line]
    assert len(renamed) == 1 and "'acc@1'" in renamed[0]


def test_param_names_mlflow_rejects_are_sanitised_and_warned_once(
    store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    @tracked.tracked_training
    def train(**params: Any) -> None:
        return None

    with caplog.at_level(logging.WARNING, logger="tracked"):
        train(**{"a@b": 1, "a_b": 2, "": 3, "../up": 4, "x" * 400: 5}, cfg={(1, "t"): 6, None: 7})

    _, stored = _finished(store)
    _assert_valid_for_mlflow(stored)
    assert sorted(stored.data.params.values()) == ["1", "2", "3", "4", "5", "6", "7"]
    renamed = [line for line in _tracked_lines(caplog) if "renamed to" in line]
    assert len(renamed) == 1 and "'a@b'" in renamed[0]


def test_the_same_problem_twice_gives_one_warning_line(
    store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    @tracked.tracked_training
    def train(**params: Any) -> dict[str, float]:
        tracked.log_metrics({"m@1": math.nan, "m@2": math.inf}, step=0)
        return {"n@1": math.nan, "n@2": 1.0}

    with caplog.at_level(logging.WARNING, logger="tracked"):
        for _ in range(2):  # and each run warns on its own
            train(
                p1=Unprintable(),
                p2=Unprintable(),
                h1="h" * 7000,
                h2="h" * 8000,
                r1=_recursive_dict(),
                r2=_recursive_list(),
                **{"n@1": 1, "n@2": 2},
            )
            _finished(store)

    lines = _tracked_lines(caplog)
    expected = [
        "'p1': str() and repr() raised",
        "'h1': value of 7000 characters truncated",
        "'r1.self': recursive",
        "'n@1': renamed",  # a param name
        "'m@1': renamed",  # a metric name
        "'m@1': value nan",
    ]
    assert len(lines) == 2 * 6, lines
    for fragment in expected:
        assert sum(fragment in line for line in lines) == 2, (fragment, lines)


# -- strict: the same problems raise, naming the field -------------------------------------------


STRICT_CASES: dict[str, tuple[dict[str, Any], Any, type[TrackingError], str]] = {
    "unprintable-param": ({"lr": Unprintable()}, None, CaptureError, "'lr'"),
    "nested-unprintable": (
        {"cfg": {"opt": {"lr": Unprintable()}}},
        None,
        CaptureError,
        "'cfg.opt.lr'",
    ),
    "huge-param": ({"note": "n" * 7000}, None, CaptureError, "'note'"),
    "recursive-param": ({"cfg": _recursive_dict()}, None, CaptureError, "'cfg.self'"),
    "rejected-param-name": ({"a@b": 1}, None, CaptureError, "'a@b'"),
    "rejected-metric-name": ({}, {"acc@1": 0.5}, CaptureError, "'acc@1'"),
    "nan-metric": ({}, {"loss": math.nan}, CaptureError, "'loss'"),
    "inf-metric": ({}, {"up": math.inf}, CaptureError, "'up'"),
    "unconvertible-metric": ({}, {"big": 10**400}, CaptureError, "'big'"),
    "unpicklable-model": ({}, (LockedModel(), {"acc": 1.0}), ModelLoggingError, "LockedModel"),
}


@pytest.mark.parametrize(
    ("params", "result", "error", "field"), STRICT_CASES.values(), ids=list(STRICT_CASES)
)
def test_strict_raises_a_tracking_error_naming_the_field(
    store: Any, params: dict[str, Any], result: Any, error: type[TrackingError], field: str
) -> None:
    @tracked.tracked_training(strict=True)
    def train(**params: Any) -> Any:
        return result

    with pytest.raises(error) as raised:
        train(**params)

    assert isinstance(raised.value, TrackingError)
    assert field in str(raised.value)
    if isinstance(raised.value, CaptureError):
        assert raised.value.field == field.strip("'")


def test_strict_on_a_stepped_metric_raises_inside_the_training(store: Any) -> None:
    reached = []

    @tracked.tracked_training(strict=True)
    def train() -> None:
        tracked.log_metrics({"grad": math.inf}, step=2)
        reached.append("after")

    with pytest.raises(CaptureError, match="'grad'"):
        train()
    assert reached == []


# -- bugs found by this module -------------------------------------------------------------------


def test_a_tag_value_whose_str_raises_does_not_lose_the_run(store: Any) -> None:
    @tracked.tracked_training(tags={"owner": Unprintable(), "team": "risk"})
    def train() -> dict[str, float]:
        return {"acc": 1.0}

    assert train() == {"acc": 1.0}
    _, stored = _finished(store)
    assert stored.data.tags["team"] == "risk" and stored.data.metrics == {"acc": 1.0}


def test_set_tags_with_an_unprintable_value_inside_the_training_does_not_raise(
    store: Any,
) -> None:
    @tracked.tracked_training
    def train() -> str:
        tracked.current_run().set_tags({"owner": Unprintable()})
        return "trained"

    assert train() == "trained"


@pytest.mark.parametrize("step", ["three", 2**70], ids=["text", "over-64-bits"])
def test_a_step_mlflow_rejects_does_not_fail_the_run(store: Any, step: Any) -> None:
    @tracked.tracked_training
    def train() -> dict[str, float]:
        tracked.log_metrics({"loss": 0.5}, step=step)
        return {"acc": 1.0}

    assert train() == {"acc": 1.0}
    _, stored = _finished(store)
    assert stored.data.metrics["acc"] == 1.0


def test_strict_model_failure_still_ends_the_run_in_the_store(store: Any) -> None:
    @tracked.tracked_training(strict=True)
    def train() -> Any:
        return LockedModel(), {"acc": 1.0}

    with pytest.raises(ModelLoggingError):
        train()
    run = tracked.last_run()
    assert run is not None and run.run_id is not None
    assert store.run(run.run_id).info.status in ("FINISHED", "FAILED")
