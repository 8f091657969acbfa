"""Any object with `predict`: wrapped in a PythonModel and saved with cloudpickle."""

from __future__ import annotations

import functools
from typing import Any

from tracked.models.flavors._common import METADATA_KEY

NAME = "pyfunc"
MARKERS: frozenset[tuple[str, str]] = frozenset()  # the fallback for anything with predict
REQUIREMENTS = ("mlflow", "cloudpickle", "numpy")


def save(obj: Any, path: str, options: dict[str, Any]) -> str:
    import mlflow.pyfunc

    serialization = "pyfunc-cloudpickle"
    mlflow.pyfunc.save_model(
        path,
        python_model=_wrapper_class()(obj),
        metadata={METADATA_KEY: serialization},
        **options,
    )
    return serialization


def load(path: str, conf: Any, allow_pickle: bool) -> Any:
    """The wrapped object for a model saved here; MLflow's pyfunc for one saved elsewhere."""
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    model = mlflow.pyfunc.load_model(path)
    try:
        inner = model.unwrap_python_model()
    except MlflowException:
        return model
    return inner.obj if getattr(inner, "_tracked_wrapper", False) else model


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
