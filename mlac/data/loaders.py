"""Loaders for the real Bias in Bios from a local path (a user's own label file: :mod:`mlac.data.user_file`).

Two layouts are read: the public ``bias_in_bios`` dataset (parquet or JSON/JSONL with ``hard_text``,
``profession``, ``gender``), and biosbias' ``BIOS.pkl`` (a pickled list of dicts). The pickle is read
only behind an explicit ``trust_pickle=True`` (CLI: ``--trust-pickle``), converted once to parquet,
and from then on read from the parquet. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset

from mlac.data.scrub import drop_first_sentence, scrub_pronouns
from mlac.errors import DataError
from mlac.tasks import TaskSpec

#: Label order of the public ``bias_in_bios`` dataset's ``profession`` column.
BIAS_IN_BIOS_PROFESSIONS = (
    "accountant", "architect", "attorney", "chiropractor", "comedian", "composer", "dentist", "dietitian",
    "dj", "filmmaker", "interior_designer", "journalist", "model", "nurse", "painter", "paralegal", "pastor",
    "personal_trainer", "photographer", "physician", "poet", "professor", "psychologist", "rapper",
    "software_engineer", "surgeon", "teacher", "yoga_teacher",
)
GENDER_NAMES = ("female", "male")


def _read_table_file(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pq.read_table(str(path)).to_pylist()
        if suffix in (".jsonl", ".ndjson"):
            with path.open(encoding="utf-8") as fh:
                return [json.loads(line) for line in fh if line.strip()]
        if suffix == ".json":
            text = path.read_text(encoding="utf-8").strip()
            if text.startswith("["):
                data = json.loads(text)
                return data if isinstance(data, list) else []
            return [json.loads(line) for line in text.splitlines() if line.strip()]
    except (pa.ArrowInvalid, OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read it as {suffix[1:]} ({exc})") from exc
    raise DataError(f"{path}: unsupported file type {suffix!r}; use parquet, json or jsonl (or BIOS.pkl with --trust-pickle)")


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickler that builds only plain containers and scalars: it refuses every class or function.

    Even a trusted BIOS.pkl needs nothing else (lists of dicts of strings/ints/tuples), so a pickle that
    asks for any global is rejected before it can run code.
    """

    ALLOWED = frozenset({("builtins", "set"), ("builtins", "frozenset")})

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise DataError(
            f"the pickle asks for {module}.{name}; only plain lists, dicts, strings and numbers are read "
            "from BIOS.pkl (convert it yourself to parquet/jsonl with hard_text, profession, gender)"
        )


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".parquet", ".json", ".jsonl"))
        if not files:
            raise DataError(f"{path}: no parquet/json/jsonl files in this directory")
        return files
    return [path]


def load_bias_in_bios(path: str | Path, *, trust_pickle: bool = False, converted_out: str | Path | None = None) -> tuple[Dataset, TaskSpec]:
    """Load Bias in Bios from ``path`` (a file or a directory of files); scrub pronouns; map labels."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"dataset path not found: {p}")
    if p.suffix.lower() in (".pkl", ".pickle"):
        return _load_bios_pkl(p, trust_pickle=trust_pickle, converted_out=converted_out)
    rows: list[dict[str, Any]] = []
    for f in _files(p):
        rows.extend(_read_table_file(f))
    if not rows:
        raise DataError(f"{p}: no rows")
    missing = [c for c in ("hard_text", "profession", "gender") if any(c not in row for row in rows)]
    if missing:
        raise DataError(f"{p}: missing column(s) {missing}; the bias_in_bios layout has hard_text, profession, gender")
    out: dict[str, list] = {k: [] for k in ("id", "text", "text_with_first_sentence", "profession", "gender")}
    for i, row in enumerate(rows):
        prof, gender = row["profession"], row["gender"]
        if not isinstance(prof, int) or not 0 <= prof < len(BIAS_IN_BIOS_PROFESSIONS) or gender not in (0, 1):
            raise DataError(
                f"{p}: row {i}: profession must be an integer in 0..{len(BIAS_IN_BIOS_PROFESSIONS) - 1} and gender "
                f"0 (male) or 1 (female) as in the bias_in_bios layout; got profession={prof!r}, gender={gender!r}"
            )
        text = scrub_pronouns(str(row["hard_text"]))
        out["id"].append(str(row.get("id", f"bib-{i:07d}-{hashlib.sha1(text.encode()).hexdigest()[:8]}")))
        out["text"].append(text)
        out["text_with_first_sentence"].append(text)  # the public layout has already dropped it
        out["profession"].append(int(row["profession"]))
        out["gender"].append(1 - int(row["gender"]))  # bias_in_bios: 0 male, 1 female -> ours: 0 female, 1 male
    task = TaskSpec(beneficial_names=BIAS_IN_BIOS_PROFESSIONS, harmful_names=GENDER_NAMES)
    return Dataset.from_dict(out), task


def _load_bios_pkl(path: Path, *, trust_pickle: bool, converted_out: str | Path | None) -> tuple[Dataset, TaskSpec]:
    target = Path(converted_out) if converted_out else path.with_suffix(".parquet")
    if target.is_file() and target.stat().st_mtime >= path.stat().st_mtime:
        return _from_converted(target)
    if not trust_pickle:
        raise DataError(
            f"{path} is a pickle, which can run arbitrary code when loaded. If you trust this file, pass "
            "--trust-pickle (trust_pickle=True): it is converted once to parquet and never unpickled again."
        )
    try:
        with path.open("rb") as fh:
            records = _PlainDataUnpickler(fh).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: not a readable pickle ({exc})") from exc
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise DataError(f"{path}: expected a pickled non-empty list of dicts (biosbias BIOS.pkl)")
    for i, r in enumerate(records):
        missing = [k for k in ("raw", "title", "gender") if k not in r]
        if missing:
            raise DataError(f"{path}: record {i} lacks key(s) {missing}; biosbias records have raw, bio, title, gender")
        if str(r["gender"]).upper()[:1] not in ("F", "M"):
            raise DataError(f"{path}: record {i}: gender must be 'F' or 'M', got {r['gender']!r}")
    table = {
        "id": [f"bios-{i:07d}" for i in range(len(records))],
        "raw": [str(r["raw"]) for r in records],
        "bio": [str(r.get("bio") or drop_first_sentence(str(r["raw"]))) for r in records],
        "title": [str(r["title"]) for r in records],
        "gender": [str(r["gender"]).upper()[:1] for r in records],
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    pq.write_table(pa.Table.from_pydict(table), str(tmp))
    tmp.replace(target)  # atomic: a half-written conversion is never taken for a finished one
    return _from_converted(target)


def _from_converted(target: Path) -> tuple[Dataset, TaskSpec]:
    try:
        table = pq.read_table(str(target)).to_pydict()
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{target}: the converted BIOS parquet is unreadable ({exc}); delete it and convert again") from exc
    missing = [c for c in ("id", "raw", "bio", "title", "gender") if c not in table]
    if missing:
        raise DataError(f"{target}: not a BIOS.pkl conversion (missing {missing}); delete it or pick another converted_out")
    titles = sorted(set(table["title"]))
    index = {t: i for i, t in enumerate(titles)}
    out = {
        "id": table["id"],
        "text": [scrub_pronouns(b) for b in table["bio"]],
        "text_with_first_sentence": [scrub_pronouns(r) for r in table["raw"]],
        "profession": [index[t] for t in table["title"]],
        "gender": [0 if g == "F" else 1 for g in table["gender"]],
    }
    return Dataset.from_dict(out), TaskSpec(beneficial_names=tuple(titles), harmful_names=GENDER_NAMES)
