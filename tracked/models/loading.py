"""`tracked.load_model("name@champion")`: a registered version back as its native object."""

from __future__ import annotations

import tempfile
from typing import Any

from tracked.config import get_config

__all__ = ["load_model"]


def load_model(
    ref: str,
    version: int | str | None = None,
    *,
    as_pyfunc: bool = False,
    tracking_uri: str | None = None,
    allow_pickle: bool | None = None,
) -> Any:
    """Load a registered model version: "name@alias", "name@latest", or "name" with version=.

    Returns the native object (the scikit-learn estimator, the XGBoost Booster or model, the
    torch module, ...), or MLflow's pyfunc with `as_pyfunc=True`. Uses tracked's configured
    store, not MLflow's global one, so it works beside code that set `mlflow.set_tracking_uri`
    elsewhere. A model whose loading would unpickle data or run code from its files
    (cloudpickle, a pickled torch module, a cloudpickled pyfunc) raises UnsafeModelError unless
    `allow_pickle=True` or MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true is set in the environment.
    """
    import mlflow.artifacts

    from tracked.models.flavors import load_model as load_local
    from tracked.registry.versions import client as registry_client
    from tracked.registry.versions import get_version

    settings = get_config().replace(tracking_uri=tracking_uri)
    client = registry_client(settings.tracking_uri)
    found = get_version(client, ref, version)
    uri = client.get_model_version_download_uri(found.name, found.version)
    with tempfile.TemporaryDirectory(prefix="tracked-load-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=tmp, tracking_uri=settings.tracking_uri
        )
        return load_local(local, as_pyfunc=as_pyfunc, allow_pickle=allow_pickle)
