"""Lightning's Trainer.fit inside a run: params, every logged value with its step, the best
checkpoint as the model; the user's loggers untouched, their MLFlowLogger in the tracked run."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

L = pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

from framework_checks import history as _history  # noqa: E402
from framework_checks import load_registered  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger  # noqa: E402
from lightning_models import Data, Regressor  # noqa: E402

import tracked  # noqa: E402
from tracked.integrations import scope  # noqa: E402

# Lightning's own advice (few workers, small batches, a deprecated torch API it calls) is not
# about tracked; everything else still fails the test.
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:lightning.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:lightning.*"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*does not have many workers.*"),
]

ORIGINAL_FIT = vars(L.Trainer)["fit"]
EPOCHS = 3


@pytest.fixture(autouse=True)
def _unpatched_after(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from mlflow.tracking._tracking_service import utils

    # MLFlowLogger sets MLflow's global tracking URI when it makes its own run: not past a test.
    monkeypatch.setattr(utils, "_tracking_uri", utils._tracking_uri)
    yield
    assert vars(L.Trainer)["fit"] is ORIGINAL_FIT
    assert scope.patched() == {}


def _trainer(root: Path, **options: Any) -> Any:
    options.setdefault("logger", CSVLogger(str(root), name="csv"))
    options.setdefault("callbacks", [ModelCheckpoint(monitor="val_loss", mode="min")])
    return L.Trainer(
        max_epochs=EPOCHS,
        log_every_n_steps=2,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
        **options,
    )


def _csv_history(path: Path) -> dict[str, list[tuple[int, float]]]:
    """What Lightning's own CSVLogger wrote: key -> [(step, value)]."""
    out: dict[str, list[tuple[int, float]]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key != "step" and value != "":
                    out.setdefault(key, []).append((int(row["step"]), float(value)))
    return {k: sorted(v) for k, v in out.items()}


def _assert_same_points(store: Any, run_id: str, csv_path: Path) -> None:
    expected = _csv_history(csv_path)
    assert {"train_loss_step", "train_loss_epoch", "val_loss", "epoch"} <= set(expected)
    for key, points in expected.items():
        got = _history(store, run_id, key)
        assert [s for s, _ in got] == [s for s, _ in points], key
        assert [v for _, v in got] == pytest.approx([v for _, v in points], rel=1e-6), key


def _predicts_the_same(store: Any, run: Any, module: Any, monkeypatch: Any) -> None:
    x = np.random.default_rng(1).normal(size=(6, 4)).astype("float32")
    with torch.no_grad():
        expected = module.eval()(torch.from_numpy(x)).numpy()
    native, served = load_registered(store, run, monkeypatch)
    with torch.no_grad():
        np.testing.assert_allclose(native(torch.from_numpy(x)).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(served.predict(x)), expected, rtol=1e-5)


def _best_module(trainer: Any) -> Any:
    best = Regressor.load_from_checkpoint(trainer.checkpoint_callback.best_model_path)
    return best.eval()


def test_fit_in_a_block_records_params_every_logged_value_and_the_best_checkpoint(
    store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    module, data = Regressor(hidden=8, lr=0.05), Data()
    trainer = _trainer(tmp_path)
    user_loggers = trainer.loggers
    with tracked.run("lit") as run:
        trainer.fit(module, datamodule=data)
    assert run.status == "FINISHED"
    assert trainer.loggers is user_loggers  # the user's list is back, unchanged
    assert [type(lg) for lg in trainer.loggers] == [CSVLogger]
    _assert_same_points(store, run.run_id, Path(trainer.logger.log_dir) / "metrics.csv")
    stored = store.run(run.run_id).data
    assert {k: stored.params[k] for k in ("d_in", "hidden", "lr", "rows", "batch_size")} == {
        "d_in": "4",
        "hidden": "8",
        "lr": "0.05",
        "rows": "256",
        "batch_size": "32",
    }
    assert stored.params["trainer.max_epochs"] == str(EPOCHS)
    assert stored.params["trainer.precision"] == "32-true"
    assert stored.params["trainer.accumulate_grad_batches"] == "1"
    assert stored.params["checkpoint.monitor"] == "val_loss"
    assert stored.params["optimizer.class"] == "SGD"
    assert stored.params["optimizer.lr"] == "0.05"
    checkpoint = trainer.checkpoint_callback
    assert stored.metrics["best_model_score"] == pytest.approx(float(checkpoint.best_model_score))
    assert stored.params["checkpoint.best_model_path"] == checkpoint.best_model_path
    inputs = {i.dataset.name for i in store.run(run.run_id).inputs.dataset_inputs}
    assert {"x_train", "y_train", "x_val", "y_val"} <= inputs
    _predicts_the_same(store, run, _best_module(trainer), monkeypatch)


def test_a_decorated_function_returning_the_module_registers_it(
    store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    @tracked.tracked_training
    def train(hidden: int = 8, lr: float = 0.05) -> Any:
        torch.manual_seed(0)
        module = Regressor(hidden=hidden, lr=lr)
        trainer = _trainer(tmp_path, callbacks=[])  # no monitor: the final module is the model
        trainer.fit(module, datamodule=Data())
        return module, {"final_val_loss": float(trainer.callback_metrics["val_loss"])}

    module, _ = train()
    run = tracked.last_run()
    assert run is not None and run.status == "FINISHED"
    assert [m.obj for m in run.record.models] == [module]  # the training's model is the same
    _assert_same_points(store, run.run_id, tmp_path / "csv" / "version_0" / "metrics.csv")
    stored = store.run(run.run_id).data
    assert stored.params["hidden"] == "8"
    assert "best_model_score" not in stored.metrics
    _predicts_the_same(store, run, module, monkeypatch)


@pytest.mark.sqlite_only
def test_a_failing_epoch_ends_failed_with_what_was_logged(store: Any, tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = Regressor(fail_at=11)  # 8 steps an epoch: fails in the second epoch
    trainer = _trainer(tmp_path)
    with pytest.raises(RuntimeError, match="diverged at step 11"), tracked.run("dies") as run:
        trainer.fit(module, datamodule=Data())
    assert run.status == "FAILED"
    assert store.run(run.run_id).info.status == "FAILED"
    steps = [s for s, _ in _history(store, run.run_id, "train_loss_step")]
    assert steps == [1, 3, 5, 7, 9]  # every second step (log_every_n_steps=2) before the failure
    assert [s for s, _ in _history(store, run.run_id, "val_loss")] == [7]
    assert run.record.models == []
    assert [type(lg) for lg in trainer.loggers] == [CSVLogger]


@pytest.mark.sqlite_only
def test_without_a_logger_checkpoints_land_where_they_would(store: Any, tmp_path: Path) -> None:
    bare_root, tracked_root = tmp_path / "bare", tmp_path / "tracked"
    torch.manual_seed(0)
    bare = _trainer(bare_root, logger=False)
    bare.fit(Regressor(), datamodule=Data())
    torch.manual_seed(0)
    trainer = _trainer(tracked_root, logger=False)
    with tracked.run("no-logger") as run:
        trainer.fit(Regressor(), datamodule=Data())
    assert trainer.loggers == []
    relative = Path(trainer.checkpoint_callback.best_model_path).relative_to(tracked_root)
    assert relative == Path(bare.checkpoint_callback.best_model_path).relative_to(bare_root)
    assert trainer.log_dir == str(tracked_root)
    assert [s for s, _ in _history(store, run.run_id, "val_loss")] == [7, 15, 23]


@pytest.mark.sqlite_only
def test_the_users_mlflow_logger_writes_into_the_tracked_run(store: Any, tmp_path: Path) -> None:
    torch.manual_seed(0)
    logger = MLFlowLogger(experiment_name="lightning-own", tracking_uri=store.uri, prefix="lit")
    trainer = _trainer(tmp_path, logger=[logger, CSVLogger(str(tmp_path), name="csv")])
    with tracked.run("with-mlflow-logger") as run:
        trainer.fit(Regressor(), datamodule=Data())
        (tested,) = trainer.test(datamodule=Data(), ckpt_path="best", verbose=False)
    runs = store.runs()
    assert [r.info.run_id for r in runs] == [run.run_id]  # no second run in tracked's experiment
    assert store.client.get_experiment_by_name("lightning-own") is None  # nor of its own
    # The logger's values, under its prefix, are the run's metrics, point for point.
    expected = _csv_history(tmp_path / "csv" / "version_0" / "metrics.csv")
    for key in ("train_loss_step", "val_loss"):
        got = _history(store, run.run_id, f"lit-{key}")
        assert got == pytest.approx(expected[key])
        assert _history(store, run.run_id, key) == []  # and not a second time without it
    assert store.run(run.run_id).data.metrics["lit-test_loss"] == pytest.approx(tested["test_loss"])
    assert store.run(run.run_id).data.params["hidden"] == "8"
    # After the call the logger is as it was: used outside a run, it makes its own run.
    assert logger._run_id is None and not logger._initialized
    logger.log_metrics({"after": 1.0}, step=0)
    own = store.client.get_experiment_by_name("lightning-own")
    assert own is not None and logger.run_id != run.run_id


@pytest.mark.sqlite_only
def test_validate_and_test_after_fit_log_into_the_run(store: Any, tmp_path: Path) -> None:
    trainer, data = _trainer(tmp_path), Data()
    with tracked.run("fit-then-test") as run:
        trainer.fit(Regressor(), datamodule=data)
        (validated,) = trainer.validate(datamodule=data, ckpt_path="best", verbose=False)
        (tested,) = trainer.test(datamodule=data, ckpt_path="best", verbose=False)
    assert len(run.trainings) == 1  # evaluations are no trainings of their own
    metrics = store.run(run.run_id).data.metrics
    assert metrics["test_loss"] == pytest.approx(tested["test_loss"])
    assert _history(store, run.run_id, "val_loss")[-1][1] == pytest.approx(validated["val_loss"])
    assert [type(lg) for lg in trainer.loggers] == [CSVLogger]
    assert [r.info.run_id for r in store.runs()] == [run.run_id]


@pytest.mark.sqlite_only
def test_a_logger_given_its_own_run_keeps_writing_there(store: Any, tmp_path: Path) -> None:
    client = store.client
    experiment = client.create_experiment("their-own")
    theirs = client.create_run(experiment).info.run_id
    logger = MLFlowLogger(tracking_uri=store.uri, run_id=theirs)
    with tracked.run("beside") as run:
        _trainer(tmp_path, logger=logger).fit(Regressor(), datamodule=Data())
    assert _history(store, theirs, "val_loss") != []
    assert _history(store, run.run_id, "val_loss") == _history(store, theirs, "val_loss")


@pytest.mark.sqlite_only
def test_outside_a_run_fit_is_untouched(store: Any, tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    before = trainer.loggers
    trainer.fit(Regressor(), datamodule=Data())
    assert trainer.loggers is before
    assert store.runs() == []


@pytest.mark.sqlite_only
def test_a_thread_outside_any_run_is_not_captured_while_another_fits_inside(
    store: Any, tmp_path: Path
) -> None:
    barrier = threading.Barrier(2, timeout=120)
    seen: dict[str, Any] = {}
    errors: list[BaseException] = []

    class Meet(L.Callback):
        """Holds both threads inside fit() at the start of training."""

        def __init__(self, who: str) -> None:
            self.who = who

        def on_train_start(self, trainer: Any, module: Any) -> None:
            seen[self.who] = (tracked.current_run(), list(trainer.loggers))
            barrier.wait()

    def fit(who: str) -> Any:
        trainer = _trainer(tmp_path / who, callbacks=[Meet(who)])
        trainer.fit(Regressor(), datamodule=Data())
        return trainer

    def inside() -> None:
        try:
            with tracked.run("inside") as run:
                seen["run"] = run
                fit("inside")
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    def outside() -> None:
        try:
            seen["outside-trainer"] = fit("outside")
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=inside), threading.Thread(target=outside)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, errors
    run, (outside_run, outside_loggers) = seen["run"], seen["outside"]
    assert outside_run is None and [type(lg) for lg in outside_loggers] == [CSVLogger]
    assert seen["inside"][0] is run and len(seen["inside"][1]) == 2  # the CSV one and tracked's
    assert [r.info.run_name for r in store.runs()] == ["inside"]
    assert [s for s, _ in _history(store, run.run_id, "val_loss")] == [7, 15, 23]


@pytest.mark.sqlite_only
def test_pytorch_lightning_is_captured_too(store: Any, tmp_path: Path) -> None:
    pl = pytest.importorskip("pytorch_lightning")
    from torch.utils.data import DataLoader, TensorDataset

    class Small(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            loss = torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
            self.log("loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    x = torch.randn(64, 4)
    loader = DataLoader(TensorDataset(x, x[:, :1]), batch_size=16)
    trainer = pl.Trainer(
        max_epochs=2, logger=False, enable_progress_bar=False, log_every_n_steps=1,
        enable_checkpointing=False, enable_model_summary=False, default_root_dir=str(tmp_path),
    )  # fmt: skip
    with tracked.run("pl") as run:
        trainer.fit(Small(), loader)
    assert [s for s, _ in _history(store, run.run_id, "loss")] == list(range(8))
    assert store.run(run.run_id).data.params["trainer.max_epochs"] == "2"
    assert len(run.record.models) == 1
    assert vars(pl.Trainer)["fit"] is not None and scope.patched() == {}


def test_lightning_imported_inside_the_block_is_captured(sqlite_uri: str, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys
        import tracked

        tracked.configure(tracking_uri={sqlite_uri!r}, experiment="late-lightning", project="p")
        with tracked.run("late") as run:
            before = "lightning" in sys.modules
            import lightning as L
            import torch
            from torch.utils.data import DataLoader, TensorDataset
            patched = hasattr(vars(L.Trainer)["fit"], "__wrapped__")
            original = vars(L.Trainer)["fit"].__wrapped__

            class M(L.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.layer = torch.nn.Linear(2, 1)
                def training_step(self, batch, i):
                    loss = self.layer(batch[0]).pow(2).mean()
                    self.log("loss", loss)
                    return loss
                def configure_optimizers(self):
                    return torch.optim.SGD(self.parameters(), lr=0.1)

            loader = DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=4)
            L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False,
                      enable_checkpointing=False, log_every_n_steps=1,
                      default_root_dir={str(tmp_path)!r}).fit(M(), loader)
        tracked.flush()
        print(json.dumps({{"imported_before": before, "metrics": sorted(run.metrics),
                          "patched": patched,
                          "restored": vars(L.Trainer)["fit"] is original}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "imported_before": False,
        "patched": True,
        "metrics": ["epoch", "loss"],
        "restored": True,
    }
