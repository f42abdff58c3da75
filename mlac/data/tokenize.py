"""Tokenisation through ``datasets`` (no padding at map time) and batching with dynamic padding.

Rows are tokenised once with truncation to ``max_length`` and stored unpadded; each batch is padded to
its own longest row, so short bios do not pay for the longest one in the dataset.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from datasets import Dataset
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from mlac.errors import ConfigError, DataError

DEFAULT_MAX_LENGTH = 128


def tokenize_dataset(
    ds: Dataset, tokenizer: PreTrainedTokenizerBase, text_field: str = "text", max_length: int = DEFAULT_MAX_LENGTH
) -> Dataset:
    """Add ``input_ids`` and ``attention_mask`` (truncated, unpadded) computed from ``text_field``."""
    if text_field not in ds.column_names:
        raise DataError(f"the dataset has no text column {text_field!r}; columns: {ds.column_names}")
    if max_length < 2:
        raise ConfigError(f"max_length must be at least 2, got {max_length}")

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        enc = tokenizer(batch[text_field], truncation=True, max_length=max_length, padding=False)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    return ds.map(encode, batched=True, batch_size=1000, load_from_cache_file=False, desc=None)


def collate(
    rows: Sequence[Mapping[str, Any]],
    pad_token_id: int,
    *,
    label_column: str | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """Pad the rows' ``input_ids`` to the longest row; ``labels`` from ``label_column`` when given.

    Returns ``input_ids`` and ``attention_mask`` (long, ``[B, longest]``) and ``labels`` (long, ``[B]``)
    on ``device``; padding positions hold ``pad_token_id`` and mask 0.
    """
    if not rows:
        raise DataError("cannot collate an empty batch")
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        seq = row["input_ids"]
        ids[i, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[i, : len(seq)] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if label_column is not None:
        batch["labels"] = torch.tensor([int(r[label_column]) for r in rows], dtype=torch.long)
    return {k: v.to(device) for k, v in batch.items()}


def _checked(tokenized: Dataset, label_column: str | None) -> None:
    if "input_ids" not in tokenized.column_names:
        raise DataError("the dataset is not tokenised: call tokenize_dataset first")
    if label_column is not None and label_column not in tokenized.column_names:
        raise DataError(f"the dataset has no label column {label_column!r}; columns: {tokenized.column_names}")


def iterate_batches(
    tokenized: Dataset,
    label_column: str | None,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    pad_token_id: int = 0,
    drop_last: bool = False,
) -> Iterator[dict[str, torch.Tensor]]:
    """One pass over ``tokenized`` in batches padded to their own longest sequence.

    With ``shuffle`` the order comes from ``generator`` when given (its state advances, so successive
    epochs differ), else from a fresh generator seeded with ``seed`` (the same order every call).
    """
    _checked(tokenized, label_column)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    columns = ["input_ids"] + ([label_column] if label_column is not None else [])
    data = {c: list(tokenized[c]) for c in columns}
    n = len(tokenized)
    if shuffle:
        gen = generator if generator is not None else torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=gen).tolist()
    else:
        order = list(range(n))
    for start in range(0, n, batch_size):
        chunk = order[start : start + batch_size]
        if drop_last and len(chunk) < batch_size:
            return
        rows = [{c: data[c][i] for c in columns} for i in chunk]
        yield collate(rows, pad_token_id, label_column=label_column, device=device)


def tensorize(
    tokenized: Dataset, label_column: str | None, device: torch.device | str = "cpu", *, pad_token_id: int = 0
) -> dict[str, torch.Tensor]:
    """The whole (small) tokenised split as one padded batch: for evaluation sets that fit in memory."""
    _checked(tokenized, label_column)
    columns = ["input_ids"] + ([label_column] if label_column is not None else [])
    rows = tokenized.select_columns(columns).to_list()
    return collate(rows, pad_token_id, label_column=label_column, device=device)
