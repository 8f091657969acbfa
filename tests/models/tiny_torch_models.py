"""Small torch modules for the flavor tests, in a module that does not import tracked: a
serving process imports the class by name from here, as it would from the user's package."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """Keeps its constructor arguments as attributes: rebuildable from a state dict."""

    def __init__(self, d_in: int, hidden: int = 8, d_out: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.d_in, self.hidden, self.d_out, self.dropout = d_in, hidden, d_out, dropout
        self.net = nn.Sequential(
            nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, d_out)
        )

    def forward(self, x):
        return self.net(x)


class Forgetful(nn.Module):
    """`scale` changes the output but is not kept: only an example can show the default is right."""

    def __init__(self, d_in: int, scale: float = 1.0) -> None:
        super().__init__()
        self.d_in = d_in
        self.linear = nn.Linear(d_in, 2)
        self.register_buffer("scale", torch.tensor(scale), persistent=False)

    def forward(self, x):
        return self.linear(x) * self.scale


class Lying(nn.Module):
    """Keeps `hidden` under its name, but not the value it was built with."""

    def __init__(self, d_in: int, hidden: int) -> None:
        super().__init__()
        self.d_in, self.hidden = d_in, hidden * 2
        self.body = nn.Linear(d_in, hidden)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x):
        return self.head(self.body(x))


class Tied(nn.Module):
    """Input and output embeddings share one weight."""

    def __init__(self, vocab: int, dim: int) -> None:
        super().__init__()
        self.vocab, self.dim = vocab, dim
        self.embed = nn.Embedding(vocab, dim)
        self.out = nn.Linear(dim, vocab, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, ids):
        return self.out(self.embed(ids))
