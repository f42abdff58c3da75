"""Probe fast path: trunk features computed once per (model, split) and reused by every probe trial.

A linear probe never changes the trunk, so every probe trial on the same model and split would
recompute identical features. The cache keys them by (model key = the checkpoint's content id, split
fingerprint, device, rows) and computes them in eval mode (dropout off) in length-sorted chunks so that
padding stays small. The numbers equal the slow path's within float rounding (tested).

Selection and report features are computed for the whole (capped) split. Of the attack pool, only the
n rows a trial trains on are computed (``rows``): a real pool can hold tens of thousands of rows while
an audit trains on a few hundred. A given row set is always computed the same way (same chunks, same
order), whatever ran before in the process, so results do not depend on which worker ran a trial.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch

from mlac.data.encoded import EncodedSplit
from mlac.models import EncoderClassifier
from mlac.models.encoder import feature_dtype


@torch.no_grad()
def compute_features(model: EncoderClassifier, split: EncodedSplit, device: torch.device, chunk: int = 128,
                     rows: Sequence[int] | None = None) -> torch.Tensor:
    """Pooled features ``[len(rows), H]`` of ``rows`` of ``split`` (all rows when None), in ``rows`` order.

    Eval mode; rows are batched sorted by length so that padding stays small.
    """
    wanted = list(range(len(split))) if rows is None else list(rows)
    was_training = model.training
    model.eval()
    order = sorted(range(len(wanted)), key=lambda i: (len(split.ids[wanted[i]]), wanted[i]))
    out = torch.empty(len(wanted), model.hidden_size, device=device, dtype=feature_dtype(model))
    try:
        for start in range(0, len(order), chunk):
            positions = order[start : start + chunk]
            batch = split.batch([wanted[p] for p in positions], device)
            out[torch.as_tensor(positions, device=device)] = model(**batch.inputs).to(out.dtype)
    finally:
        model.train(was_training)
    return out


class FeatureCache:
    """In-memory LRU of feature matrices; one per worker process (plain object, no globals).

    ``max_entries`` bounds memory: a tiny BERT's features of 10k rows are 5 MB.
    """

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._store: OrderedDict[tuple[str, str, str, tuple[int, ...] | None], torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def features(self, model: EncoderClassifier, model_key: str, split: EncodedSplit, device: torch.device,
                 rows: Sequence[int] | None = None) -> torch.Tensor:
        """Cached :func:`compute_features` of ``rows`` of ``split`` (all rows when None) under ``model_key``."""
        key = (model_key, split.fingerprint, str(device), None if rows is None else tuple(rows))
        found = self._store.get(key)
        if found is not None:
            self.hits += 1
            self._store.move_to_end(key)
            return found
        self.misses += 1
        feats = compute_features(model, split, device, rows=rows)
        self._store[key] = feats
        while len(self._store) > self.max_entries:
            self._store.popitem(last=False)
        return feats

    def clear(self) -> None:
        """Drop every entry."""
        self._store.clear()
