"""A deep-learning model's size and a one-screen view of its architecture, for the run to log."""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_LINES", "describe_model"]

MAX_LINES = 60  # one screen
_MAX_LINE = 200


def describe_model(obj: Any) -> dict[str, Any]:
    """What a run logs about a model's architecture; {} for a model this does not describe.

    For a torch `nn.Module` (Lightning and Hugging Face models included) and a Keras model:
    `class` (qualified name), `parameters` and `trainable_parameters` (a weight shared by two
    layers counts once), `parameter_bytes`, and `summary`: `str(module)` or Keras' own summary,
    cut to MAX_LINES lines with a last line saying how many were left out. Imports nothing:
    asked of an object whose framework is already imported.
    """
    names = {(c.__module__.partition(".")[0], c.__name__) for c in type(obj).__mro__}
    if isinstance(obj, type):
        return {}
    if ("keras", "Model") in names:
        return _keras(obj)
    if ("torch", "Module") in names:
        return _torch(obj)
    return {}


def _torch(module: Any) -> dict[str, Any]:
    params = list(module.parameters())  # shared parameters come once
    return {
        "class": _class_name(module),
        "parameters": sum(int(p.numel()) for p in params),
        "trainable_parameters": sum(int(p.numel()) for p in params if p.requires_grad),
        "parameter_bytes": sum(int(p.numel()) * p.element_size() for p in params),
        "summary": _one_screen(str(module)),
    }


def _keras(model: Any) -> dict[str, Any]:
    lines: list[str] = []
    try:
        model.summary(print_fn=lambda line, *args, **kwargs: lines.append(str(line)))
        text = "\n".join(lines)
    except Exception as exc:  # an unbuilt model has no summary yet
        text = f"<no summary: {type(exc).__name__}: {exc}>"
    weights = list(model.weights)
    trainable = {id(w) for w in model.trainable_weights}
    return {
        "class": _class_name(model),
        "parameters": sum(_size(w) for w in weights),
        "trainable_parameters": sum(_size(w) for w in weights if id(w) in trainable),
        "parameter_bytes": sum(_size(w) * _itemsize(w) for w in weights),
        "summary": _one_screen(text),
    }


def _size(weight: Any) -> int:
    size = 1
    for dim in weight.shape:
        size *= int(dim)
    return size


def _itemsize(weight: Any) -> int:
    import numpy as np

    return int(np.dtype(str(weight.dtype)).itemsize)


def _class_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _one_screen(text: str) -> str:
    lines = [
        line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 3] + "..."
        for line in text.splitlines()
    ]
    if len(lines) <= MAX_LINES:
        return "\n".join(lines)
    left_out = len(lines) - (MAX_LINES - 1)
    kept = lines[: MAX_LINES - 1]
    return "\n".join([*kept, f"... {left_out} more lines ({len(lines)} in all) not shown"])
