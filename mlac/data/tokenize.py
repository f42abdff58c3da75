"""Tokenisation through ``datasets`` (no padding at map time) and batching with dynamic padding."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from datasets import Dataset
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from mlac.errors import DataError

DEFAULT_MAX_LENGTH = 128


def tokenize_dataset(ds: Dataset, tokenizer: PreTrainedTokenizerBase, text_field: str = "text", max_length: int = DEFAULT_MAX_LENGTH) -> Dataset:
    """Add ``input_ids`` and ``attention_mask`` (truncated, unpadded) computed from ``text_field``."""
    if text_field not in ds.column_names:
        raise DataError(f"the dataset has no text column {text_field!r}; columns: {ds.column_names}")

    def encode(batch: dict[str, list]) -> dict[str, list]:
        enc = tokenizer(batch[text_field], truncation=True, max_length=max_length, padding=False)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    return ds.map(encode, batched=True, batch_size=1000, load_from_cache_file=False, desc=None)


def collate(
    input_ids: Sequence[Sequence[int]], labels: Sequence[int] | None, pad_token_id: int, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """Pad a list of token-id lists to the longest one; return tensors on ``device``."""
    width = max(len(x) for x in input_ids)
    ids = torch.full((len(input_ids), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(input_ids), width), dtype=torch.long)
    for row, seq in enumerate(input_ids):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    batch = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
    if labels is not None:
        batch["labels"] = torch.tensor(list(labels), dtype=torch.long, device=device)
    return batch


def iterate_batches(
    tokenized: Dataset,
    label_column: str | None,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    device: torch.device | str = "cpu",
    pad_token_id: int = 0,
    drop_last: bool = False,
) -> Iterator[dict[str, torch.Tensor]]:
    """One pass over ``tokenized`` in batches padded to their own longest sequence."""
    if "input_ids" not in tokenized.column_names:
        raise DataError("the dataset is not tokenised: call tokenize_dataset first")
    if label_column is not None and label_column not in tokenized.column_names:
        raise DataError(f"the dataset has no label column {label_column!r}; columns: {tokenized.column_names}")
    ids = list(tokenized["input_ids"])
    labels = list(tokenized[label_column]) if label_column is not None else None
    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed)).tolist() if shuffle else list(range(len(ids)))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        if drop_last and len(chunk) < batch_size:
            return
        yield collate([ids[i] for i in chunk], [labels[i] for i in chunk] if labels is not None else None, pad_token_id, device)
