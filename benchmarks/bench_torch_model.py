"""Logging a 10M-parameter PyTorch module: tracked beside MLflow's defaults, in the same run.

    python benchmarks/bench_torch_model.py [--repeat 3]

The module is a 4-layer MLP (about 10M float32 parameters, 40 MB) whose class comes from an
importable module, as a user's package provides it. Times are the best of `--repeat`:

- save: `tracked.models.flavors.save_model` (safetensors state dict, verified rebuild, explicit
  requirements) vs `mlflow.pytorch.save_model` with default settings (MLflow 3: the `pt2`
  torch.export format, requirements inferred in a subprocess), and the same with
  `pip_requirements` given, which shows where MLflow's time goes;
- log: what `run.log_model` adds to a `tracked.run` block (save + upload to a SQLite store's
  local artifacts) vs `mlflow.pytorch.log_model` in an `mlflow.start_run` block, both over the
  same block without a model.

Target (issue 15): tracked adds at most 1.5 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, d_in: int = 784, hidden: int = 2048, d_out: int = 10) -> None:
        super().__init__()
        self.d_in, self.hidden, self.d_out = d_in, hidden, d_out
        self.layers = nn.Sequential(
            nn.Linear(d_in, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, d_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def best(fn: Callable[[int], object], repeat: int) -> float:
    samples = []
    for i in range(repeat):
        start = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - start)
    return min(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import mlflow
    import mlflow.pytorch

    import tracked
    from tracked.models.flavors import save_model

    # The class as another process imports it, not as __main__.Net (see the module docstring).
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_torch_model import Net as ImportableNet

    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    model = ImportableNet().eval()
    count = sum(p.numel() for p in model.parameters())
    example = torch.randn(8, model.d_in)
    tmp = Path(tempfile.mkdtemp(prefix="tracked-bench-torch-"))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    tracked.configure(tracking_uri=uri, experiment="bench", project="bench")
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("bench-mlflow")

    def tracked_save(i: int) -> None:
        saved = save_model(model, str(tmp / f"tracked-{i}"), input_example=example)
        assert saved.serialization == "torch-state-dict", saved.note

    def mlflow_save(i: int) -> None:
        mlflow.pytorch.save_model(model, str(tmp / f"mlflow-{i}"), input_example=example.numpy())

    pins = ["torch", "mlflow"]

    def mlflow_save_pinned(i: int) -> None:  # where MLflow's time goes: requirement inference
        mlflow.pytorch.save_model(
            model, str(tmp / f"pinned-{i}"), input_example=example.numpy(), pip_requirements=pins
        )

    def tracked_block(i: int, log: bool) -> None:
        with tracked.run(f"block-{i}", register=False) as run:
            if log:
                run.log_model(model, input_example=example)

    def mlflow_block(i: int, log: bool) -> None:
        with mlflow.start_run():
            if log:
                mlflow.pytorch.log_model(model, name="model", input_example=example.numpy())

    # warm: imports, torch.export's first trace, the store's schema and experiments
    tracked_save(-1)
    mlflow_save(-1)
    mlflow_save_pinned(-1)
    tracked_block(-1, True)
    mlflow_block(-1, True)

    rows = [
        ("tracked save_model (state dict)", best(tracked_save, args.repeat)),
        ("mlflow.pytorch.save_model (defaults)", best(mlflow_save, args.repeat)),
        ("  same, pip_requirements given", best(mlflow_save_pinned, args.repeat)),
        (
            "tracked run.log_model, added",
            best(lambda i: tracked_block(i, True), args.repeat)
            - best(lambda i: tracked_block(100 + i, False), args.repeat),
        ),
        (
            "mlflow.pytorch.log_model, added",
            best(lambda i: mlflow_block(i, True), args.repeat)
            - best(lambda i: mlflow_block(i, False), args.repeat),
        ),
    ]
    print(f"{count / 1e6:.1f}M parameters, best of {args.repeat}, torch {torch.__version__}")
    tracked_log = next(seconds for label, seconds in rows if label.startswith("tracked run"))
    print(f"{'':40} {'seconds':>8} {'vs tracked log':>15}")
    for label, seconds in rows:
        print(f"{label:40} {seconds:8.3f} {seconds / tracked_log:14.1f}x")
    print(f"target: tracked adds <= 1.5 s -> {'OK' if tracked_log <= 1.5 else 'MISSED'}")


if __name__ == "__main__":
    main()
