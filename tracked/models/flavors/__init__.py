"""Model flavors: what a trained object is, how it is saved as an MLflow model, how it comes back.

`detect_flavor` names an object's flavor without importing any framework (it walks the type's
MRO for (module, class name) pairs). `save_model` writes an MLflow model directory for that
flavor (one module per framework in this package), with explicit pip requirements (MLflow's
inference runs a subprocess: 5.8 s per scikit-learn model) and without pickle where a safe format
exists: skops for scikit-learn, UBJSON for XGBoost, LightGBM's text format, CatBoost's `.cbm`,
Keras' `.keras`, safetensors for PyTorch state dicts and Hugging Face models. `load_model` reads
the MLmodel file, refuses formats that unpickle or run code from the artifact unless the caller
opts in (`safety.py`), and returns the native object. Nothing here talks to a tracking store,
except that `load_model` resolves `runs:/` and `models:/` URIs.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from tracked.errors import AliasNotFoundError, ModelLoggingError, ModelNotFoundError
from tracked.models.flavors import _pyfunc_loader as loader
from tracked.models.flavors import (
    catboost,
    keras,
    lightgbm,
    pyfunc,
    pytorch,
    sklearn,
    transformers,
    xgboost,
)
from tracked.models.flavors._common import (
    METADATA_KEY,
    class_pairs,
    one_line,
    pins,
    quiet_mlflow,
    type_name,
)
from tracked.models.flavors.safety import UnsafeModelError, pickle_allowed, refusal

__all__ = [
    "FLAVORS",
    "SavedModel",
    "UnsafeModelError",
    "detect_flavor",
    "load_model",
    "requirements_for",
    "save_model",
]

# Each flavor module has NAME, MARKERS ((top-level module, class name) pairs), REQUIREMENTS (or
# requirements()), save(obj, path, options) -> serialization (or (serialization, note)) and
# load(path, mlmodel, allow_pickle); optionally predict(obj, example) and prepare_example(example)
# where the signature needs more than `obj.predict(example)`.
# Detection order: the first module whose markers meet the object's MRO wins. Keras models (torch
# backend) and Hugging Face models are torch Modules, and XGBoost's and LightGBM's scikit-learn
# API models are scikit-learn estimators, so the specific ones come first.
_MODULES: dict[str, ModuleType] = {
    m.NAME: m for m in (keras, transformers, catboost, xgboost, lightgbm, sklearn, pytorch, pyfunc)
}
FLAVORS = tuple(_MODULES)
# MLmodel flavors a native load goes through, in order; anything else loads as a pyfunc.
_NATIVE = (
    (loader.TORCH_FLAVOR, pytorch),
    (loader.TRANSFORMERS_FLAVOR, transformers),
    ("keras", keras),
    ("catboost", catboost),
    ("xgboost", xgboost),
    ("lightgbm", lightgbm),
    ("sklearn", sklearn),
    ("pytorch", pytorch),
)


@dataclass(frozen=True)
class SavedModel:
    """A local MLflow model directory written by `save_model`, and how it was written."""

    flavor: str  # one of FLAVORS
    serialization: str  # "skops", "cloudpickle", "xgboost-ubj", "torch-state-dict", ...
    path: str  # the model directory (contains MLmodel)
    requirements: tuple[str, ...]  # exactly what requirements.txt holds, besides MLflow's pin
    signature: bool  # whether a signature was inferred from the input example
    note: str | None = None  # why the flavor's preferred serialization was not used


def detect_flavor(obj: Any) -> str | None:
    """The flavor `obj` is saved as, or None when it cannot be saved (no known class, no predict).

    Imports no framework: an object of a framework the caller has not imported cannot exist.
    """
    if isinstance(obj, type):
        return None
    seen = class_pairs(obj)
    for name, module in _MODULES.items():
        if not seen.isdisjoint(module.MARKERS):
            return name
    try:
        predict = getattr(obj, "predict", None)
    except Exception:  # a property that raises is no predict method
        return None
    return "pyfunc" if callable(predict) else None


def requirements_for(flavor: str) -> list[str]:
    """Pinned pip requirements (`name==installed version`) a loader of `flavor` needs.

    A local version label is dropped (`torch==2.13.0` for 2.13.0+cpu): PyPI has no such label,
    and the MLmodel file records the exact build (`torch_version`, `keras_backend`).
    """
    module = _MODULES.get(flavor)
    if module is None:
        raise ModelLoggingError(f"flavor {flavor!r}", f"unknown flavor; use one of {FLAVORS}")
    names = module.requirements() if hasattr(module, "requirements") else module.REQUIREMENTS
    return pins(names)


def save_model(
    obj: Any,
    path: str,
    *,
    input_example: Any = None,
    flavor: str | None = None,
    tokenizer: Any = None,
) -> SavedModel:
    """Write `obj` as an MLflow model directory at `path`, which must not exist yet.

    With `input_example` (rows, an array, a tensor, a DataFrame loader...), its first rows as the
    model takes them are saved and a signature is inferred from them and the model's output;
    when that fails the model is saved without both. A DataFrame example is cut to the columns
    the model was fitted on. `tokenizer` goes with a Hugging Face model. Raises ModelLoggingError
    when the model cannot be saved at all; nothing is left at `path` then. MLflow's warnings
    about the choices made here are not shown.
    """
    what = type_name(obj)
    flavor = flavor or detect_flavor(obj)
    if flavor is None:
        raise ModelLoggingError(what, "not a model tracked can save and has no predict method")
    module = _MODULES.get(flavor)
    if module is None:
        raise ModelLoggingError(what, f"unknown flavor {flavor!r}; use one of {FLAVORS}")
    if tokenizer is not None and module is not transformers:
        raise ModelLoggingError(what, "a tokenizer goes with a Hugging Face model only")
    path = os.path.abspath(path)
    if os.path.lexists(path):
        raise ModelLoggingError(what, f"target directory {path} already exists")
    requirements = requirements_for(flavor)
    extra = {"tokenizer": tokenizer} if tokenizer is not None else {}
    with quiet_mlflow():
        signature, example = _signature(obj, module, input_example, extra)
        options = {
            "pip_requirements": requirements,
            "signature": signature,
            "input_example": example,
        }
        stale = sys.exc_info()[1]  # handled before this call began: not this failure's cause
        try:
            result = module.save(obj, path, options, **extra)
        except Exception as exc:
            shutil.rmtree(path, ignore_errors=True)
            cause = one_line(exc, stale=stale)
            raise ModelLoggingError(what, f"cannot be saved as {flavor}: {cause}") from exc
    serialization, note = result if isinstance(result, tuple) else (result, None)
    return SavedModel(flavor, serialization, path, tuple(requirements), signature is not None, note)


def load_model(
    model_uri: str,
    *,
    as_pyfunc: bool = False,
    tracking_uri: str | None = None,
    allow_pickle: bool | None = None,
) -> Any:
    """The model at `model_uri` (a local path, `runs:/`, `models:/name/1`, `models:/name@alias`).

    Returns the native object as it was saved (scikit-learn estimator, XGBoost or LightGBM
    booster or model, CatBoost model, Keras model, torch module in eval mode, Hugging Face model
    or {"model", "tokenizer"}, the object a pyfunc model wraps), or MLflow's pyfunc with
    `as_pyfunc=True` or for a model of another flavor. Refuses with UnsafeModelError a model whose
    loading would unpickle data or run code from its files (cloudpickle, torch pickle, a
    cloudpickled python_model, foreign `code/`), unless `allow_pickle=True` or
    MLFLOW_ALLOW_PICKLE_DESERIALIZATION is set to true; see `safety.py` for what is checked.
    `tracking_uri` is the store that resolves `runs:/` and `models:/` (default: MLflow's).
    """
    import mlflow.pyfunc
    from mlflow.models import Model

    allowed = pickle_allowed(allow_pickle)
    local, tmp = _local_model_dir(model_uri, tracking_uri)
    keep = tmp is None
    try:
        conf = Model.load(local)
        # Our flavors read everything into memory, so a downloaded copy can go; a model saved
        # elsewhere may read its files lazily, as it would from MLflow's own download.
        keep = keep or METADATA_KEY not in (conf.metadata or {})
        name, module = next(
            ((n, m) for n, m in _NATIVE if n in conf.flavors and not as_pyfunc),
            ("python_function", pyfunc),
        )
        if name not in conf.flavors:
            raise ModelLoggingError(model_uri, "its MLmodel file has no python_function flavor")
        if not allowed:
            reason = refusal(local, conf, name)
            if reason is not None:
                raise UnsafeModelError(model_uri, reason)
        if name != "python_function":
            return module.load(local, conf, allowed)
        if conf.flavors[name].get("loader_module") == pytorch.LOADER_MODULE:
            # MLflow imports the loader by name: make that tracked's copy, never the artifact's.
            sys.modules[pytorch.LOADER_MODULE] = loader
        if as_pyfunc:
            return mlflow.pyfunc.load_model(local)
        return pyfunc.load(local, conf, allowed)
    finally:
        if not keep and tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _local_model_dir(model_uri: str, tracking_uri: str | None) -> tuple[str, str | None]:
    """The model directory on disk, and the temp directory it was downloaded to (if it was)."""
    if os.path.isdir(model_uri):
        return model_uri, None
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    tmp = tempfile.mkdtemp(prefix="tracked-model-")
    try:
        source = _registered_source(model_uri, tracking_uri) if tracking_uri else None
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=source or model_uri,
            dst_path=tmp,
            tracking_uri=tracking_uri,
            registry_uri=tracking_uri,
        )
    except MlflowException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if model_uri.startswith("models:/") and exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise _not_found(model_uri) from exc
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return local, tmp


def _registered_source(model_uri: str, tracking_uri: str) -> str | None:
    """Where `models:/name/1` or `models:/name@alias` lives, looked up in `tracking_uri`.

    MLflow resolves `models:/` URIs in its global registry only, whatever registry_uri it is
    given. None for the forms MLflow must resolve itself (stages, `latest`, logged-model ids).
    """
    ref, _, subpath = model_uri.removeprefix("models:/").partition("/")
    name, alias = ref.split("@", 1) if "@" in ref else (ref, None)
    if alias is None:
        version, _, subpath = subpath.partition("/")
        if not version.isdigit():
            return None
    from tracked.errors import NotFoundError, StoreRejectedError
    from tracked.store import Store

    store = Store(tracking_uri, tracking_uri)
    if alias is not None:
        try:
            version = store.call(
                lambda client: client.get_model_version_by_alias(name, alias).version,
                what=f"read alias {alias!r} of {name!r}",
            )
        except NotFoundError as exc:  # no such registered model
            raise ModelNotFoundError(name) from exc
        except StoreRejectedError as exc:
            if exc.code == "INVALID_PARAMETER_VALUE":  # MLflow's code for a missing alias
                raise AliasNotFoundError(name, alias) from exc
            raise
    try:
        source = store.call(
            lambda client: client.get_model_version_download_uri(name, version),
            what=f"find version {version} of {name!r}",
        )
    except NotFoundError as exc:
        raise ModelNotFoundError(name, version) from exc
    return f"{source.rstrip('/')}/{subpath}" if subpath else source


def _not_found(model_uri: str) -> ModelNotFoundError | AliasNotFoundError:
    ref, _, rest = model_uri.removeprefix("models:/").partition("/")
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return AliasNotFoundError(name, alias)
    return ModelNotFoundError(ref, rest.partition("/")[0] or None)


# --- signature ------------------------------------------------------------------------------


def _signature(
    obj: Any, module: ModuleType, input_example: Any, extra: dict[str, Any]
) -> tuple[Any, Any]:
    """(signature, example rows) from `input_example`, or (None, None) when that fails."""
    if input_example is None:
        return None, None
    try:
        from mlflow.models import infer_signature

        from tracked.models.example import example_rows

        example = example_rows(input_example, model=obj)
        if example is None:
            return None, None
        if hasattr(module, "prepare_example"):
            example = module.prepare_example(example)
        predict = getattr(module, "predict", None)
        predictions = predict(obj, example, **extra) if predict else obj.predict(example)
        return infer_signature(example, predictions), example
    except Exception:
        return None, None
