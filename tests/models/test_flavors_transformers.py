"""Hugging Face models (and tokenizers) saved with save_pretrained in safetensors, no hub access."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

# No download anywhere: every model and tokenizer here is built from a config and a vocabulary.
os.environ["HF_HUB_OFFLINE"] = "1"
transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

import mlflow.pyfunc  # noqa: E402
import pandas as pd  # noqa: E402
from tiny_bert import tiny_bert, tiny_tokenizer  # noqa: E402

from tracked.models.flavors import detect_flavor, load_model, save_model  # noqa: E402

TEXTS = ["good movie", "bad film", "very good film", "very bad movie", "good", "bad"]
LABELS = torch.tensor([1, 0, 1, 0, 1, 0])


@pytest.fixture
def tokenizer(tmp_path: Path):
    return tiny_tokenizer(tmp_path)


def classifier(tokenizer):
    model = tiny_bert()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    model.train()
    for _ in range(5):
        optimizer.zero_grad()
        model(**batch, labels=LABELS).loss.backward()
        optimizer.step()
    return model


def logits(model, tokenizer, texts=TEXTS) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.numpy()


def test_classifier_and_tokenizer_round_trip(tmp_path: Path, tokenizer, monkeypatch) -> None:
    model = classifier(tokenizer)
    assert detect_flavor(model) == "transformers"
    saved = save_model(model, str(tmp_path / "m"), tokenizer=tokenizer, input_example=TEXTS)

    assert (saved.flavor, saved.serialization) == ("transformers", "transformers-safetensors")
    assert saved.signature
    data = Path(saved.path, "data")
    assert (data / "model" / "model.safetensors").is_file()
    assert (data / "tokenizer" / "tokenizer.json").is_file()
    assert not list(Path(saved.path).rglob("*.bin")) and not list(Path(saved.path).rglob("*.pkl"))

    expected = logits(model, tokenizer)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    native = load_model(saved.path)
    assert set(native) == {"model", "tokenizer"}
    assert type(native["model"]) is transformers.BertForSequenceClassification
    assert_allclose(logits(native["model"], native["tokenizer"]), expected, rtol=1e-5, atol=1e-6)
    for pyfunc in (mlflow.pyfunc.load_model(saved.path), load_model(saved.path, as_pyfunc=True)):
        assert_allclose(pyfunc.predict(TEXTS), expected, rtol=1e-5, atol=1e-6)
        frame = pd.DataFrame({"text": TEXTS})
        assert_allclose(pyfunc.predict(frame), expected, rtol=1e-5, atol=1e-6)


def test_language_model_without_tokenizer_takes_token_ids(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=20, n_positions=16, n_embd=8, n_layer=1, n_head=2)
    model = transformers.GPT2LMHeadModel(config)
    ids = torch.randint(0, 20, (4, 6))
    saved = save_model(model, str(tmp_path / "m"), input_example=ids)

    assert saved.signature
    loaded = load_model(saved.path)
    assert type(loaded) is transformers.GPT2LMHeadModel
    assert loaded.lm_head.weight is loaded.transformer.wte.weight  # tied again after loading
    model.eval()
    with torch.no_grad():
        expected = model(ids).logits.numpy()
        assert_allclose(loaded(ids).logits.numpy(), expected, rtol=1e-5, atol=1e-6)
    pyfunc = mlflow.pyfunc.load_model(saved.path)
    assert_allclose(pyfunc.predict(ids.numpy()), expected, rtol=1e-5, atol=1e-6)


def test_text_input_without_a_tokenizer_says_so(tmp_path: Path) -> None:
    config = transformers.GPT2Config(vocab_size=20, n_positions=16, n_embd=8, n_layer=1, n_head=2)
    saved = save_model(transformers.GPT2LMHeadModel(config), str(tmp_path / "m"))
    with pytest.raises(ValueError, match="text input needs a tokenizer"):
        mlflow.pyfunc.load_model(saved.path).predict(["good movie"])


def test_a_loader_of_token_batches_gives_the_example(tmp_path: Path, tokenizer) -> None:
    from torch.utils.data import DataLoader

    model = classifier(tokenizer)
    encoded = tokenizer(TEXTS, padding="max_length", max_length=6, return_tensors="pt")
    rows = [
        {
            "input_ids": encoded["input_ids"][i],
            "attention_mask": encoded["attention_mask"][i],
            "labels": LABELS[i],
        }
        for i in range(len(TEXTS))
    ]
    saved = save_model(model, str(tmp_path / "m"), input_example=DataLoader(rows, batch_size=4))

    assert saved.signature
    schema = mlflow.pyfunc.load_model(saved.path).metadata.get_input_schema()
    assert schema.input_names() == ["input_ids", "attention_mask"]  # labels are not an input
    batch = {k: encoded[k].numpy() for k in ("input_ids", "attention_mask")}
    model.eval()
    with torch.no_grad():
        expected = model(**{k: torch.as_tensor(v) for k, v in batch.items()}).logits.numpy()
    got = mlflow.pyfunc.load_model(saved.path).predict(batch)
    assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
