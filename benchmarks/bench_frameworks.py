"""What capturing a small training adds, per framework, beside MLflow's own ways.

    python benchmarks/bench_frameworks.py [--repeat 3] [--rows 60000] [--quick]
        [--frameworks torch,lightning,keras,transformers,catboost]

Each framework is one section (`--frameworks` picks them; default all), on one fresh SQLite store
in a temp dir, with `torch.set_num_threads(1)` (CatBoost: `thread_count=1`). In a section each
way is timed in this one process, interleaved (bare, then each other way, `--repeat` times), and
the best wall time and the best CPU time (all threads of the process: tracked's background
writer's too) of each are printed as ratios over the section's bare training. After each timed
call the script waits, outside the time, until tracked and MLflow's async logging have sent
everything, so one way's points never land in the next way's time (MLflow's rows end their run
inside the timed call, and `end_run` waits for MLflow's async-logging thread when the run used
it). The trainings, sized for a bare training of 2 to 7 s on one thread (`--quick` shrinks them
all: a smoke run of every section with `--repeat 1` takes under a minute):

- torch: a 2-layer MLP (64 -> 128 -> 1) on `--rows` (60,000) x 64 synthetic rows, 3 epochs,
  batch 256 (705 steps), the loss logged at every step: the bare loop (`loss.item()` per step,
  kept nowhere) against the same loop inside `with tracked.run()` logging
  `tracked.log_metrics({"loss": ...}, step)`, the model logged at the block's end;
- lightning: the same MLP and data in `Trainer.fit` (`log_every_n_steps=1`, no checkpointing,
  no progress bar): the bare fit (`logger=False`), and with a logger that keeps nothing (what
  Lightning's own logging path costs any logger), against the fit inside `tracked.run` (the
  capture's logger gets every step), `mlflow.pytorch.autolog(log_every_n_step=1,
  log_models=False)` and Lightning's own `MLFlowLogger` on the same store;
- keras (Keras 3, torch backend: `KERAS_BACKEND=torch`): an MLP of the same shape with a
  sigmoid output, binary cross-entropy and accuracy, `Model.fit` on 60,000 x 64 rows (20 % held
  out by `validation_split`), 8 epochs, batch 256 (1,504 steps), `verbose=0`: bare against the
  fit inside `tracked.run` (its callback gets `History`'s values at each epoch) and
  `mlflow.keras.autolog(log_models=False)` inside `mlflow.start_run`;
- transformers: `Trainer.train` of a `BertForSequenceClassification` built from a config
  (2 layers, hidden 64, 2 heads, vocabulary 1,000; no download) on 4,000 random sequences of 32
  tokens, 2 epochs, batch 32 (250 steps), `logging_steps=1`, an evaluation of 256 sequences at
  each epoch, no checkpoints, `report_to="none"`: bare against the train inside `tracked.run`
  (every `log_history` entry) and Transformers' own `MLflowCallback` (`report_to="mlflow"`,
  inside `mlflow.start_run`; it logs asynchronously). `mlflow.transformers.autolog` is not a
  row: in MLflow 3 it records no training (it only keeps other autologgers off sub-models);
- catboost: `CatBoostClassifier.fit` on 20,000 x 20 rows with an eval set of 5,000, 600
  iterations of depth 6, `eval_metric="AUC"` and Logloss, Accuracy, Precision, Recall, F1 as
  custom metrics, each computed at every iteration (`metric_period=1`; AUC on the eval set only,
  CatBoost's default), no files written: bare against the fit inside `tracked.run` (its callback
  gets every metric of every iteration) and, MLflow having no CatBoost autolog, a hand-written
  CatBoost callback calling `mlflow.log_metrics` (synchronous, MLflow's default) at each
  iteration inside `mlflow.start_run`.

For the tracked rows "fit"/"train"/"loop" is the training call inside the block (the capture's
cost, the issue's target: <= 2 % over bare); "block" is the whole block, with run start, the
model saved, logged and registered at its end, which a bare training does not do (a fixed cost,
not per step). MLflow's autologs run last in their section, with bare runs interleaved again:
their patches stay in the framework after they are disabled. On a loaded shared machine the
ratios move by tens of percent from one run to the next; the lines after the table, tracked's own
CPU for a run of as many points as its capture stored for that framework, with no training, are
the steadier figures. Those lines also say what the capture stored (metrics, points) and any
warning tracked gave, as a check that the capture worked.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import tracked

FRAMEWORKS = ("torch", "lightning", "keras", "transformers", "catboost")
EPOCHS, BATCH, FEATURES, HIDDEN = 3, 256, 64, 128

Times = tuple[float, float]  # wall seconds, CPU seconds of the whole process (all threads)


@dataclass(frozen=True)
class Sizes:
    rows: int  # torch and lightning (--rows)
    keras_rows: int = 60_000
    keras_epochs: int = 8
    hf_rows: int = 4_000
    hf_eval_rows: int = 256
    hf_epochs: int = 2
    cb_rows: int = 20_000
    cb_eval_rows: int = 5_000
    cb_iterations: int = 600


def sizes(rows: int | None, quick: bool) -> Sizes:
    if quick:
        return Sizes(
            rows=rows or 3_000,
            keras_rows=3_000,
            keras_epochs=2,
            hf_rows=128,
            hf_eval_rows=32,
            hf_epochs=1,
            cb_rows=2_000,
            cb_eval_rows=500,
            cb_iterations=40,
        )
    return Sizes(rows=rows or 60_000)


@dataclass
class Section:
    """One framework's ways, timed together; `inside` gets the tracked way's training call."""

    name: str
    header: str
    bare: str
    ways: dict[str, Callable[[], Any]]
    rows: list[tuple[str, str]]  # (key, label); every row is a ratio over `bare`
    inside_key: str
    late: tuple[Callable[[], Any], Callable[[], Any], dict[str, Callable[[], Any]]] | None = None
    notes: list[str] = field(default_factory=list)
    inside: list[Times] = field(default_factory=list)
    run: Any = None  # the last tracked run of the section (checked after)
    mlflow_way: str | None = None  # the way whose runs go to the "bench-mlflow" experiment

    def tracked_way(
        self,
        run_name: str,
        train: Callable[[], Any],
        after: Callable[[Any, Any], Any] | None = None,
    ) -> Callable[[], None]:
        """`train` inside `with tracked.run(run_name)`, its own time kept in `inside`."""

        def way() -> None:
            result: list[Any] = []
            with tracked.run(run_name) as run:
                self.inside.append(timed(lambda: result.append(train())))
                if after is not None:
                    after(run, result[0])
            self.run = run

        return way


def timed(fn: Callable[[], Any]) -> Times:
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - start_cpu


def quiet(fn: Callable[[], Any]) -> Times:
    """`fn`'s times; then wait until tracked and MLflow's async logging have sent everything,
    so the previous way's points going to the store in the background never land in the next
    way's time."""
    times = timed(fn)
    tracked.flush()
    mlflow.flush_async_logging()
    return times


# -- torch and Lightning ---------------------------------------------------------------------


def data(rows: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, FEATURES, generator=generator)
    weights = torch.randn(FEATURES, 1, generator=generator)
    y = torch.tanh(x @ weights) + 0.1 * torch.randn(rows, 1, generator=generator)
    return TensorDataset(x, y)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 1))


def torch_loop(dataset: TensorDataset, log: Callable[[float, int], None] | None) -> nn.Module:
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=False)
    step = 0
    for _ in range(EPOCHS):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(xb), yb)
            loss.backward()
            optimizer.step()
            value = loss.item()
            if log is not None:
                log(value, step)
            step += 1
    return model


def torch_section(size: Sizes, tmp: Path, uri: str, mlflow_exp: str) -> Section:
    dataset = data(size.rows)
    steps = EPOCHS * -(-size.rows // BATCH)

    def log(value: float, step: int) -> None:
        tracked.log_metrics({"loss": value}, step)

    section = Section(
        name="torch",
        header=(
            f"torch: MLP {FEATURES} -> {HIDDEN} -> 1, {size.rows:,} x {FEATURES} rows, {EPOCHS} "
            f"epochs, batch {BATCH} ({steps:,} steps, loss logged at each)"
        ),
        bare="torch bare",
        ways={},
        rows=[
            ("torch bare", "plain torch loop, bare"),
            ("torch tracked loop", "  inside tracked.run: the loop"),
            ("torch tracked block", "  inside tracked.run: whole block + model"),
        ],
        inside_key="torch tracked loop",
    )
    section.ways = {
        "torch bare": lambda: torch_loop(dataset, None),
        "torch tracked block": section.tracked_way(
            "bench-torch",
            lambda: torch_loop(dataset, log),
            lambda run, model: run.log_model(model, input_example=dataset.tensors[0][:5]),
        ),
    }
    return section


def lightning_section(size: Sizes, tmp: Path, uri: str, mlflow_exp: str) -> Section:
    import lightning as L
    from lightning.pytorch.loggers import MLFlowLogger

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    dataset = data(size.rows)
    steps = EPOCHS * -(-size.rows // BATCH)

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp()

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            xb, yb = batch
            loss = nn.functional.mse_loss(self.net(xb), yb)
            self.log("loss", loss, on_step=True, on_epoch=False)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    def fit(root: str, logger: Any = False) -> Any:
        module = Module()
        trainer = L.Trainer(
            max_epochs=EPOCHS,
            logger=logger,
            log_every_n_steps=1,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=root,
            accelerator="cpu",
        )
        trainer.fit(module, DataLoader(dataset, batch_size=BATCH, shuffle=False))
        return module

    class NullLogger(L.pytorch.loggers.Logger):  # type: ignore[misc, name-defined]
        """A logger that keeps nothing: what Lightning's logging path costs by itself."""

        name, version = "null", "0"

        def log_metrics(self, metrics: Any, step: Any = None) -> None:
            pass

        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            pass

    def mlflow_logger() -> None:
        logger = MLFlowLogger(experiment_name="bench-lightning-logger", tracking_uri=uri)
        fit(str(tmp / "logger"), logger=logger)

    def autologged() -> None:
        with mlflow.start_run(experiment_id=mlflow_exp):
            fit(str(tmp / "autolog"))

    section = Section(
        name="lightning",
        header=(
            f"lightning {L.__version__}: the same MLP and data in Trainer.fit, "
            f"log_every_n_steps=1 ({steps:,} steps, loss logged at each)"
        ),
        bare="lightning bare",
        ways={},
        rows=[
            ("lightning bare", "Lightning fit, bare (logger=False)"),
            ("lightning null logger", "  bare, with a logger that keeps nothing"),
            ("lightning tracked fit", "  inside tracked.run: the fit"),
            ("lightning tracked block", "  inside tracked.run: whole block + model"),
            ("lightning mlflow.pytorch.autolog", "  mlflow.pytorch.autolog"),
            ("lightning MLFlowLogger", "  Lightning's MLFlowLogger"),
        ],
        inside_key="lightning tracked fit",
        mlflow_way="mlflow.pytorch.autolog",
        late=(
            lambda: mlflow.pytorch.autolog(log_every_n_step=1, log_models=False, silent=True),
            lambda: mlflow.pytorch.autolog(disable=True),
            {"lightning mlflow.pytorch.autolog": autologged},
        ),
    )
    section.ways = {
        "lightning bare": lambda: fit(str(tmp / "bare")),
        "lightning null logger": lambda: fit(str(tmp / "null"), logger=NullLogger()),
        "lightning tracked block": section.tracked_way(
            "bench-lightning", lambda: fit(str(tmp / "tracked"))
        ),
        "lightning MLFlowLogger": mlflow_logger,
    }
    return section


# -- Keras 3 ---------------------------------------------------------------------------------


def keras_section(size: Sizes, tmp: Path, uri: str, mlflow_exp: str) -> Section:
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "torch"  # read once, when keras is first imported
    import keras
    import mlflow.keras

    rng = np.random.default_rng(0)
    x = rng.standard_normal((size.keras_rows, FEATURES)).astype("float32")
    weights = rng.standard_normal((FEATURES, 1)).astype("float32")
    y = (x @ weights + 0.5 * rng.standard_normal((size.keras_rows, 1)) > 0).astype("float32")
    steps = size.keras_epochs * -(-int(size.keras_rows * 0.8) // BATCH)

    def fit() -> Any:
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((FEATURES,)),
                keras.layers.Dense(HIDDEN, activation="relu"),
                keras.layers.Dense(1, activation="sigmoid"),
            ]
        )
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        model.fit(
            x,
            y,
            epochs=size.keras_epochs,
            batch_size=BATCH,
            validation_split=0.2,
            shuffle=False,
            verbose=0,
        )
        return model

    def autologged() -> None:
        with mlflow.start_run(experiment_id=mlflow_exp):
            fit()

    section = Section(
        name="keras",
        header=(
            f"keras {keras.__version__} ({keras.backend.backend()} backend): MLP {FEATURES} -> "
            f"{HIDDEN} -> 1, binary, {size.keras_rows:,} x {FEATURES} rows (20 % validation), "
            f"{size.keras_epochs} epochs, batch {BATCH} ({steps:,} steps), History per epoch"
        ),
        bare="keras bare",
        ways={},
        rows=[
            ("keras bare", "Keras Model.fit, bare"),
            ("keras tracked fit", "  inside tracked.run: the fit"),
            ("keras tracked block", "  inside tracked.run: whole block + model"),
            ("keras mlflow.keras.autolog", "  mlflow.keras.autolog"),
        ],
        inside_key="keras tracked fit",
        mlflow_way="mlflow.keras.autolog",
        late=(
            lambda: mlflow.keras.autolog(log_models=False, silent=True),
            lambda: mlflow.keras.autolog(disable=True),
            {"keras mlflow.keras.autolog": autologged},
        ),
    )
    section.ways = {
        "keras bare": fit,
        "keras tracked block": section.tracked_way("bench-keras", fit),
    }
    return section


# -- Hugging Face Transformers ---------------------------------------------------------------


def transformers_section(size: Sizes, tmp: Path, uri: str, mlflow_exp: str) -> Section:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is built from a config: no hub
    import transformers
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        PrinterCallback,
        ProgressCallback,
        Trainer,
        TrainingArguments,
    )

    transformers.logging.set_verbosity_error()
    length, vocabulary, batch = 32, 1_000, 32
    generator = torch.Generator().manual_seed(0)

    class Sequences(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
        def __init__(self, rows: int) -> None:
            self.ids = torch.randint(0, vocabulary, (rows, length), generator=generator)
            self.labels = (self.ids[:, :4].sum(dim=1) > 2 * vocabulary).long()

        def __len__(self) -> int:
            return len(self.ids)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"input_ids": self.ids[i], "labels": self.labels[i]}

    train_set, eval_set = Sequences(size.hf_rows), Sequences(size.hf_eval_rows)
    steps = size.hf_epochs * -(-size.hf_rows // batch)

    def train(report_to: str = "none") -> Any:
        torch.manual_seed(0)
        config = BertConfig(
            vocab_size=vocabulary,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
            max_position_embeddings=length,
        )  # num_labels: 2 by default
        args = TrainingArguments(
            output_dir=str(tmp / "hf"),
            num_train_epochs=size.hf_epochs,
            per_device_train_batch_size=batch,
            per_device_eval_batch_size=batch,
            logging_steps=1,
            eval_strategy="epoch",
            save_strategy="no",
            report_to=report_to,
            disable_tqdm=True,
            use_cpu=True,
            dataloader_num_workers=0,
            seed=0,
        )
        trainer = Trainer(
            model=BertForSequenceClassification(config),
            args=args,
            train_dataset=train_set,
            eval_dataset=eval_set,
        )
        trainer.remove_callback(PrinterCallback)  # disable_tqdm's: prints every log line
        trainer.remove_callback(ProgressCallback)
        trainer.train()
        return trainer.model

    def mlflow_callback() -> None:
        with mlflow.start_run(experiment_id=mlflow_exp):
            train(report_to="mlflow")

    section = Section(
        name="transformers",
        header=(
            f"transformers {transformers.__version__}: BertForSequenceClassification (2 layers, "
            f"hidden 64) on {size.hf_rows:,} x {length} tokens, {size.hf_epochs} epochs, batch "
            f"{batch} ({steps:,} steps, logging_steps=1), eval of {size.hf_eval_rows:,} per epoch"
        ),
        bare="transformers bare",
        ways={},
        rows=[
            ("transformers bare", "Transformers Trainer.train, bare"),
            ("transformers tracked train", "  inside tracked.run: the train"),
            ("transformers tracked block", "  inside tracked.run: whole block + model"),
            ("transformers MLflowCallback", "  report_to='mlflow' (MLflowCallback)"),
        ],
        inside_key="transformers tracked train",
        mlflow_way="MLflowCallback",
        notes=[
            "transformers: mlflow.transformers.autolog not measured: in MLflow "
            f"{mlflow.__version__} it records no training (it only keeps other autologgers off "
            "the sub-models); report_to='mlflow' is MLflow's way for Trainer"
        ],
    )
    section.ways = {
        "transformers bare": train,
        "transformers tracked block": section.tracked_way("bench-transformers", train),
        "transformers MLflowCallback": mlflow_callback,
    }
    return section


# -- CatBoost --------------------------------------------------------------------------------


def catboost_section(size: Sizes, tmp: Path, uri: str, mlflow_exp: str) -> Section:
    import catboost
    from catboost import CatBoostClassifier

    columns = 20
    rng = np.random.default_rng(0)
    rows = size.cb_rows + size.cb_eval_rows
    x = rng.standard_normal((rows, columns))
    y = (x[:, :3].sum(axis=1) + 0.5 * rng.standard_normal(rows) > 0).astype(int)
    x_train, y_train = x[: size.cb_rows], y[: size.cb_rows]
    eval_set = (x[size.cb_rows :], y[size.cb_rows :])

    def fit(callbacks: list[Any] | None = None) -> Any:
        model = CatBoostClassifier(
            iterations=size.cb_iterations,
            depth=6,
            learning_rate=0.1,
            eval_metric="AUC",
            custom_metric=["Logloss", "Accuracy", "Precision", "Recall", "F1"],
            thread_count=1,
            random_seed=0,
            verbose=False,
            allow_writing_files=False,
        )
        return model.fit(x_train, y_train, eval_set=eval_set, callbacks=callbacks)

    class MlflowEachIteration:
        """What a user writes without an autolog: each iteration's metrics to MLflow."""

        def after_iteration(self, info: Any) -> bool:
            values = {
                f"{data}-{metric}": float(history[-1])
                for data, metrics in info.metrics.items()
                for metric, history in metrics.items()
            }
            mlflow.log_metrics(values, step=info.iteration - 1)
            return True

    def by_hand() -> None:
        with mlflow.start_run(experiment_id=mlflow_exp):
            fit([MlflowEachIteration()])

    section = Section(
        name="catboost",
        header=(
            f"catboost {catboost.__version__}: CatBoostClassifier, {size.cb_rows:,} x {columns} "
            f"rows, eval set {size.cb_eval_rows:,}, {size.cb_iterations} iterations, depth 6, "
            "AUC + 5 custom metrics at each iteration, thread_count=1"
        ),
        bare="catboost bare",
        ways={},
        rows=[
            ("catboost bare", "CatBoost fit, bare"),
            ("catboost tracked fit", "  inside tracked.run: the fit"),
            ("catboost tracked block", "  inside tracked.run: whole block + model"),
            ("catboost mlflow by hand", "  mlflow.log_metrics per iteration, by hand"),
        ],
        inside_key="catboost tracked fit",
        mlflow_way="the hand-written callback",
        notes=[
            "catboost: MLflow has no CatBoost autolog; its row is a hand-written callback "
            "calling mlflow.log_metrics at each iteration"
        ],
    )
    section.ways = {
        "catboost bare": fit,
        "catboost tracked block": section.tracked_way("bench-catboost", fit),
        "catboost mlflow by hand": by_hand,
    }
    return section


BUILDERS: dict[str, Callable[[Sizes, Path, str, str], Section]] = {
    "torch": torch_section,
    "lightning": lightning_section,
    "keras": keras_section,
    "transformers": transformers_section,
    "catboost": catboost_section,
}


# -- measuring -------------------------------------------------------------------------------


def measure(section: Section, repeat: int) -> dict[str, list[Times]]:
    """Every way once to warm (imports, schema, experiments, registered models), then
    `repeat` interleaved rounds; the autolog ways last, bare interleaved with them again."""
    for way in section.ways.values():
        quiet(way)
    section.inside.clear()
    samples: dict[str, list[Times]] = {name: [] for name in section.ways}
    for _ in range(repeat):
        for name, way in section.ways.items():
            samples[name].append(quiet(way))
    if section.late is not None:
        enable, disable, late_ways = section.late
        enable()
        try:
            for name, way in late_ways.items():
                quiet(way)
                samples[name] = []
            for _ in range(repeat):
                samples[section.bare].append(quiet(section.ways[section.bare]))
                for name, way in late_ways.items():
                    samples[name].append(quiet(way))
        finally:
            disable()
    samples[section.inside_key] = list(section.inside)
    return samples


def stored_points(run_id: str) -> list[dict[str, float]]:
    """The tracked run's metric points as stored (system metrics left out), grouped into the
    `log_metrics` calls that would write them: one dict per step (more when a key repeats)."""
    client = mlflow.MlflowClient()
    by_step: dict[int, list[dict[str, float]]] = {}
    for key in client.get_run(run_id).data.metrics:
        if key.startswith("system/"):
            continue
        for point in client.get_metric_history(run_id, key):
            calls = by_step.setdefault(point.step, [])
            for call in calls:
                if key not in call:
                    call[key] = 0.5
                    break
            else:
                calls.append({key: 0.5})
    return [call for step in sorted(by_step) for call in by_step[step]]


def check(section: Section) -> tuple[list[dict[str, float]], str]:
    """What the section's last tracked run stored, and the warnings tracked gave in it."""
    run = section.run
    if run is None or run.run_id is None:
        return [], f"{section.name}: NO tracked run in the store"
    points = stored_points(run.run_id)
    keys = sorted({key for call in points for key in call})
    line = (
        f"{section.name}: the capture stored {sum(map(len, points)):,} points of {len(keys)} "
        f"metrics ({', '.join(keys) or 'none'}) in {len(points):,} calls, "
        f"{len(run.params)} params, status {run.status}"
    )
    if run.problems.seen:
        line += "; tracked warned: " + " | ".join(run.problems.seen)
    return points, line


def check_mlflow(section: Section, experiment_id: str) -> str | None:
    """What the last MLflow run the section's MLflow way made stored (none for torch)."""
    if section.mlflow_way is None:
        return None
    client = mlflow.MlflowClient()
    found = client.search_runs([experiment_id], order_by=["attributes.start_time DESC"])
    if not found:
        return f"{section.name}: {section.mlflow_way} stored NO run"
    run = found[0]
    keys = [key for key in run.data.metrics if not key.startswith("system/")]
    points = sum(len(client.get_metric_history(run.info.run_id, key)) for key in keys)
    return (
        f"{section.name}: {section.mlflow_way} stored {points:,} points of {len(keys)} metrics, "
        f"{len(run.data.params)} params"
    )


def own_work(points: list[dict[str, float]], repeat: int) -> float:
    """tracked's whole CPU for a run of these points, no training: start, points, end, sent."""

    def work() -> None:
        with tracked.run("bench-own-work", git=False):
            for step, values in enumerate(points):
                tracked.log_metrics(values, step)
        tracked.flush()

    return min(quiet(work)[1] for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=None, help="torch and Lightning rows")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--frameworks",
        default=",".join(FRAMEWORKS),
        help=f"comma-separated, of {','.join(FRAMEWORKS)} (default: all)",
    )
    args = parser.parse_args()
    chosen = [name.strip() for name in args.frameworks.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(FRAMEWORKS))
    if unknown:
        parser.error(f"unknown frameworks: {', '.join(unknown)}")
    size = sizes(args.rows, args.quick)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="tracked-bench-frameworks-"))
    os.chdir(tmp)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    tracked.configure(tracking_uri=uri, experiment="bench-tracked", project="bench")
    mlflow.set_tracking_uri(uri)
    mlflow_exp = mlflow.set_experiment("bench-mlflow").experiment_id

    sections: list[Section] = []
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    lines: list[str] = []
    for name in FRAMEWORKS:
        if name not in chosen:
            continue
        section = BUILDERS[name](size, tmp, uri, mlflow_exp)
        samples = measure(section, args.repeat)
        wall.update({key: min(w for w, _ in values) for key, values in samples.items()})
        cpu.update({key: min(c for _, c in values) for key, values in samples.items()})
        points, stored = check(section)
        own = own_work(points, args.repeat)
        bare_cpu = cpu[section.bare]
        lines += [
            stored,
            *filter(None, [check_mlflow(section, mlflow_exp)]),
            f"{name}: tracked's own work for a run of those points (start, points, end, all "
            f"sent), without training: {own * 1e3:.0f} ms CPU = {own / bare_cpu:.1%} of the bare "
            "training's CPU",
            *section.notes,
        ]
        sections.append(section)

    print(
        f"torch {torch.__version__}, mlflow {mlflow.__version__}, one thread, SQLite, best of "
        f"{args.repeat}" + (" (--quick sizes)" if args.quick else "")
    )
    for section in sections:
        print(section.header)
    print(f"| {'way':<44} | {'wall':>7} | {'over bare':>9} | {'CPU':>7} | {'over bare':>9} |")
    print(f"| {'-' * 44} | {'-' * 7} | {'-' * 9} | {'-' * 7} | {'-' * 9} |")
    for section in sections:
        base = section.bare
        for key, label in section.rows:
            print(
                f"| {label:<44} | {wall[key]:6.2f}s | {wall[key] / wall[base] - 1:+9.1%} "
                f"| {cpu[key]:6.2f}s | {cpu[key] / cpu[base] - 1:+9.1%} |"
            )
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
