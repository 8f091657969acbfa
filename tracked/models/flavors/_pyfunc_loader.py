"""tracked's loader for PyTorch state dicts and Hugging Face `save_pretrained` directories.

tracked copies this file unchanged into each such model's `code/` directory as
`tracked_pyfunc_v1.py` (MLmodel: `loader_module: tracked_pyfunc_v1`), so that
`mlflow.pyfunc.load_model` serves the model where tracked is not installed. It must stay
self-contained: the standard library, numpy, pandas, yaml, torch, safetensors and transformers
only. `tracked.load_model` uses tracked's own copy and refuses a model whose copy differs from it
byte for byte. A change to this file needs a new module name (`tracked_pyfunc_v2`).

Nothing here unpickles: weights are safetensors, configuration is JSON. The model's class is
imported by the name the MLmodel file gives and must be a `torch.nn.Module` (a
`transformers.PreTrainedModel` for Hugging Face models); importing it runs that module's code,
which is code installed where the model is loaded, not code from the artifact.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

TORCH_FLAVOR = "tracked_pytorch"
TRANSFORMERS_FLAVOR = "tracked_transformers"


def _load_pyfunc(path: str) -> Any:
    """MLflow's entry point: the model directory in, an object with `predict` out."""
    flavors = read_flavors(path)
    if TORCH_FLAVOR in flavors:
        return Predictor(load_pytorch(path, flavors[TORCH_FLAVOR]), None)
    model, tokenizer = load_transformers(path, flavors[TRANSFORMERS_FLAVOR])
    return Predictor(model, tokenizer)


def read_flavors(path: str) -> dict[str, Any]:
    import yaml

    with open(os.path.join(path, "MLmodel"), encoding="utf-8") as f:
        return dict(yaml.safe_load(f)["flavors"])


def import_class(name: str, base: type) -> type:
    """The class `module:qualname` names, which must subclass `base`."""
    module_name, _, qualname = name.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not (isinstance(found, type) and issubclass(found, base)):
        raise TypeError(f"{name} is not a {base.__module__}.{base.__qualname__} subclass")
    return found


def decode(value: Any) -> Any:
    """JSON config back to constructor arguments: {"__tuple__": [...]} is a tuple."""
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(decode(v) for v in value["__tuple__"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def load_pytorch(path: str, conf: Mapping[str, Any]) -> Any:
    """The module rebuilt from its class and constructor config, weights loaded, in eval mode."""
    import torch
    from safetensors.torch import load_model

    cls = import_class(conf["class"], torch.nn.Module)
    with torch.random.fork_rng(devices=[]):  # construction draws from the global generator
        module = cls(**decode(conf.get("config") or {}))
    if conf.get("dtype"):
        module = module.to(getattr(torch, str(conf["dtype"]).removeprefix("torch.")))
    load_model(module, os.path.join(path, conf["weights"]), strict=True)
    return module.eval()


def load_transformers(path: str, conf: Mapping[str, Any]) -> tuple[Any, Any]:
    """The model (and tokenizer, if one was saved) from their `save_pretrained` directories."""
    import transformers

    cls: Any = import_class(conf["class"], transformers.PreTrainedModel)
    model = cls.from_pretrained(
        os.path.join(path, conf["model"]), local_files_only=True, use_safetensors=True
    )
    tokenizer = None
    if conf.get("tokenizer"):
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            os.path.join(path, conf["tokenizer"]), local_files_only=True, trust_remote_code=False
        )
    return model.eval(), tokenizer


class Predictor:
    """pyfunc predict for a module: numpy in (or texts, with a tokenizer), numpy out."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer

    def predict(self, model_input: Any, params: Any = None) -> Any:
        texts = as_texts(model_input)
        if texts is not None:
            if self.tokenizer is None:
                raise ValueError("text input needs a tokenizer; the model was saved without one")
            encoded = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
            return forward(self.model, dict(encoded))
        return forward(self.model, model_input)

    def get_raw_model(self) -> Any:
        """The module (MLflow's `PyFuncModel.get_raw_model()` asks for it)."""
        return self.model


def as_texts(data: Any) -> list[str] | None:
    """The strings in `data` (a str, a list, a 1-column frame or a Series of them), else None."""
    if isinstance(data, str):
        return [data]
    values = data
    if hasattr(data, "columns"):  # a DataFrame: its only column, or "text"
        if "text" in data.columns:
            values = data["text"]
        elif len(data.columns) == 1:
            values = data.iloc[:, 0]
        else:
            return None
    if hasattr(values, "tolist") and getattr(values, "ndim", 1) <= 2:
        values = values.tolist()
    if isinstance(values, (list, tuple)) and values:
        flat = [v[0] if isinstance(v, (list, tuple)) and len(v) == 1 else v for v in values]
        if all(isinstance(v, str) for v in flat):
            return list(flat)
    return None


def forward(module: Any, data: Any) -> Any:
    """Run the module on `data` without gradients and return its first output as numpy.

    Floating-point inputs are cast to the module's floating dtype (a DataFrame's float64 meets
    a float32 module); integer inputs (token ids) keep theirs. A dict is passed as keyword
    arguments. Of the outputs, a tensor is returned as is, a dict-like output (Hugging Face's
    ModelOutput) by its `logits` or else its first value, a tuple by its first item.
    """
    import torch

    first = next(iter(module.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), None)

    def tensor(value: Any) -> Any:
        import numpy as np

        if isinstance(value, torch.Tensor):
            t = value
        else:
            if hasattr(value, "to_numpy"):
                value = value.to_numpy()
            t = torch.as_tensor(np.array(value, copy=True, order="C"))
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        return t.to(device)

    with torch.no_grad():
        if isinstance(data, Mapping):
            out = module(**{k: tensor(v) for k, v in data.items()})
        else:
            out = module(tensor(data))
    return first_output(out)


def first_output(out: Any) -> Any:
    import torch

    if isinstance(out, Mapping):
        out = out["logits"] if "logits" in out else next(iter(out.values()))
    elif isinstance(out, (tuple, list)):
        out = out[0]
    if isinstance(out, torch.Tensor):
        return out.detach().cpu().numpy()
    return out
