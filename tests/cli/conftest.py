"""A registry for the CLI tests: real tracked trainings of small scikit-learn models."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import tracked


@dataclass
class Registry:
    uri: str
    experiment: str
    model: str
    run_ids: list[str]  # by version: run_ids[0] trained v1


def train_versions(
    model: str, qualities: list[float], *, experiment: str | None = None, uri: str | None = None
) -> list[str]:
    """One real decorated training per quality; each registers the next version of `model`."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.RandomState(0)
    X = rng.rand(60, 3)
    y = (X[:, 0] > 0.5).astype(int)

    @tracked.tracked_training(
        name="train", model_name=model, experiment=experiment, tracking_uri=uri
    )
    def train(X, y, *, C=1.0, quality=0.5):
        fitted = LogisticRegression(C=C).fit(X, y)
        return fitted, {"val_auc": quality, "train_acc": fitted.score(X, y)}

    run_ids = []
    for i, quality in enumerate(qualities):
        train(X, y, C=0.1 * (i + 1), quality=quality)
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
