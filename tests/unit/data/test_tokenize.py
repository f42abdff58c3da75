"""Tokenisation through datasets (unpadded) and batches padded to their own longest row."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from mlac.data import collate, iterate_batches, tensorize, tokenize_dataset
from mlac.errors import DataError
from mlac.tasks import TaskSpec


@pytest.fixture(scope="module")
def tokenized(synth_1k: tuple[Dataset, TaskSpec], tokenizer: PreTrainedTokenizerBase) -> Dataset:
    return tokenize_dataset(synth_1k[0].select(range(40)), tokenizer, "text", max_length=48)


def test_tokenize_is_unpadded_and_truncated(tokenized: Dataset, tokenizer: PreTrainedTokenizerBase) -> None:
    lengths = [len(x) for x in tokenized["input_ids"]]
    assert max(lengths) == 48 and min(lengths) < 48  # truncation on, padding off
    assert all(m == [1] * len(i) for i, m in zip(tokenized["input_ids"], tokenized["attention_mask"], strict=True))
    first = tokenized[0]["input_ids"]
    assert first[0] == tokenizer.cls_token_id and tokenizer.pad_token_id not in first
    whole = tokenize_dataset(tokenized.select(range(2)), tokenizer, "text_with_first_sentence", max_length=128)
    assert len(whole[0]["input_ids"]) > len(tokenizer(tokenized[0]["text"])["input_ids"])


def test_batches_are_padded_to_their_longest_row(tokenized: Dataset, tokenizer: PreTrainedTokenizerBase) -> None:
    short = tokenize_dataset(tokenized.select(range(16)), tokenizer, "text", max_length=128)
    lengths = [len(x) for x in short["input_ids"]]
    batches = list(iterate_batches(short, "gender", 5, pad_token_id=tokenizer.pad_token_id))
    assert [len(b["labels"]) for b in batches] == [5, 5, 5, 1]
    for k, batch in enumerate(batches):
        chunk = lengths[k * 5 : (k + 1) * 5]
        assert batch["input_ids"].shape == (len(chunk), max(chunk))
        assert batch["attention_mask"].sum(dim=1).tolist() == chunk
        for row, n in enumerate(chunk):
            assert batch["input_ids"][row, :n].tolist() == short[k * 5 + row]["input_ids"]
            assert (batch["input_ids"][row, n:] == tokenizer.pad_token_id).all()
        assert batch["labels"].tolist() == short["gender"][k * 5 : (k + 1) * 5]
        assert batch["input_ids"].dtype == batch["labels"].dtype == torch.long
    assert len(list(iterate_batches(short, "gender", 5, drop_last=True))) == 3


def test_shuffle_is_seeded(tokenized: Dataset) -> None:
    def ids(**kw: object) -> list[list[int]]:
        return [b["labels"].tolist() + b["input_ids"][:, 1].tolist() for b in iterate_batches(tokenized, "gender", 8, **kw)]

    assert ids(shuffle=True, seed=1) == ids(shuffle=True, seed=1) != ids(shuffle=True, seed=2)
    assert ids(shuffle=True, seed=1) != ids(shuffle=False)
    gen = torch.Generator().manual_seed(0)
    epoch1, epoch2 = ids(shuffle=True, generator=gen), ids(shuffle=True, generator=gen)
    assert epoch1 != epoch2  # a shared generator advances between epochs
    seen = sorted(x for b in iterate_batches(tokenized, None, 7, shuffle=True) for x in b["input_ids"][:, 1].tolist())
    assert seen == sorted(r[1] for r in tokenized["input_ids"]) and all(
        "labels" not in b for b in iterate_batches(tokenized, None, 7)
    )


def test_collate_and_tensorize(tokenized: Dataset) -> None:
    batch = collate([{"input_ids": [5, 6, 7], "y": 1}, {"input_ids": [8], "y": 0}], pad_token_id=0, label_column="y")
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]] and batch["labels"].tolist() == [1, 0]
    whole = tensorize(tokenized, "profession")
    assert whole["input_ids"].shape == (40, 48) and whole["labels"].tolist() == tokenized["profession"]
    with pytest.raises(DataError, match="empty batch"):
        collate([], pad_token_id=0)


def test_missing_columns_are_clear_errors(synth_1k: tuple[Dataset, TaskSpec], tokenizer: PreTrainedTokenizerBase, tokenized: Dataset) -> None:
    with pytest.raises(DataError, match="no text column 'bio'"):
        tokenize_dataset(synth_1k[0], tokenizer, "bio")
    with pytest.raises(DataError, match="not tokenised"):
        next(iterate_batches(synth_1k[0], "gender", 4))
    with pytest.raises(DataError, match="no label column 'age'"):
        next(iterate_batches(tokenized, "age", 4))
