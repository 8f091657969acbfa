"""Params: any argument flattens into keys and values MLflow accepts, secrets masked."""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from mlflow.utils.validation import _validate_length_limit, _validate_param_name
from strategies import huge_texts, param_trees

from tracked.capture.keys import MAX_KEY_LENGTH, MAX_PARAM_LENGTH
from tracked.capture.params import bind_arguments, capture_params, flatten
from tracked.capture.secrets import REDACTED, is_secret_name

_TRUNCATED = re.compile(r"\.\.\.\[xxh:[0-9a-f]{8}\]\Z")


class Reports:
    """A `report` callback that keeps what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, kind: str, key: str, reason: str) -> None:
        self.calls.append((kind, key, reason))

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.calls]


# -- any tree ------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(param_trees())
def test_any_tree_flattens_into_params_mlflow_accepts(tree: Any) -> None:
    reports = Reports()

    captured = capture_params({"cfg": tree}, report=reports)

    for key, value in captured.params.items():
        _validate_param_name(key)
        _validate_length_limit("Param key", MAX_KEY_LENGTH, key)
        assert isinstance(value, str)
        _validate_length_limit("Param value", MAX_PARAM_LENGTH, value)
        assert key == "cfg" or key.startswith("cfg.")  # the argument's name leads
    assert all(isinstance(kind, str) for kind in reports.kinds())


@settings(max_examples=30, deadline=None)
@given(huge_texts())
def test_a_long_value_is_truncated_with_a_hash_suffix(text: str) -> None:
    reports = Reports()

    params = capture_params({"note": text}, report=reports).params

    assert len(params["note"]) == MAX_PARAM_LENGTH
    assert _TRUNCATED.search(params["note"])
    assert reports.kinds() == ["truncated"]


def test_two_long_values_with_the_same_prefix_stay_different() -> None:
    head = "w" * 7000
    params = capture_params({"a": head + "1", "b": head + "2"}).params

    assert params["a"][:5000] == params["b"][:5000]
    assert params["a"] != params["b"]


@pytest.mark.parametrize(
    "tree",
    [
        {1: "int key", "1": "str key"},
        {"a.b": "dotted", "a": {"b": "nested"}},
        {"x/": "invalid first", "x": "valid second"},
    ],
    ids=["int-and-str", "dotted-and-nested", "sanitized-then-valid"],
)
def test_keys_that_flatten_alike_keep_every_value(tree: dict[Any, str]) -> None:
    params = capture_params({"cfg": tree}).params

    assert sorted(params.values()) == sorted(tree_values(tree))


def tree_values(tree: Any) -> Iterator[str]:
    for value in tree.values():
        if isinstance(value, dict):
            yield from tree_values(value)
        else:
            yield value


def test_a_huge_int_is_logged_truncated_not_unprintable() -> None:
    params = capture_params({"n": 7**6000, "m": 7**6000 + 1}).params

    assert params["n"].startswith("<int of 16845 bits, xxh:")
    assert params["n"] != params["m"]  # the hash tells different huge ints apart


# -- shapes ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Optimizer:
    lr: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)


@dataclasses.dataclass
class Config:
    optimizer: Optimizer = dataclasses.field(default_factory=Optimizer)
    epochs: int = 3


class Point(NamedTuple):
    x: int
    y: str


def test_nested_dict_flattens_to_dotted_keys() -> None:
    params = capture_params({"optimizer": {"lr": 0.1, "sched": {"gamma": 0.5}}}).params

    assert params == {"optimizer.lr": "0.1", "optimizer.sched.gamma": "0.5"}


def test_dataclass_flattens_by_field() -> None:
    params = capture_params({"cfg": Config()}).params

    assert params == {
        "cfg.optimizer.lr": "0.01",
        "cfg.optimizer.betas": "(0.9, 0.999)",
        "cfg.epochs": "3",
    }


def test_attrs_class_flattens_by_field() -> None:
    attrs = pytest.importorskip("attrs")

    @attrs.define
    class Trees:
        depth: int = 4
        optimizer: Optimizer = attrs.field(factory=Optimizer)

    params = capture_params({"model": Trees()}).params

    assert params["model.depth"] == "4"
    assert params["model.optimizer.lr"] == "0.01"


def test_pydantic_model_flattens_by_field() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Schedule(pydantic.BaseModel):
        warmup: int = 10

    class Settings(pydantic.BaseModel):
        lr: float = 0.2
        schedule: Schedule = Schedule()

    params = capture_params({"hp": Settings()}).params

    assert params == {"hp.lr": "0.2", "hp.schedule.warmup": "10"}


def test_argparse_namespace_flattens_by_attribute() -> None:
    params = capture_params({"args": argparse.Namespace(lr=0.3, name="run")}).params

    assert params == {"args.lr": "0.3", "args.name": "run"}


def test_namedtuple_flattens_by_field() -> None:
    assert capture_params({"p": Point(1, "b")}).params == {"p.x": "1", "p.y": "b"}


def test_list_of_scalars_is_one_value_and_list_of_dicts_is_indexed() -> None:
    params = capture_params({"layers": [64, 32], "blocks": [{"k": 3}, {"k": 5}]}).params

    assert params == {"layers": "[64, 32]", "blocks.0.k": "3", "blocks.1.k": "5"}


def test_bytes_nan_and_inf_become_text() -> None:
    params = capture_params({"b": b"ab\xff", "nan": float("nan"), "inf": float("-inf")}).params

    assert params == {"b": "ab\\xff", "nan": "nan", "inf": "-inf"}


def _generator() -> Iterator[int]:
    yield 1


@pytest.mark.parametrize(
    "value",
    [print, lambda: 1, Config, io, _generator(), Optimizer().__repr__],
    ids=["builtin", "lambda", "class", "module", "generator", "method"],
)
def test_callables_classes_modules_generators_are_skipped(value: Any) -> None:
    captured = capture_params({"thing": value, "kept": 1})

    assert captured.params == {"kept": "1"}
    assert captured.skipped == ["thing"]


def test_open_files_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("x")
    with path.open() as fh, path.open("rb") as raw:
        captured = capture_params({"fh": fh, "raw": raw, "path": path})

    assert captured.params == {"path": str(path)}
    assert sorted(captured.skipped) == ["fh", "raw"]


def test_arrays_go_to_data_not_params() -> None:
    np = pytest.importorskip("numpy")
    X = np.zeros((3, 2))

    captured = capture_params({"X": X, "lr": 0.1})

    assert captured.params == {"lr": "0.1"}
    assert captured.data["X"] is X


def test_recursive_dict_does_not_crash_and_reports_once() -> None:
    cfg: dict[str, Any] = {"lr": 0.1}
    cfg["self"] = cfg
    reports = Reports()

    params = capture_params({"cfg": cfg}, report=reports).params

    assert params == {"cfg.lr": "0.1", "cfg.self": "<recursive>"}
    assert reports.kinds() == ["recursive"]


def test_recursive_list_does_not_crash() -> None:
    items: list[Any] = [{"a": 1}]
    items.append(items)
    reports = Reports()

    params = capture_params({"items": items}, report=reports).params

    assert params == {"items.0.a": "1", "items.1": "<recursive>"}
    assert reports.kinds() == ["recursive"]


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_unprintable_object_is_logged_by_type_and_reported() -> None:
    reports = Reports()

    params = capture_params({"obj": Unprintable()}, report=reports).params

    assert params == {"obj": "<unprintable Unprintable>"}
    assert reports.calls and reports.calls[0][:2] == ("unprintable", "obj")


def test_flatten_yields_none_for_skipped_values() -> None:
    assert list(flatten({"f": print, "n": 1}, "cfg")) == [("cfg.f", None), ("cfg.n", "1")]


# -- include / exclude ------------------------------------------------------------------------

VALUES = {
    "optimizer": {"lr": 0.1, "wd": 0.0},
    "layers": [64, 32],
    "verbose": True,
}


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        (["optimizer"], None, {"optimizer.lr", "optimizer.wd"}),
        (["optimizer.lr"], None, {"optimizer.lr"}),
        (["opt*"], None, {"optimizer.lr", "optimizer.wd"}),
        (["optimizer.w?"], None, {"optimizer.wd"}),
        (None, ["verbose"], {"optimizer.lr", "optimizer.wd", "layers"}),
        (None, ["optimizer.lr"], {"optimizer.wd", "layers", "verbose"}),
        (None, ["*.wd", "lay*"], {"optimizer.lr", "verbose"}),
        (["optimizer", "layers"], ["optimizer.wd"], {"optimizer.lr", "layers"}),
    ],
)
def test_include_and_exclude_patterns(
    include: list[str] | None, exclude: list[str] | None, expected: set[str]
) -> None:
    params = capture_params(VALUES, include=include, exclude=exclude).params

    assert set(params) == expected


def test_include_glob_reaches_nested_keys() -> None:
    assert set(capture_params(VALUES, include=["*.lr"]).params) == {"optimizer.lr"}


# -- secrets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"password": "hunter2"}, "password"),
        ({"db_password": "hunter2"}, "db_password"),
        ({"optimizer": {"api_key": "hunter2", "lr": 1}}, "optimizer.api_key"),
    ],
)
def test_secret_names_are_masked(values: dict[str, Any], key: str) -> None:
    params = capture_params(values).params

    assert params[key] == REDACTED
    assert "hunter2" not in "".join(params.values())


@pytest.mark.parametrize(("name", "value"), [("tokenizer", "bert-base"), ("max_tokens", 512)])
def test_tokenizer_settings_are_not_masked(name: str, value: Any) -> None:
    assert not is_secret_name(name)  # what secrets.py decides; params must follow it
    assert capture_params({name: value}).params == {name: str(value)}


def test_secret_shaped_values_are_redacted_under_harmless_names() -> None:
    params = capture_params({"db": "postgresql://admin:Sup3rS3cret@db.internal/x"}).params

    assert "Sup3rS3cret" not in params["db"]
    assert REDACTED in params["db"]


# -- bind_arguments --------------------------------------------------------------------------


def test_bind_arguments_applies_defaults() -> None:
    def train(X, y=None, *, lr=0.1, depth=3):
        return None

    assert bind_arguments(train, ([1],), {"depth": 5}) == {
        "X": [1],
        "y": None,
        "lr": 0.1,
        "depth": 5,
    }


def test_bind_arguments_flattens_var_kwargs_to_top_level() -> None:
    def train(X, *args, lr=0.1, **extra):
        return None

    bound = bind_arguments(train, (1, 2, 3), {"momentum": 0.9, "nesterov": True})

    assert bound == {"X": 1, "args": (2, 3), "lr": 0.1, "momentum": 0.9, "nesterov": True}


def test_bind_arguments_drops_self_and_cls() -> None:
    class Trainer:
        def fit(self, X, epochs=2):
            return None

        @classmethod
        def build(cls, size=4):
            return None

    trainer = Trainer()
    assert bind_arguments(Trainer.fit, (trainer, "X"), {}) == {"X": "X", "epochs": 2}
    assert bind_arguments(Trainer.__dict__["build"].__func__, (Trainer,), {}) == {"size": 4}


def test_bind_arguments_falls_back_on_a_wrong_call() -> None:
    def train(X, *, lr=0.1):
        return None

    assert bind_arguments(train, (1, 2), {"bogus": 3}) == {"arg0": 1, "arg1": 2, "bogus": 3}
    assert bind_arguments(train, (), {}) == {}


# -- one clean-up, in order: escaped, redacted, then cut (issue 13, findings 8 and 10) -----------

_TOKEN_BODIES = st.text(alphabet=string.ascii_letters + string.digits, min_size=36, max_size=40)


@settings(max_examples=120, deadline=None)
@given(offset=st.integers(MAX_PARAM_LENGTH - 80, MAX_PARAM_LENGTH + 20), body=_TOKEN_BODIES)
@example(offset=MAX_PARAM_LENGTH - 40, body="a1" * 18)  # the cut falls inside the token
def test_finding10_a_credential_straddling_the_cut_is_redacted(offset: int, body: str) -> None:
    token = "ghp_" + body  # a GitHub token: redacted by shape, whatever the param's name
    value = ("a " * MAX_PARAM_LENGTH)[: offset - 1] + " " + token + " and more text" * 20

    stored = capture_params({"notes": value}).params["notes"]

    assert len(stored) <= MAX_PARAM_LENGTH
    leaked = [body[i : i + 8] for i in range(len(body) - 7) if body[i : i + 8] in stored]
    assert not leaked, f"part of the token was stored: {leaked[0]!r}"


def test_finding8_a_lone_surrogate_from_fsdecode_becomes_an_escape_in_valid_utf8() -> None:
    path = os.fsdecode(b"/data/caf\xe9.csv")  # a Latin-1 file name on a UTF-8 system
    assert "\udce9" in path

    stored = capture_params({"train_path": path, "note": "a\x00b"}).params

    assert stored["train_path"] == "/data/caf\\udce9.csv"
    assert stored["note"] == "a\\x00b"
    for value in stored.values():
        value.encode("utf-8")  # strict: what a store can take


def test_a_value_redaction_shrinks_below_the_limit_is_not_cut_or_reported() -> None:
    pem = "-----BEGIN PRIVATE KEY-----\n" + "A" * 7000 + "\n-----END PRIVATE KEY-----"
    reports = Reports()

    stored = capture_params({"cert": f"key {pem} end"}, report=reports).params["cert"]

    assert stored == "key -----BEGIN PRIVATE KEY-----***-----END PRIVATE KEY----- end"
    assert reports.kinds() == []


def test_flatten_yields_values_already_cleaned() -> None:
    pairs = dict(flatten({"url": "https://u:hunter22@host/p", "p": "x\x00"}, "cfg"))
    assert pairs == {"cfg.url": "https://u:***@host/p", "cfg.p": "x\\x00"}


def test_enum_members_are_logged_as_their_values_and_paths_as_strings() -> None:
    import enum

    class Mode(enum.Enum):
        FAST = "fast"
        GRID = ("grid", 3)

    class Level(enum.IntEnum):
        HIGH = 2

    params = dict(
        flatten(
            {"mode": Mode.FAST, "grid": Mode.GRID, "level": Level.HIGH, "out": Path("/d/m")}, "c"
        )
    )

    assert params == {
        "c.mode": "fast",
        "c.grid": "('grid', 3)",
        "c.level": "2",
        "c.out": "/d/m",
    }
