"""Hugging Face Transformers models (and their tokenizer) saved with `save_pretrained`.

Weights in safetensors, configuration and tokenizer files as JSON/text; loaded with
`from_pretrained(local_files_only=True)`, so nothing is downloaded and nothing unpickled. The
pyfunc (`_pyfunc_loader.Predictor`) takes texts when a tokenizer was saved, token ids otherwise,
and returns the model's logits (its first output). MLflow's own transformers flavor is not used:
it needs a pipeline task, which it infers by asking the Hugging Face Hub.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from tracked.errors import ModelLoggingError
from tracked.models.flavors import _pyfunc_loader as loader
from tracked.models.flavors import pytorch
from tracked.models.flavors._common import type_name

NAME = "transformers"
MARKERS = frozenset({("transformers", "PreTrainedModel")})  # before "pytorch"
REQUIREMENTS = ("mlflow", "numpy", "torch", "transformers", "safetensors", "tokenizers")
SERIALIZATION = "transformers-safetensors"


def save(obj: Any, path: str, options: dict[str, Any], tokenizer: Any = None) -> str:
    import torch
    import transformers

    cls = type(obj)
    where = f"{cls.__module__}:{cls.__qualname__}"
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        raise ModelLoggingError(type_name(obj), "its class cannot be imported by a loader")
    spec = {
        "class": where,
        "model": "data/model",
        "tokenizer": "data/tokenizer" if tokenizer is not None else None,
        "transformers_version": str(transformers.__version__),
        "torch_version": str(torch.__version__),
    }
    write = functools.partial(_write, obj, tokenizer)
    with pytorch.eval_mode(obj):
        pytorch.save_with_loader(
            path, loader.TRANSFORMERS_FLAVOR, spec, options, SERIALIZATION, write
        )
    return SERIALIZATION


def _write(obj: Any, tokenizer: Any, data_dir: str) -> None:
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    if shown:  # "Writing model shards" is tracked's save, not the user's: no bar for it
        hf_logging.disable_progress_bar()
    try:
        obj.save_pretrained(os.path.join(data_dir, "model"), safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(os.path.join(data_dir, "tokenizer"))
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def predict(obj: Any, example: Any, tokenizer: Any = None) -> Any:
    with pytorch.eval_mode(obj):
        return loader.Predictor(obj, tokenizer).predict(example)


def load(path: str, conf: Any, allow_pickle: bool) -> Any:
    """The model, or {"model": ..., "tokenizer": ...} when a tokenizer was saved with it."""
    model, tokenizer = loader.load_transformers(path, conf.flavors[loader.TRANSFORMERS_FLAVOR])
    return model if tokenizer is None else {"model": model, "tokenizer": tokenizer}
