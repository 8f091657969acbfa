"""Optimizers, schedulers, losses and loaders given as arguments become their class and settings."""

from __future__ import annotations

import os

import numpy as np
import pytest
from python_process import run_python

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset, TensorDataset  # noqa: E402

import tracked  # noqa: E402
from tracked.capture.objects import describe, describes  # noqa: E402
from tracked.capture.params import capture_params  # noqa: E402

MODEL = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))


def params(**values: object) -> dict[str, str]:
    return capture_params(values).params


def test_an_optimizer_is_its_class_defaults_and_group_summaries() -> None:
    decay = [p for n, p in MODEL.named_parameters() if n.endswith("weight")]
    no_decay = [p for n, p in MODEL.named_parameters() if n.endswith("bias")]
    optimizer = torch.optim.AdamW(
        [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-3, weight_decay=0.05
    )
    got = params(optimizer=optimizer)

    assert got["optimizer.class"] == "AdamW"
    assert got["optimizer.lr"] == "0.001"
    assert got["optimizer.weight_decay"] == "0.05"
    assert got["optimizer.betas"] == "(0.9, 0.999)"
    assert got["optimizer.param_groups.0.params"] == "2"
    assert got["optimizer.param_groups.0.numel"] == str(3 * 4 + 4 * 1)
    assert got["optimizer.param_groups.1.numel"] == "5"
    assert got["optimizer.param_groups.1.weight_decay"] == "0.0"
    assert "optimizer.param_groups.0.weight_decay" not in got  # same as the default
    assert not any("tensor" in v or "Parameter" in v or "\n" in v for v in got.values())


def test_a_scheduler_is_its_settings_and_the_optimizers_lr_is_the_one_given() -> None:
    optimizer = torch.optim.SGD(MODEL.parameters(), lr=0.1, momentum=0.9)
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=3)
    decay = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
    scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, decay], milestones=[3])
    got = params(optimizer=optimizer, scheduler=scheduler)

    assert "optimizer.param_groups.0.lr" not in got  # the warmup moved it; 0.1 was set
    assert got["scheduler.class"] == "SequentialLR"
    assert got["scheduler.milestones"] == "[3]"
    assert got["scheduler.schedulers.0.class"] == "LinearLR"
    assert got["scheduler.schedulers.0.start_factor"] == "0.1"
    assert got["scheduler.schedulers.1.step_size"] == "10"
    assert got["scheduler.schedulers.1.gamma"] == "0.5"
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=4, factor=0.2)
    got = params(scheduler=plateau)
    assert (got["scheduler.patience"], got["scheduler.factor"]) == ("4", "0.2")
    assert "scheduler.last_epoch" not in got and "scheduler.best" not in got  # running state


def test_tensor_valued_settings_are_numbers_or_summaries() -> None:
    optimizer = torch.optim.Adam(MODEL.parameters(), lr=torch.tensor(0.01))
    assert float(params(optimizer=optimizer)["optimizer.lr"]) == pytest.approx(0.01)
    small = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 3.0]), label_smoothing=0.1)
    got = params(loss=small)
    assert got["loss.class"] == "CrossEntropyLoss"
    assert (got["loss.weight"], got["loss.label_smoothing"]) == ("[1.0, 3.0]", "0.1")
    assert got["loss.reduction"] == "mean" and "loss.training" not in got
    large = nn.CrossEntropyLoss(weight=torch.ones(100))
    assert params(loss=large)["loss.weight"] == "<tensor float32 [100]>"
    assert params(loss=nn.BCEWithLogitsLoss(pos_weight=torch.tensor([4.0])))["loss.pos_weight"] == (
        "4.0"
    )


class FocalLoss(nn.Module):
    def __init__(self, gamma: float = 2.0) -> None:
        super().__init__()
        self.gamma = gamma

    def forward(self, logits, target):
        return logits.mean()


class Rows(Dataset):
    def __len__(self) -> int:
        return 12

    def __getitem__(self, i: int):
        return torch.zeros(2)


def test_custom_losses_and_opaque_loaders() -> None:
    got = params(loss=FocalLoss(gamma=3.0), model=MODEL)
    assert (got["loss.class"], got["loss.gamma"]) == ("FocalLoss", "3.0")
    assert not any(k.startswith("model") for k in got)  # a model is not a setting: skipped
    got = params(train=DataLoader(Rows(), batch_size=4, shuffle=True, drop_last=True))
    assert got["train.batch_size"] == "4" and got["train.shuffle"] == "True"
    assert (got["train.dataset"], got["train.dataset_size"]) == ("Rows", "12")
    fingerprinted = capture_params({"train": DataLoader(TensorDataset(torch.zeros(4, 2)))})
    assert list(fingerprinted.data) == ["train"] and not fingerprinted.params


@pytest.mark.filterwarnings(  # Keras' torch backend and numpy 2's __array__(copy=) keyword
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
def test_keras_optimizers_and_losses_by_their_config() -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("keras was imported with another backend first")
    got = params(optimizer=keras.optimizers.Adam(learning_rate=0.002), loss=keras.losses.Huber())
    assert got["optimizer.class"] == "Adam"
    assert float(got["optimizer.learning_rate"]) == pytest.approx(0.002)
    assert got["loss.class"] == "Huber" and got["loss.reduction"] == "sum_over_batch_size"


def test_unknown_objects_and_classes_are_not_described() -> None:
    assert describe(object()) is None and not describes(np.ones(3))
    assert not describes(torch.optim.Adam)  # the class, not an optimizer


def test_describing_imports_nothing() -> None:
    code = (
        "import sys\n"
        "from tracked.capture.params import capture_params\n"
        "class Opt:\n    lr = 1\n"
        "out = capture_params({'a': Opt(), 'b': {'c': 1}})\n"
        "heavy = [m for m in ('torch', 'keras', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    run_python(code, timeout=60)


def test_a_decorated_training_logs_its_optimizer_and_loss(store) -> None:
    @tracked.tracked_training(name="torch-params", register=False)
    def train(x, optimizer, loss_fn, epochs: int = 2) -> dict:
        for _ in range(epochs):
            optimizer.zero_grad()
            loss = loss_fn(MODEL(x).squeeze(1), x.sum(1))
            loss.backward()
            optimizer.step()
        return {"loss": loss.item()}

    x = torch.randn(16, 3)
    train(x, torch.optim.SGD(MODEL.parameters(), lr=0.05), nn.MSELoss())
    logged = store.run(tracked.last_run().run_id).data.params
    assert logged["optimizer.class"] == "SGD" and logged["optimizer.lr"] == "0.05"
    assert logged["loss_fn.class"] == "MSELoss" and logged["loss_fn.reduction"] == "mean"
    assert logged["epochs"] == "2"
    assert not any("Parameter Group" in v for v in logged.values())
