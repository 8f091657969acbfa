"""A torch module for the plain-loop tests, importable by name as a user's package is: the
logged model is rebuilt from its class, constructor arguments and safetensors weights."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, d_in: int, hidden: int = 16, d_out: int = 1) -> None:
        super().__init__()
        self.d_in, self.hidden, self.d_out = d_in, hidden, d_out
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
