"""LightningModules for the Lightning capture tests, importable by name as a user's package is
(the model is rebuilt from its class and `hparams` when it is loaded back)."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Regressor(L.LightningModule):
    """Logs its training loss per step and per epoch, its validation loss per epoch."""

    def __init__(self, d_in: int = 4, hidden: int = 8, lr: float = 0.05, fail_at: int = -1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.global_step == self.hparams.fail_at:
            raise RuntimeError(f"diverged at step {self.global_step}")
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self(x), y))

    def test_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("test_loss", nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class Data(L.LightningDataModule):
    """Holds its tensors as attributes (fingerprinted as dataset inputs)."""

    def __init__(self, rows: int = 256, batch_size: int = 32) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.batch_size = batch_size
        self.rows = rows

    def setup(self, stage: str) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x_train = torch.randn(self.rows, 4, generator=generator)
        self.y_train = self.x_train[:, :1] * 2 - self.x_train[:, 1:2]
        self.x_val = torch.randn(64, 4, generator=generator)
        self.y_val = self.x_val[:, :1] * 2 - self.x_val[:, 1:2]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x_train, self.y_train), batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x_val, self.y_val), batch_size=64)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
