"""MLflow 3's model entities: a tracked run's model is a logged model linked to its run, its
registered version is made from it, and the version's description tells the version's story."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

import tracked


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 4))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


def test_the_model_is_a_logged_model_linked_to_its_run_and_its_version(store) -> None:
    X, y = _data()

    @tracked.tracked_training(key_metric="acc")
    def churn(X, y, *, C=1.0):
        model = LogisticRegression(C=C).fit(X, y)
        return model, {"acc": model.score(X, y)}

    churn(X, y, C=0.5)
    run = tracked.last_run()
    stored = store.run(run.run_id)
    (logged,) = store.client.search_logged_models(
        experiment_ids=[stored.info.experiment_id],
        filter_string=f"source_run_id = '{run.run_id}'",
    )
    assert logged.name == "model" and "READY" in str(logged.status)
    assert logged.params["C"] == "0.5"  # the run's params on the model
    assert [m.key for m in logged.metrics] == ["acc"]  # ... and its metrics
    assert [o.model_id for o in stored.outputs.model_outputs] == [logged.model_id]
    version = store.client.get_model_version(run.model_name, run.model_version)
    assert version.run_id == run.run_id
    # Registered from the logged model: by reference where the registry can resolve it.
    assert version.source in (f"models:/{logged.model_id}", logged.artifact_location)
    assert f'"version": "{run.model_version}"' in logged.tags["mlflow.modelVersions"]
    assert version.tags["tracked.model.class"].endswith("LogisticRegression")
    assert version.tags["tracked.key_metric"] == "acc"
    assert stored.data.tags["tracked.model.id"] == logged.model_id


def test_the_version_description_holds_the_decision_data_and_code(store) -> None:
    X, y = _data()
    policy = tracked.PromotionPolicy(
        to="champion", when=[tracked.metric("acc") >= 0.5, tracked.metric("acc") <= 0.1]
    )

    @tracked.tracked_training(promote=policy)
    def described(X_train, y_train):
        model = LogisticRegression().fit(X_train, y_train)
        return model, {"acc": model.score(X_train, y_train)}

    described(X, y)
    run = tracked.last_run()
    version = store.client.get_model_version(run.model_name, run.model_version)
    text = version.description
    assert "**champion: refused**" in text
    assert "- pass acc >= 0.5" in text and "- FAIL acc <= 0.1" in text
    digest = tracked.fingerprint(X).digest
    assert f"`X_train` (training): `{digest}`" in text
    commit = store.run(run.run_id).data.tags.get("mlflow.source.git.commit")
    if commit:  # the test suite runs inside the project's git repository
        assert commit[:12] in text
    assert "`acc` = " in text
