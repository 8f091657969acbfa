"""The tracked run is MLflow's active run inside its scope.

Existing training code often already calls MLflow: `mlflow.log_metric`, `mlflow.log_artifact`,
`mlflow.log_figure`, `mlflow.sklearn.autolog()`, `with mlflow.start_run():`. Inside a tracked
scope (the decorated call or the `with tracked.run()` block, in the thread or asyncio task that
runs it) those calls land in the tracked run instead of making a second one:

- `mlflow.active_run()` returns the tracked run (an `mlflow.ActiveRun` with its id);
- these fluent calls are captured by tracked, into its journal, so they work the same when the
  store is slow or down (kept for `tracked sync`) and never block the training: `log_metric`,
  `log_metrics`, `log_param`, `log_params`, `set_tag`, `set_tags`, `log_artifact`,
  `log_artifacts`, `log_figure`, `log_image`, `log_dict`, `log_text`, `log_table`, `log_input`;
- `mlflow.start_run()` returns the tracked run itself (its `run_name`, `tags` and `description`
  are applied to it, and leaving the block does not end it); `mlflow.start_run(nested=True)`
  starts a tracked child run; `mlflow.end_run()` ends such a child and is otherwise a no-op;
- everything else (autolog, `mlflow.<flavor>.log_model`, `MlflowClient` calls) runs as MLflow
  does, into the tracked run, through MLflow's own client: `mlflow.get_tracking_uri()` answers
  tracked's store inside the scope;
- a model MLflow's code logged into the run (autolog, `mlflow.<flavor>.log_model`, all through
  `mlflow.models.Model.log`) that is also the run's model (returned, chosen with
  `run.log_model`) is not logged a second time: tracked registers MLflow's logged model, in
  MLflow's format (scikit-learn autolog: cloudpickle), with tracked's tags added to it.

A call with an explicit `run_id` of another run, and every call in a thread without a tracked
run, go to MLflow unchanged. A decorated call inside a user's own `with mlflow.start_run():`
becomes that run's child, in its experiment (`outer_mlflow_run`).
"""

from __future__ import annotations

import contextvars
import inspect
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tracked import active
from tracked.integrations.scope import Hook

if TYPE_CHECKING:
    from tracked.config import Settings
    from tracked.run import TrackedRun

__all__ = [
    "CAPTURED",
    "autolog_enabled",
    "outer_mlflow_run",
    "patch_targets",
]

CAPTURED = (
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "set_tag",
    "set_tags",
    "log_artifact",
    "log_artifacts",
    "log_figure",
    "log_image",
    "log_dict",
    "log_text",
    "log_table",
    "log_input",
)

# Child runs started with mlflow.start_run(nested=True) inside a tracked scope, innermost last.
_children: contextvars.ContextVar[tuple[TrackedRun, ...]] = contextvars.ContextVar(
    "tracked_mlflow_children", default=()
)


def _native_stack() -> list[Any]:
    from mlflow.tracking import fluent

    return list(fluent._active_run_stack.get())


def native_depth() -> int:
    """How many MLflow runs are on MLflow's own stack in this thread (0 if not imported)."""
    if "mlflow" not in sys.modules:
        return 0
    try:
        return len(_native_stack())
    except Exception:  # pragma: no cover - MLflow internals moved
        return 0


def _routed(run_id: str | None = None) -> TrackedRun | None:
    """The tracked run a fluent call in this context belongs to, or None (MLflow's own)."""
    found = active.current_run()
    if found is None:
        return None
    if native_depth() > getattr(found, "_mlflow_depth", 0):
        return None  # the user started an MLflow run of their own inside the scope
    if run_id is not None and run_id not in (found.run_uuid, found.run_id):
        return None
    return found


def outer_mlflow_run(settings: Settings) -> tuple[str, str] | None:
    """(run id, experiment id) of the user's own active MLflow run in this thread, when it is in
    the store tracked writes to; a decorated call inside it becomes its child."""
    if "mlflow" not in sys.modules:
        return None
    stack = _native_stack()
    if not stack:
        return None
    top = stack[-1]
    from mlflow.tracking._tracking_service import utils

    if _same_store(utils.get_tracking_uri(), settings.tracking_uri):
        return str(top.info.run_id), str(top.info.experiment_id)
    from tracked.problems import logger

    logger.warning(
        "tracked: the active MLflow run %s is in another store (%s) than tracked's (%s); the "
        "tracked run is not its child",
        top.info.run_id,
        _shown(utils.get_tracking_uri()),
        _shown(settings.tracking_uri),
    )
    return None


def _same_store(a: str, b: str) -> bool:
    from tracked.store import sqlite_path

    if a == b:
        return True
    path_a, path_b = sqlite_path(a), sqlite_path(b)
    return path_a is not None and path_a == path_b


def _shown(uri: str) -> str:
    from tracked.store import shown_uri

    return shown_uri(uri)


def autolog_enabled(flavor: str | None = None) -> bool:
    """Whether MLflow autologging is on (for `flavor`, or for any flavor)."""
    if "mlflow" not in sys.modules:
        return False
    try:
        from mlflow.utils.autologging_utils import AUTOLOGGING_INTEGRATIONS
    except Exception:  # pragma: no cover
        return False
    for name, config in list(AUTOLOGGING_INTEGRATIONS.items()):
        if (flavor is None or name in (flavor, "mlflow")) and not config.get("disable", True):
            return True
    return False


# -- the facade MLflow's code sees --------------------------------------------------------------


def _facade(run: TrackedRun, *, owned: bool) -> Any:
    """An `mlflow.ActiveRun` for the tracked run; leaving it ends the run only if `owned`."""
    from mlflow.entities import Run, RunData, RunInfo
    from mlflow.tracking.fluent import ActiveRun

    shipment = run._shipment
    run_id = run.run_id or run.run_uuid
    info = RunInfo(
        run_id=run_id,
        experiment_id=str((shipment.cursor.get("experiment_id") if shipment else None) or "0"),
        user_id=run.record.tags.get("mlflow.user", ""),
        status="RUNNING",
        start_time=run.record.start_time,
        end_time=None,
        lifecycle_stage="active",
        artifact_uri=shipment.artifact_uri() if shipment else None,
        run_name=run.record.name,
    )

    class TrackedActiveRun(ActiveRun):  # type: ignore[misc]
        """The tracked run as MLflow's ActiveRun."""

        def __enter__(self) -> Any:
            return self

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
            if owned:
                _end_child(run, exc)
            return exc_type is None

    return TrackedActiveRun(Run(info, RunData()))


def _end_child(run: TrackedRun, exc: BaseException | None) -> None:
    children = _children.get()
    if run in children:
        _children.set(tuple(c for c in children if c is not run))
    run.end(exc)


# -- the wrappers -------------------------------------------------------------------------------


def _bind(wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        bound = inspect.signature(wrapped).bind(*args, **kwargs)
    except TypeError:
        return None
    bound.apply_defaults()
    return bound.arguments


def _verb(handle: Callable[[TrackedRun, dict[str, Any]], Any]) -> Hook:
    """A wrapper that sends a fluent call to the tracked run when it belongs there."""

    def hook(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if active.current_run() is None:
            return wrapped(*args, **kwargs)
        arguments = _bind(wrapped, args, kwargs)
        if arguments is None:
            return wrapped(*args, **kwargs)  # MLflow raises its own error for a wrong call
        run = _routed(arguments.get("run_id"))
        if run is None:
            return wrapped(*args, **kwargs)
        return handle(run, arguments)

    return hook


def _log_metric(run: TrackedRun, a: dict[str, Any]) -> None:
    run.log_metrics({a["key"]: a["value"]}, step=a.get("step"))


def _log_metrics(run: TrackedRun, a: dict[str, Any]) -> None:
    run.log_metrics(a["metrics"], step=a.get("step"))


def _log_param(run: TrackedRun, a: dict[str, Any]) -> Any:
    run.log_params({a["key"]: a["value"]})
    return a["value"]


def _log_params(run: TrackedRun, a: dict[str, Any]) -> None:
    run.log_params(a["params"])


def _set_tag(run: TrackedRun, a: dict[str, Any]) -> None:
    run.set_tags({a["key"]: a["value"]})


def _set_tags(run: TrackedRun, a: dict[str, Any]) -> None:
    run.set_tags(a["tags"])


def _log_artifact(run: TrackedRun, a: dict[str, Any]) -> None:
    run.log_artifact(a["local_path"], a.get("artifact_path"))


def _log_artifacts(run: TrackedRun, a: dict[str, Any]) -> None:
    run.log_artifacts(a["local_dir"], a.get("artifact_path"))


def _log_figure(run: TrackedRun, a: dict[str, Any]) -> None:
    run.log_figure(a["figure"], a["artifact_file"], **(a.get("save_kwargs") or {}))


def _log_image(run: TrackedRun, a: dict[str, Any]) -> None:
    name = a.get("artifact_file")
    if name is None:  # MLflow's key/step form
        step = a.get("step") or 0
        name = f"images/{a.get('key') or 'image'}/step_{step}.png"
    run.log_image(a["image"], name)


def _log_dict(run: TrackedRun, a: dict[str, Any]) -> None:
    run.log_dict(a["dictionary"], a["artifact_file"])


def _log_text(run: TrackedRun, a: dict[str, Any]) -> None:
    run.log_text(a["text"], a["artifact_file"])


def _log_table(run: TrackedRun, a: dict[str, Any]) -> None:
    import json

    data = a["data"]
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a DataFrame
        columns = [str(c) for c in data.columns]
        rows = data.astype(object).where(data.notna(), None).values.tolist()
    else:
        columns = [str(c) for c in data]
        values = list(data.values())
        length = max((len(v) for v in values), default=0)
        rows = [[v[i] if i < len(v) else None for v in values] for i in range(length)]
    text = json.dumps({"columns": columns, "data": rows}, default=str)
    run.log_text(text, a["artifact_file"])


def _log_input(run: TrackedRun, a: dict[str, Any]) -> None:
    if a.get("dataset") is not None:
        run.log_mlflow_input(a["dataset"], a.get("context"), a.get("tags"))


_HANDLERS: dict[str, Callable[[TrackedRun, dict[str, Any]], Any]] = {
    "log_metric": _log_metric,
    "log_metrics": _log_metrics,
    "log_param": _log_param,
    "log_params": _log_params,
    "set_tag": _set_tag,
    "set_tags": _set_tags,
    "log_artifact": _log_artifact,
    "log_artifacts": _log_artifacts,
    "log_figure": _log_figure,
    "log_image": _log_image,
    "log_dict": _log_dict,
    "log_text": _log_text,
    "log_table": _log_table,
    "log_input": _log_input,
}


def _active_run(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    run = _routed()
    if run is None:
        return wrapped(*args, **kwargs)
    children = _children.get()
    return _facade(run, owned=bool(children) and children[-1] is run)


def _start_run(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    run = _routed()
    arguments = _bind(wrapped, args, kwargs) if run is not None else None
    if run is None or arguments is None or arguments.get("run_id"):
        return wrapped(*args, **kwargs)
    tags = dict(arguments.get("tags") or {})
    if arguments.get("description"):
        tags["mlflow.note.content"] = arguments["description"]
    if arguments.get("nested"):
        from tracked.run import TrackedRun

        child = TrackedRun(
            arguments.get("run_name") or "run",
            tags=tags,
            settings=run.settings,
            log_system_metrics=arguments.get("log_system_metrics"),
            source=run._source,
        )
        child.start()
        _children.set((*_children.get(), child))
        return _facade(child, owned=True)
    if arguments.get("run_name"):
        tags["mlflow.runName"] = arguments["run_name"]
    if tags:
        run.set_tags(tags)
    return _facade(run, owned=False)


def _end_run(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    run = _routed()
    if run is None:
        return wrapped(*args, **kwargs)
    children = _children.get()
    if children and children[-1] is run:
        arguments = _bind(wrapped, args, kwargs) or {}
        status = str(arguments.get("status") or "FINISHED")
        failure = None if status == "FINISHED" else RuntimeError(f"ended {status} by mlflow")
        _end_child(run, failure)
    return None  # the tracked run itself ends with its scope


def _get_or_start_run(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    run = _routed()
    if run is None:
        return wrapped(*args, **kwargs)
    return _facade(run, owned=False)


def _tracking_uri(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    run = _routed()
    if run is None:
        return wrapped(*args, **kwargs)
    return run.settings.tracking_uri


# Model.log's own options: every other keyword is the flavor's (`sk_model=`, `xgb_model=`, ...).
_MODEL_LOG_OPTIONS = frozenset(
    (
        "artifact_path", "flavor", "registered_model_name", "await_registration_for",
        "metadata", "run_id", "resources", "auth_policy", "prompts", "name", "model_type",
        "params", "tags", "step", "model_id", "conda_env", "code_paths", "code_path",
        "serialization_format", "signature", "input_example", "pip_requirements",
        "extra_pip_requirements", "pyfunc_predict_fn", "extra_files", "skops_trusted_types",
    )
)  # fmt: skip


def _model_log(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`mlflow.models.Model.log`, which every flavor's `log_model` (and so autolog) calls: the
    object it logged into the tracked run is remembered, so tracked does not log it again."""
    info = wrapped(*args, **kwargs)
    if active.current_run() is None:
        return info
    run = _routed(kwargs.get("run_id"))
    model_id = getattr(info, "model_id", None)
    if run is None or not model_id:
        return info
    flavor = kwargs.get("flavor")
    if flavor is None and len(args) >= 2:
        flavor = args[1]
    name = str(getattr(flavor, "__name__", flavor) or "mlflow").rsplit(".", 1)[-1]
    serialization = str(kwargs.get("serialization_format") or f"mlflow.{name}")
    for key, value in kwargs.items():
        if key not in _MODEL_LOG_OPTIONS and value is not None and _is_object(value):
            run.adopt_logged_model(value, str(model_id), name, serialization)
    return info


_UNREACHABLE = (
    "Connection refused",
    "NewConnectionError",
    "Max retries exceeded",
    "timed out",
    "timeout exception",
    "RemoteDisconnected",
    "Connection aborted",
)


def _http_request(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """MLflow's own HTTP requests (autolog, `log_model`, `MlflowClient`) from a tracked scope to
    tracked's store: under tracked's bounds (no retries, `http_timeout`), and refused at once
    while tracked knows the store is down, so the user's MLflow code never waits minutes on a
    dead server. Requests to other hosts and outside tracked scopes are MLflow's own."""
    if active.current_run() is None:
        return wrapped(*args, **kwargs)
    run = _routed()
    creds = args[0] if args else kwargs.get("host_creds")
    host = str(getattr(creds, "host", None) or "").rstrip("/")
    if run is None or not host or host != run.settings.tracking_uri.rstrip("/"):
        return wrapped(*args, **kwargs)
    from tracked.store import quiet_mlflow, store_for

    store = store_for(run.settings)
    down = store.down()
    if down is not None:
        from mlflow.exceptions import MlflowException

        raise MlflowException(f"{down} [MLflow's request was not sent; tracked keeps the run]")
    try:
        with quiet_mlflow():
            return wrapped(*args, **kwargs)
    except Exception as exc:
        text = str(exc)
        if any(mark in text for mark in _UNREACHABLE):
            from tracked.errors import StoreUnavailableError

            store.mark_down(StoreUnavailableError(store.shown, f"server not reachable ({text})"))
        raise


def _is_object(value: Any) -> bool:
    return not isinstance(value, (str, bytes, int, float, bool, dict, list, tuple, set))


def patch_targets() -> list[tuple[Any, str, Hook]]:
    """Where `scope` puts wrappers for MLflow's fluent API (module and package names both)."""
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._tracking_service import utils

    targets: list[tuple[Any, str, Hook]] = []
    for owner in (fluent, mlflow):
        for name in CAPTURED:
            if name in vars(owner):
                targets.append((owner, name, _verb(_HANDLERS[name])))
        for name, hook in (
            ("active_run", _active_run),
            ("start_run", _start_run),
            ("end_run", _end_run),
        ):
            if name in vars(owner):
                targets.append((owner, name, hook))
    targets.append((fluent, "_get_or_start_run", _get_or_start_run))
    from mlflow.models.model import Model

    targets.append((Model, "log", _model_log))
    for module in (
        "mlflow.utils.rest_utils",
        "mlflow.store.tracking.rest_store",
        "mlflow.store.model_registry.rest_store",
        "mlflow.store.artifact.http_artifact_repo",
    ):
        found = sys.modules.get(module)
        if found is not None and "http_request" in vars(found):
            targets.append((found, "http_request", _http_request))
    owners: list[Any] = [utils, mlflow, getattr(mlflow, "tracking", None)]
    for owner in owners:
        if owner is not None and "get_tracking_uri" in vars(owner):
            targets.append((owner, "get_tracking_uri", _tracking_uri))
    return targets
