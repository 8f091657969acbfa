"""XGBoost boosters and scikit-learn API models, in XGBoost's own binary JSON (UBJSON)."""

from __future__ import annotations

from typing import Any

from tracked.models.flavors._common import METADATA_KEY, has_class

NAME = "xgboost"
MARKERS = frozenset({("xgboost", "Booster"), ("xgboost", "XGBModel")})
REQUIREMENTS = ("mlflow", "numpy", "scikit-learn", "xgboost")
FORMAT = "ubj"  # MLflow's default and XGBoost's recommended binary JSON


def save(obj: Any, path: str, options: dict[str, Any]) -> str:
    import mlflow.xgboost

    serialization = f"xgboost-{FORMAT}"
    mlflow.xgboost.save_model(
        obj, path, model_format=FORMAT, metadata={METADATA_KEY: serialization}, **options
    )
    return serialization


def predict(obj: Any, example: Any) -> Any:
    if has_class(obj, "xgboost", "Booster"):  # a Booster only takes a DMatrix
        import xgboost

        return obj.predict(xgboost.DMatrix(example))
    return obj.predict(example)


def load(path: str, conf: Any, allow_pickle: bool) -> Any:
    import mlflow.xgboost

    return mlflow.xgboost.load_model(path)
