"""A registry for the MCP tests: real tracked runs of small scikit-learn models."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import pytest

import tracked


@dataclass
class McpRegistry:
    uri: str
    experiment: str
    model: str
    run_ids: list[str]  # run_ids[0] trained v1


@pytest.fixture(scope="module")
def mcp_registry(sqlite_uri: str) -> McpRegistry:
    """Model `mcp-...`: v1 val_auc 0.7 (champion), v2 0.9; one more run without a model."""
    from sklearn.linear_model import LogisticRegression

    from tracked.registry.lifecycle import promote

    suffix = uuid.uuid4().hex[:8]
    experiment, model = f"mcp-exp-{suffix}", f"mcp-{suffix}"
    rng = np.random.RandomState(1)
    X = rng.rand(40, 2)
    y = (X[:, 1] > 0.5).astype(int)

    @tracked.tracked_training(
        name="train", model_name=model, experiment=experiment, tracking_uri=sqlite_uri
    )
    def train(X, y, *, quality):
        return LogisticRegression().fit(X, y), {"val_auc": quality}

    run_ids = []
    for quality in (0.7, 0.9):
        train(X, y, quality=quality)
        run_ids.append(tracked.last_run().run_id)
    promote(model, 1, tracking_uri=sqlite_uri)
    return McpRegistry(sqlite_uri, experiment, model, run_ids)
