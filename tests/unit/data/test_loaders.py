"""Bias-in-Bios loaders and user files, on small fixtures of the real layouts built here (no download)."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlac.data import load_bias_in_bios, load_dataset_file
from mlac.data.loaders import BIAS_IN_BIOS_PROFESSIONS
from mlac.errors import DataError

# The public `bias_in_bios` layout: hard_text (bio without its first sentence, pronouns kept),
# profession (int, 28 classes), gender (int: 0 male, 1 female).
PUBLIC_ROWS = {
    "hard_text": ["She works nights on the ward. Her patients love her.", "He writes code in Go. His team ships weekly."],
    "profession": [13, 24],
    "gender": [1, 0],
}
# The biosbias BIOS.pkl layout: a list of dicts; raw = whole bio, bio = without the first sentence.
BIOS_RECORDS = [
    {"raw": "Ann Lee is a nurse in Ohio. She works nights.", "bio": "She works nights.", "title": "nurse", "gender": "F",
     "name": ("Ann", "", "Lee"), "start_pos": 28, "path": "x", "URI": "u1"},
    {"raw": "Bob Roe is a dentist. His clinic is busy. HE likes it.", "bio": "His clinic is busy. HE likes it.",
     "title": "dentist", "gender": "M", "name": ("Bob", "", "Roe"), "start_pos": 22, "path": "y", "URI": "u2"},
    {"raw": "Cy Moe is a nurse. He is kind.", "title": "nurse", "gender": "M", "name": ("Cy", "", "Moe")},
]


def _public_parquet(path: Path, rows: dict = PUBLIC_ROWS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pydict(rows), str(path))
    return path


def _check_public(ds, task) -> None:
    assert ds.column_names == ["id", "text", "text_with_first_sentence", "profession", "gender"]
    assert ds["gender"] == [0, 1]  # bias_in_bios 1=female -> ours 0=female
    assert ds["profession"] == [13, 24] and task.beneficial_names == BIAS_IN_BIOS_PROFESSIONS
    assert task.beneficial_names[13] == "nurse" and task.harmful_names == ("female", "male")
    assert ds["text"] == ["They works nights on the ward. Their patients love their.", "They writes code in Go. Their team ships weekly."]
    assert ds["text_with_first_sentence"] == ds["text"]  # this layout has no first sentence
    assert len(set(ds["id"])) == 2


def test_public_parquet(tmp_path: Path) -> None:
    _check_public(*load_bias_in_bios(_public_parquet(tmp_path / "train.parquet")))


def test_public_jsonl_and_json(tmp_path: Path) -> None:
    rows = [{k: v[i] for k, v in PUBLIC_ROWS.items()} for i in range(2)]
    jl = tmp_path / "d.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    _check_public(*load_bias_in_bios(jl))
    js = tmp_path / "d.json"
    js.write_text(json.dumps(rows))
    _check_public(*load_bias_in_bios(js))


def test_public_directory_of_split_files(tmp_path: Path) -> None:
    _public_parquet(tmp_path / "data" / "train-00000-of-00001.parquet")
    _public_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", {k: v[:1] for k, v in PUBLIC_ROWS.items()})
    ds, _ = load_bias_in_bios(tmp_path)
    assert len(ds) == 3 and len(set(ds["id"])) == 3


def test_public_missing_columns_and_bad_labels(tmp_path: Path) -> None:
    p = _public_parquet(tmp_path / "x.parquet", {"hard_text": ["x"], "gender": [0]})
    with pytest.raises(DataError, match=r"missing column\(s\) \['profession'\]"):
        load_bias_in_bios(p)
    p = _public_parquet(tmp_path / "y.parquet", {"hard_text": ["x"], "profession": [40], "gender": [0]})
    with pytest.raises(DataError, match=r"profession must be an integer in 0\.\.27"):
        load_bias_in_bios(p)
    bad = tmp_path / "z.csv"
    bad.write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported file type"):
        load_bias_in_bios(bad)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="cannot read it as parquet"):
        load_bias_in_bios(broken)


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_bias_in_bios(tmp_path / "nope.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no parquet/json/jsonl files"):
        load_bias_in_bios(tmp_path / "empty")


def test_bios_pkl_needs_the_trust_flag(tmp_path: Path) -> None:
    pkl = tmp_path / "BIOS.pkl"
    pkl.write_bytes(pickle.dumps(BIOS_RECORDS))
    with pytest.raises(DataError, match="--trust-pickle"):
        load_bias_in_bios(pkl)
    assert not (tmp_path / "BIOS.parquet").exists()


def test_bios_pkl_is_converted_once_then_read_from_parquet(tmp_path: Path) -> None:
    pkl = tmp_path / "BIOS.pkl"
    pkl.write_bytes(pickle.dumps(BIOS_RECORDS))
    ds, task = load_bias_in_bios(pkl, trust_pickle=True)
    assert task.beneficial_names == ("dentist", "nurse") and ds["profession"] == [1, 0, 1]
    assert ds["gender"] == [0, 1, 1]
    assert ds["text"] == ["They works nights.", "Their clinic is busy. THEY likes it.", "They is kind."]
    assert ds["text_with_first_sentence"][1] == "Bob Roe is a dentist. Their clinic is busy. THEY likes it."
    converted = tmp_path / "BIOS.parquet"
    assert converted.is_file()
    pkl.write_bytes(b"garbage: never unpickled again")
    os.utime(converted, None)
    again, _ = load_bias_in_bios(pkl)  # no trust needed: read from the parquet
    assert again["id"] == ds["id"] and again["text"] == ds["text"]


def test_bios_pkl_converted_out(tmp_path: Path) -> None:
    pkl = tmp_path / "BIOS.pkl"
    pkl.write_bytes(pickle.dumps(BIOS_RECORDS))
    out = tmp_path / "conv" / "bios.parquet"
    ds, _ = load_bias_in_bios(pkl, trust_pickle=True, converted_out=out)
    assert out.is_file() and not (tmp_path / "BIOS.parquet").exists() and len(ds) == 3


class _Boom:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch SHOULD_NOT_EXIST",))


def test_pickle_with_code_is_refused_even_when_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    pkl = tmp_path / "BIOS.pkl"
    pkl.write_bytes(pickle.dumps([{"raw": _Boom(), "title": "nurse", "gender": "F"}]))
    with pytest.raises(DataError, match="only plain lists"):
        load_bias_in_bios(pkl, trust_pickle=True)
    assert not (tmp_path / "SHOULD_NOT_EXIST").exists()


def test_bad_bios_records(tmp_path: Path) -> None:
    pkl = tmp_path / "BIOS.pkl"
    pkl.write_bytes(pickle.dumps([{"raw": "A is a b.", "gender": "F"}]))
    with pytest.raises(DataError, match=r"lacks key\(s\) \['title'\]"):
        load_bias_in_bios(pkl, trust_pickle=True)
    pkl.write_bytes(pickle.dumps([{"raw": "A is a b.", "title": "b", "gender": "X"}]))
    with pytest.raises(DataError, match="gender must be 'F' or 'M'"):
        load_bias_in_bios(pkl, trust_pickle=True)
    pkl.write_bytes(pickle.dumps({"not": "a list"}))
    with pytest.raises(DataError, match="list of dicts"):
        load_bias_in_bios(pkl, trust_pickle=True)


def test_user_file_jsonl_and_parquet(tmp_path: Path) -> None:
    rows = [{"bio": f"Sam is a cook. He cooks {i}.", "job": i % 3, "sex": i % 2} for i in range(6)]
    f = tmp_path / "u.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    ds, task = load_dataset_file(f, "bio", ("job", "sex"))
    assert ds["text"][0] == "They cooks 0." and ds["text_with_first_sentence"][0] == "Sam is a cook. They cooks 0."
    assert ds["profession"] == [0, 1, 2, 0, 1, 2] and ds["gender"] == [0, 1] * 3
    assert task.num_labels("beneficial") == 3 and task.num_labels("harmful") == 2
    p = tmp_path / "u.parquet"
    pq.write_table(pa.Table.from_pylist(rows), str(p))
    assert load_dataset_file(p, "bio", ("job", "sex"))[0]["text"] == ds["text"]


def test_user_file_validation(tmp_path: Path) -> None:
    f = tmp_path / "u.jsonl"
    f.write_text(json.dumps({"bio": "He is a cook. He cooks.", "job": 1}) + "\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['sex'\]; the file has \['bio', 'job'\]"):
        load_dataset_file(f, "bio", ("job", "sex"))
    with pytest.raises(DataError, match=r"missing column\(s\) \['text', 'sex'\]"):
        load_dataset_file(f, "text", ("job", "sex"))
    with pytest.raises(DataError, match="not found"):
        load_dataset_file(tmp_path / "nope.jsonl", "bio", ("job", "sex"))
    f.write_text(json.dumps({"bio": "x", "job": "chef", "sex": 0}) + "\n")
    with pytest.raises(DataError, match="labels must be integers"):
        load_dataset_file(f, "bio", ("job", "sex"))
