"""Deterministic, disjoint splits: train, attack pool, selection, report (PROTOCOL.md).

``train`` is for censoring and beneficial tuning; the attacker draws its n examples from
``attack_pool``, its search is scored on ``selection``, and the number on the curve comes from
``report``, which neither training nor search ever sees. Assignment depends only on each row's id and
the seed, so adding rows never moves existing ones between splits.
"""

from __future__ import annotations

import hashlib
import random
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


def make_splits(ds: Dataset, seed: int = 0, fractions: tuple[float, float, float, float] = DEFAULT_FRACTIONS) -> Splits:
    """Split ``ds`` by a seeded hash of each id into the four disjoint parts."""
    if "id" not in ds.column_names:
        raise DataError("the dataset has no 'id' column; every row needs a stable unique id")
    if len(fractions) != 4 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ConfigError(f"fractions must be 4 positive numbers summing to 1, got {fractions}")
    ids = list(ds["id"])
    if len(set(ids)) != len(ids):
        raise DataError("the dataset's 'id' column has duplicates; ids must be unique")
    if len(ids) < 8:
        raise DataError(f"the dataset has {len(ids)} rows; at least 8 are needed to make four splits")
    order = sorted(range(len(ids)), key=lambda i: _rank(seed, str(ids[i])))
    bounds, acc = [], 0.0
    for f in fractions:
        acc += f
        bounds.append(round(acc * len(order)))
    parts, start = {}, 0
    for name, end in zip(SPLIT_NAMES, bounds, strict=True):
        parts[name] = ds.select(sorted(order[start:end]))
        start = end
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
