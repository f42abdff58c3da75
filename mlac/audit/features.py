"""Probe fast path: trunk features of a split computed once per (model, split) and reused by every trial.

A linear probe never changes the trunk, so every probe trial on the same model and split would
recompute identical features. The cache keys them by (model key = checkpoint sha256, split
fingerprint, device) and computes them in eval mode (dropout off) in length-sorted chunks so that
padding stays small. The numbers equal the slow path's within float rounding (tested).
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from mlac.censor.batches import EncodedSplit
from mlac.models import EncoderClassifier


@torch.no_grad()
def compute_features(model: EncoderClassifier, split: EncodedSplit, device: torch.device, chunk: int = 128) -> torch.Tensor:
    """Pooled features ``[N, H]`` of every row of ``split`` (eval mode, rows sorted by length)."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(split)), key=lambda i: len(split.ids[i]))
    out = torch.empty(len(split), model.hidden_size, device=device)
    try:
        for start in range(0, len(order), chunk):
            rows = order[start : start + chunk]
            batch = split.batch(rows, device)
            out[torch.as_tensor(rows, device=device)] = model(**batch.inputs).float()
    finally:
        model.train(was_training)
    return out


class FeatureCache:
    """In-memory LRU of feature matrices; one per worker process (plain object, no globals).

    ``max_entries`` bounds memory: a tiny BERT's features of 10k rows are 5 MB.
    """

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self._store: OrderedDict[tuple[str, str, str], torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def features(self, model: EncoderClassifier, model_key: str, split: EncodedSplit, device: torch.device) -> torch.Tensor:
        """Cached :func:`compute_features` of ``split`` under ``model_key``."""
        key = (model_key, split.fingerprint, str(device))
        found = self._store.get(key)
        if found is not None:
            self.hits += 1
            self._store.move_to_end(key)
            return found
        self.misses += 1
        feats = compute_features(model, split, device)
        self._store[key] = feats
        while len(self._store) > self.max_entries:
            self._store.popitem(last=False)
        return feats

    def clear(self) -> None:
        """Drop every entry."""
        self._store.clear()
