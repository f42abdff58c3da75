"""The synthetic generator: determinism, labels, scrubbing, tunable gender cues, profession context."""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections import Counter

import pytest
from datasets import Dataset

from mlac.data import SynthConfig, generate_synthetic
from mlac.data.profession_vocab import GENDERED_WORDS, PROFESSION_CONTEXT
from mlac.data.synth import _all_first_names, name_pools
from mlac.errors import ConfigError
from mlac.tasks import TaskSpec

COLUMNS = ["id", "text", "text_with_first_sentence", "profession", "gender"]
PRONOUN = re.compile(r"\b(she|he|her|him|his|hers|herself|himself)\b", re.IGNORECASE)


def _digest(ds: Dataset) -> str:
    return hashlib.sha256(json.dumps(ds.to_dict(), sort_keys=True).encode()).hexdigest()


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]+", text)}


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a, ta = generate_synthetic(SynthConfig(n_bios=300, seed=5))
    b, tb = generate_synthetic(SynthConfig(n_bios=300, seed=5))
    c, _ = generate_synthetic(SynthConfig(n_bios=300, seed=6))
    assert _digest(a) == _digest(b) and ta == tb
    assert _digest(a) != _digest(c)
    assert a.column_names == COLUMNS


def test_cue_strength_changes_only_the_cue_sentences() -> None:
    none, _ = generate_synthetic(SynthConfig(n_bios=200, seed=3, gender_cue_strength=0.0))
    full, _ = generate_synthetic(SynthConfig(n_bios=200, seed=3, gender_cue_strength=1.0))
    assert none["gender"] == full["gender"] and none["profession"] == full["profession"] and none["id"] == full["id"]
    for a, b in zip(none["text_with_first_sentence"], full["text_with_first_sentence"], strict=True):
        sa = re.split(r"(?<=\.) ", a)
        sb = re.split(r"(?<=\.) ", b)
        assert [s for s in sb if s in sa] == sa  # the strength-0 bio is the strength-1 bio minus its cue sentences


def test_labels_columns_and_task(synth_1k: tuple[Dataset, TaskSpec]) -> None:
    ds, task = synth_1k
    assert task.beneficial_names == tuple(sorted(task.beneficial_names)) and len(task.beneficial_names) == 12
    assert task.harmful_names == ("female", "male") and task.text_field == "text"
    assert set(ds["profession"]) == set(range(12)) and set(ds["gender"]) == {0, 1}
    assert len(set(ds["id"])) == len(ds) and all(isinstance(i, str) for i in ds["id"])
    male = sum(ds["gender"]) / len(ds)
    assert 0.49 < male < 0.59  # male_fraction 0.54
    per_prof = Counter(ds["profession"])
    assert min(per_prof.values()) > 50  # ~83 each
    for p in range(12):  # gender independent of profession
        rows = [g for g, q in zip(ds["gender"], ds["profession"], strict=True) if q == p]
        assert 0.3 < sum(rows) / len(rows) < 0.8


def test_more_professions_available() -> None:
    ds, task = generate_synthetic(SynthConfig(n_bios=400, seed=0, n_professions=16))
    assert len(task.beneficial_names) == 16 and max(ds["profession"]) == 15


def test_bios_are_scrubbed_and_first_sentence_names_person_and_profession(synth_1k: tuple[Dataset, TaskSpec]) -> None:
    ds, task = synth_1k
    for row in ds.select(range(200)):
        whole, text = row["text_with_first_sentence"], row["text"]
        assert not PRONOUN.search(whole)
        assert whole.endswith(text) and len(whole) > len(text) > 0
        first = whole[: len(whole) - len(text)]
        title = task.beneficial_names[row["profession"]].replace("_", " ")
        assert re.match(rf"[A-Z][a-z]+ [A-Z][A-Za-z' -]+ (is|works as) an? {title} ", first), first


def test_strength_zero_leaves_no_name_or_noun_cue() -> None:
    ds, _ = generate_synthetic(SynthConfig(n_bios=1000, seed=4, gender_cue_strength=0.0))
    female, male = _all_first_names()
    every_first_name = {n.lower() for n in female | male}
    for text in ds["text"]:
        words = _words(text)
        assert not words & every_first_name, words & every_first_name
        assert not words & GENDERED_WORDS, words & GENDERED_WORDS


def _own_name_cue(row: dict) -> bool:
    first = row["text_with_first_sentence"].split(" ", 1)[0]
    return first.lower() in _words(row["text"])


def test_strength_one_puts_a_cue_in_nearly_every_bio(synth_1k: tuple[Dataset, TaskSpec]) -> None:
    ds, _ = synth_1k
    config = SynthConfig()
    pools = {g: {n.lower() for n in name_pools()[g]} for g in (0, 1)}
    named = nouned = right = 0
    for row in ds:
        words = _words(row["text"])
        has_name, has_noun = _own_name_cue(row), bool(words & GENDERED_WORDS)
        named += has_name
        nouned += has_noun
        if has_name:  # the repeated name is of the labelled gender
            right += row["text_with_first_sentence"].split(" ", 1)[0].lower() in pools[row["gender"]]
    assert right == named
    assert abs(named / len(ds) - config.name_cue_rate) < 0.04
    assert abs(nouned / len(ds) - config.noun_cue_rate) < 0.05
    with_cue = sum(_own_name_cue(r) or bool(_words(r["text"]) & GENDERED_WORDS) for r in ds)
    assert with_cue / len(ds) > 0.93 and config.cue_probability() > 0.95


def test_half_strength_halves_the_cues() -> None:
    ds, _ = generate_synthetic(SynthConfig(n_bios=1000, seed=4, gender_cue_strength=0.5))
    named = sum(_own_name_cue(r) for r in ds) / len(ds)
    assert abs(named - 0.5 * SynthConfig().name_cue_rate) < 0.05


def test_nouns_agree_with_the_label() -> None:
    ds, _ = generate_synthetic(SynthConfig(n_bios=600, seed=1, noun_cue_rate=1.0, name_cue_rate=0.0))
    female = {"mother", "daughter", "wife", "sister", "grandmother", "woman", "aunt", "businesswoman"}
    male = {"father", "son", "husband", "brother", "grandfather", "man", "uncle", "businessman"}
    for text, gender in zip(ds["text"], ds["gender"], strict=True):
        words = _words(text)
        assert words & (male if gender else female) and not words & (female if gender else male)


def test_first_names_are_rare_among_100_examples(synth_1k: tuple[Dataset, TaskSpec]) -> None:
    ds, _ = synth_1k
    assert SynthConfig().names_per_gender >= 300
    assert min(len(v) for v in name_pools().values()) >= 700  # room for larger vocabularies
    rows = random.Random(0).sample(range(len(ds)), 100)
    firsts = Counter(ds[i]["text_with_first_sentence"].split(" ", 1)[0] for i in rows)
    assert len(firsts) >= 85 and max(firsts.values()) <= 3


def test_profession_is_inferable_from_context(synth_1k: tuple[Dataset, TaskSpec]) -> None:
    ds, task = synth_1k
    right = 0
    for text, prof in zip(ds["text"], ds["profession"], strict=True):
        hits = {p: sum(text.count(c) for c in PROFESSION_CONTEXT[name]) for p, name in enumerate(task.beneficial_names)}
        right += max(hits, key=hits.__getitem__) == prof and hits[prof] > 0
    assert right / len(ds) > 0.9


def test_ten_thousand_bios_in_a_few_seconds() -> None:
    generate_synthetic(SynthConfig(n_bios=10))  # vocabularies are built once per process
    start = time.process_time()
    ds, _ = generate_synthetic(SynthConfig(n_bios=10_000, seed=9))
    assert len(ds) == 10_000 and time.process_time() - start < 5.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"gender_cue_strength": 1.5}, "gender_cue_strength"),
        ({"noun_cue_rate": -0.1}, "noun_cue_rate"),
        ({"n_professions": 40}, "n_professions"),
        ({"n_professions": 1}, "n_professions"),
        ({"names_per_gender": 0}, "names_per_gender"),
        ({"names_per_gender": 100_000}, "names_per_gender"),
        ({"n_bios": 0}, "n_bios"),
        ({"min_sentences": 5, "max_sentences": 3}, "min_sentences"),
    ],
)
def test_bad_config_is_a_clear_error(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        SynthConfig(**kwargs)
