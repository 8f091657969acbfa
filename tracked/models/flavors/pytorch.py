"""PyTorch modules: a safetensors state dict plus the class and its constructor arguments.

Formats, in order of preference (`SavedModel.serialization`):

- ``torch-state-dict``: the weights in safetensors, the class as `module:qualname` and the
  constructor arguments as JSON in the MLmodel file. Loading imports the class, builds it and
  loads the weights: no pickle. Used when the class is importable from another process and every
  constructor argument is found on the module (`self.<name>`, or Lightning's `hparams`), and the
  rebuilt module is verified here before saving: same state-dict keys, shapes and dtypes, and,
  with an input example, the same outputs.
- ``torch-export``: MLflow's `torch.export` program (`serialization_format="pt2"`), traced on
  the input example: needs no class at load time; loads back as an exported module.
- ``torch-pickle``: MLflow's cloudpickle save, when neither applies (no example and no usable
  constructor, or a module `torch.export` cannot trace).

Every format is written with the module in eval mode (dropout off), its own mode restored after.
"""

from __future__ import annotations

import functools
import inspect
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from tracked.models.flavors import _pyfunc_loader as loader
from tracked.models.flavors._common import METADATA_KEY, one_line

NAME = "pytorch"
MARKERS = frozenset({("torch", "Module")})
REQUIREMENTS = ("mlflow", "numpy", "torch", "safetensors", "cloudpickle")
LOADER_MODULE = "tracked_pyfunc_v1"
WEIGHTS = "data/model.safetensors"
_LOADER_SOURCE = os.path.join(os.path.dirname(loader.__file__), "_pyfunc_loader.py")


class NotRebuildable(Exception):
    """Why the state-dict format cannot be used for a module (the message says)."""


def save(obj: Any, path: str, options: dict[str, Any]) -> tuple[str, str | None]:
    """Save `obj`; returns the serialization and, if it is not the preferred one, why."""
    example = options.get("input_example")
    with eval_mode(obj):
        try:
            spec = rebuild_spec(obj, example)
        except NotRebuildable as exc:
            why = f"state dict not used: {exc}"
        else:
            write = functools.partial(_write_weights, obj)
            save_with_loader(path, loader.TORCH_FLAVOR, spec, options, "torch-state-dict", write)
            return "torch-state-dict", None
        if example is not None and not isinstance(example, Mapping):
            try:
                return _mlflow_save(obj, path, "pt2", "torch-export", options), why
            except Exception as exc:
                shutil.rmtree(path, ignore_errors=True)
                why = f"{why}; torch.export failed: {one_line(exc)}"
        else:
            why = f"{why}; torch.export needs an array input example"
        return _mlflow_save(obj, path, "pickle", "torch-pickle", options), why


def _mlflow_save(obj: Any, path: str, fmt: str, serialization: str, options: dict) -> str:
    import mlflow.pytorch

    metadata = {METADATA_KEY: serialization}
    mlflow.pytorch.save_model(obj, path, serialization_format=fmt, metadata=metadata, **options)
    return serialization


def predict(obj: Any, example: Any) -> Any:
    with eval_mode(obj):
        return loader.forward(obj, example)


def load(path: str, conf: Any, allow_pickle: bool) -> Any:
    if loader.TORCH_FLAVOR in conf.flavors:
        return loader.load_pytorch(path, conf.flavors[loader.TORCH_FLAVOR])
    import mlflow.pytorch

    return mlflow.pytorch.load_model(path)


def prepare_example(example: Any) -> Any:
    """A DataFrame example becomes its numpy values: modules take arrays."""
    if hasattr(example, "columns") and hasattr(example, "to_numpy"):
        return example.to_numpy()
    return example


# --- the state-dict format ----------------------------------------------------------------------


def rebuild_spec(obj: Any, example: Any) -> dict[str, Any]:
    """The flavor conf that rebuilds `obj`, verified by rebuilding it; else NotRebuildable."""
    import torch

    cls = type(obj)
    where = f"{cls.__module__}:{cls.__qualname__}"
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        place = "__main__" if cls.__module__ == "__main__" else "a function"
        raise NotRebuildable(f"{cls.__qualname__} is defined in {place}: not importable elsewhere")
    try:
        if loader.import_class(where, torch.nn.Module) is not cls:
            raise NotRebuildable(f"{where} imports as a different class")
    except (ImportError, AttributeError, TypeError) as exc:
        raise NotRebuildable(f"{where} cannot be imported: {one_line(exc)}") from None
    config, unverified = constructor_config(obj)
    dtype = _common_dtype(obj)
    spec = {
        "class": where,
        "config": config,
        "dtype": str(dtype) if dtype is not None and dtype != torch.get_default_dtype() else None,
        "weights": WEIGHTS,
        "torch_version": str(torch.__version__),
    }
    _verify(obj, cls, spec, example, unverified)
    return spec


def constructor_config(obj: Any) -> tuple[dict[str, Any], list[str]]:
    """JSON constructor arguments read back from the module, and the ones taken as defaults.

    An argument is found as an instance attribute of the same name or in Lightning's `hparams`.
    """
    try:
        parameters = list(inspect.signature(type(obj).__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        raise NotRebuildable("its constructor has no signature") from None
    hparams = getattr(obj, "hparams", None)
    sources = [s for s in (hparams, vars(obj)) if isinstance(s, Mapping)]
    config: dict[str, Any] = {}
    unverified: list[str] = []
    for p in parameters:
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            raise NotRebuildable(f"its constructor takes *{p.name}")
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            unverified.append(f"**{p.name}")
            continue
        source = next((s for s in sources if p.name in s), None)
        if source is None:
            if p.default is inspect.Parameter.empty:
                raise NotRebuildable(
                    f"constructor argument {p.name!r} is not kept on the module "
                    f"(as self.{p.name} or in hparams)"
                )
            unverified.append(p.name)
            continue
        try:
            config[p.name] = _encode(source[p.name])
        except TypeError as exc:
            raise NotRebuildable(f"constructor argument {p.name!r} {exc}") from None
    return config, unverified


def _encode(value: Any) -> Any:
    """JSON data for a constructor argument: tuples are marked to come back as tuples."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _encode(v) for k, v in value.items()}
    raise TypeError(f"is a {type(value).__name__}, not JSON data")


def _common_dtype(obj: Any) -> Any:
    dtypes = {t.dtype for t in obj.state_dict().values() if t.is_floating_point()}
    if len(dtypes) > 1:
        names = ", ".join(sorted(str(d) for d in dtypes))
        raise NotRebuildable(f"its floating-point tensors mix dtypes ({names})")
    return next(iter(dtypes), None)


def _verify(obj: Any, cls: type, spec: dict[str, Any], example: Any, unverified: list) -> None:
    """Rebuild `obj` from `spec` and compare: state-dict keys, shapes and dtypes, then outputs.

    The rebuild happens on the meta device (no memory, no random init) and borrows `obj`'s
    tensors for the output check; a module that keeps tensors outside its state dict (a
    non-persistent buffer) is rebuilt for real instead.
    """
    import torch

    if example is None and unverified:
        raise NotRebuildable(
            f"{', '.join(unverified)} not found on the module and no input example to verify "
            "the defaults with"
        )
    mine = obj.state_dict()
    rebuilt = _construct(cls, spec, torch.device("meta"))
    theirs = rebuilt.state_dict()
    if list(mine) != list(theirs):
        raise NotRebuildable("the rebuilt module has other state-dict keys")
    for key, tensor in mine.items():
        other = theirs[key]
        if tensor.shape != other.shape or tensor.dtype != other.dtype:
            shape = tuple(other.shape)
            raise NotRebuildable(f"the rebuilt module's {key} is {other.dtype} {shape}")
    if example is None:
        return
    rebuilt.load_state_dict(mine, strict=True, assign=True)  # borrows obj's tensors: no copy
    if any(t.is_meta for t in rebuilt.buffers()):
        rebuilt = _construct(cls, spec, torch.device("cpu"))
        rebuilt.load_state_dict(mine, strict=True)
    _compare_outputs(obj, rebuilt.eval(), example)


def _construct(cls: type, spec: dict[str, Any], device: Any) -> Any:
    import torch

    try:
        with torch.random.fork_rng(devices=[]), device:
            module = cls(**loader.decode(spec["config"]))
            if spec["dtype"]:
                module = module.to(getattr(torch, spec["dtype"].removeprefix("torch.")))
    except Exception as exc:
        raise NotRebuildable(f"{cls.__qualname__}(**config) raised {one_line(exc)}") from None
    return module


def _compare_outputs(obj: Any, rebuilt: Any, example: Any) -> None:
    import numpy as np

    try:
        expected = np.asarray(loader.forward(obj, example))
        got = np.asarray(loader.forward(rebuilt, example))
    except Exception as exc:
        reason = f"the rebuilt module fails on the input example: {one_line(exc)}"
        raise NotRebuildable(reason) from None
    if expected.shape != got.shape or not np.allclose(
        expected, got, rtol=1e-6, atol=1e-7, equal_nan=True
    ):
        raise NotRebuildable("the rebuilt module predicts differently on the input example")


def _write_weights(obj: Any, data_dir: str) -> None:
    from safetensors.torch import save_model

    save_model(obj, os.path.join(data_dir, os.path.basename(WEIGHTS)))


@contextmanager
def eval_mode(module: Any) -> Iterator[None]:
    """The module and its children in eval mode; each one's own mode restored after."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


# --- a model directory served by tracked's own pyfunc loader ------------------------------------


def save_with_loader(
    path: str,
    flavor: str,
    spec: dict[str, Any],
    options: dict[str, Any],
    serialization: str,
    write_data: Callable[[str], None],
) -> None:
    """An MLflow model directory whose pyfunc is `_pyfunc_loader.py`, copied into `code/`.

    `write_data(dir)` writes the model's files into `path/data`; `spec` is the flavor conf.
    """
    import mlflow.pyfunc
    from mlflow.models import Model

    model = Model()
    model.add_flavor(flavor, **spec)
    with tempfile.TemporaryDirectory(prefix="tracked-loader-") as tmp:
        source = os.path.join(tmp, f"{LOADER_MODULE}.py")
        shutil.copyfile(_LOADER_SOURCE, source)
        mlflow.pyfunc.save_model(
            path,
            loader_module=LOADER_MODULE,
            code_paths=[source],
            mlflow_model=model,
            metadata={METADATA_KEY: serialization},
            **options,
        )
    data = os.path.join(path, "data")
    os.makedirs(data, exist_ok=True)
    write_data(data)
    model.model_size_bytes = sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )
    model.save(os.path.join(path, "MLmodel"))


def loader_source() -> bytes:
    """The loader's bytes, as a model saved by this tracked carries them in `code/`."""
    with open(_LOADER_SOURCE, "rb") as f:
        return f.read()
