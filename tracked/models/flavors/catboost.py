"""CatBoost models in CatBoost's native binary format (`.cbm`)."""

from __future__ import annotations

from typing import Any

from tracked.models.flavors._common import METADATA_KEY

NAME = "catboost"
MARKERS = frozenset({("catboost", "CatBoost")})  # CatBoostClassifier/Regressor/Ranker too
REQUIREMENTS = ("mlflow", "numpy", "pandas", "catboost")


def save(obj: Any, path: str, options: dict[str, Any]) -> str:
    import mlflow.catboost

    serialization = "catboost-cbm"
    mlflow.catboost.save_model(
        obj, path, format="cbm", metadata={METADATA_KEY: serialization}, **options
    )
    return serialization


def load(path: str, conf: Any, allow_pickle: bool) -> Any:
    import mlflow.catboost

    return mlflow.catboost.load_model(path)
