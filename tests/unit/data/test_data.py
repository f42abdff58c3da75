"""Data layer: scrubbing, synthetic generator, loaders on fixtures, splits, tokenisation, CLI errors."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from mlac.data import (
    SynthConfig,
    dataset_fingerprint,
    generate_synthetic,
    iterate_batches,
    load_bias_in_bios,
    load_dataset_file,
    load_saved_dataset,
    make_splits,
    sample_attack_subset,
    save_dataset,
    scrub_pronouns,
    tokenize_dataset,
)
from mlac.data.profession_vocab import NOUN_CUE_SENTENCES
from mlac.data.scrub import drop_first_sentence
from mlac.data.synth import _name_pools
from mlac.errors import ConfigError, DataError
from mlac.models import default_tokenizer


@pytest.mark.parametrize(
    ("raw", "scrubbed"),
    [
        ("She is a nurse.", "They is a nurse."),
        ("He said his wife met him.", "They said their wife met their."),
        ("HE WROTE HIS BOOK", "THEY WROTE THEIR BOOK"),
        ("(his) her. Her, hers! himself herself", "(their) their. Their, theirs! themself themself"),
        ("the shepherd and hermit", "the shepherd and hermit"),
        ("She's here; he'll go.", "They're here; they'll go."),
    ],
)
def test_scrub_pronouns_variants(raw: str, scrubbed: str) -> None:
    assert scrub_pronouns(raw) == scrubbed


def test_drop_first_sentence() -> None:
    assert drop_first_sentence("Ann Lee is a nurse. They work nights. They like tea.") == "They work nights. They like tea."
    assert drop_first_sentence("Only one sentence.") == ""


def _digest(cfg: SynthConfig) -> str:
    ds, _ = generate_synthetic(cfg)
    return hashlib.sha256(json.dumps(ds.to_dict(), sort_keys=True).encode()).hexdigest()


def test_synthetic_is_deterministic_and_seeded() -> None:
    assert _digest(SynthConfig(n_bios=300, seed=5)) == _digest(SynthConfig(n_bios=300, seed=5))
    assert _digest(SynthConfig(n_bios=300, seed=5)) != _digest(SynthConfig(n_bios=300, seed=6))


def test_synthetic_labels_and_scrubbing() -> None:
    ds, task = generate_synthetic(SynthConfig(n_bios=2000, seed=1, n_professions=12))
    assert len(task.beneficial_names) == 12 and set(ds["profession"]) == set(range(12))
    male = sum(ds["gender"]) / len(ds)
    assert 0.48 < male < 0.60
    pronoun = re.compile(r"\b(she|he|her|him|his|hers)\b", re.IGNORECASE)
    assert not any(pronoun.search(t) for t in ds["text_with_first_sentence"])
    assert len(set(ds["id"])) == len(ds)


def _name_vote_accuracy(ds) -> tuple[float, float]:
    """Accuracy of guessing gender from first names in `text` (own-gender minus other-gender names), and coverage."""
    pools = {g: set(_name_pools()[g]) for g in (0, 1)}
    right = decided = 0
    for text, gender in zip(ds["text"], ds["gender"], strict=True):
        words = re.findall(r"[A-Za-z]+", text)
        votes = sum(w in pools[1] for w in words) - sum(w in pools[0] for w in words)
        if votes:
            decided += 1
            right += int((votes > 0) == (gender == 1))
    return right / max(decided, 1), decided / len(ds)


def _noun_cues(ds) -> int:
    cues = [s.split("{He} ", 1)[-1].split("{")[0].strip() for g in NOUN_CUE_SENTENCES.values() for s in g]
    return sum(any(c and c in t for c in cues) for t in ds["text"])


def test_gender_cue_strength_controls_the_signal() -> None:
    none, _ = generate_synthetic(SynthConfig(n_bios=1000, seed=2, gender_cue_strength=0.0))
    full, _ = generate_synthetic(SynthConfig(n_bios=1000, seed=2, gender_cue_strength=1.0))
    acc_none, _ = _name_vote_accuracy(none)
    acc_full, cover_full = _name_vote_accuracy(full)
    assert _noun_cues(none) == 0 and _noun_cues(full) > 50
    assert abs(acc_none - 0.5) < 0.1  # names only in place names/companies: no gender signal
    assert acc_full > 0.85 and cover_full > 0.8


def test_bad_synth_config_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="gender_cue_strength"):
        SynthConfig(gender_cue_strength=1.5)
    with pytest.raises(ConfigError, match="n_professions"):
        SynthConfig(n_professions=40)


def test_splits_are_disjoint_deterministic_and_fingerprinted() -> None:
    ds, _ = generate_synthetic(SynthConfig(n_bios=1000, seed=3))
    a, b = make_splits(ds, seed=0), make_splits(ds, seed=0)
    ids = {name: set(getattr(a, name)["id"]) for name in ("train", "attack_pool", "selection", "report")}
    assert sum(len(v) for v in ids.values()) == 1000
    names = list(ids)
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            assert not ids[x] & ids[y], (x, y)
    assert a.fingerprints == b.fingerprints
    assert make_splits(ds, seed=1).fingerprints != a.fingerprints
    assert dataset_fingerprint(ds) == dataset_fingerprint(ds.shuffle(seed=4))


def test_attack_subset_bounds() -> None:
    ds, _ = generate_synthetic(SynthConfig(n_bios=200, seed=3))
    pool = make_splits(ds).attack_pool
    assert sample_attack_subset(pool, 10, seed=1)["id"] == sample_attack_subset(pool, 10, seed=1)["id"]
    with pytest.raises(DataError, match="larger than the attack pool"):
        sample_attack_subset(pool, len(pool) + 1, seed=0)


def test_dynamic_padding() -> None:
    ds, _ = generate_synthetic(SynthConfig(n_bios=40, seed=0))
    tok = default_tokenizer()
    tds = tokenize_dataset(ds, tok, "text", max_length=64)
    lengths = [len(x) for x in tds["input_ids"]]
    batches = list(iterate_batches(tds, "gender", 8, pad_token_id=tok.pad_token_id))
    assert len(batches) == 5
    for i, batch in enumerate(batches):
        chunk = lengths[i * 8 : (i + 1) * 8]
        assert batch["input_ids"].shape == (len(chunk), max(chunk))
        assert batch["attention_mask"].sum(dim=1).tolist() == chunk
        assert batch["labels"].dtype == torch.long
    assert max(lengths) <= 64


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    ds, task = generate_synthetic(SynthConfig(n_bios=50, seed=0))
    path = save_dataset(ds, task, tmp_path / "d.parquet")
    back, task2 = load_saved_dataset(path)
    assert task2 == task and dataset_fingerprint(back) == dataset_fingerprint(ds)


def test_bias_in_bios_parquet_and_jsonl_fixtures(tmp_path: Path) -> None:
    rows = {"hard_text": ["She works as a nurse in Ohio. Her patients love her.", "He codes in Go."], "profession": [13, 24], "gender": [1, 0]}
    pq.write_table(pa.Table.from_pydict(rows), str(tmp_path / "train.parquet"))
    ds, task = load_bias_in_bios(tmp_path / "train.parquet")
    assert ds["gender"] == [0, 1]  # bias_in_bios 1=female -> ours 0=female
    assert "Their patients love their." in ds["text"][0]
    assert len(task.beneficial_names) == 28
    jl = tmp_path / "d.jsonl"
    jl.write_text("\n".join(json.dumps({k: v[i] for k, v in rows.items()}) for i in range(2)))
    assert load_bias_in_bios(jl)[0]["profession"] == [13, 24]


def test_bias_in_bios_missing_columns(tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pydict({"hard_text": ["x"], "gender": [0]}), str(tmp_path / "x.parquet"))
    with pytest.raises(DataError, match=r"missing column\(s\) \['profession'\]"):
        load_bias_in_bios(tmp_path / "x.parquet")


def test_bios_pkl_needs_trust_and_is_converted_once(tmp_path: Path) -> None:
    records = [
        {"raw": "Ann Lee is a nurse. She works nights.", "bio": "She works nights.", "title": "nurse", "gender": "F"},
        {"raw": "Bob Roe is a dentist. His clinic is busy.", "bio": "His clinic is busy.", "title": "dentist", "gender": "M"},
    ]
    pkl = tmp_path / "BIOS.pkl"
    pkl.write_bytes(pickle.dumps(records))
    with pytest.raises(DataError, match="--trust-pickle"):
        load_bias_in_bios(pkl)
    ds, task = load_bias_in_bios(pkl, trust_pickle=True)
    assert task.beneficial_names == ("dentist", "nurse") and ds["gender"] == [0, 1]
    assert ds["text"] == ["They works nights.", "Their clinic is busy."]
    assert (tmp_path / "BIOS.parquet").is_file()
    pkl.write_bytes(b"not a pickle anymore")  # converted: the pickle is not read again
    import os

    os.utime(tmp_path / "BIOS.parquet", None)
    assert load_bias_in_bios(pkl)[0]["id"] == ds["id"]


def test_user_file_validation(tmp_path: Path) -> None:
    f = tmp_path / "u.jsonl"
    f.write_text(json.dumps({"bio": "He is a cook. He cooks.", "job": 1}) + "\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['sex'\]"):
        load_dataset_file(f, "bio", ("job", "sex"))
    with pytest.raises(DataError, match="not found"):
        load_dataset_file(tmp_path / "nope.jsonl", "bio", ("job", "sex"))


def test_cli_synth_and_errors(tmp_path: Path) -> None:
    out = tmp_path / "s.parquet"
    cli = [sys.executable, "-m", "mlac.cli.main"]
    res = subprocess.run([*cli, "data", "synth", "--n", "100", "--out", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "100 rows" in res.stdout and (tmp_path / "s.task.json").is_file()
    bad = subprocess.run([*cli, "data", "info", str(tmp_path / "missing.parquet")], capture_output=True, text=True)
    assert bad.returncode == 2 and "not found" in bad.stderr and "Traceback" not in bad.stderr
    pkl = tmp_path / "BIOS.pkl"
    pkl.write_bytes(pickle.dumps([{"raw": "x", "title": "y", "gender": "F"}]))
    bad = subprocess.run([*cli, "data", "convert", str(pkl), "--out", str(tmp_path / "o.parquet")], capture_output=True, text=True)
    assert bad.returncode == 2 and "--trust-pickle" in bad.stderr and "Traceback" not in bad.stderr
