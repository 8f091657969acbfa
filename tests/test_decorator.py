"""@tracked_training against a real SQLite MLflow store."""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import threading
from dataclasses import dataclass
from typing import NamedTuple

import pytest

import tracked


def test_bare_decorator_records_params_defaults_and_returned_metrics(store) -> None:
    @tracked.tracked_training
    def train(X, y, *, max_depth=3, lr=0.1):
        return {"val_auc": 0.91, "loss": 0.25}

    result = train([[0.0]], [1], max_depth=5)

    assert result == {"val_auc": 0.91, "loss": 0.25}
    (run,) = store.runs()
    assert run.info.status == "FINISHED"
    assert run.info.run_name.startswith("train-")
    assert run.data.params["max_depth"] == "5"
    assert run.data.params["lr"] == "0.1"  # default applied
    assert run.data.metrics == {"val_auc": 0.91, "loss": 0.25}
    assert run.data.tags["tracked.function"].endswith(
        ":test_bare_decorator_records_params_defaults_and_returned_metrics.<locals>.train"
    )
    assert run.data.tags["mlflow.source.name"] == __file__


def test_configured_form_name_experiment_tags_exclude(store) -> None:
    @tracked.tracked_training(
        name="churn", experiment=store.experiment, tags={"team": "risk"}, exclude=["verbose"]
    )
    def train(n_estimators=10, verbose=True):
        return {"acc": 1.0}

    train()
    (run,) = store.runs()
    assert run.info.run_name.startswith("churn-")
    assert run.data.tags["team"] == "risk"
    assert "verbose" not in run.data.params
    assert run.data.params["n_estimators"] == "10"


def test_returns_the_same_object(store) -> None:
    sentinel = {"acc": 0.5, "extra": object()}

    @tracked.tracked_training
    def train():
        return sentinel

    assert train() is sentinel


def test_keeps_name_doc_signature() -> None:
    def train(X, y=None, *, depth: int = 3) -> dict:
        """Train it."""
        return {}

    decorated = tracked.tracked_training(train)
    assert decorated.__name__ == "train"
    assert decorated.__doc__ == "Train it."
    assert inspect.signature(decorated) == inspect.signature(train)
    assert decorated.__wrapped__ is train


def test_methods_classmethods_staticmethods(store) -> None:
    class Trainer:
        scale = 2

        def __init__(self) -> None:
            self.factor = 3

        @tracked.tracked_training
        def fit(self, depth=1):
            return {"v": self.factor * depth}

        @tracked.tracked_training
        @classmethod
        def fit_cls(cls, depth=1):
            return {"v": cls.scale * depth}

        @tracked.tracked_training
        @staticmethod
        def fit_static(depth=1):
            return {"v": 10 * depth}

    trainer = Trainer()
    assert trainer.fit(depth=2) == {"v": 6}
    assert Trainer.fit_cls(depth=2) == {"v": 4}
    assert Trainer.fit_static(depth=2) == {"v": 20}
    assert inspect.signature(Trainer.fit_static) == inspect.signature(lambda depth=1: None)
    runs = store.runs()
    assert [r.data.metrics["v"] for r in runs] == [6.0, 4.0, 20.0]
    assert all(r.data.params == {"depth": "2"} for r in runs)  # no self/cls as params


def test_async_function(store) -> None:
    @tracked.tracked_training
    async def train(epochs=2):
        await asyncio.sleep(0)
        tracked.log_metrics({"loss": 0.5}, step=1)
        return {"acc": 0.75}

    assert inspect.iscoroutinefunction(train)
    assert asyncio.run(train(epochs=3)) == {"acc": 0.75}
    (run,) = store.runs()
    assert run.data.params == {"epochs": "3"}
    assert run.data.metrics == {"acc": 0.75, "loss": 0.5}


def test_exception_propagates_unchanged_and_run_failed(store) -> None:
    error = ValueError("bad data")

    @tracked.tracked_training
    def train():
        raise error

    with pytest.raises(ValueError) as info:
        train()
    assert info.value is error
    frames = [f.name for f in info.traceback]
    assert "train" in frames  # the traceback still reaches the user's frame
    (run,) = store.runs()
    assert run.info.status == "FAILED"
    text = store.client.download_artifacts(run.info.run_id, "tracked/error.txt")
    with open(text) as fh:
        content = fh.read()
    assert "ValueError: bad data" in content
    _assert_no_active_mlflow_run()


def test_keyboard_interrupt_ends_killed(store) -> None:
    @tracked.tracked_training
    def train():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train()
    (run,) = store.runs()
    assert run.info.status == "KILLED"
    assert tracked.current_run() is None
    _assert_no_active_mlflow_run()


def _assert_no_active_mlflow_run() -> None:
    import mlflow

    assert mlflow.active_run() is None


def test_nested_call_becomes_child_run(store) -> None:
    @tracked.tracked_training
    def inner(fold=0):
        return {"fold_auc": 0.8 + fold / 100}

    @tracked.tracked_training
    def outer():
        for fold in range(2):
            inner(fold=fold)
        return {"cv_auc": 0.805}

    outer()
    parent = next(r for r in store.runs() if r.info.run_name.startswith("outer-"))
    children = [r for r in store.runs() if r.info.run_name.startswith("inner-")]
    assert len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert "mlflow.parentRunId" not in parent.data.tags
    assert parent.data.metrics == {"cv_auc": 0.805}  # children's metrics stay in the children


def test_decorated_call_inside_run_block_is_child(store) -> None:
    @tracked.tracked_training
    def train():
        return {"a": 1}

    with tracked.run("sweep") as sweep:
        train()
    child = next(r for r in store.runs() if r.info.run_name.startswith("train-"))
    assert child.data.tags["mlflow.parentRunId"] == sweep.run_id


def test_threads_get_separate_runs(store) -> None:
    barrier = threading.Barrier(2)

    @tracked.tracked_training
    def train(worker):
        barrier.wait()  # both runs are active at the same time
        for step in range(20):
            tracked.log_metrics({f"loss_{worker}": step}, step=step)
        barrier.wait()
        return {"worker": worker}

    threads = [threading.Thread(target=train, args=(w,)) for w in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    runs = store.runs()
    assert len(runs) == 2
    for run in runs:
        worker = int(run.data.params["worker"])
        assert set(run.data.metrics) == {f"loss_{worker}", "worker"}
        assert "mlflow.parentRunId" not in run.data.tags
        history = store.metric_history(run.info.run_id, f"loss_{worker}")
        assert sorted(m.step for m in history) == list(range(20))


def test_stepped_metrics_all_points_arrive(store) -> None:
    @tracked.tracked_training
    def train(epochs=2500):
        for step in range(epochs):
            tracked.log_metrics({"loss": 1.0 / (step + 1), "acc": step / epochs}, step=step)
        return {}

    train()
    (run,) = store.runs()
    history = store.metric_history(run.info.run_id, "loss")
    assert len(history) == 2500
    assert sorted(m.step for m in history) == list(range(2500))
    assert run.data.metrics["loss"] == pytest.approx(1 / 2500)


def test_nan_and_inf_do_not_crash(store, caplog) -> None:
    @tracked.tracked_training
    def train():
        return {"nan": float("nan"), "inf": float("inf"), "ok": 1.0}

    with caplog.at_level(logging.WARNING, logger="tracked"):
        assert train()["ok"] == 1.0
    (run,) = store.runs()
    assert math.isnan(run.data.metrics["nan"])
    assert run.data.metrics["ok"] == 1.0
    assert run.data.metrics["inf"] > 1e300
    assert sum("nan" in r.message for r in caplog.records) == 1  # one warning, not a crash


class Result(NamedTuple):
    model: object
    metrics: dict


@dataclass
class DCResult:
    metrics: dict
    note: str = "x"


@pytest.mark.parametrize(
    "value",
    [
        (object(), {"auc": 0.7}),
        Result(object(), {"auc": 0.7}),
        DCResult({"auc": 0.7}),
        {"metrics": {"auc": 0.7}},
        {"auc": 0.7, "name": "not a number"},
    ],
    ids=["tuple", "namedtuple", "dataclass", "metrics-key", "dict"],
)
def test_metric_shapes_of_return_value(store, value) -> None:
    @tracked.tracked_training
    def train():
        return value

    assert train() is value
    (run,) = store.runs()
    assert run.data.metrics == {"auc": 0.7}


def test_unreachable_store_training_still_returns(tmp_path, caplog) -> None:
    uri = "http://127.0.0.1:9"  # discard port: nothing listens

    said_before: list[str] = []

    @tracked.tracked_training(tracking_uri=uri)
    def train(x=1):
        said_before.extend(r.getMessage() for r in caplog.records)
        tracked.log_metrics({"loss": 1.0}, step=0)
        return {"ok": x}

    with caplog.at_level(logging.WARNING, logger="tracked"):
        assert train(x=2) == {"ok": 2}
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert uri in said_before[0] and "not reachable" in said_before[0]  # before the training
    assert all("\n" not in m for m in messages)


def test_unwritable_store_path_warns_names_store(tmp_path, caplog) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store's directory should be")
    uri = f"sqlite:///{blocker}/mlflow.db"  # cannot be created, even by root

    said_before: list[str] = []

    @tracked.tracked_training(tracking_uri=uri)
    def train():
        said_before.extend(r.getMessage() for r in caplog.records)
        return {"ok": 1}

    with caplog.at_level(logging.WARNING, logger="tracked"):
        assert train() == {"ok": 1}
    assert uri in said_before[0]  # said when the run starts, before the training


def test_strict_raises_tracking_error_before_training(tmp_path, monkeypatch) -> None:
    calls = []

    @tracked.tracked_training(tracking_uri="http://127.0.0.1:9", strict=True)
    def train():
        calls.append(1)

    with pytest.raises(tracked.StoreUnavailableError, match=r"127\.0\.0\.1:9"):
        train()
    assert calls == []

    monkeypatch.setenv("TRACKED_STRICT", "1")

    @tracked.tracked_training(tracking_uri="http://127.0.0.1:9")
    def train_env():
        calls.append(1)

    with pytest.raises(tracked.TrackingError):
        train_env()


def test_strict_never_masks_the_users_exception(tmp_path) -> None:
    @tracked.tracked_training(tracking_uri="http://127.0.0.1:9", strict=False)
    def train():
        raise RuntimeError("user bug")

    with pytest.raises(RuntimeError, match="user bug"):
        train()


def test_log_outside_run_warns_and_strict_raises(monkeypatch, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="tracked"):
        tracked.log_metrics({"a": 1})
    assert "no active run" in caplog.text
    monkeypatch.setenv("TRACKED_STRICT", "true")
    with pytest.raises(tracked.CaptureError):
        tracked.log_params({"a": 1})


def test_secret_named_arguments_are_masked(store) -> None:
    @tracked.tracked_training
    def train(db_password="hunter2", api_key="k-123", lr=0.1):
        return {}

    train()
    (run,) = store.runs()
    assert run.data.params["db_password"] == "***"
    assert run.data.params["api_key"] == "***"
    assert run.data.params["lr"] == "0.1"


def test_array_and_callable_arguments_are_not_params(store) -> None:
    np = pytest.importorskip("numpy")

    @tracked.tracked_training
    def train(X, loss_fn, handle, depth=2):
        return {}

    with open(__file__) as handle:
        train(np.ones((3, 2)), len, handle)
    (run,) = store.runs()
    assert run.data.params == {"depth": "2"}


def test_environment_and_requirements_captured(store) -> None:
    @tracked.tracked_training
    def train():
        return {}

    train()
    (run,) = store.runs()
    tags = run.data.tags
    assert tags["tracked.env.python"].count(".") == 2
    assert tags["tracked.env.mlflow"]
    assert "tracked.env.hostname" in tags
    path = store.client.download_artifacts(run.info.run_id, "tracked/requirements.txt")
    with open(path) as fh:
        assert "mlflow==" in fh.read()


@tracked.tracked_training
def _module_level_training(n: int = 3) -> dict[str, float]:
    return {"loss": 1.0 / n}


@tracked.tracked_training
async def _module_level_async_training(n: int = 3) -> dict[str, float]:
    return {"loss": 1.0 / n}


def test_a_decorated_module_level_function_pickles_by_reference(store) -> None:
    """Process pools, Dask and Ray pickle the function they send to a worker."""
    import pickle

    import cloudpickle

    for fn in (_module_level_training, _module_level_async_training):
        assert pickle.loads(pickle.dumps(fn)) is fn
        assert cloudpickle.loads(cloudpickle.dumps(fn)) is fn


def test_a_decorated_function_runs_in_a_process_pool(store, monkeypatch) -> None:
    import concurrent.futures
    import multiprocessing

    monkeypatch.setenv("TRACKED_TRACKING_URI", store.uri)  # the workers' environment
    monkeypatch.setenv("TRACKED_EXPERIMENT", store.experiment)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        results = list(pool.map(_module_level_training, [2, 4]))
    assert results == [{"loss": 0.5}, {"loss": 0.25}]
    losses = sorted(r.data.metrics["loss"] for r in store.runs())
    assert losses == [0.25, 0.5]
