"""Hugging Face Trainer.train inside a run: TrainingArguments as params (secrets redacted),
log_history per step, the final model saved with its tokenizer. No hub access: a tiny BERT
built from a config, a tokenizer from a local vocabulary."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # no download anywhere
transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from framework_checks import history, load_registered  # noqa: E402
from tiny_bert import tiny_bert, tiny_tokenizer  # noqa: E402
from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

import tracked  # noqa: E402
from tracked.integrations import scope  # noqa: E402

# Trainer (and TrainingArguments) refuse to start without accelerate.
needs_accelerate = pytest.mark.skipif(
    importlib.util.find_spec("accelerate") is None,
    reason="transformers' Trainer needs accelerate>=1.1, which is not installed",
)
ORIGINAL_TRAIN = vars(Trainer)["train"]
TEXTS = [
    "good movie",
    "bad film",
    "very good film",
    "very bad movie",
    "good",
    "bad",
    "film",
    "movie",
]
LABELS = [1, 0, 1, 0, 1, 0, 1, 0]


@pytest.fixture(autouse=True)
def _unpatched_after() -> Iterator[None]:
    yield
    assert vars(Trainer)["train"] is ORIGINAL_TRAIN
    assert scope.patched() == {}


@pytest.fixture
def tokenizer(tmp_path: Path) -> Any:
    return tiny_tokenizer(tmp_path)


class Texts(torch.utils.data.Dataset):  # type: ignore[misc]
    def __init__(self, tokenizer: Any) -> None:
        self.encoded = tokenizer(TEXTS)
        self.labels = LABELS

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**{k: v[i] for k, v in self.encoded.items()}, "labels": self.labels[i]}


def _trainer(tokenizer: Any, root: Path, callbacks: Any = None, **options: Any) -> Any:
    options.setdefault("report_to", "none")
    args = TrainingArguments(
        output_dir=str(root / "out"),
        num_train_epochs=2,
        per_device_train_batch_size=4,
        learning_rate=5e-3,
        logging_steps=1,
        eval_strategy="epoch",
        save_strategy="no",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
        hub_token="hf_secret_value_never_logged",
        **options,
    )
    data = Texts(tokenizer)
    return Trainer(
        model=tiny_bert(),
        args=args,
        train_dataset=data,
        eval_dataset=data,
        processing_class=tokenizer,
        callbacks=callbacks,
    )


def _assert_log_history(store: Any, run_id: str, trainer: Any) -> None:
    """Every numeric value of state.log_history, point by point, with step = global step."""
    expected: dict[str, list[tuple[int, float]]] = {}
    for entry in trainer.state.log_history:
        for key, value in entry.items():
            # total_flos is added to log_history after the callbacks were told (transformers 5)
            wanted = key not in ("step", "total_flos")
            if wanted and isinstance(value, (int, float)) and not isinstance(value, bool):
                expected.setdefault(key, []).append((entry["step"], float(value)))
    assert {"loss", "learning_rate", "eval_loss", "train_loss"} <= set(expected)
    for key, points in expected.items():
        # Entries logged in the same millisecond with the same step and value (the final epoch
        # appears in three) are one point to MLflow: its key includes the timestamp.
        stored = sorted(set(history(store, run_id, key)))
        assert stored == pytest.approx(sorted(set(points))), key


def _logits(model: Any, tokenizer: Any) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(**tokenizer(TEXTS[:4], padding=True, return_tensors="pt")).logits.numpy()


def _predicts_the_same(
    store: Any, run: Any, trainer: Any, tokenizer: Any, monkeypatch: Any
) -> None:
    expected = _logits(trainer.model, tokenizer)
    native, served = load_registered(store, run, monkeypatch)
    assert set(native) == {"model", "tokenizer"}  # saved with its tokenizer
    np.testing.assert_allclose(_logits(native["model"], native["tokenizer"]), expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(served.predict(TEXTS[:4])), expected, atol=1e-5)


@pytest.mark.sqlite_only
def test_train_is_patched_only_inside_a_run(store: Any) -> None:
    assert vars(Trainer)["train"] is ORIGINAL_TRAIN
    with tracked.run("patched"):
        assert vars(Trainer)["train"] is not ORIGINAL_TRAIN
        assert (Trainer, "train") in scope.patched()["transformers.trainer"]
    assert vars(Trainer)["train"] is ORIGINAL_TRAIN


@needs_accelerate
def test_train_in_a_block_records_arguments_log_history_and_the_model(
    store: Any, tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = _trainer(tokenizer, tmp_path)
    callbacks_before = list(trainer.callback_handler.callbacks)
    with tracked.run("hf") as run:
        trainer.train()
    assert run.status == "FINISHED"
    assert trainer.callback_handler.callbacks == callbacks_before
    _assert_log_history(store, run.run_id, trainer)
    params = store.run(run.run_id).data.params
    assert params["learning_rate"] == "0.005"
    assert params["num_train_epochs"] == "2"
    assert params["output_dir"] == str(tmp_path / "out")  # paths kept
    assert params["hub_token"] == "***"  # secrets never
    assert "hf_secret_value_never_logged" not in str(params)
    (saved,) = run.record.models
    assert saved.obj is trainer.model and saved.tokenizer is tokenizer
    assert saved.serialization == "transformers-safetensors"
    _predicts_the_same(store, run, trainer, tokenizer, monkeypatch)


@needs_accelerate
def test_saving_the_model_shows_no_progress_bar_and_keeps_the_users_setting(
    store: Any, tokenizer: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from transformers.utils import logging as hf_logging

    trainer = _trainer(tokenizer, tmp_path)
    trainer.train()  # outside any run: nothing of tracked's here
    capfd.readouterr()
    assert hf_logging.is_progress_bar_enabled()

    with tracked.run("hf-quiet-save") as run:
        run.log_model(trainer.model)

    assert run.status == "FINISHED" and len(run.record.models) == 1
    assert "Writing model shards" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # the user's bars are theirs again


@needs_accelerate
def test_a_decorated_function_returning_the_trainers_model(
    store: Any, tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    @tracked.tracked_training
    def train(epochs: int = 2) -> Any:
        trainer = _trainer(tokenizer, tmp_path)
        trainer.train()
        trainers.append(trainer)
        return trainer.model

    trainers: list[Any] = []
    model = train()
    (trainer,) = trainers
    run = tracked.last_run()
    assert run is not None and run.status == "FINISHED"
    (saved,) = run.record.models  # the returned model is the training's: its tokenizer kept
    assert saved.obj is model and saved.tokenizer is tokenizer
    _assert_log_history(store, run.run_id, trainer)
    _predicts_the_same(store, run, trainer, tokenizer, monkeypatch)


@needs_accelerate
@pytest.mark.sqlite_only
def test_a_failing_step_ends_failed_with_the_steps_before_it(
    store: Any, tokenizer: Any, tmp_path: Path
) -> None:
    class Diverges(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 3:
                raise RuntimeError("diverged at step 3")

    trainer = _trainer(tokenizer, tmp_path, callbacks=[Diverges()])
    with pytest.raises(RuntimeError, match="diverged at step 3"), tracked.run("dies") as run:
        trainer.train()
    assert run.status == "FAILED"
    assert store.run(run.run_id).info.status == "FAILED"
    assert [s for s, _ in history(store, run.run_id, "loss")] == [1, 2]
    assert run.record.models == []


@needs_accelerate
@pytest.mark.sqlite_only
def test_transformers_own_mlflow_callback_writes_nothing_twice(
    store: Any, tokenizer: Any, tmp_path: Path
) -> None:
    trainer = _trainer(tokenizer, tmp_path, report_to="mlflow")
    before = list(trainer.callback_handler.callbacks)
    assert any(type(c).__name__ == "MLflowCallback" for c in before)
    with tracked.run("hf-mlflow") as run:
        trainer.train()
    assert trainer.callback_handler.callbacks == before  # put back, at its place
    assert [r.info.run_id for r in store.runs()] == [run.run_id]
    steps = [s for s, _ in history(store, run.run_id, "loss")]
    assert steps == sorted(set(steps))  # one point per step
