"""Model flavors: detection without imports, saving per flavor, loading back, one registry trip."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import mlflow.exceptions
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
import skops.io
import xgboost as xgb
import yaml
from numpy.testing import assert_allclose
from python_process import run_python
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from tracked.errors import AliasNotFoundError, ModelLoggingError, ModelNotFoundError
from tracked.models.flavors import (
    SavedModel,
    UnsafeModelError,
    detect_flavor,
    load_model,
    requirements_for,
    save_model,
)

RNG = np.random.default_rng(0)
X = RNG.normal(size=(60, 4))
Y = (X[:, 0] + X[:, 1] > 0).astype(int)
FRAME = pd.DataFrame(X, columns=["a", "b", "c", "d"])


class Custom:
    """Not a framework model: anything with predict is saved as a pyfunc."""

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = weights

    def predict(self, data: Any) -> np.ndarray:
        return np.asarray(data) @ self.weights


@dataclass
class Case:
    make: Callable[[], Any]
    flavor: str
    serialization: str
    model_file: str  # the serialized model inside the MLflow model directory
    data: Any = field(default_factory=lambda: X)

    def predict(self, model: Any) -> np.ndarray:
        """The model's own predictions (an XGBoost Booster only takes a DMatrix)."""
        if isinstance(model, xgb.Booster):
            return model.predict(xgb.DMatrix(self.data))
        return np.asarray(model.predict(self.data))


CASES = {
    "random_forest": Case(
        lambda: RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y),
        "sklearn",
        "skops",
        "model.skops",
    ),
    "pipeline": Case(
        lambda: make_pipeline(StandardScaler(), LogisticRegression()).fit(FRAME, Y),
        "sklearn",
        "skops",
        "model.skops",
        data=FRAME,
    ),
    "pipeline_with_lambda": Case(
        lambda: make_pipeline(FunctionTransformer(lambda a: a * 2), LogisticRegression()).fit(X, Y),
        "sklearn",
        "cloudpickle",
        "model.pkl",
    ),
    "xgboost_booster": Case(
        lambda: xgb.train(
            {"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(X, label=Y), 5
        ),
        "xgboost",
        "xgboost-ubj",
        "model.ubj",
    ),
    "xgb_classifier": Case(
        lambda: xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(X, Y),
        "xgboost",
        "xgboost-ubj",
        "model.ubj",
    ),
    "lightgbm_booster": Case(
        lambda: lgb.train(
            {"objective": "binary", "verbose": -1, "min_data_in_leaf": 5},
            lgb.Dataset(X, label=Y),
            5,
        ),
        "lightgbm",
        "lightgbm-text",
        "model.lgb",
    ),
    "lgbm_classifier": Case(
        lambda: lgb.LGBMClassifier(n_estimators=5, min_child_samples=5, verbose=-1).fit(X, Y),
        "lightgbm",
        "skops",
        "model.skops",
    ),
    "custom_predict": Case(
        lambda: Custom(np.array([1.0, -2.0, 0.5, 3.0])), "pyfunc", "pyfunc-cloudpickle", ""
    ),
}


def read_mlmodel(path: str) -> dict[str, Any]:
    return yaml.safe_load(Path(path, "MLmodel").read_text())


def without_mlflow(lines: list[str] | tuple[str, ...]) -> list[str]:
    return [line for line in lines if not line.startswith("mlflow")]


@pytest.mark.parametrize("name", list(CASES))
def test_save_and_load_back_natively_and_as_pyfunc(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    model = case.make()
    assert detect_flavor(model) == case.flavor

    saved = save_model(model, str(tmp_path / "model"), input_example=case.data)

    assert (saved.flavor, saved.serialization, saved.signature) == (
        case.flavor,
        case.serialization,
        True,
    )
    files = set(os.listdir(saved.path))
    assert {"MLmodel", "requirements.txt", "input_example.json"} <= files
    if case.model_file:
        assert case.model_file in files
    # Never pickle where a safe format exists; the lambda pipeline and the pyfunc must pickle.
    pickled = {"model.pkl", "python_model.pkl"} & files
    assert bool(pickled) == (case.serialization in ("cloudpickle", "pyfunc-cloudpickle"))

    expected = case.predict(model)
    allow = True if pickled else None  # a pickled model loads only when the caller opts in
    native = load_model(saved.path, allow_pickle=allow)
    assert type(native) is type(model)
    assert_allclose(case.predict(native), expected)
    pyfunc = load_model(saved.path, as_pyfunc=True, allow_pickle=allow)
    assert isinstance(pyfunc, mlflow.pyfunc.PyFuncModel)
    assert_allclose(np.asarray(pyfunc.predict(case.data)).ravel(), expected.ravel())


@pytest.mark.parametrize("name", list(CASES))
def test_requirements_txt_is_exactly_what_was_passed(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    saved = save_model(case.make(), str(tmp_path / "model"))

    written = Path(saved.path, "requirements.txt").read_text().split()
    assert without_mlflow(written) == without_mlflow(saved.requirements)
    assert list(saved.requirements) == requirements_for(case.flavor)
    assert f"mlflow=={importlib.metadata.version('mlflow')}" in written


def test_requirements_pin_the_installed_versions() -> None:
    pins = requirements_for("sklearn")
    for dist in ("scikit-learn", "skops", "cloudpickle", "numpy", "mlflow"):
        assert f"{dist}=={importlib.metadata.version(dist)}" in pins
    assert f"xgboost=={importlib.metadata.version('xgboost')}" in requirements_for("xgboost")
    assert f"lightgbm=={importlib.metadata.version('lightgbm')}" in requirements_for("lightgbm")
    assert not any(p.startswith(("scikit-learn", "skops")) for p in requirements_for("pyfunc"))
    with pytest.raises(ModelLoggingError, match="unknown flavor"):
        requirements_for("torch")


def test_skops_trusts_exactly_the_types_the_model_holds(tmp_path: Path) -> None:
    model = CASES["random_forest"].make()
    saved = save_model(model, str(tmp_path / "model"))

    conf = read_mlmodel(saved.path)["flavors"]["sklearn"]
    assert conf["serialization_format"] == "skops"
    assert conf["skops_trusted_types"] == skops.io.get_untrusted_types(data=skops.io.dumps(model))
    assert "sklearn.tree._tree.Tree" in conf["skops_trusted_types"]
    # skops alone refuses the file; load_model passes the saved list without being told.
    skops_file = str(Path(saved.path, "model.skops"))
    with pytest.raises(skops.io.exceptions.UntrustedTypesFoundException):
        skops.io.load(skops_file)
    assert_allclose(load_model(saved.path).predict(X), model.predict(X))


def test_lambda_pipeline_falls_back_to_cloudpickle(tmp_path: Path) -> None:
    saved = save_model(CASES["pipeline_with_lambda"].make(), str(tmp_path / "model"))

    conf = read_mlmodel(saved.path)["flavors"]["sklearn"]
    assert (saved.serialization, conf["serialization_format"]) == ("cloudpickle", "cloudpickle")
    assert not Path(saved.path, "model.skops").exists()


def test_input_example_keeps_five_rows_and_gives_a_signature(tmp_path: Path) -> None:
    saved = save_model(CASES["pipeline"].make(), str(tmp_path / "model"), input_example=FRAME)

    example = json.loads(Path(saved.path, "input_example.json").read_text())
    assert len(example["data"]) == 5
    signature = read_mlmodel(saved.path)["signature"]
    assert [c["name"] for c in json.loads(signature["inputs"])] == ["a", "b", "c", "d"]


def test_no_example_or_a_failing_one_saves_without_signature(tmp_path: Path) -> None:
    model = CASES["random_forest"].make()
    plain = save_model(model, str(tmp_path / "plain"))
    wrong = save_model(model, str(tmp_path / "wrong"), input_example=np.ones((3, 7)))

    for saved in (plain, wrong):
        assert saved.signature is False
        assert "signature" not in read_mlmodel(saved.path)
        assert not Path(saved.path, "input_example.json").exists()


def test_save_shows_no_warnings_and_no_mlflow_log_lines(tmp_path: Path) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("mlflow").addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for name in ("pipeline_with_lambda", "custom_predict", "lgbm_classifier"):
                save_model(CASES[name].make(), str(tmp_path / name), input_example=X)
    finally:
        logging.getLogger("mlflow").removeHandler(handler)
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in records] == []


def test_detect_flavor() -> None:
    assert detect_flavor(StandardScaler()) == "sklearn"  # an estimator without predict
    assert detect_flavor(CASES["xgb_classifier"].make()) == "xgboost"  # not "sklearn"
    assert detect_flavor(CASES["lgbm_classifier"].make()) == "lightgbm"
    assert detect_flavor(Custom(np.ones(4))) == "pyfunc"
    assert detect_flavor(object()) is None
    assert detect_flavor(RandomForestClassifier) is None  # a class, not a model
    assert detect_flavor(Custom) is None


def test_detect_flavor_imports_no_framework() -> None:
    code = (
        "import sys, tracked.models.flavors as f\n"
        "class M:\n    def predict(self, x): return x\n"
        "assert f.detect_flavor(object()) is None and f.detect_flavor(M()) == 'pyfunc'\n"
        "loaded = [m for m in ('sklearn', 'xgboost', 'lightgbm', 'mlflow') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    run_python(code, timeout=60)


def test_pyfunc_model_loads_without_tracked(tmp_path: Path) -> None:
    # A serving image installs requirements.txt, which has no `tracked`: the wrapper class is
    # saved by value, so loading must not import it.
    code = (
        "import sys, numpy as np\n"
        "from tracked.models.flavors import save_model\n"
        "class Doubler:\n    def predict(self, x): return np.asarray(x) * 2\n"
        f"save_model(Doubler(), {str(tmp_path / 'model')!r})\n"
        "for name in [m for m in sys.modules if m == 'tracked' or m.startswith('tracked.')]:\n"
        "    sys.modules[name] = None  # any import of tracked now fails\n"
        "import mlflow.pyfunc\n"
        f"model = mlflow.pyfunc.load_model({str(tmp_path / 'model')!r})\n"
        "assert model.predict(np.ones((2, 3))).tolist() == [[2.0] * 3] * 2\n"
    )
    run_python(code, timeout=120)


class Locked:
    def __init__(self) -> None:
        self.lock = threading.Lock()

    def predict(self, data: Any) -> Any:
        return data


class Streaming:
    def __init__(self) -> None:
        self.rows = (i for i in range(3))

    def predict(self, data: Any) -> Any:
        return data


@pytest.mark.parametrize(
    ("make", "cause"),
    [
        (Locked, "cannot pickle '_thread.lock' object"),
        (Streaming, "cannot pickle 'generator' object"),
    ],
)
def test_unpicklable_model_raises_and_leaves_nothing(
    make: Callable[[], Any], cause: str, tmp_path: Path
) -> None:
    target = tmp_path / "model"
    with pytest.raises(ModelLoggingError, match=cause) as raised:
        save_model(make(), str(target))
    assert "\n" not in str(raised.value)
    assert raised.value.what.endswith(make.__name__)
    assert not target.exists()


def test_an_exception_a_library_left_behind_is_not_named_as_the_models_cause(
    tmp_path: Path,
) -> None:
    """CatBoost leaves the exception of a callback that raised as the thread's "being handled"
    exception; Python then makes it the context of everything raised next in that thread. In a
    thread of its own, so the leak stays there."""
    from catboost import CatBoostClassifier

    class Diverges:
        def after_iteration(self, info: Any) -> bool:
            if info.iteration == 2:
                raise RuntimeError("a callback of an earlier training failed")
            return True

    X = np.random.default_rng(0).normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    seen: dict[str, Any] = {}

    def in_thread() -> None:
        with contextlib.suppress(Exception):  # CatBoostError, wrapping the callback's
            CatBoostClassifier(iterations=5, verbose=0, thread_count=1).fit(
                X, y, callbacks=[Diverges()]
            )
        seen["leaked"] = sys.exc_info()[1]  # CatBoost's leak: still "being handled" here
        try:
            save_model(Locked(), str(tmp_path / "model"))
        except ModelLoggingError as exc:
            seen["error"] = exc

    worker = threading.Thread(target=in_thread)
    worker.start()
    worker.join()

    assert isinstance(seen["leaked"], RuntimeError), "CatBoost no longer leaks: test is moot"
    assert "cannot pickle '_thread.lock' object" in str(seen["error"])
    assert "earlier training" not in str(seen["error"])


def test_unpicklable_sklearn_model_raises(tmp_path: Path) -> None:
    model = CASES["pipeline"].make()
    model.lock_ = threading.Lock()  # neither skops nor cloudpickle can save this
    with pytest.raises(ModelLoggingError, match="cannot be saved as sklearn: TypeError"):
        save_model(model, str(tmp_path / "model"))
    assert not (tmp_path / "model").exists()


def test_what_cannot_be_saved_at_all(tmp_path: Path) -> None:
    with pytest.raises(ModelLoggingError, match="has no predict method"):
        save_model(object(), str(tmp_path / "model"))
    with pytest.raises(ModelLoggingError, match="unknown flavor 'onnx'"):
        save_model(Custom(np.ones(4)), str(tmp_path / "model"), flavor="onnx")
    (tmp_path / "taken").mkdir()
    with pytest.raises(ModelLoggingError, match="already exists"):
        save_model(Custom(np.ones(4)), str(tmp_path / "taken"))


def test_round_trip_through_a_sqlite_registry(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path.as_posix()}/m.db"
    client = mlflow.MlflowClient(uri)
    experiment_id = client.create_experiment("models", artifact_location=str(tmp_path / "art"))
    run = client.create_run(experiment_id)
    run_id = run.info.run_id
    model = CASES["xgb_classifier"].make()
    saved: SavedModel = save_model(model, str(tmp_path / "staging" / "model"), input_example=X)
    client.log_artifacts(run_id, saved.path, "model")
    client.set_terminated(run_id)

    client.create_registered_model("m")
    # Both source forms work with client-only use: `runs:/` (resolved through the tracking
    # store at load time) and the run's artifact URI (self-contained).
    by_run = client.create_model_version("m", source=f"runs:/{run_id}/model", run_id=run_id)
    by_uri = client.create_model_version(
        "m", source=f"{run.info.artifact_uri}/model", run_id=run_id
    )
    assert [(str(v.version), v.status) for v in (by_run, by_uri)] == [
        ("1", "READY"),
        ("2", "READY"),
    ]
    client.set_registered_model_alias("m", "champion", "2")

    expected = model.predict(X)
    for model_uri in ("models:/m/1", "models:/m/2", "models:/m@champion", f"runs:/{run_id}/model"):
        loaded = load_model(model_uri, tracking_uri=uri)
        assert isinstance(loaded, xgb.XGBClassifier), model_uri
        assert_allclose(loaded.predict(X), expected)
    pyfunc = load_model("models:/m@champion", as_pyfunc=True, tracking_uri=uri)
    assert_allclose(pyfunc.predict(X), expected)

    with pytest.raises(ModelNotFoundError):
        load_model("models:/m/9", tracking_uri=uri)
    with pytest.raises(ModelNotFoundError):
        load_model("models:/nope@champion", tracking_uri=uri)
    with pytest.raises(AliasNotFoundError):
        load_model("models:/m@nope", tracking_uri=uri)


# --- issue 13, finding 14: loading never unpickles or runs artifact code unasked ------------


@pytest.mark.parametrize("name", ["pipeline_with_lambda", "custom_predict"])
def test_finding_14_pickled_models_are_refused_unless_asked_for(
    name: str, tmp_path: Path, monkeypatch
) -> None:
    case = CASES[name]
    model = case.make()
    saved = save_model(model, str(tmp_path / "model"))
    monkeypatch.delenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", raising=False)

    for as_pyfunc in (False, True):
        with pytest.raises(UnsafeModelError) as refused:
            load_model(saved.path, as_pyfunc=as_pyfunc)
        message = str(refused.value)
        assert "allow_pickle=True" in message
        assert "MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true" in message
        assert "\n" not in message
    assert_allclose(case.predict(load_model(saved.path, allow_pickle=True)), case.predict(model))
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")  # set explicitly: consent
    assert_allclose(case.predict(load_model(saved.path)), case.predict(model))
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    with pytest.raises(UnsafeModelError):
        load_model(saved.path)


def test_finding_14_models_saved_elsewhere_with_pickle_are_refused(tmp_path: Path) -> None:
    model = CASES["random_forest"].make()
    mlflow.sklearn.save_model(model, str(tmp_path / "pickle"), serialization_format="pickle")
    with pytest.raises(UnsafeModelError, match="it is a pickle file"):
        load_model(str(tmp_path / "pickle"))
    mlflow.pyfunc.save_model(str(tmp_path / "pyfunc"), python_model=_Echo())
    with pytest.raises(UnsafeModelError, match="cloudpickled Python model"):
        load_model(str(tmp_path / "pyfunc"))


class _Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: list[str], params=None) -> list[str]:
        return model_input


@pytest.mark.parametrize("name", ["random_forest", "pipeline", "lgbm_classifier"])
def test_finding_14_skops_models_load_with_pickle_disallowed(
    name: str, tmp_path: Path, monkeypatch
) -> None:
    case = CASES[name]
    model = case.make()
    saved = save_model(model, str(tmp_path / "model"))
    assert saved.serialization == "skops"
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    # MLflow's own loader refuses every skops file then; tracked checks the trusted list itself
    with pytest.raises(mlflow.exceptions.MlflowException, match="disallowed"):
        mlflow.pyfunc.load_model(saved.path)
    assert_allclose(case.predict(load_model(saved.path)), case.predict(model))


def test_finding_14_a_skops_file_trusting_foreign_types_is_refused(tmp_path: Path) -> None:
    saved = save_model(CASES["random_forest"].make(), str(tmp_path / "model"))
    mlmodel = Path(saved.path, "MLmodel")
    conf = yaml.safe_load(mlmodel.read_text())
    conf["flavors"]["sklearn"]["skops_trusted_types"] += ["builtins.eval", "os.system"]
    mlmodel.write_text(yaml.safe_dump(conf))

    for as_pyfunc in (False, True):
        with pytest.raises(UnsafeModelError, match=r"trusts types outside .*'builtins.eval'"):
            load_model(saved.path, as_pyfunc=as_pyfunc)


def test_finding_14_an_xgboost_model_class_outside_xgboost_is_refused(tmp_path: Path) -> None:
    saved = save_model(CASES["xgb_classifier"].make(), str(tmp_path / "model"))
    mlmodel = Path(saved.path, "MLmodel")
    text = mlmodel.read_text().replace("xgboost.sklearn.XGBClassifier", "subprocess.Popen")
    mlmodel.write_text(text)
    with pytest.raises(UnsafeModelError, match=r"'subprocess\.Popen', which is not XGBoost's"):
        load_model(saved.path)
