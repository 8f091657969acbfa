"""Input examples: the rows the model takes, from the data arguments, read without side effects."""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import tracked
from tracked.models.example import ROWS, input_example, model_input_columns
from tracked.models.flavors import save_model

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset  # noqa: E402

RNG = np.random.default_rng(0)
FRAME = pd.DataFrame(RNG.normal(size=(50, 3)), columns=["a", "b", "c"])
FRAME["target"] = (FRAME["a"] > 0).astype(int)
FEATURES = FRAME.drop(columns="target")


def fitted_models() -> dict[str, object]:
    y = FRAME["target"]
    return {
        "sklearn": make_pipeline(StandardScaler(), LogisticRegression()).fit(FEATURES, y),
        "xgb_booster": xgb.train({"max_depth": 2}, xgb.DMatrix(FEATURES, label=y), 2),
        "xgb_sklearn": xgb.XGBClassifier(n_estimators=2).fit(FEATURES, y),
        "lgb_booster": lgb.train(
            {"verbose": -1, "min_data_in_leaf": 5}, lgb.Dataset(FEATURES, label=y), 2
        ),
        "lgb_sklearn": lgb.LGBMClassifier(n_estimators=2, verbose=-1).fit(FEATURES, y),
    }


@pytest.mark.parametrize("name", list(fitted_models()))
def test_the_models_own_columns_keep_the_label_out(name: str) -> None:
    model = fitted_models()[name]
    assert model_input_columns(model) == ["a", "b", "c"]
    example = input_example({"df": FRAME}, model=model)
    assert list(example.columns) == ["a", "b", "c"] and len(example) == ROWS


def test_reordered_frames_follow_the_models_order() -> None:
    model = fitted_models()["sklearn"]
    example = input_example({"df": FRAME[["target", "c", "a", "b"]]}, model=model)
    assert list(example.columns) == ["a", "b", "c"]


def test_generated_names_fall_back_to_exclude_columns() -> None:
    # fitted on an array: LightGBM calls the inputs Column_0..., which the frame does not have
    booster = lgb.train(
        {"verbose": -1, "min_data_in_leaf": 5},
        lgb.Dataset(FEATURES.to_numpy(), label=FRAME["target"]),
        2,
    )
    assert input_example({"df": FRAME}, model=booster).shape == (ROWS, 4)
    example = input_example({"df": FRAME}, model=booster, exclude_columns=("target",))
    assert list(example.columns) == ["a", "b", "c"]


def test_preferred_names_then_the_first_usable_argument() -> None:
    labels = np.arange(50)
    assert input_example({"y": labels, "X": FEATURES.to_numpy()}).shape == (ROWS, 3)
    assert input_example({"y": labels}) is None  # 1-D: most likely the labels
    images = torch.zeros(10, 1, 4, 4)
    assert input_example({"images": images}).shape == (ROWS, 1, 4, 4)
    assert isinstance(input_example({"images": images}), np.ndarray)
    assert input_example({"y": torch.zeros(10)}) is None


X = torch.arange(40, dtype=torch.float32).reshape(20, 2)
Y = torch.arange(20) % 2


def test_a_loader_gives_its_first_rows_without_touching_its_sampler_or_the_rng() -> None:
    loader = DataLoader(TensorDataset(X, Y), batch_size=8, shuffle=True, num_workers=2)
    state = torch.get_rng_state()
    example = input_example({"train": loader})
    assert torch.equal(torch.get_rng_state(), state)  # no shuffle seed was drawn
    np.testing.assert_array_equal(example, X[:ROWS].numpy())
    np.testing.assert_array_equal(input_example({"ds": TensorDataset(X, Y)}), X[:ROWS].numpy())


class Dicts(Dataset):
    def __len__(self) -> int:
        return 20

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": torch.full((3,), i), "labels": torch.tensor(i % 2)}


class Once(IterableDataset):
    def __init__(self) -> None:
        self.read = 0

    def __iter__(self):
        for i in range(5):
            self.read += 1
            yield torch.full((2,), float(i))


def test_dict_batches_and_streams() -> None:
    example = input_example({"train": DataLoader(Dicts(), batch_size=4)})
    assert set(example) == {"input_ids"}  # labels are not an input
    assert example["input_ids"].shape == (4, 3)  # one batch of 4: never more than one batch
    stream = Once()
    assert input_example({"train": DataLoader(stream, batch_size=2)}) is None
    assert stream.read == 0  # a stream may be readable once: it is left alone


def test_train_with_the_target_inside_the_frame(store) -> None:
    @tracked.tracked_training(name="target-inside")
    def train(df: pd.DataFrame, cfg: dict) -> object:
        return LogisticRegression(C=cfg["C"]).fit(df.drop(columns="target"), df["target"])

    train(FRAME, {"C": 1.0})
    run = tracked.last_run()
    pyfunc = tracked.load_model(f"{run.model_name}@latest", as_pyfunc=True)
    assert pyfunc.metadata.get_input_schema().input_names() == ["a", "b", "c"]
    predicted = pyfunc.predict(FRAME.drop(columns="target"))
    assert len(predicted) == len(FRAME)


def test_save_model_cuts_an_example_frame_to_the_models_columns(tmp_path: Path) -> None:
    saved = save_model(fitted_models()["sklearn"], str(tmp_path / "m"), input_example=FRAME)
    columns = json.loads(Path(saved.path, "input_example.json").read_text())["columns"]
    assert columns == ["a", "b", "c"]


def test_large_rows_are_cut_to_fewer_but_never_none() -> None:
    from tracked.models.example import MAX_BYTES

    images = torch.zeros(10, 3, 224, 224)  # 600 kB a row
    assert input_example({"x": images}).shape == (1, 3, 224, 224)
    assert input_example({"x": np.zeros((10, 3, 100, 100))}).shape[0] * 240_000 <= MAX_BYTES
    big_loader = DataLoader(TensorDataset(torch.zeros(8, 300_000)), batch_size=8)
    assert input_example({"train": big_loader}).shape == (1, 300_000)
