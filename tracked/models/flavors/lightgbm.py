"""LightGBM boosters in LightGBM's text format; scikit-learn API models like scikit-learn's."""

from __future__ import annotations

import os
from typing import Any

from tracked.models.flavors import sklearn
from tracked.models.flavors._common import METADATA_KEY, has_class

NAME = "lightgbm"
MARKERS = frozenset({("lightgbm", "Booster"), ("lightgbm", "LGBMModel")})
REQUIREMENTS = ("mlflow", "cloudpickle", "lightgbm", "numpy", "scikit-learn", "skops")


def save(obj: Any, path: str, options: dict[str, Any]) -> str:
    import mlflow.lightgbm

    if has_class(obj, "lightgbm", "Booster"):
        serialization = "lightgbm-text"
        mlflow.lightgbm.save_model(obj, path, metadata={METADATA_KEY: serialization}, **options)
        return serialization
    # A scikit-learn API model: MLflow serializes it like a scikit-learn one.
    return sklearn.save_skops_or_cloudpickle(mlflow.lightgbm.save_model, obj, path, options)


def load(path: str, conf: Any, allow_pickle: bool) -> Any:
    flavor = conf.flavors[NAME]
    booster = flavor.get("model_class", "lightgbm.basic.Booster") == "lightgbm.basic.Booster"
    if not booster and flavor.get("serialization_format") == "skops":
        return sklearn.load_skops(os.path.join(path, flavor["data"]), flavor)
    import mlflow.lightgbm

    return mlflow.lightgbm.load_model(path)
