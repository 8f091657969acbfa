"""scikit-learn estimators: skops where it can save the model, cloudpickle where it cannot."""

from __future__ import annotations

import os
import shutil
from typing import Any

from tracked.models.flavors._common import METADATA_KEY

NAME = "sklearn"
MARKERS = frozenset({("sklearn", "BaseEstimator")})
REQUIREMENTS = ("mlflow", "cloudpickle", "numpy", "scikit-learn", "skops")


def save(obj: Any, path: str, options: dict[str, Any]) -> str:
    import mlflow.sklearn

    return save_skops_or_cloudpickle(mlflow.sklearn.save_model, obj, path, options)


def load(path: str, conf: Any, allow_pickle: bool) -> Any:
    flavor = conf.flavors[NAME]
    if flavor.get("serialization_format") == "skops":
        return load_skops(os.path.join(path, flavor["pickled_model"]), flavor)
    import mlflow.sklearn

    return mlflow.sklearn.load_model(path)


def load_skops(file: str, flavor: dict[str, Any]) -> Any:
    """Load a skops file trusting the types its MLmodel lists, which `safety` checked first.

    MLflow's own loader refuses skops files when MLFLOW_ALLOW_PICKLE_DESERIALIZATION is false,
    because the trusted list comes from the artifact; tracked accepts only lists whose types
    live in the packages `safety.SKOPS_TRUSTED_PACKAGES` names, so it loads them itself.
    """
    import skops.io

    return skops.io.load(file, trusted=list(flavor.get("skops_trusted_types") or []))


def save_skops_or_cloudpickle(save: Any, obj: Any, path: str, options: dict[str, Any]) -> str:
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
                metadata={METADATA_KEY: "skops"},
                **options,
            )
            return "skops"
        except MlflowException:  # skops wrote the model but could not read it back
            shutil.rmtree(path, ignore_errors=True)
    save(
        obj,
        path,
        serialization_format="cloudpickle",
        metadata={METADATA_KEY: "cloudpickle"},
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
