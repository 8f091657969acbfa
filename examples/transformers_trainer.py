"""An unchanged Hugging Face `Trainer.train()` inside `with tracked.run(...)`: the
TrainingArguments (tokens redacted), every `log_history` entry at its step, and the model with its
tokenizer saved with `save_pretrained` (safetensors) and registered. Nothing is downloaded: a tiny
BERT is built from a config and the tokenizer from a local vocabulary.

    python examples/transformers_trainer.py      (needs accelerate, as Trainer does)
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
import transformers
from transformers import Trainer, TrainingArguments

import tracked

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "film", "very"]
TEXTS = ["good movie", "bad film", "very good film", "very bad movie", "good", "bad"] * 4
LABELS = [1, 0, 1, 0, 1, 0] * 4


class Reviews(torch.utils.data.Dataset):
    def __init__(self, tokenizer):
        self.encoded = tokenizer(TEXTS)

    def __len__(self):
        return len(LABELS)

    def __getitem__(self, i):
        return {**{k: v[i] for k, v in self.encoded.items()}, "labels": LABELS[i]}


if __name__ == "__main__":
    tracked.configure(project="examples")
    workdir = Path(tempfile.mkdtemp())
    (workdir / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(workdir / "vocab.txt"))
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32, num_labels=2,
                                     max_position_embeddings=32)  # fmt: skip
    args = TrainingArguments(output_dir=str(workdir / "out"), num_train_epochs=3,
                             per_device_train_batch_size=8, learning_rate=5e-3, logging_steps=1,
                             save_strategy="no", report_to="none", use_cpu=True)  # fmt: skip
    trainer = Trainer(
        model=transformers.BertForSequenceClassification(config),
        args=args,
        train_dataset=Reviews(tokenizer),
        processing_class=tokenizer,
    )

    with tracked.run("review-classifier", model_name="{project}-{name}") as run:
        trainer.train()  # exactly the call you had before

    loaded = tracked.load_model(f"{run.model_name}@latest")  # {"model": ..., "tokenizer": ...}
    batch = loaded["tokenizer"](TEXTS[:4], padding=True, return_tensors="pt")
    with torch.no_grad():
        ours = loaded["model"](**batch).logits.numpy()
        theirs = trainer.model.eval()(**batch).logits.numpy()
    print(f"loss at the last step {run.metrics['loss']:.4f}")
    print(f"registered {run.model_name} version {run.model_version}; "
          f"predictions match: {np.allclose(ours, theirs, atol=1e-5)}")  # fmt: skip
