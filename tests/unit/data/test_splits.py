"""Deterministic, disjoint, stratified splits with content fingerprints; the attacker's subset."""

from __future__ import annotations

import pytest
from datasets import Dataset

from mlac.data import SPLIT_NAMES, dataset_fingerprint, make_splits, sample_attack_subset
from mlac.errors import ConfigError, DataError
from mlac.tasks import TaskSpec


def test_splits_are_disjoint_and_cover_the_dataset(synth_1k: tuple[Dataset, TaskSpec]) -> None:
    ds, _ = synth_1k
    splits = make_splits(ds, seed=0)
    ids = {name: set(splits.get(name)["id"]) for name in SPLIT_NAMES}
    for i, a in enumerate(SPLIT_NAMES):
        assert len(ids[a]) == len(splits.get(a))
        for b in SPLIT_NAMES[i + 1 :]:
            assert not ids[a] & ids[b], (a, b)
    assert set().union(*ids.values()) == set(ds["id"])
    assert [len(splits.get(n)) for n in SPLIT_NAMES] == [500, 200, 150, 150]


def test_splits_are_stratified_by_the_harmful_label(synth_1k: tuple[Dataset, TaskSpec]) -> None:
    ds, _ = synth_1k
    overall = sum(ds["gender"]) / len(ds)
    splits = make_splits(ds, seed=3)
    for name in SPLIT_NAMES:
        part = splits.get(name)
        assert abs(sum(part["gender"]) / len(part) - overall) < 0.01, name


def test_splits_are_deterministic_and_fingerprinted(synth_1k: tuple[Dataset, TaskSpec]) -> None:
    ds, _ = synth_1k
    a, b = make_splits(ds, seed=0), make_splits(ds.shuffle(seed=7), seed=0)
    assert a.fingerprints == b.fingerprints  # membership depends on ids and seed, not row order
    assert set(a.fingerprints) == set(SPLIT_NAMES) and len(set(a.fingerprints.values())) == 4
    assert all(len(f) == 64 and int(f, 16) >= 0 for f in a.fingerprints.values())
    assert a.fingerprints["report"] == dataset_fingerprint(a.report)
    assert make_splits(ds, seed=1).fingerprints["report"] != a.fingerprints["report"]
    unstratified = make_splits(ds, seed=0, stratify=None)
    assert len(unstratified.train) == 500


def test_fingerprint_sees_content_not_order(synth_1k: tuple[Dataset, TaskSpec]) -> None:
    ds, _ = synth_1k
    small = ds.select(range(50))
    assert dataset_fingerprint(small) == dataset_fingerprint(small.shuffle(seed=4))
    flipped = small.map(lambda r, i: {"gender": 1 - r["gender"]} if i == 0 else {}, with_indices=True)
    assert dataset_fingerprint(flipped) != dataset_fingerprint(small)
    edited = small.map(lambda r, i: {"text": r["text"] + "!"} if i == 3 else {}, with_indices=True)
    assert dataset_fingerprint(edited) != dataset_fingerprint(small)


def test_bad_split_requests(synth_1k: tuple[Dataset, TaskSpec]) -> None:
    ds, _ = synth_1k
    with pytest.raises(ConfigError, match="fractions"):
        make_splits(ds, fractions=(0.5, 0.5, 0.0, 0.0))
    with pytest.raises(DataError, match="at least 8"):
        make_splits(ds.select(range(5)))
    with pytest.raises(DataError, match="duplicates"):
        make_splits(Dataset.from_dict({"id": ["a"] * 10, "gender": [0] * 10}))
    with pytest.raises(DataError, match="'id'"):
        make_splits(ds.remove_columns("id"))
    with pytest.raises(ConfigError, match="unknown split"):
        make_splits(ds).get("test")


def test_attack_subset(synth_1k: tuple[Dataset, TaskSpec]) -> None:
    ds, _ = synth_1k
    pool = make_splits(ds, seed=0).attack_pool
    a, b = sample_attack_subset(pool, 20, seed=1), sample_attack_subset(pool, 20, seed=1)
    assert a["id"] == b["id"] and set(a["id"]) <= set(pool["id"]) and len(set(a["id"])) == 20
    assert sample_attack_subset(pool, 20, seed=2)["id"] != a["id"]
    assert sorted(sample_attack_subset(pool, len(pool), seed=0)["id"]) == sorted(pool["id"])


def test_n_larger_than_the_pool_is_a_clear_error(synth_1k: tuple[Dataset, TaskSpec]) -> None:
    ds, _ = synth_1k
    pool = make_splits(ds.select(range(300)), seed=0).attack_pool
    with pytest.raises(DataError, match=rf"n=500 is larger than the attack pool \({len(pool)} examples\)"):
        sample_attack_subset(pool, 500, seed=0)
    with pytest.raises(ConfigError, match="at least 1"):
        sample_attack_subset(pool, 0, seed=0)
