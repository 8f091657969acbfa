"""An unchanged Lightning training inside `with tracked.run(...)`: the module's hyperparameters,
the trainer's settings, every value it logs with its step, and the best checkpoint by the
ModelCheckpoint monitor as the registered model. Lightning's own CSV logger keeps working.

    python examples/lightning_fit.py
"""

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import tracked


class Regressor(L.LightningModule):
    def __init__(self, hidden: int = 32, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        loss = nn.functional.mse_loss(self(batch[0]), batch[1])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", nn.functional.mse_loss(self(batch[0]), batch[1]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


if __name__ == "__main__":
    tracked.configure(project="examples")
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(1_200, 8, generator=generator)
    y = X[:, :2].sum(dim=1, keepdim=True) + 0.1 * torch.randn(1_200, 1, generator=generator)
    train = DataLoader(TensorDataset(X[:1_000], y[:1_000]), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(X[1_000:], y[1_000:]), batch_size=200)
    torch.manual_seed(0)
    trainer = L.Trainer(
        max_epochs=5,
        callbacks=[ModelCheckpoint(monitor="val_loss")],
        enable_progress_bar=False,
        log_every_n_steps=5,
    )

    with tracked.run("lightning-regressor", model_name="{project}-{name}") as run:
        trainer.fit(Regressor(), train, val)  # exactly the call you had before

    best = trainer.checkpoint_callback
    print(f"best val_loss {float(best.best_model_score):.4f} in {best.best_model_path}")
    print(f"registered {run.model_name} version {run.model_version} from the best checkpoint")
