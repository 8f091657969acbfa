"""Returned models are logged, registered under the naming convention, and load back."""

from __future__ import annotations

import numpy as np
import pytest

import tracked
from tracked.errors import AliasNotFoundError, ModelNotFoundError


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    X = rng.rand(200, 5)
    y = (X[:, 0] + 0.1 * rng.rand(200) > 0.55).astype(int)
    return X, y


def _sklearn_forest(X, y):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, y)


def _sklearn_pipeline(X, y):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)


def _xgb_booster(X, y):
    xgb = pytest.importorskip("xgboost")
    return xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(X, label=y), num_boost_round=5)


def _xgb_classifier(X, y):
    xgb = pytest.importorskip("xgboost")
    return xgb.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1).fit(X, y)


def _lgb_classifier(X, y):
    lgb = pytest.importorskip("lightgbm")
    return lgb.LGBMClassifier(n_estimators=5, num_leaves=4, verbose=-1, n_jobs=1).fit(X, y)


class Thresholder:
    """Not a known framework: logged through the generic pyfunc wrapper."""

    def __init__(self, cut: float) -> None:
        self.cut = cut

    def predict(self, X):
        return (np.asarray(X)[:, 0] > self.cut).astype(int)


def _custom(X, y):
    return Thresholder(0.5)


def _predict(model, X):
    if type(model).__name__ == "Booster" and type(model).__module__.startswith("xgboost"):
        import xgboost as xgb

        return model.predict(xgb.DMatrix(X))
    return model.predict(X)


FLAVORS = {
    "sklearn-forest": (_sklearn_forest, "sklearn"),
    "sklearn-pipeline": (_sklearn_pipeline, "sklearn"),
    "xgboost-booster": (_xgb_booster, "xgboost"),
    "xgboost-sklearn": (_xgb_classifier, "xgboost"),
    "lightgbm-sklearn": (_lgb_classifier, "lightgbm"),
    "pyfunc": (_custom, "pyfunc"),
}


@pytest.mark.parametrize("kind", list(FLAVORS))
def test_returned_model_registered_and_loads_by_alias_and_version(store, data, kind) -> None:
    make, flavor = FLAVORS[kind]
    X, y = data

    @tracked.tracked_training(name=f"train-{kind}")
    def train(X, y, seed=0):
        model = make(X, y)
        return model, {"acc": float(np.mean(_predict(model, X).round() == y))}

    model, metrics = train(X, y)
    run = tracked.last_run()
    assert run.model_name == f"proj-train-{kind}"  # the default "{project}-{name}"
    assert run.model_version == "1"
    assert run.model_uri == f"models:/proj-train-{kind}/1"
    store.client.set_registered_model_alias(run.model_name, "champion", "1")

    allow = True if flavor == "pyfunc" else None  # cloudpickle loads only when asked for
    for loaded in (
        tracked.load_model(f"{run.model_name}@champion", allow_pickle=allow),
        tracked.load_model(run.model_name, version=1, allow_pickle=allow),
        tracked.load_model(f"{run.model_name}@latest", allow_pickle=allow),
    ):
        assert type(loaded) is type(model)
        np.testing.assert_allclose(_predict(loaded, X), _predict(model, X))
    pyfunc = tracked.load_model(f"{run.model_name}@champion", as_pyfunc=True, allow_pickle=allow)
    np.testing.assert_allclose(np.asarray(pyfunc.predict(X)).ravel(), _predict(model, X).ravel())

    version = store.client.get_model_version(run.model_name, "1")
    assert version.run_id == run.run_id
    assert version.tags["tracked.run_id"] == run.run_id
    assert version.tags["tracked.flavor"] == flavor
    assert float(version.tags["tracked.metric.acc"]) == pytest.approx(metrics["acc"])
    assert version.tags["tracked.data.X"].startswith("xxh3-128:v1:")
    run_tags = store.run(run.run_id).data.tags
    assert run_tags["tracked.model.flavor"] == flavor
    assert run_tags["tracked.model.name"] == run.model_name


def test_versions_increment_and_git_tags(store, data) -> None:
    X, y = data

    @tracked.tracked_training(model_name="{project}-forest-{flavor}")
    def train(X, y):
        return _sklearn_forest(X, y)

    train(X, y)
    train(X, y)
    run = tracked.last_run()
    assert (run.model_name, run.model_version) == ("proj-forest-sklearn", "2")
    version = store.client.get_model_version("proj-forest-sklearn", "2")
    if run.git is not None:
        assert version.tags["tracked.git.commit"] == run.git.commit
        assert version.tags["tracked.git.dirty"] in ("true", "false")


def test_naming_from_configuration_and_tags(store, data) -> None:
    X, y = data
    tracked.configure(naming="{tags[team]}-{name}")

    @tracked.tracked_training(tags={"team": "Risk"})
    def churn(X, y):
        return _sklearn_pipeline(X, y)

    churn(X, y)
    assert tracked.last_run().model_name == "risk-churn"


def test_bad_template_keeps_model_logged_and_warns(store, data, caplog) -> None:
    X, y = data

    @tracked.tracked_training(model_name="{team}-x")
    def train(X, y):
        return _sklearn_pipeline(X, y)

    model = train(X, y)
    run = tracked.last_run()
    assert run.model_version is None
    assert "unknown field {team}" in caplog.text
    assert store.run(run.run_id).data.tags["tracked.model.flavor"] == "sklearn"
    assert model is not None


def test_register_false_logs_without_registering(store, data) -> None:
    X, y = data

    @tracked.tracked_training(register=False)
    def train(X, y):
        return _sklearn_pipeline(X, y)

    train(X, y)
    run = tracked.last_run()
    assert run.model_version is None
    experiment = store.client.get_run(run.run_id).info.experiment_id
    (logged,) = store.client.search_logged_models(
        experiment_ids=[experiment], filter_string=f"source_run_id = '{run.run_id}'"
    )
    assert logged.name == "model" and "READY" in str(logged.status)
    assert not store.client.search_model_versions(f"run_id = '{run.run_id}'")


def test_no_model_is_fine(store) -> None:
    @tracked.tracked_training
    def train():
        return {"acc": 1.0}

    train()
    run = tracked.last_run()
    assert run.status == "FINISHED" and run.model_version is None


def test_failed_run_logs_no_version(store, data) -> None:
    @tracked.tracked_training
    def train():
        tracked.current_run().log_model(_custom(*data))
        raise RuntimeError("diverged")

    with pytest.raises(RuntimeError):
        train()
    assert tracked.last_run().model_version is None


def test_run_block_log_model(store, data) -> None:
    X, y = data
    with tracked.run("block", model_name="block-model") as run:
        run.log_model(_sklearn_forest(X, y))
    assert (run.model_name, run.model_version) == ("block-model", "1")
    loaded = tracked.load_model("block-model@latest")
    np.testing.assert_allclose(loaded.predict(X), _sklearn_forest(X, y).predict(X))


def test_signature_from_training_data(store, data) -> None:
    X, y = data

    @tracked.tracked_training
    def train(X, y):
        return _sklearn_pipeline(X, y)

    train(X, y)
    pyfunc = tracked.load_model(f"{tracked.last_run().model_name}@latest", as_pyfunc=True)
    assert pyfunc.metadata.signature is not None
    assert list(pyfunc.metadata.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 5]


def test_load_errors_are_one_line(store, data) -> None:
    with pytest.raises(ModelNotFoundError, match="'nope'"):
        tracked.load_model("nope@champion")
    X, y = data
    with tracked.run("alias-less", model_name="alias-less") as run:
        run.log_model(_custom(X, y))
    with pytest.raises(AliasNotFoundError, match="no alias 'champion'"):
        tracked.load_model("alias-less@champion")
    with pytest.raises(ModelNotFoundError):
        tracked.load_model("alias-less", version=9)
