"""PyTorch modules: a safetensors state dict first, torch.export next, pickle last."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pytest
import yaml
from numpy.testing import assert_allclose
from python_process import run_python

torch = pytest.importorskip("torch")
nn = torch.nn

from tiny_torch_models import MLP, Forgetful, Lying, Tied  # noqa: E402

from tracked.models.flavors import (  # noqa: E402
    UnsafeModelError,
    detect_flavor,
    load_model,
    requirements_for,
    save_model,
)

HERE = Path(__file__).resolve().parent
torch.manual_seed(0)
X = torch.randn(64, 4)
Y = (X[:, 0] - X[:, 1] > 0).long()


def fit(model: nn.Module, steps: int = 20) -> nn.Module:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(X), Y).backward()
        optimizer.step()
    return model


def outputs(model: nn.Module, data: torch.Tensor = X) -> np.ndarray:
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(data).numpy()
    model.train(was)
    return out


def mlmodel(path: str) -> dict:
    return yaml.safe_load(Path(path, "MLmodel").read_text())


def test_state_dict_round_trip_natively_and_as_pyfunc(tmp_path: Path, monkeypatch) -> None:
    model = fit(MLP(4))
    saved = save_model(model, str(tmp_path / "m"), input_example=X)

    assert (saved.flavor, saved.serialization, saved.note) == ("pytorch", "torch-state-dict", None)
    files = {str(p.relative_to(saved.path)) for p in Path(saved.path).rglob("*") if p.is_file()}
    assert {"data/model.safetensors", "code/tracked_pyfunc_v1.py", "MLmodel"} <= files
    assert not [f for f in files if f.endswith((".pkl", ".pth", ".pt"))]
    conf = mlmodel(saved.path)["flavors"]["tracked_pytorch"]
    assert conf["class"] == f"{MLP.__module__}:MLP"
    assert conf["config"] == {"d_in": 4, "hidden": 8, "d_out": 2, "dropout": 0.0}
    assert conf["torch_version"] == torch.__version__
    signature = mlmodel(saved.path)["signature"]
    assert '"shape": [-1, 4]' in signature["inputs"] and '"float32"' in signature["inputs"]

    expected = outputs(model)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")  # nothing unpickled
    native = load_model(saved.path)
    assert type(native) is MLP and not native.training
    assert_allclose(outputs(native), expected)
    assert_allclose(load_model(saved.path, as_pyfunc=True).predict(X.numpy()), expected)
    assert_allclose(mlflow.pyfunc.load_model(saved.path).predict(X.numpy()), expected)
    assert type(mlflow.pyfunc.load_model(saved.path).get_raw_model()) is MLP


def test_saving_leaves_the_modules_own_mode_and_uses_eval_mode(tmp_path: Path) -> None:
    model = fit(MLP(4, dropout=0.5)).train()
    saved = save_model(model, str(tmp_path / "m"), input_example=X)

    assert model.training and all(m.training for m in model.modules())
    pyfunc = mlflow.pyfunc.load_model(saved.path)
    assert_allclose(pyfunc.predict(X.numpy()), outputs(model))  # no dropout in predictions


def test_dataframe_input_meets_a_float32_module(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    model = fit(MLP(4))
    saved = save_model(model, str(tmp_path / "m"))  # no example: no signature to enforce
    frame = pd.DataFrame(X.numpy().astype("float64"), columns=list("abcd"))
    # a frame's values arrive column-major: another matmul kernel, rounding differs in the 7th digit
    predicted = mlflow.pyfunc.load_model(saved.path).predict(frame)
    assert_allclose(predicted, outputs(model), rtol=1e-5, atol=1e-6)


def test_a_default_not_kept_on_the_module_is_verified_with_the_example(tmp_path: Path) -> None:
    model = fit(Forgetful(4, scale=1.0))
    without = save_model(model, str(tmp_path / "plain"))
    with_example = save_model(model, str(tmp_path / "example"), input_example=X)

    assert without.serialization == "torch-pickle"
    assert "scale not found on the module" in str(without.note)
    assert with_example.serialization == "torch-state-dict"
    assert_allclose(outputs(load_model(with_example.path)), outputs(model))


def test_a_default_that_was_not_the_value_used_is_caught(tmp_path: Path) -> None:
    model = fit(Forgetful(4, scale=3.0))
    saved = save_model(model, str(tmp_path / "m"), input_example=X)

    assert saved.serialization == "torch-export"
    assert "predicts differently" in str(saved.note)
    assert_allclose(load_model(saved.path)(X).detach().numpy(), outputs(model), rtol=1e-6)


def test_an_attribute_that_lies_about_the_constructor_is_caught(tmp_path: Path) -> None:
    model = fit(Lying(4, hidden=3))
    saved = save_model(model, str(tmp_path / "m"), input_example=X)

    assert saved.serialization == "torch-export"
    assert "body.weight" in str(saved.note)


def test_tied_weights_stay_tied(tmp_path: Path) -> None:
    model = Tied(10, 4)
    ids = torch.randint(0, 10, (6, 3))
    saved = save_model(model, str(tmp_path / "m"), input_example=ids)

    assert saved.serialization == "torch-state-dict"
    loaded = load_model(saved.path)
    assert loaded.out.weight is loaded.embed.weight
    assert_allclose(outputs(loaded, ids), outputs(model, ids))
    assert_allclose(mlflow.pyfunc.load_model(saved.path).predict(ids.numpy()), outputs(model, ids))


def test_float64_module_comes_back_float64(tmp_path: Path) -> None:
    model = MLP(4).double()
    data = X.double()
    saved = save_model(model, str(tmp_path / "m"), input_example=data)

    assert saved.serialization == "torch-state-dict"
    assert mlmodel(saved.path)["flavors"]["tracked_pytorch"]["dtype"] == "torch.float64"
    loaded = load_model(saved.path)
    assert next(loaded.parameters()).dtype == torch.float64
    assert_allclose(outputs(loaded, data), outputs(model, data))


def test_sequential_with_an_example_is_exported(tmp_path: Path, monkeypatch) -> None:
    model = fit(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
    saved = save_model(model, str(tmp_path / "m"), input_example=X)

    assert saved.serialization == "torch-export"
    assert "takes *args" in str(saved.note)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    loaded = load_model(saved.path)  # MLflow's check finds the pt2 archive free of pickle
    assert_allclose(loaded(X).detach().numpy(), outputs(model), rtol=1e-6)
    pyfunc = load_model(saved.path, as_pyfunc=True)
    assert_allclose(pyfunc.predict(X.numpy()), outputs(model), rtol=1e-6)


def test_pickle_fallback_is_refused_unless_asked_for(tmp_path: Path, monkeypatch) -> None:
    model = fit(nn.Sequential(nn.Linear(4, 2)))
    saved = save_model(model, str(tmp_path / "m"))  # no example: nothing to export with
    assert saved.serialization == "torch-pickle"
    assert mlmodel(saved.path)["metadata"]["tracked_serialization"] == "torch-pickle"

    for as_pyfunc in (False, True):
        with pytest.raises(UnsafeModelError, match=r"pickled PyTorch module.*allow_pickle=True"):
            load_model(saved.path, as_pyfunc=as_pyfunc)
    assert_allclose(outputs(load_model(saved.path, allow_pickle=True)), outputs(model))
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")  # explicit consent
    assert_allclose(outputs(load_model(saved.path)), outputs(model))


def test_a_class_defined_in_a_function_is_not_rebuilt(tmp_path: Path) -> None:
    class Local(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(4, 2)

        def forward(self, x):
            return self.linear(x)

    saved = save_model(Local(), str(tmp_path / "m"), input_example=X)
    assert saved.serialization == "torch-export"
    assert "defined in a function" in str(saved.note)


def test_a_changed_loader_or_extra_code_is_refused(tmp_path: Path) -> None:
    model = fit(MLP(4))
    changed = save_model(model, str(tmp_path / "changed"), input_example=X)
    extra = save_model(model, str(tmp_path / "extra"), input_example=X)
    with open(Path(changed.path, "code", "tracked_pyfunc_v1.py"), "a") as f:
        f.write("\nimport os  # planted\n")
    Path(extra.path, "code", "numpy.py").write_text("raise SystemExit('planted')\n")

    for saved in (changed, extra):
        with pytest.raises(UnsafeModelError, match="not tracked's tracked_pyfunc_v1 loader"):
            load_model(saved.path, as_pyfunc=True)
        # the native load reads weights and JSON with tracked's own loader: nothing to run
        assert_allclose(outputs(load_model(saved.path)), outputs(model))


def test_the_class_named_in_mlmodel_must_be_a_module(tmp_path: Path) -> None:
    saved = save_model(fit(MLP(4)), str(tmp_path / "m"), input_example=X)
    text = Path(saved.path, "MLmodel").read_text()
    Path(saved.path, "MLmodel").write_text(text.replace(f"{MLP.__module__}:MLP", "os:system"))
    with pytest.raises(TypeError, match=r"os:system is not a torch\.nn\.modules\.module\.Module"):
        load_model(saved.path)


def test_requirements_pin_torch_as_pypi_knows_it() -> None:
    installed = importlib.metadata.version("torch")
    pins = requirements_for("pytorch")
    assert f"torch=={installed.partition('+')[0]}" in pins
    assert not any("+" in pin for pin in pins)
    assert f"safetensors=={importlib.metadata.version('safetensors')}" in pins


def test_detect_flavor_of_modules() -> None:
    assert detect_flavor(MLP(4)) == "pytorch"
    assert detect_flavor(nn.Sequential()) == "pytorch"
    assert detect_flavor(MLP) is None


def test_state_dict_model_serves_where_tracked_is_not_installed(tmp_path: Path) -> None:
    model = fit(MLP(4))
    saved = save_model(model, str(tmp_path / "m"), input_example=X)
    np.save(tmp_path / "x.npy", X.numpy())
    np.save(tmp_path / "expected.npy", outputs(model))
    code = (
        "import sys, numpy as np\n"
        "sys.modules['tracked'] = None  # any import of tracked now fails\n"
        "import mlflow.pyfunc\n"
        f"model = mlflow.pyfunc.load_model({saved.path!r})\n"
        f"got = model.predict(np.load({str(tmp_path / 'x.npy')!r}))\n"
        f"np.testing.assert_allclose(got, np.load({str(tmp_path / 'expected.npy')!r}))\n"
    )
    run_python(code, path=HERE, timeout=300)  # the class comes from where a serving image has it


def test_a_module_logged_in_a_run_block_registers_and_loads(store) -> None:
    from torch.utils.data import DataLoader, TensorDataset

    import tracked

    loader = DataLoader(TensorDataset(X, Y), batch_size=16, shuffle=True)
    model = fit(MLP(4))
    with tracked.run("torch-block", model_name="torch-mlp") as run:
        run.log_input(loader, "train")
        run.log_model(model, input_example=loader)
    assert (run.model_name, run.model_version) == ("torch-mlp", "1")
    tags = store.run(run.run_id).data.tags
    assert tags["tracked.model.flavor"] == "pytorch"
    assert tags["tracked.model.serialization"] == "torch-state-dict"
    loaded = tracked.load_model("torch-mlp@latest")
    assert type(loaded) is MLP
    assert_allclose(outputs(loaded), outputs(model))
    pyfunc = tracked.load_model("torch-mlp@latest", as_pyfunc=True)
    assert pyfunc.metadata.get_input_schema().inputs[0].shape == (-1, 4)
    assert_allclose(pyfunc.predict(X.numpy()), outputs(model))


def test_a_lightning_module_is_rebuilt_from_its_hparams(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    from tiny_lightning_models import LitRegressor

    model = LitRegressor(4, hidden=6)
    saved = save_model(model, str(tmp_path / "m"))  # no example: every argument is in hparams

    assert saved.serialization == "torch-state-dict", saved.note
    conf = mlmodel(saved.path)["flavors"]["tracked_pytorch"]
    assert conf["config"] == {"d_in": 4, "hidden": 6, "lr": 0.01}
    loaded = load_model(saved.path)
    assert type(loaded) is LitRegressor and loaded.hparams["hidden"] == 6
    assert_allclose(outputs(loaded), outputs(model))
