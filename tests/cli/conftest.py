"""A registry for the CLI tests: real tracked trainings of small scikit-learn models."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import tracked

# Logged by every training below. Alphabetically `latency_ms` comes first and `tree_depth` is no
# known metric: the key metric must still be val_auc, and rmse must rank lower-first.
METRICS = ("latency_ms", "rmse", "train_acc", "tree_depth", "val_auc")


@dataclass
class Registry:
    uri: str
    experiment: str
    model: str
    run_ids: list[str]  # by version: run_ids[0] trained v1
    metrics: tuple[str, ...] = METRICS  # what each version logged


def train_versions(
    model: str, qualities: list[float], *, experiment: str | None = None, uri: str | None = None
) -> list[str]:
    """One real decorated training per quality; each registers the next version of `model`.

    Quality q logs val_auc=q and rmse=1-q, so the best version by val_auc is also the best by
    rmse (lower); latency_ms and tree_depth grow with the version.
    """
    from sklearn.linear_model import LogisticRegression

    rng = np.random.RandomState(0)
    X = rng.rand(60, 3)
    y = (X[:, 0] > 0.5).astype(int)

    @tracked.tracked_training(
        name="train", model_name=model, experiment=experiment, tracking_uri=uri
    )
    def train(X, y, *, C=1.0, quality=0.5, step=0):
        fitted = LogisticRegression(C=C).fit(X, y)
        metrics = {"val_auc": quality, "train_acc": fitted.score(X, y), "rmse": 1 - quality}
        return fitted, {**metrics, "latency_ms": 10.0 + step, "tree_depth": float(step)}

    run_ids = []
    for i, quality in enumerate(qualities):
        train(X, y, C=0.1 * (i + 1), quality=quality, step=i)
        run = tracked.last_run()
        assert run.model_version is not None, run
        run_ids.append(run.run_id)
    return run_ids


@pytest.fixture
def trainer() -> Callable[..., list[str]]:
    """`trainer(model, [qualities])`: real trainings that register versions of `model`."""
    return train_versions


@pytest.fixture(scope="module")
def registry(sqlite_uri: str) -> Registry:
    """Model `cli-...`: v1 val_auc 0.80, v2 0.90 (champion, by a policy), v3 0.85."""
    from tracked import PromotionPolicy, metric
    from tracked.registry.lifecycle import promote

    suffix = uuid.uuid4().hex[:8]
    experiment, model = f"cli-exp-{suffix}", f"cli-{suffix}"
    run_ids = train_versions(model, [0.80, 0.90, 0.85], experiment=experiment, uri=sqlite_uri)
    policy = PromotionPolicy(to="champion", when=[metric("val_auc") >= 0.85])
    decision = promote(model, 2, policy=policy, tracking_uri=sqlite_uri)
    assert decision.promoted
    return Registry(sqlite_uri, experiment, model, run_ids)
