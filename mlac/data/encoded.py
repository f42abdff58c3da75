"""Pre-tokenised rows and dynamically padded batches for MLAC training and the simulated attack.

The whole split is tokenised once (truncated to ``max_length``); a batch is any list of row indices,
padded to its own longest row. Index sampling lives with the caller's seeded generator, so batches
are reproducible and resumable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from mlac.errors import DataError
from mlac.tasks import TaskSpec


@dataclass
class Batch:
    """Model inputs (keyword arguments of ``model.forward``) and the labels of one batch."""

    inputs: dict[str, torch.Tensor]
    harmful: torch.Tensor
    beneficial: torch.Tensor | None = None

    def to(self, device: torch.device) -> Batch:
        """The same batch on ``device``."""
        ben = self.beneficial.to(device) if self.beneficial is not None else None
        return Batch({k: v.to(device) for k, v in self.inputs.items()}, self.harmful.to(device), ben)

@dataclass(frozen=True)
class EncodedSplit:
    """Token ids of every row plus both label columns (``harmful``/``beneficial`` as long tensors)."""

    ids: tuple[tuple[int, ...], ...]
    harmful: torch.Tensor
    beneficial: torch.Tensor
    pad_id: int
    fingerprint: str

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows: Sequence[int]) -> EncodedSplit:
        """The rows ``rows`` as a new split (fingerprint derived from the parent's and the rows)."""
        index = torch.as_tensor(list(rows), dtype=torch.long)
        digest = hashlib.sha256(f"{self.fingerprint}:{','.join(map(str, rows))}".encode()).hexdigest()
        return EncodedSplit(
            tuple(self.ids[i] for i in rows), self.harmful[index], self.beneficial[index], self.pad_id, digest
        )

    def batch(self, rows: Sequence[int], device: torch.device | str = "cpu") -> Batch:
        """Rows ``rows`` padded to their longest sequence, as a :class:`Batch` on ``device``."""
        seqs = [self.ids[i] for i in rows]
        width = max(len(s) for s in seqs)
        input_ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, seq in enumerate(seqs):
            input_ids[r, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
            mask[r, : len(seq)] = 1
        index = torch.as_tensor(list(rows), dtype=torch.long)
        batch = Batch({"input_ids": input_ids, "attention_mask": mask}, self.harmful[index], self.beneficial[index])
        return batch.to(torch.device(device))


def _column(dataset: Any, name: str) -> list[Any]:
    names = list(getattr(dataset, "column_names", []) or [])
    if name not in names:
        raise DataError(
            f"the dataset has no column {name!r} (columns: {names}); it needs the task's text and label "
            "columns: make it with `mlac-audit data synth` or a Bias-in-Bios loader",
            code="missing_column",
        )
    return list(dataset[name])


def encode_split(
    dataset: Any, tokenizer: PreTrainedTokenizerBase, task: TaskSpec, max_length: int = 128
) -> EncodedSplit:
    """Tokenise ``dataset`` (a ``datasets.Dataset`` with the task's columns) once, truncating to ``max_length``."""
    texts = _column(dataset, task.text_field)
    harmful = _column(dataset, task.harmful_label)
    beneficial = _column(dataset, task.beneficial_label)
    if not texts:
        raise DataError("the dataset is empty", code="empty_dataset")
    for name, values, count in (
        (task.harmful_label, harmful, len(task.harmful_names)),
        (task.beneficial_label, beneficial, len(task.beneficial_names) or None),
    ):
        bad = [v for v in values if not isinstance(v, int) or v < 0 or (count is not None and v >= count)]
        if bad:
            raise DataError(
                f"column {name!r} must hold integer labels in [0, {count}); found {bad[0]!r}", code="bad_label"
            )
    if any(not isinstance(t, str) for t in texts):
        raise DataError(f"column {task.text_field!r} must hold strings", code="bad_text")
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    ids = tuple(tuple(int(t) for t in row) for row in enc["input_ids"])
    digest = hashlib.sha256()
    for row, h, b in zip(ids, harmful, beneficial, strict=True):
        digest.update(f"{h},{b}:{','.join(map(str, row))};".encode())
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return EncodedSplit(
        ids, torch.as_tensor(harmful, dtype=torch.long), torch.as_tensor(beneficial, dtype=torch.long), int(pad),
        digest.hexdigest(),
    )
