"""Which argument is the training data, and a few rows of it as the model's input example.

The rows are what the model itself takes as input: a DataFrame is cut to the columns the model
was fitted on (scikit-learn's `feature_names_in_`, an XGBoost or LightGBM booster's feature
names, CatBoost's `feature_names_`), so a label column inside the data never enters the
signature; without such names, `exclude_columns` names the columns to leave out. Tensors and
datasets give their first rows as numpy arrays; a `DataLoader` gives the first rows of its
first batch, read from its dataset by index, so the loader's sampler, its random state and any
worker processes are left alone. Nothing here imports a framework.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MAX_BYTES", "ROWS", "example_rows", "input_example", "model_input_columns"]

_PREFERRED = ("X", "data", "X_train", "x", "x_train", "features")
ROWS = 5
# MLflow writes the example as JSON (about 20 characters per float): five 224x224 RGB images
# would be 15 MB. Larger rows are cut to fewer of them, one at the least.
MAX_BYTES = 1 << 20


def input_example(
    data_args: Mapping[str, Any],
    *,
    model: Any = None,
    exclude_columns: Iterable[str] = (),
) -> Any:
    """The first rows of `X=`/`data=` or the first usable data argument, else None.

    Usable: a DataFrame, a numpy array or tensor with at least two dimensions, a
    `TensorDataset` or a `DataLoader` over a map-style dataset. `model` (the trained object)
    picks a DataFrame's input columns; `exclude_columns` drops label/target columns when the
    model does not name its inputs.
    """
    ordered = [data_args[k] for k in _PREFERRED if k in data_args]
    ordered += [v for k, v in data_args.items() if k not in _PREFERRED]
    for value in ordered:
        rows = example_rows(value, model=model, exclude_columns=exclude_columns, strict=True)
        if rows is not None:
            return rows
    return None


def example_rows(
    value: Any,
    *,
    model: Any = None,
    exclude_columns: Iterable[str] = (),
    strict: bool = False,
) -> Any:
    """The first `ROWS` rows of `value` as the model takes them, or None when there are none.

    With `strict`, only 2-D (or higher) data counts: a 1-D array is most likely the labels.
    Without it (an example the caller chose), anything sliceable is cut to its first rows.
    """
    if value is None:
        return None
    names = _class_names(value)
    if "DataLoader" in names:
        return _loader_rows(value)
    if "Dataset" in names:
        return _dataset_rows(value)
    if "Tensor" in names:
        return _tensor_rows(value, strict)
    if hasattr(value, "iloc"):
        if getattr(value, "ndim", 0) != 2:
            return None if strict else value.iloc[:ROWS]
        return _frame_columns(value, model, exclude_columns).iloc[:ROWS]
    ndim = getattr(value, "ndim", None)
    if ndim is not None:
        if strict and ndim < 2:
            return None
        try:
            return _cut(value) if ndim >= 1 else value
        except Exception:
            return None
    if strict:
        return None
    return value[:ROWS] if isinstance(value, (list, tuple)) else value


def model_input_columns(model: Any) -> list[str] | None:
    """The column names `model` was fitted on, in order, or None when it does not say.

    Asked without importing anything: scikit-learn (and pipelines, XGBoost's and LightGBM's
    scikit-learn API) `feature_names_in_`, XGBoost's `Booster.feature_names`, LightGBM's
    `Booster.feature_name()`, CatBoost's `feature_names_`. Generated names ("f0", "Column_0")
    that a DataFrame does not have are rejected by the caller, not here.
    """
    if model is None:
        return None
    for attribute in ("feature_names_in_", "feature_names_", "feature_names"):
        try:
            names = getattr(model, attribute, None)
        except Exception:  # scikit-learn raises AttributeError-like errors when unfitted
            names = None
        if names is not None and not callable(names):
            return [str(n) for n in names]
    feature_name = getattr(model, "feature_name", None)
    if callable(feature_name) and _has_class(model, "lightgbm", "Booster"):
        try:
            return [str(n) for n in feature_name()]
        except Exception:
            return None
    return None


def _frame_columns(frame: Any, model: Any, exclude_columns: Iterable[str]) -> Any:
    columns = [str(c) for c in frame.columns]
    wanted = model_input_columns(model)
    if wanted and set(wanted) <= set(columns) and len(set(columns)) == len(columns):
        if wanted == columns:
            return frame
        by_name = dict(zip(columns, frame.columns, strict=True))
        return frame[[by_name[name] for name in wanted]]
    excluded = set(exclude_columns)
    if excluded:
        return frame[[c for c in frame.columns if str(c) not in excluded]]
    return frame


def _class_names(value: Any) -> set[str]:
    """Class names in the MRO of a torch object ("Tensor", "DataLoader", "Dataset")."""
    return {
        cls.__name__ for cls in type(value).__mro__ if cls.__module__.partition(".")[0] == "torch"
    }


def _has_class(value: Any, module: str, name: str) -> bool:
    return any(
        cls.__name__ == name and cls.__module__.partition(".")[0] == module
        for cls in type(value).__mro__
    )


def _tensor_rows(tensor: Any, strict: bool) -> Any:
    if tensor.dim() == 0 or (strict and tensor.dim() < 2):
        return None
    try:  # only the rows leave the device; bfloat16 and friends have no numpy dtype
        return _cut(tensor.detach()[:ROWS]).cpu().numpy()
    except (TypeError, RuntimeError):
        return None


def _numpy(value: Any) -> Any:
    """Tensors in a (nested) batch as numpy arrays; other values unchanged."""
    if "Tensor" in _class_names(value):
        try:
            return value.detach().cpu().numpy()
        except (TypeError, RuntimeError):
            return None
    if isinstance(value, Mapping):
        return {k: _numpy(v) for k, v in value.items()}
    return value


def _features(batch: Any) -> Any:
    """The model's input in a batch: the first item of an (inputs, labels) pair."""
    if isinstance(batch, (list, tuple)) and batch:
        batch = batch[0]
    if isinstance(batch, Mapping):
        inputs = {k: v for k, v in batch.items() if k not in ("label", "labels", "target")}
        return {k: _cut(_numpy(v)) for k, v in inputs.items()}
    return _cut(_numpy(batch))


def _cut(value: Any) -> Any:
    """The first ROWS rows, fewer when they hold more than MAX_BYTES (one at the least)."""
    if getattr(value, "ndim", 0) < 1:
        return value
    rows = value[:ROWS]
    nbytes = getattr(rows, "nbytes", None)
    if nbytes is None and hasattr(rows, "element_size"):  # a torch tensor
        nbytes = rows.element_size() * rows.numel()
    if nbytes and len(rows) > 1 and nbytes > MAX_BYTES:
        rows = rows[: max(1, len(rows) * MAX_BYTES // nbytes)]
    return rows


def _dataset_rows(dataset: Any) -> Any:
    tensors = getattr(dataset, "tensors", None)
    if isinstance(tensors, tuple) and tensors:
        return _tensor_rows(tensors[0], strict=False)
    return None


def _loader_rows(loader: Any) -> Any:
    """The first rows of the loader's first batch, built from its dataset by index.

    Iterating the loader would draw a seed from torch's global generator (a shuffling sampler)
    and start its worker processes; an IterableDataset may be a stream that can be read once.
    """
    dataset = loader.dataset
    if "IterableDataset" in _class_names(dataset):
        return None
    try:
        batch_size = getattr(loader, "batch_size", None)
        if batch_size is None:  # the dataset yields whole batches
            return _features(dataset[0]) if len(dataset) else None
        count = min(ROWS, len(dataset), batch_size)
        if count == 0:
            return None
        return _features(loader.collate_fn([dataset[i] for i in range(count)]))
    except Exception:
        return None
