"""The tiny BERT classifier the Transformers tests build from a config (no hub download)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "film", "very"]


def tiny_tokenizer(directory: Path) -> Any:
    """A WordPiece tokenizer over VOCAB, its vocab file written to `directory`."""
    import transformers

    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    return transformers.BertTokenizerFast(vocab_file=str(vocab))


def tiny_bert() -> Any:
    """A 1-layer, 16-wide BERT for 2 labels over VOCAB, seeded."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)
