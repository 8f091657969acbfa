"""Training objects passed as arguments, described as params: their class and their settings.

An optimizer, a learning-rate scheduler, a loss or a data loader given to a training function
says how it trained; its `str()` is either a multi-line dump or an address. `describe(value)`
gives (name, value) pairs that `params.flatten` turns into dotted keys:

- torch optimizers: `class`, every default (`lr`, `betas`, `weight_decay`, ...), and per param
  group the number of tensors and elements it optimizes plus each setting that differs from the
  defaults (`param_groups.1.weight_decay`); a group's `lr` is the one it was given, before any
  scheduler moved it. Never the tensors themselves.
- torch LR schedulers: `class` and their public settings (`step_size`, `gamma`, `T_max`,
  `base_lrs`, ...), not their running state; SequentialLR/ChainedScheduler with each scheduler.
- torch losses (`_Loss` subclasses, and modules whose class name ends in "Loss"): `class`,
  their public non-tensor attributes, and small tensors (class weights, `pos_weight`) by value.
- torch DataLoaders that are not fingerprinted as data: `class`, `batch_size`, `shuffle`,
  `drop_last`, `num_workers`, the sampler's and dataset's class and the dataset's size.
- Keras optimizers and losses: `class` and their `get_config()`.

Detection walks `type(value).__mro__` for (module, class) names: nothing is imported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

__all__ = ["describe", "describes"]

Pairs = list[tuple[str, Any]]

_SMALL_TENSOR = 16  # elements: a tensor this small (class weights) is a setting, logged by value
_SCALARS = (str, int, float, bool, type(None))
# Scheduler attributes that are running state, not settings.
_SCHEDULER_STATE = frozenset(
    {"optimizer", "last_epoch", "best", "num_bad_epochs", "cooldown_counter", "mode_worse"}
)


def describes(value: Any) -> bool:
    """Whether `describe` knows `value`'s kind."""
    return _describer(value) is not None


def describe(value: Any) -> Pairs | None:
    """(name, value) pairs for a known training object, or None."""
    describer = _describer(value)
    if describer is None:
        return None
    return [("class", type(value).__name__), *describer(value)]


def _describer(value: Any) -> Callable[[Any], Pairs] | None:
    if isinstance(value, type):
        return None
    names = {(cls.__module__, cls.__name__) for cls in type(value).__mro__}
    for (module, name), describer in _KINDS.items():
        if (module, name) in names:
            return describer
    if ("torch.nn.modules.module", "Module") in names and type(value).__name__.endswith("Loss"):
        return _loss
    return None


# --- torch ------------------------------------------------------------------------------------


def _optimizer(opt: Any) -> Pairs:
    defaults = dict(getattr(opt, "defaults", {}) or {})
    pairs: Pairs = [(k, _plain(v)) for k, v in defaults.items()]
    groups = []
    for group in getattr(opt, "param_groups", []):
        params = list(group.get("params", []))
        summary: dict[str, Any] = {
            "params": len(params),
            "numel": sum(int(p.numel()) for p in params if hasattr(p, "numel")),
        }
        settings = dict(group)
        if "initial_lr" in settings:  # a scheduler has already moved "lr": report the set one
            settings["lr"] = settings.pop("initial_lr")
        for key, setting in settings.items():
            if key == "params":
                continue
            plain = _plain(setting)
            if key not in defaults or plain != _plain(defaults[key]):
                summary[key] = plain
        groups.append(summary)
    pairs.append(("param_groups", groups))
    return pairs


def _scheduler(scheduler: Any) -> Pairs:
    pairs: Pairs = []
    for key, setting in vars(scheduler).items():
        if key.startswith("_") or key in _SCHEDULER_STATE:
            continue
        pairs.append((key, _plain(setting)))
    inner = getattr(scheduler, "_schedulers", None)
    if isinstance(inner, (list, tuple)):
        pairs.append(("schedulers", [dict(describe(s) or [("class", _name(s))]) for s in inner]))
    milestones = getattr(scheduler, "_milestones", None)
    if milestones is not None:
        pairs.append(("milestones", _plain(list(milestones))))
    return pairs


def _loss(loss: Any) -> Pairs:
    pairs: Pairs = [
        (key, _plain(setting))
        for key, setting in vars(loss).items()
        if not key.startswith("_") and key != "training" and not _is_tensor(setting)
    ]
    for key, buffer in getattr(loss, "_buffers", {}).items():
        if buffer is not None:
            pairs.append((key, _plain(buffer)))
    return pairs


def _loader(loader: Any) -> Pairs:
    dataset = getattr(loader, "dataset", None)
    sampler = getattr(loader, "sampler", None)
    pairs: Pairs = [
        ("batch_size", getattr(loader, "batch_size", None)),
        ("shuffle", type(sampler).__name__ == "RandomSampler"),
        ("drop_last", getattr(loader, "drop_last", None)),
        ("num_workers", getattr(loader, "num_workers", None)),
        ("sampler", _name(sampler)),
        ("dataset", _name(dataset)),
    ]
    with contextlib.suppress(TypeError):  # an IterableDataset has no length
        pairs.append(("dataset_size", len(dataset)))  # type: ignore[arg-type]
    return pairs


# --- keras ------------------------------------------------------------------------------------


def _keras_config(obj: Any) -> Pairs:
    try:
        config = dict(obj.get_config())
    except Exception as exc:  # shown in the params rather than losing the run's other params
        return [("config", f"<get_config() raised {type(exc).__name__}>")]
    return [(k, _plain(v)) for k, v in config.items()]


_KINDS: dict[tuple[str, str], Callable[[Any], Pairs]] = {
    ("torch.optim.optimizer", "Optimizer"): _optimizer,
    ("torch.optim.lr_scheduler", "LRScheduler"): _scheduler,
    ("torch.optim.lr_scheduler", "_LRScheduler"): _scheduler,
    ("torch.optim.lr_scheduler", "ReduceLROnPlateau"): _scheduler,
    ("torch.nn.modules.loss", "_Loss"): _loss,
    ("torch.utils.data.dataloader", "DataLoader"): _loader,
    ("keras.src.optimizers.base_optimizer", "BaseOptimizer"): _keras_config,
    ("keras.src.losses.loss", "Loss"): _keras_config,
}


# --- values -----------------------------------------------------------------------------------


def _is_tensor(value: Any) -> bool:
    return any(
        cls.__name__ == "Tensor" and cls.__module__ == "torch" for cls in type(value).__mro__
    )


def _plain(value: Any) -> Any:
    """A value as params show it: scalars and containers of them as they are, a one-element or
    small tensor by its values, a larger one by dtype and shape, a function by its name."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if _is_tensor(value):
        if value.numel() == 1:
            return value.item()
        if value.numel() <= _SMALL_TENSOR and value.device.type == "cpu":
            return value.tolist()
        return f"<tensor {str(value.dtype).removeprefix('torch.')} {list(value.shape)}>"
    if callable(value):
        return getattr(value, "__qualname__", None) or _name(value)
    return f"<{_name(value)}>"


def _name(value: Any) -> str:
    return type(value).__name__
