"""Keras 3 (torch backend, no TensorFlow) Model.fit inside a run: compile settings as params,
History per epoch, the model in the .keras format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

# The backend is chosen at keras' first import; TensorFlow is not installed.
os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("keras was imported with another backend first", allow_module_level=True)

from framework_checks import history, load_registered  # noqa: E402

import tracked  # noqa: E402
from tracked.integrations import scope  # noqa: E402

# Keras' torch backend hands numpy an object without the numpy 2 `__array__(copy=)` keyword.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
RNG = np.random.default_rng(0)
X = RNG.normal(size=(160, 4)).astype("float32")
Y = (X[:, :1] * 2 - X[:, 1:2]).astype("float32")
EPOCHS = 4
FIT = next(cls for cls in keras.Model.__mro__ if "fit" in vars(cls))
ORIGINAL_FIT = vars(FIT)["fit"]


@pytest.fixture(autouse=True)
def _unpatched_after() -> Iterator[None]:
    yield
    assert vars(FIT)["fit"] is ORIGINAL_FIT
    assert scope.patched() == {}


def _model() -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse", metrics=["mae"])
    return model


class Counting(keras.callbacks.Callback):
    def __init__(self, fail_at: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.epochs: list[int] = []
        self.fail_at = fail_at

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.epochs.append(epoch)

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if self.fail_at == (len(self.epochs), batch):
            raise RuntimeError(f"diverged in epoch {len(self.epochs)}")


def _assert_history(store: Any, run_id: str, fitted: Any) -> None:
    """Every History value, point by point, with step = epoch."""
    assert set(fitted.history) == {"loss", "mae", "val_loss", "val_mae"}
    for key, values in fitted.history.items():
        points = history(store, run_id, key)
        assert [s for s, _ in points] == list(range(len(values))), key
        assert [v for _, v in points] == pytest.approx(values, rel=1e-6), key


def _predicts_the_same(store: Any, run: Any, model: Any, monkeypatch: Any) -> None:
    expected = model.predict(X[:7], verbose=0)
    native, served = load_registered(store, run, monkeypatch)
    np.testing.assert_allclose(native.predict(X[:7], verbose=0), expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(served.predict(X[:7])), expected, rtol=1e-5)


def test_fit_in_a_block_records_compile_settings_history_and_the_model(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, user = _model(), Counting()
    callbacks = [user]
    with tracked.run("keras") as run:
        fitted = model.fit(
            X, Y, epochs=EPOCHS, batch_size=32, validation_split=0.2, callbacks=callbacks, verbose=0
        )
    assert run.status == "FINISHED"
    assert callbacks == [user] and user.epochs == list(range(EPOCHS))  # theirs ran, list kept
    _assert_history(store, run.run_id, fitted)
    params = store.run(run.run_id).data.params
    assert params["optimizer.class"] == "Adam"
    assert float(params["optimizer.learning_rate"]) == pytest.approx(0.01)
    assert params["loss"] == "mse"
    assert params["metrics"] == "['mae']"
    assert (params["epochs"], params["batch_size"], params["validation_split"]) == (
        str(EPOCHS),
        "32",
        "0.2",
    )
    assert params["shuffle"] == "True"  # fit's default, not given
    assert params["model.parameters"] == str(model.count_params())
    (saved,) = run.record.models
    assert saved.obj is model and saved.serialization == "keras-v3"
    _predicts_the_same(store, run, model, monkeypatch)


def test_a_decorated_function_returning_the_model(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    @tracked.tracked_training
    def train(X: np.ndarray, y: np.ndarray, epochs: int = 3) -> Any:
        model = _model()
        fitted = model.fit(X, y, epochs=epochs, validation_split=0.25, verbose=0)
        return model, {"final_loss": fitted.history["loss"][-1]}, fitted

    model, metrics, fitted = train(X, Y)
    run = tracked.last_run()
    assert run is not None and run.status == "FINISHED"
    assert [m.obj for m in run.record.models] == [model]
    _assert_history(store, run.run_id, fitted)
    assert store.run(run.run_id).data.metrics["final_loss"] == pytest.approx(metrics["final_loss"])
    _predicts_the_same(store, run, model, monkeypatch)


@pytest.mark.sqlite_only
def test_a_failing_epoch_ends_failed_with_the_epochs_before_it(store: Any) -> None:
    model = _model()
    with pytest.raises(RuntimeError, match="diverged in epoch 2"), tracked.run("dies") as run:
        model.fit(X, Y, epochs=EPOCHS, callbacks=[Counting(fail_at=(2, 1))], verbose=0)
    assert run.status == "FAILED"
    assert store.run(run.run_id).info.status == "FAILED"
    assert [s for s, _ in history(store, run.run_id, "loss")] == [0, 1]
    assert run.record.models == []


@pytest.mark.sqlite_only
def test_the_trained_weights_are_those_of_an_untracked_fit(store: Any) -> None:
    bare = _model()
    bare.fit(X, Y, epochs=2, verbose=0)
    model = _model()
    with tracked.run("same"):
        model.fit(X, Y, epochs=2, verbose=0)
    for mine, theirs in zip(model.get_weights(), bare.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.sqlite_only
def test_two_fits_in_one_block_are_two_child_runs(store: Any) -> None:
    first, second = _model(), _model()
    with tracked.run("two") as run:
        first.fit(X, Y, epochs=2, verbose=0)
        second.fit(X, Y, epochs=3, verbose=0)
    children = [r for r in store.runs() if r.info.run_id != run.run_id]
    assert sorted(r.data.params["epochs"] for r in children) == ["2", "3"]
    assert [m.obj for m in run.record.models if m.name == "model" and m.slot == 0] == [second]


def test_keras_imported_inside_the_block_is_captured(sqlite_uri: str) -> None:
    script = textwrap.dedent(
        f"""
        import json, os, sys
        os.environ["KERAS_BACKEND"] = "torch"
        import numpy as np
        import tracked

        tracked.configure(tracking_uri={sqlite_uri!r}, experiment="late-keras", project="p")
        with tracked.run("late") as run:
            before = "keras" in sys.modules
            import keras
            model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
            model.compile(optimizer="sgd", loss="mse")
            model.fit(np.ones((8, 2)), np.ones((8, 1)), epochs=2, verbose=0)
        tracked.flush()
        print(json.dumps({{"before": before, "metrics": sorted(run.metrics),
                          "models": len(run.record.models)}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "before": False,
        "metrics": ["loss"],
        "models": 1,
    }
