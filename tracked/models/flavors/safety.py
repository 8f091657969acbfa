"""Whether loading a model directory would unpickle data or run code shipped in the model.

Decided from the MLmodel file and the files it names, before anything is loaded, for models
saved by tracked and by anything else. `load_model` refuses a model for which `refusal` gives a
reason, unless the caller opts in (`allow_pickle=True`) or MLFLOW_ALLOW_PICKLE_DESERIALIZATION
is set to true in the environment. What loads without opting in:

- skops files whose trusted types (a list inside the artifact) all live in scikit-learn, numpy,
  scipy, LightGBM or XGBoost (plus `collections.OrderedDict`/`defaultdict`): tracked checks the
  list, skops refuses any type outside it. This narrows what a planted file can construct; it
  does not prove that no combination of those types can do harm.
- XGBoost's UBJSON/JSON, LightGBM's text format, CatBoost's `.cbm`, Keras' `.keras` (loaded
  with `safe_mode`), tracked's safetensors state dicts and `save_pretrained` directories:
  formats that hold data, not code. The class a loader instantiates is read from the MLmodel
  file; it must be XGBoost's, CatBoost's, a `torch.nn.Module` or a `PreTrainedModel`.
- MLflow `pt2` (torch.export) archives that MLflow's own validation finds free of pickle.

Everything else is refused: pickle and cloudpickle files, cloudpickled `python_model`s, a
`code/` directory other than tracked's own loader (MLflow imports it when loading a pyfunc),
loader modules and flavors tracked does not know.
"""

from __future__ import annotations

import os
from typing import Any

from tracked.errors import UnsafeModelError
from tracked.models.flavors import _pyfunc_loader as loader
from tracked.models.flavors import pytorch

__all__ = ["SKOPS_TRUSTED_PACKAGES", "UnsafeModelError", "pickle_allowed", "refusal"]

SKOPS_TRUSTED_PACKAGES = ("sklearn", "numpy", "scipy", "lightgbm", "xgboost")
_SKOPS_TRUSTED_EXTRA = frozenset({"collections.OrderedDict", "collections.defaultdict"})
_CATBOOST_TYPES = frozenset(
    {"CatBoost", "CatBoostClassifier", "CatBoostRegressor", "CatBoostRanker"}
)
_ENV = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"


def pickle_allowed(allow_pickle: bool | None) -> bool:
    """The caller's choice; else whether MLFLOW_ALLOW_PICKLE_DESERIALIZATION is explicitly true.

    MLflow's own default (true when unset) is not taken as consent.
    """
    if allow_pickle is not None:
        return allow_pickle
    from mlflow.environment_variables import MLFLOW_ALLOW_PICKLE_DESERIALIZATION as env

    return bool(env.is_set() and env.get())


def refusal(path: str, conf: Any, flavor: str) -> str | None:
    """Why loading `flavor` of the model at `path` is not data-only; None when it is.

    `flavor` is the MLmodel flavor the load goes through ("python_function" for a pyfunc).
    """
    flavors = conf.flavors
    if flavor == "python_function":
        return _pyfunc_refusal(path, flavors["python_function"], flavors)
    return _flavor_refusal(path, flavor, flavors[flavor])


def _flavor_refusal(path: str, flavor: str, fconf: dict[str, Any]) -> str | None:
    if flavor in (loader.TORCH_FLAVOR, loader.TRANSFORMERS_FLAVOR, "keras"):
        return None  # loaded by tracked's copy of the loader / with Keras' safe_mode
    if flavor == "sklearn":
        return _serialized(fconf.get("serialization_format", "pickle"), fconf)
    if flavor == "lightgbm":
        model_class = str(fconf.get("model_class", "lightgbm.basic.Booster"))
        if model_class == "lightgbm.basic.Booster":
            return None
        if not model_class.startswith("lightgbm."):
            return f"its MLmodel names the class {model_class!r}, which is not LightGBM's"
        return _serialized(fconf.get("serialization_format", "cloudpickle"), fconf)
    if flavor == "xgboost":
        model_class = str(fconf.get("model_class", "xgboost.core.Booster"))
        if not model_class.startswith("xgboost."):
            return f"its MLmodel names the class {model_class!r}, which is not XGBoost's"
        return None
    if flavor == "catboost":
        if fconf.get("model_type") not in _CATBOOST_TYPES:
            return f"its MLmodel names the CatBoost type {fconf.get('model_type')!r}"
        return None
    if flavor == "pytorch":
        return _pt2_refusal(os.path.join(path, fconf.get("model_data", "data")))
    if flavor == "onnx":
        return None
    return f"tracked does not know whether the {flavor!r} flavor loads without pickle"


def _serialized(fmt: str, fconf: dict[str, Any]) -> str | None:
    if fmt != "skops":
        return f"it is a {fmt} file"
    outside = [t for t in fconf.get("skops_trusted_types") or [] if not _skops_trusted(t)]
    if outside:
        return f"its skops file trusts types outside {', '.join(SKOPS_TRUSTED_PACKAGES)}: {outside}"
    return None


def _skops_trusted(type_name: str) -> bool:
    package = type_name.partition(".")[0]
    return type_name in _SKOPS_TRUSTED_EXTRA or package in SKOPS_TRUSTED_PACKAGES


def _pt2_refusal(data_dir: str) -> str | None:
    archive = os.path.join(data_dir, "model.pt2")
    if not os.path.isfile(archive):
        return "it is a pickled PyTorch module"
    try:  # MLflow's own check, used when pickle is disallowed; private, so guarded
        from mlflow.pytorch import _validate_pt2_archive_is_pickle_free as validate
    except ImportError:
        return "this MLflow cannot check its pt2 archive for pickle"
    try:
        validate(archive)
    except Exception as exc:
        return f"its pt2 archive holds pickle ({str(exc).splitlines()[0][:200]})"
    return None


def _pyfunc_refusal(path: str, pconf: dict[str, Any], flavors: dict[str, Any]) -> str | None:
    module = str(pconf.get("loader_module", ""))
    if "python_model" in pconf or module == "mlflow.pyfunc.model":
        return "it is a cloudpickled Python model"
    if module == pytorch.LOADER_MODULE:
        return _loader_refusal(path, pconf)
    if pconf.get("code"):
        return f"it ships Python code ({pconf['code']}/) that loading imports"
    flavor = module.removeprefix("mlflow.")
    if module.startswith("mlflow.") and flavor in flavors:
        return _flavor_refusal(path, flavor, flavors[flavor])
    return f"its loader module {module!r} is not one tracked knows to load without pickle"


def _loader_refusal(path: str, pconf: dict[str, Any]) -> str | None:
    """A model saved by tracked with its own loader: `code/` must hold exactly that loader.

    MLflow puts `code/` first on sys.path, so any other module there could shadow a package
    imported later. tracked loads such a model with its own copy of the loader (see
    `load_model`): the file in the artifact is compared, never imported.
    """
    code = os.path.join(path, str(pconf.get("code") or "code"))
    expected = f"{pytorch.LOADER_MODULE}.py"
    try:
        names = sorted(n for n in os.listdir(code) if n != "__pycache__")
        with open(os.path.join(code, expected), "rb") as f:
            same = f.read() == pytorch.loader_source()
    except OSError:
        return "its loader code is missing"
    if names != [expected] or not same:
        return f"its code/ directory is not tracked's {pytorch.LOADER_MODULE} loader alone"
    return None
