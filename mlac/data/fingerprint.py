"""Content fingerprints of datasets: order-independent sha256 over every row's id, texts and labels."""

from __future__ import annotations

import hashlib
import json

from datasets import Dataset

FINGERPRINT_COLUMNS = ("id", "text", "text_with_first_sentence", "profession", "gender")


def dataset_fingerprint(ds: Dataset) -> str:
    """sha256 of the sorted per-row digests: equal datasets (in any row order) give equal fingerprints."""
    cols = [c for c in FINGERPRINT_COLUMNS if c in ds.column_names]
    data = {c: list(ds[c]) for c in cols}
    row_digests = sorted(
        hashlib.sha256(json.dumps([data[c][i] for c in cols], ensure_ascii=False).encode()).hexdigest()
        for i in range(len(ds))
    )
    outer = hashlib.sha256()
    outer.update(json.dumps(cols).encode())
    for d in row_digests:
        outer.update(d.encode())
    return outer.hexdigest()
