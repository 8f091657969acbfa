"""A plain PyTorch loop in a decorated function: its arguments (the optimizer and loss as their
class and settings), the data's fingerprints, the loss at every step, and the returned module,
logged with a signature from the training tensor and registered.

    python examples/torch_loop.py
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import tracked


@tracked.tracked_training(model_name="{project}-{name}")
def train_regressor(X: torch.Tensor, y: torch.Tensor, lr: float = 0.01, epochs: int = 5):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(X.shape[1], 32), nn.ReLU(), nn.Linear(32, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    tracked.log_params({"optimizer": optimizer})  # its class and settings, as params
    step = 0
    for _ in range(epochs):
        for xb, yb in DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(xb), yb)
            loss.backward()
            optimizer.step()
            tracked.log_metrics({"loss": loss.item()}, step=step)
            step += 1
    with torch.no_grad():
        mse = nn.functional.mse_loss(model(X), y).item()
    return model, {"train_mse": mse}


if __name__ == "__main__":
    tracked.configure(project="examples")
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(1_000, 8, generator=generator)
    y = X[:, :2].sum(dim=1, keepdim=True) + 0.1 * torch.randn(1_000, 1, generator=generator)

    model, metrics = train_regressor(X, y)
    run = tracked.last_run()

    loaded = tracked.load_model(f"{run.model_name}@latest")
    with torch.no_grad():
        same = torch.allclose(loaded(X[:10]), model.eval()(X[:10]), atol=1e-6)
    print(f"train_mse {metrics['train_mse']:.4f}, {run.metrics['loss']:.4f} at the last step")
    print(f"registered {run.model_name} version {run.model_version}; predictions match: {same}")
