"""Hugging Face Transformers inside a run: `Trainer.train` (and its subclasses').

Imported by `scope` only when `transformers.trainer` is (transformers imports its submodules
lazily: `from transformers import Trainer` is what loads it). One `train` call is one training
of the run: the `TrainingArguments` as params (every field; secrets such as `hub_token` redacted,
paths such as `output_dir` kept); every entry Trainer adds to `state.log_history` (`loss`,
`grad_norm`, `learning_rate`, `epoch`, `eval_*`, `train_runtime`, ...) with step = the global step
it was logged at, through a `TrainerCallback` added for the call; and `trainer.model` (the best
one when `load_best_model_at_end` loaded it) with the trainer's processing class (tokenizer,
processor) as the training's model, saved with `save_pretrained` in safetensors by its flavor.

The trainer's callbacks are put back as they were after the call. Transformers' own
`MLflowCallback` (`report_to="mlflow"`) already writes into the tracked run inside a scope
(tracked is MLflow's active run there); it is taken out of the list for the call, so the same
values are not written twice, and put back at its place after.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tracked.capture.keys import sanitize_key
from tracked.capture.secrets import REDACTED, is_secret_name
from tracked.integrations import scope
from tracked.integrations.methods import method_hook
from tracked.integrations.scope import Hook

if TYPE_CHECKING:
    from tracked.run import TrackedRun, Training

__all__ = ["patch_targets", "training_arguments"]


def patch_targets() -> list[tuple[Any, str, Hook]]:
    """`Trainer.train`: Seq2SeqTrainer and other subclasses inherit it."""
    module = sys.modules.get("transformers.trainer")
    trainer = getattr(module, "Trainer", None)
    if trainer is None or "train" not in vars(trainer):
        return []
    return [(trainer, "train", method_hook(_Train, autolog=("transformers",)))]


def training_arguments(args: Any) -> dict[str, Any]:
    """`TrainingArguments` as params: every field, secret ones (`*_token`, names tracked takes
    for secrets) as `***` when set, enums by value."""
    try:
        values = dict(args.to_dict())
    except Exception:  # an arguments object of another shape: its public attributes
        values = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key.endswith("_token") or is_secret_name(key):
            raw = getattr(args, key, value)
            out[key] = None if raw is None else REDACTED
        else:
            out[key] = value
    return out


class _Train:
    framework = "transformers"
    name = "transformers.Trainer.train"
    produces_model = False  # train returns a TrainOutput; `after` hands over the model

    def __init__(self, run: TrackedRun, trainer: Any) -> None:
        self.run = run
        self.trainer = trainer
        self._added: Any = None
        self._removed: list[tuple[int, Any]] = []

    def before(self, training: Training, arguments: dict[str, Any]) -> None:
        trainer = self.trainer
        training.log_params(training_arguments(trainer.args))
        if arguments.get("resume_from_checkpoint"):
            training.log_params({"resume_from_checkpoint": arguments["resume_from_checkpoint"]})
        callbacks = trainer.callback_handler.callbacks
        for index in reversed(range(len(callbacks))):
            if type(callbacks[index]).__name__ == "MLflowCallback":
                self._removed.append((index, callbacks.pop(index)))
        self._added = _recorder(training)
        trainer.add_callback(self._added)

    def after(self, training: Training, result: Any) -> None:
        trainer = self.trainer
        model = getattr(trainer, "model", None)
        if model is None:
            return
        processor = getattr(trainer, "processing_class", None)
        if processor is None:  # transformers 4: `tokenizer` (read from the instance: the
            processor = vars(trainer).get("tokenizer")  # property warns it is deprecated)
        training.set_model(model, tokenizer=processor)

    def restore(self) -> None:
        trainer = self.trainer
        if self._added is not None:
            trainer.remove_callback(self._added)
            self._added = None
        callbacks = trainer.callback_handler.callbacks
        for index, callback in reversed(self._removed):
            callbacks.insert(index, callback)
        self._removed.clear()


def _recorder(training: Training) -> Any:
    """A TrainerCallback that sends each `on_log` entry to the training (step = global step)."""
    from transformers import TrainerCallback

    class TrackedLogHistory(TrainerCallback):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self._keys: dict[str, str] = {}
            self._failed = False

        def on_log(
            self,
            args: Any,
            state: Any,
            control: Any,
            logs: Mapping[str, Any] | None = None,
            **kwargs: Any,
        ) -> None:
            if self._failed or not logs or not state.is_world_process_zero:
                return
            try:
                keys = self._keys
                values: dict[str, float] = {}
                for raw, value in logs.items():
                    if isinstance(value, bool) or not isinstance(value, numbers.Real):
                        continue  # strings and structures are not metrics
                    key = keys.get(raw)
                    if key is None:
                        key = keys[raw] = sanitize_key(raw)
                    values[key] = float(value)
                training.log_metrics(values, int(state.global_step))
            except Exception as exc:
                self._failed = True
                scope.report_failure(training.run, "transformers", exc)

    return TrackedLogHistory()
