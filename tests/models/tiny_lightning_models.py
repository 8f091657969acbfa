"""A small LightningModule for the flavor tests, importable by name like the user's package."""

from __future__ import annotations

import lightning as L
from torch import nn


class LitRegressor(L.LightningModule):
    """Keeps its arguments in `hparams` only (save_hyperparameters), not as attributes."""

    def __init__(self, d_in: int, hidden: int = 8, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x)
