"""Plain PyTorch loops: a decorated function returning an nn.Module (alone, with metrics, in a
dict) logs a model that loads back and predicts the same, with a signature from the training
data; the optimizer, scheduler and loss it was given are params."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from framework_checks import history, load_registered  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402
from torch_models import MLP  # noqa: E402

import tracked  # noqa: E402

torch.manual_seed(0)
X = torch.randn(128, 4)
Y = (X[:, :1] * 2 - X[:, 1:2]).detach()
EPOCHS = 3


def _loop(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    scheduler: Any = None,
    *,
    epochs: int = EPOCHS,
    fail_at: int = -1,
) -> list[float]:
    """A plain training loop logging its loss per step; returns the losses it logged."""
    losses: list[float] = []
    step = 0
    for _ in range(epochs):
        for xb, yb in loader:
            if step == fail_at:
                raise RuntimeError(f"diverged at step {step}")
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            tracked.log_metrics({"loss": losses[-1]}, step=step)
            step += 1
        if scheduler is not None:
            scheduler.step()
    return losses


def _predicts_the_same(store: Any, run: Any, model: nn.Module, monkeypatch: Any) -> None:
    x = np.random.default_rng(1).normal(size=(6, 4)).astype("float32")
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    native, served = load_registered(store, run, monkeypatch)
    assert type(native) is MLP
    with torch.no_grad():
        np.testing.assert_allclose(native(torch.from_numpy(x)).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(served.predict(x)), expected, rtol=1e-6)
    inputs = served.metadata.get_input_schema()
    assert inputs is not None and list(inputs.inputs[0].shape) == [-1, 4]  # from the data


def _shapes(store: Any, run: Any) -> None:
    assert run.record.models[0].serialization == "torch-state-dict"
    params = store.run(run.run_id).data.params
    assert params["model.parameters"] == str(sum(p.numel() for p in MLP(4).parameters()))


RETURNS: dict[str, Callable[[nn.Module, list[float]], Any]] = {
    "module": lambda model, losses: model,
    "tuple": lambda model, losses: (model, {"final_loss": losses[-1]}),
    "dict": lambda model, losses: {"model": model, "metrics": {"final_loss": losses[-1]}},
}


@pytest.mark.sqlite_only
@pytest.mark.parametrize("shape", list(RETURNS))
def test_a_decorated_loop_returning_a_module_logs_it(
    store: Any, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    @tracked.tracked_training
    def train(
        loader: DataLoader,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        loss_fn: nn.Module,
        model: nn.Module,
    ) -> Any:
        losses = _loop(model, loader, optimizer, loss_fn, scheduler)
        return RETURNS[shape](model, losses)

    torch.manual_seed(0)
    model = MLP(4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    loader = DataLoader(TensorDataset(X, Y), batch_size=32, shuffle=True)
    train(loader, optimizer, scheduler, nn.SmoothL1Loss(beta=0.5), model)
    run = tracked.last_run()
    assert run is not None and run.status == "FINISHED"
    params = store.run(run.run_id).data.params
    assert (params["optimizer.class"], params["optimizer.lr"]) == ("AdamW", "0.01")
    assert params["optimizer.weight_decay"] == "0.05"
    assert (params["scheduler.class"], params["scheduler.step_size"]) == ("StepLR", "2")
    assert (params["loss_fn.class"], params["loss_fn.beta"]) == ("SmoothL1Loss", "0.5")
    inputs = store.run(run.run_id).inputs.dataset_inputs
    assert [i.dataset.name for i in inputs] == ["loader"]  # a loader over tensors is data
    assert [s for s, _ in history(store, run.run_id, "loss")] == list(range(EPOCHS * 4))
    if shape != "module":
        final = store.run(run.run_id).data.metrics["final_loss"]
        assert final == pytest.approx(history(store, run.run_id, "loss")[-1][1])
    _shapes(store, run)
    _predicts_the_same(store, run, model, monkeypatch)


def test_the_signature_comes_from_the_first_tensor_argument(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    @tracked.tracked_training
    def train(features: torch.Tensor, targets: torch.Tensor, lr: float = 0.05) -> nn.Module:
        torch.manual_seed(0)
        model = MLP(4)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        loader = DataLoader(TensorDataset(features, targets), batch_size=64)
        _loop(model, loader, optimizer, nn.MSELoss(), epochs=2)
        return model

    model = train(X, Y)
    run = tracked.last_run()
    assert run is not None and store.run(run.run_id).data.params["lr"] == "0.05"
    assert {"features", "targets"} <= {
        i.dataset.name for i in store.run(run.run_id).inputs.dataset_inputs
    }
    _predicts_the_same(store, run, model, monkeypatch)


def test_a_loop_in_a_block_logs_the_module_it_is_given(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    model = MLP(4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    with tracked.run("loop", params={"optimizer": optimizer}) as run:
        losses = _loop(
            model, DataLoader(TensorDataset(X, Y), batch_size=32), optimizer, nn.MSELoss()
        )
        run.log_model(model, input_example=X[:5])
    assert [v for _, v in history(store, run.run_id, "loss")] == pytest.approx(losses)
    assert store.run(run.run_id).data.params["optimizer.class"] == "SGD"
    _predicts_the_same(store, run, model, monkeypatch)


@pytest.mark.sqlite_only
def test_a_failing_step_ends_failed_with_the_steps_before_it(store: Any) -> None:
    @tracked.tracked_training
    def train(model: nn.Module, lr: float = 0.05) -> nn.Module:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        _loop(model, DataLoader(TensorDataset(X, Y), batch_size=32), optimizer, nn.MSELoss(),
              fail_at=6)  # fmt: skip
        return model

    with pytest.raises(RuntimeError, match="diverged at step 6"):
        train(MLP(4))
    run = tracked.last_run()
    assert run is not None and run.status == "FAILED"
    assert store.run(run.run_id).info.status == "FAILED"
    assert [s for s, _ in history(store, run.run_id, "loss")] == list(range(6))
    assert run.model_version is None
