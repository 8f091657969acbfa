"""Every tag name tracked reads or writes, and one reader per tag whose value needs parsing.

Run tags, model-version tags and registered-model tags live in MLflow as plain strings; a module
that needs one imports its name from here, and a module that needs its meaning calls the reader
here (`git_dirty(tags)`), so two modules can never read the same tag two ways.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

__all__ = [
    "ALIAS_HISTORY_PREFIX",
    "CHILDREN_FAILED",
    "CHILDREN_KILLED",
    "CHILDREN_RUNNING",
    "CHILDREN_TOTAL",
    "DATASET_CONTEXT",
    "DATA_PREFIX",
    "ENV_CUDA",
    "ENV_GPU_COUNT",
    "ENV_GPU_DRIVER",
    "ENV_GPU_NAME",
    "ENV_PREFIX",
    "FLAVOR",
    "FUNCTION",
    "GIT_BRANCH",
    "GIT_COMMIT",
    "GIT_DIRTY",
    "GIT_REPO_URL",
    "KEY_METRIC",
    "LAUNCH",
    "LOCK",
    "LOCK_OWNER",
    "MANAGED",
    "METRIC_PREFIX",
    "MLFLOW_USER",
    "MODEL_CLASS",
    "MODEL_NAME",
    "MODEL_PREFIX",
    "MODEL_VERSION",
    "NAME",
    "NOTE",
    "PARENT_RUN_ID",
    "PROFILE_DIGEST",
    "PROJECT",
    "PROMOTION_DECISION",
    "PROMOTION_PREFIX",
    "PROMOTION_REASON",
    "PROMOTION_TO",
    "RESUMED",
    "RUN_KEY",
    "RUN_NAME",
    "RUN_UUID",
    "SOURCE_NAME",
    "SOURCE_TYPE",
    "SWEEP_BEST_TRIAL",
    "SWEEP_ENGINE",
    "TRIAL",
    "TRIAL_STATE",
    "VERSION_EXPERIMENT",
    "VERSION_GIT_COMMIT",
    "VERSION_PROJECT",
    "VERSION_RUN_ID",
    "WORLD_SIZE",
    "alias_history",
    "git_commit",
    "git_dirty",
    "lock_owner",
    "metrics",
    "model_tag",
    "prefixed",
    "promotion_decision_for",
]

# -- MLflow's own names -----------------------------------------------------------------------
MLFLOW_USER = "mlflow.user"
SOURCE_NAME = "mlflow.source.name"
SOURCE_TYPE = "mlflow.source.type"
GIT_COMMIT = "mlflow.source.git.commit"
GIT_BRANCH = "mlflow.source.git.branch"
GIT_REPO_URL = "mlflow.source.git.repoURL"
PARENT_RUN_ID = "mlflow.parentRunId"
RUN_NAME = "mlflow.runName"
NOTE = "mlflow.note.content"
DATASET_CONTEXT = "mlflow.data.context"

# -- keys in a dataset input's JSON profile (not tags, but shared the same way) -------------------
PROFILE_DIGEST = "tracked.digest"  # tracked's full fingerprint; MLflow's own digest is sampled

# -- tracked's run tags -------------------------------------------------------------------------
RUN_UUID = "tracked.run_uuid"  # the journal's id: finds a run again after a crash
NAME = "tracked.name"  # the run's own name (a function's name), which model names are made of
PROJECT = "tracked.project"
FUNCTION = "tracked.function"  # module:qualname of a decorated function
GIT_DIRTY = "tracked.git.dirty"  # "true" / "false" (also on versions; "unknown" without git)
ENV_PREFIX = "tracked.env."
ENV_GPU_COUNT = "tracked.env.gpu.count"  # only where CUDA devices are present
ENV_GPU_NAME = "tracked.env.gpu.name"  # distinct device names, ", "-joined
ENV_GPU_DRIVER = "tracked.env.gpu.driver"  # NVIDIA driver version (NVML)
ENV_CUDA = "tracked.env.cuda"  # torch's CUDA runtime, else the driver's CUDA version
KEY_METRIC = "tracked.key_metric"
MODEL_SERIALIZATION = "tracked.model.serialization"  # how a logged model was saved
MODEL_PREFIX = "tracked.model."  # tracked.model.flavor, tracked.model.<name>.serialization
MODEL_NAME = "tracked.model.name"
MODEL_VERSION = "tracked.model.version"
MODEL_CLASS = "tracked.model.class"  # module.qualname of the model object (runs and versions)
# A parent's children that ran in its process, counted when it ends (its status stays its own)
CHILDREN_TOTAL = "tracked.children.total"
CHILDREN_FAILED = "tracked.children.failed"
CHILDREN_KILLED = "tracked.children.killed"
CHILDREN_RUNNING = "tracked.children.running"  # still running when the parent ended
WORLD_SIZE = "tracked.world_size"  # processes of a distributed training (rank 0 records the run)
LAUNCH = "tracked.launch"  # the launch's shared id (all_ranks=True): other ranks find the run
RUN_KEY = "tracked.run_key"  # a user's key (a SLURM job id): resume="auto" finds the run by it
RESUMED = "tracked.resumed"  # how many times the run was resumed
# sweeps: the sweep's run and one child run per trial (Optuna, scikit-learn search, Ray Tune)
SWEEP_ENGINE = "tracked.sweep.engine"  # "optuna", "sklearn", "ray" on the sweep's run
SWEEP_BEST_TRIAL = "tracked.sweep.best_trial"  # the best trial's id (comma-joined: a Pareto front)
TRIAL = "tracked.trial"  # on a trial's run: its number, candidate index or trial id
TRIAL_STATE = "tracked.trial.state"  # COMPLETE, PRUNED or FAIL

# -- model-version tags (what registry listings read without touching runs) ---------------------
VERSION_RUN_ID = "tracked.run_id"
VERSION_PROJECT = "tracked.project"
VERSION_EXPERIMENT = "tracked.experiment"
VERSION_GIT_COMMIT = "tracked.git.commit"
FLAVOR = "tracked.flavor"
MODEL_CLASS = "tracked.model.class"  # module.qualname of the estimator (also on the run)
METRIC_PREFIX = "tracked.metric."
DATA_PREFIX = "tracked.data."
PROMOTION_PREFIX = "tracked.promotion."
PROMOTION_DECISION = "tracked.promotion.decision"
PROMOTION_REASON = "tracked.promotion.reason"
PROMOTION_TO = "tracked.promotion.to"
# tracked.promotion.<alias>.decision: the last verdict for that alias (see promotion_decision_for)

# -- registered-model tags --------------------------------------------------------------------
MANAGED = "tracked.managed"
ALIAS_HISTORY_PREFIX = "tracked.alias_history."
LOCK = "tracked.lock"
LOCK_OWNER = "tracked.lock.owner"


def model_tag(model: str, field: str) -> str:
    """`tracked.model.<field>` for the run's main model, `tracked.model.<model>.<field>` else."""
    return f"{MODEL_PREFIX}{field}" if model == "model" else f"{MODEL_PREFIX}{model}.{field}"


def git_dirty(tags: Mapping[str, str]) -> bool | None:
    """Whether the code had uncommitted changes: None when unknown (no git, or not recorded)."""
    value = tags.get(GIT_DIRTY)
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def git_commit(tags: Mapping[str, str]) -> str | None:
    """The commit a run (MLflow's tag) or a version (tracked's copy) was trained from."""
    return tags.get(GIT_COMMIT) or tags.get(VERSION_GIT_COMMIT) or None


def prefixed(tags: Mapping[str, str], prefix: str) -> dict[str, str]:
    """The tags under `prefix`, keyed by the rest of their name."""
    return {k[len(prefix) :]: v for k, v in tags.items() if k.startswith(prefix)}


def alias_history(tags: Mapping[str, str], alias: str) -> list[str]:
    """Versions that held `alias`, oldest first, from a registered model's tags."""
    try:
        history = json.loads(tags.get(ALIAS_HISTORY_PREFIX + alias, "[]"))
    except ValueError:
        return []
    return [str(v) for v in history] if isinstance(history, list) else []


def promotion_decision_for(alias: str) -> str:
    """`tracked.promotion.<alias>.decision`: a version's last verdict for one alias."""
    return f"{PROMOTION_PREFIX}{alias}.decision"


def metrics(tags: Mapping[str, str]) -> dict[str, float]:
    """The run metrics a version carries as `tracked.metric.<key>` tags; unreadable ones skipped."""
    out = {}
    for key, value in prefixed(tags, METRIC_PREFIX).items():
        try:
            out[key] = float(value)
        except ValueError:
            continue
    return out


def lock_owner(tags: Mapping[str, str]) -> str | None:
    """Who holds a registry lock (a registered model tagged `tracked.lock`); None if not a lock."""
    if tags.get(LOCK) != "true":
        return None
    return tags.get(LOCK_OWNER) or None
