"""Model flavors: what a trained object is, how it is saved as an MLflow model, how it comes back.

`detect_flavor` names an object's flavor without importing any framework (it walks the type's
MRO for (module, class name) pairs). `save_model` writes an MLflow model directory with MLflow's
own `save_model` for that flavor, with explicit pip requirements (MLflow's inference runs a
subprocess: 5.8 s per scikit-learn model) and without pickle where a safe format exists:
skops for scikit-learn, UBJSON for XGBoost, LightGBM's text format. `load_model` reads the
MLmodel file and returns the native object. Nothing here talks to a tracking store, except that
`load_model` downloads `runs:/` and `models:/` URIs.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tracked.errors import AliasNotFoundError, ModelLoggingError, ModelNotFoundError

__all__ = [
    "FLAVORS",
    "SavedModel",
    "detect_flavor",
    "load_model",
    "requirements_for",
    "save_model",
]

FLAVORS = ("sklearn", "xgboost", "lightgbm", "pyfunc")

# (top-level module, class name) found in type(obj).__mro__. XGBoost's and LightGBM's
# scikit-learn API models are also sklearn BaseEstimators, so they are checked first.
_MARKERS: tuple[tuple[str, frozenset[tuple[str, str]]], ...] = (
    ("xgboost", frozenset({("xgboost", "Booster"), ("xgboost", "XGBModel")})),
    ("lightgbm", frozenset({("lightgbm", "Booster"), ("lightgbm", "LGBMModel")})),
    ("sklearn", frozenset({("sklearn", "BaseEstimator")})),
)

# Distributions a loader of each flavor needs, pinned to the installed versions. XGBoost's and
# LightGBM's scikit-learn API models need scikit-learn (and LightGBM's are saved with skops or
# cloudpickle, like scikit-learn's); a distribution that is not installed is left out.
_REQUIREMENTS = {
    "sklearn": ("mlflow", "cloudpickle", "numpy", "scikit-learn", "skops"),
    "xgboost": ("mlflow", "numpy", "scikit-learn", "xgboost"),
    "lightgbm": ("mlflow", "cloudpickle", "lightgbm", "numpy", "scikit-learn", "skops"),
    "pyfunc": ("mlflow", "cloudpickle", "numpy"),
}

# Written into the MLmodel file's metadata: marks a model saved here, and how.
_METADATA_KEY = "tracked_serialization"
_EXAMPLE_ROWS = 5
_XGBOOST_FORMAT = "ubj"  # MLflow's default and XGBoost's recommended binary JSON

# MLflow's log lines about choices made here on purpose (SavedModel.serialization reports them).
_KNOWN_NOISE = (
    "Passing a Python object as `python_model`",
    "Saving scikit-learn models in the pickle or cloudpickle format",
    "Saving the models in the pickle or cloudpickle format",
    "Validating input example against model signature",
    "Inferring model signature from input example",
)
_NOISY_LOGGERS = ("mlflow.pyfunc", "mlflow.sklearn", "mlflow.lightgbm", "mlflow.xgboost")


@dataclass(frozen=True)
class SavedModel:
    """A local MLflow model directory written by `save_model`, and how it was written."""

    flavor: str  # "sklearn", "xgboost", "lightgbm" or "pyfunc"
    serialization: str  # "skops", "cloudpickle", "xgboost-ubj", "lightgbm-text", ...
    path: str  # the model directory (contains MLmodel)
    requirements: tuple[str, ...]  # exactly what requirements.txt holds, besides MLflow's pin
    signature: bool  # whether a signature was inferred from the input example


def detect_flavor(obj: Any) -> str | None:
    """The flavor `obj` is saved as, or None when it cannot be served (no `predict`).

    Imports no framework: an object of a framework the caller has not imported cannot exist.
    """
    if isinstance(obj, type):
        return None
    seen = {(cls.__module__.partition(".")[0], cls.__name__) for cls in type(obj).__mro__}
    for flavor, markers in _MARKERS:
        if not seen.isdisjoint(markers):
            return flavor
    try:
        predict = getattr(obj, "predict", None)
    except Exception:  # a property that raises is no predict method
        return None
    return "pyfunc" if callable(predict) else None


def requirements_for(flavor: str) -> list[str]:
    """Pinned pip requirements (`name==installed version`) a loader of `flavor` needs."""
    if flavor not in _REQUIREMENTS:
        raise ModelLoggingError(f"flavor {flavor!r}", f"unknown flavor; use one of {FLAVORS}")
    pins = []
    for name in _REQUIREMENTS[flavor]:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins


def save_model(
    obj: Any, path: str, *, input_example: Any = None, flavor: str | None = None
) -> SavedModel:
    """Write `obj` as an MLflow model directory at `path`, which must not exist yet.

    With `input_example`, its first rows are saved and a signature is inferred from them and
    `obj.predict`; when that fails the model is saved without both. Raises ModelLoggingError when
    the model cannot be saved at all; nothing is left at `path` then. MLflow's warnings about the
    choices made here are not shown.
    """
    what = _type_name(obj)
    flavor = flavor or detect_flavor(obj)
    if flavor is None:
        raise ModelLoggingError(
            what, "not a scikit-learn, XGBoost or LightGBM model and has no predict method"
        )
    if flavor not in FLAVORS:
        raise ModelLoggingError(what, f"unknown flavor {flavor!r}; use one of {FLAVORS}")
    path = os.path.abspath(path)
    if os.path.lexists(path):
        raise ModelLoggingError(what, f"target directory {path} already exists")
    requirements = requirements_for(flavor)
    with _quiet_mlflow():
        signature, example = _signature(obj, flavor, input_example)
        options = {
            "pip_requirements": requirements,
            "signature": signature,
            "input_example": example,
        }
        try:
            serialization = _SAVERS[flavor](obj, path, options)
        except Exception as exc:
            shutil.rmtree(path, ignore_errors=True)
            raise ModelLoggingError(what, f"cannot be saved as {flavor}: {_one_line(exc)}") from exc
    return SavedModel(flavor, serialization, path, tuple(requirements), signature is not None)


def load_model(model_uri: str, *, as_pyfunc: bool = False, tracking_uri: str | None = None) -> Any:
    """The model at `model_uri` (a local path, `runs:/`, `models:/name/1`, `models:/name@alias`).

    Returns the native object as it was saved (scikit-learn estimator, XGBoost Booster or
    scikit-learn API model, LightGBM Booster or model, the object a pyfunc model wraps), or
    MLflow's pyfunc with `as_pyfunc=True` or for a pyfunc model saved elsewhere. Needs no
    arguments beyond the URI: skops' trusted types are read from the MLmodel file. `tracking_uri`
    is the store that resolves `runs:/` and `models:/` (default: MLflow's current one).
    """
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    local, tmp = _local_model_dir(model_uri, tracking_uri)
    keep = tmp is None
    try:
        conf = Model.load(local)
        # Our flavors read everything into memory, so a downloaded copy can go; a model saved
        # elsewhere may read its files lazily, as it would from MLflow's own download.
        keep = keep or _METADATA_KEY not in (conf.metadata or {})
        if as_pyfunc:
            return mlflow.pyfunc.load_model(local)
        for name in ("sklearn", "xgboost", "lightgbm"):
            if name in conf.flavors:
                return importlib.import_module(f"mlflow.{name}").load_model(local)
        model = mlflow.pyfunc.load_model(local)
        try:
            inner = model.unwrap_python_model()
        except MlflowException:
            return model
        return inner.obj if getattr(inner, "_tracked_wrapper", False) else model
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
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    if alias is not None:
        try:
            version = client.get_model_version_by_alias(name, alias).version
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":  # no such registered model
                raise ModelNotFoundError(name) from exc
            if exc.error_code == "INVALID_PARAMETER_VALUE":  # MLflow's code for a missing alias
                raise AliasNotFoundError(name, alias) from exc
            raise
    source = client.get_model_version_download_uri(name, version)
    return f"{source.rstrip('/')}/{subpath}" if subpath else source


def _not_found(model_uri: str) -> ModelNotFoundError | AliasNotFoundError:
    ref, _, rest = model_uri.removeprefix("models:/").partition("/")
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return AliasNotFoundError(name, alias)
    return ModelNotFoundError(ref, rest.partition("/")[0] or None)


# --- saving, per flavor ---------------------------------------------------------------------
# Each saver writes the directory with MLflow's save_model for its flavor and returns the
# serialization it used. `options` holds pip_requirements, signature and input_example.


def _save_sklearn(obj: Any, path: str, options: dict[str, Any]) -> str:
    import mlflow.sklearn

    return _save_skops_or_cloudpickle(mlflow.sklearn.save_model, obj, path, options)


def _save_xgboost(obj: Any, path: str, options: dict[str, Any]) -> str:
    import mlflow.xgboost

    serialization = f"xgboost-{_XGBOOST_FORMAT}"
    mlflow.xgboost.save_model(
        obj, path, model_format=_XGBOOST_FORMAT, metadata={_METADATA_KEY: serialization}, **options
    )
    return serialization


def _save_lightgbm(obj: Any, path: str, options: dict[str, Any]) -> str:
    import mlflow.lightgbm

    if _has_class(obj, "lightgbm", "Booster"):
        serialization = "lightgbm-text"
        mlflow.lightgbm.save_model(obj, path, metadata={_METADATA_KEY: serialization}, **options)
        return serialization
    # A scikit-learn API model: MLflow serializes it like a scikit-learn one.
    return _save_skops_or_cloudpickle(mlflow.lightgbm.save_model, obj, path, options)


def _save_pyfunc(obj: Any, path: str, options: dict[str, Any]) -> str:
    import mlflow.pyfunc

    serialization = "pyfunc-cloudpickle"
    mlflow.pyfunc.save_model(
        path,
        python_model=_wrapper_class()(obj),
        metadata={_METADATA_KEY: serialization},
        **options,
    )
    return serialization


_SAVERS = {
    "sklearn": _save_sklearn,
    "xgboost": _save_xgboost,
    "lightgbm": _save_lightgbm,
    "pyfunc": _save_pyfunc,
}


def _save_skops_or_cloudpickle(save: Any, obj: Any, path: str, options: dict[str, Any]) -> str:
    """Save with skops, trusting exactly the types the model holds; else with cloudpickle.

    MLflow stores the trusted types in the MLmodel flavor conf and passes them to skops when
    loading, so a loader needs nothing from the caller.
    """
    from mlflow.exceptions import MlflowException

    trusted = _skops_trusted_types(obj)
    if trusted is not None:
        try:
            save(
                obj,
                path,
                serialization_format="skops",
                skops_trusted_types=trusted,
                metadata={_METADATA_KEY: "skops"},
                **options,
            )
            return "skops"
        except MlflowException:  # skops wrote the model but could not read it back
            shutil.rmtree(path, ignore_errors=True)
    save(
        obj,
        path,
        serialization_format="cloudpickle",
        metadata={_METADATA_KEY: "cloudpickle"},
        **options,
    )
    return "cloudpickle"


def _skops_trusted_types(obj: Any) -> list[str] | None:
    """The types skops does not trust by default that `obj` holds; None when skops can't save it.

    A class or function defined in `__main__` or inside a function would be saved by reference
    and fail to load anywhere else, so those go to cloudpickle, which saves them by value.
    """
    import skops.io

    try:
        types = skops.io.get_untrusted_types(data=skops.io.dumps(obj))
    except Exception:  # lambdas, local functions, objects skops has no representation for
        return None
    if any(t.startswith("__main__.") or "<locals>" in t for t in types):
        return None
    return types


@functools.cache
def _wrapper_class() -> type:
    """The PythonModel serving any object with `predict`, built on first use.

    It is built here, not at import, so importing this module does not import MLflow; being
    local, cloudpickle saves the class by value, so loading the model does not need tracked.
    """
    from mlflow.pyfunc import PythonModel

    class _Wrapper(PythonModel):
        # MLflow 3 reads predict's type hints to validate inputs and infer a signature, and
        # warns when there are none or they are `Any`. The wrapped object's input type is
        # unknown: opt out as MLflow's own ChatModel does, and leave predict unannotated.
        _skip_type_hint_validation = True
        _tracked_wrapper = True

        def __init__(self, obj: Any) -> None:
            self.obj = obj

        def predict(self, context, model_input, params=None):
            return self.obj.predict(model_input)

    return _Wrapper


# --- signature and helpers ------------------------------------------------------------------


def _signature(obj: Any, flavor: str, input_example: Any) -> tuple[Any, Any]:
    """(signature, example rows) from `input_example`, or (None, None) when that fails."""
    if input_example is None:
        return None, None
    try:
        from mlflow.models import infer_signature

        example = _first_rows(input_example)
        if flavor == "xgboost" and _has_class(obj, "xgboost", "Booster"):
            import xgboost

            predictions = obj.predict(xgboost.DMatrix(example))
        else:
            predictions = obj.predict(example)
        return infer_signature(example, predictions), example
    except Exception:
        return None, None


def _first_rows(data: Any) -> Any:
    if hasattr(data, "iloc"):
        return data.iloc[:_EXAMPLE_ROWS]
    if getattr(data, "ndim", 0) >= 1 or isinstance(data, (list, tuple)):
        return data[:_EXAMPLE_ROWS]
    return data


def _has_class(obj: Any, module: str, name: str) -> bool:
    return any(
        cls.__name__ == name and cls.__module__.partition(".")[0] == module
        for cls in type(obj).__mro__
    )


def _type_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _one_line(exc: BaseException) -> str:
    """The innermost cause, in one line: MLflow wraps e.g. "cannot pickle '_thread.lock'"."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class _DropKnownNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.WARNING and str(record.msg).startswith(_KNOWN_NOISE))


@contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """Hide MLflow's warnings and its log lines about the choices save_model makes on purpose."""
    noise = _DropKnownNoise()
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    for logger in loggers:
        logger.addFilter(noise)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(noise)
