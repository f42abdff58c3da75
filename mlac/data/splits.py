"""Deterministic, disjoint splits: train, attack pool, selection, report (PROTOCOL.md).

``train`` is for censoring and beneficial tuning; the attacker draws its n examples from
``attack_pool``, its search is scored on ``selection``, and the number on the curve comes from
``report``, which neither training nor search ever sees. Rows are ordered by a seeded hash of their id
(independent of row order in the file) and cut by the fractions within each harmful-label class, so every
split has the dataset's label balance.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from datasets import Dataset

from mlac.data.fingerprint import dataset_fingerprint
from mlac.errors import ConfigError, DataError

SPLIT_NAMES = ("train", "attack_pool", "selection", "report")
DEFAULT_FRACTIONS = (0.5, 0.2, 0.15, 0.15)


@dataclass(frozen=True)
class Splits:
    """The four disjoint splits and their content fingerprints."""

    train: Dataset
    attack_pool: Dataset
    selection: Dataset
    report: Dataset
    fingerprints: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> Dataset:
        """Split by name (one of SPLIT_NAMES)."""
        if name not in SPLIT_NAMES:
            raise ConfigError(f"unknown split {name!r}; expected one of {SPLIT_NAMES}")
        ds: Dataset = getattr(self, name)
        return ds


def _rank(seed: int, row_id: str) -> str:
    return hashlib.sha256(f"{seed}:{row_id}".encode()).hexdigest()


def _cut(rows: list[int], fractions: tuple[float, ...]) -> list[list[int]]:
    bounds, acc = [], 0.0
    for f in fractions:
        acc += f
        bounds.append(round(acc * len(rows)))
    parts, start = [], 0
    for end in bounds:
        parts.append(rows[start:end])
        start = end
    return parts


def split_sizes(strata_counts: Sequence[int],
                fractions: tuple[float, float, float, float] = DEFAULT_FRACTIONS) -> dict[str, int]:
    """How many rows each split of :func:`make_splits` gets, from the row count of each stratum alone.

    The cut depends only on the counts (which rows go where depends on the seed), so the service can check
    at submission, from a dataset's stored class counts, that every data size fits the attack pool.
    """
    sizes = dict.fromkeys(SPLIT_NAMES, 0)
    for count in strata_counts:
        for name, part in zip(SPLIT_NAMES, _cut(list(range(count)), fractions), strict=True):
            sizes[name] += len(part)
    return sizes


def strata_counts(ds: Dataset, stratify: str | None = "gender") -> list[int]:
    """Rows per class of ``stratify`` (one count for the whole set when the column is missing)."""
    if stratify is None or stratify not in ds.column_names:
        return [len(ds)]
    return sorted(Counter(str(v) for v in ds[stratify]).values())


def make_splits(
    ds: Dataset,
    seed: int = 0,
    fractions: tuple[float, float, float, float] = DEFAULT_FRACTIONS,
    *,
    stratify: str | None = "gender",
) -> Splits:
    """Split ``ds`` into the four disjoint parts (``SPLIT_NAMES`` order, sizes by ``fractions``).

    Rows are ordered by sha256(seed, id) and cut within each class of ``stratify`` (the harmful label;
    ``None`` or a missing column: no stratification). Same ids and seed -> same splits.
    """
    if "id" not in ds.column_names:
        raise DataError("the dataset has no 'id' column; every row needs a stable unique id")
    if len(fractions) != 4 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ConfigError(f"fractions must be 4 positive numbers summing to 1, got {fractions}")
    ids = [str(i) for i in ds["id"]]
    if len(set(ids)) != len(ids):
        raise DataError("the dataset's 'id' column has duplicates; ids must be unique")
    if len(ids) < 8:
        raise DataError(f"the dataset has {len(ids)} rows; at least 8 are needed to make four splits")
    strata = list(ds[stratify]) if stratify is not None and stratify in ds.column_names else [0] * len(ids)
    ranks = [_rank(seed, i) for i in ids]
    chosen: dict[str, list[int]] = {name: [] for name in SPLIT_NAMES}
    for value in sorted(set(strata), key=str):
        rows = sorted((i for i, v in enumerate(strata) if v == value), key=ranks.__getitem__)
        for name, part in zip(SPLIT_NAMES, _cut(rows, fractions), strict=True):
            chosen[name].extend(part)
    empty = [name for name, rows in chosen.items() if not rows]
    if empty:
        raise DataError(f"the dataset has {len(ids)} rows: too few to fill the split(s) {empty}; use more rows")
    parts = {name: ds.select(sorted(rows)) for name, rows in chosen.items()}
    prints = {name: dataset_fingerprint(part) for name, part in parts.items()}
    return Splits(fingerprints=prints, **parts)


def sample_attack_subset(pool: Dataset, n: int, seed: int) -> Dataset:
    """The attacker's n training examples, drawn from the attack pool with ``seed``."""
    if n < 1:
        raise ConfigError(f"n must be at least 1, got {n}")
    if n > len(pool):
        raise DataError(
            f"n={n} is larger than the attack pool ({len(pool)} examples): use a smaller n or a larger dataset"
        )
    idx = random.Random(seed).sample(range(len(pool)), n)
    return pool.select(sorted(idx))
