"""``mlac-audit data ...``: make, convert and inspect datasets."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from datasets import Dataset

from mlac.data import (
    SynthConfig,
    dataset_fingerprint,
    generate_synthetic,
    load_bias_in_bios,
    load_saved_dataset,
    save_dataset,
)
from mlac.tasks import TaskSpec


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``data`` command group."""
    data = sub.add_parser("data", help="make, convert and inspect datasets")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True

    synth = dsub.add_parser("synth", help="generate synthetic pronoun-scrubbed biographies")
    defaults = SynthConfig()
    synth.add_argument("--n", type=int, default=defaults.n_bios, help="number of biographies")
    synth.add_argument("--seed", type=int, default=defaults.seed)
    synth.add_argument("--professions", type=int, default=defaults.n_professions, help="number of professions (2-16)")
    synth.add_argument("--gender-cue-strength", type=float, default=defaults.gender_cue_strength, help="0 = no gender signal, 1 = full")
    synth.add_argument("--name-cue-rate", type=float, default=defaults.name_cue_rate)
    synth.add_argument("--noun-cue-rate", type=float, default=defaults.noun_cue_rate)
    synth.add_argument("--names-per-gender", type=int, default=defaults.names_per_gender)
    synth.add_argument("--out", type=Path, required=True, help="output .parquet (a .task.json is written beside it)")
    synth.set_defaults(func=_synth)

    convert = dsub.add_parser("convert", help="convert the real Bias in Bios (bias_in_bios files or biosbias BIOS.pkl)")
    convert.add_argument("source", type=Path, help="a parquet/json/jsonl file or folder, or BIOS.pkl")
    convert.add_argument("--trust-pickle", action="store_true", help="allow reading BIOS.pkl (a pickle) once")
    convert.add_argument("--out", type=Path, required=True)
    convert.set_defaults(func=_convert)

    info = dsub.add_parser("info", help="summarise a saved dataset")
    info.add_argument("path", type=Path)
    info.set_defaults(func=_info)


def _summary(ds: Dataset, task: TaskSpec, path: Path) -> None:
    genders = Counter(ds[task.harmful_label])
    profs = Counter(ds[task.beneficial_label])
    male = genders.get(1, 0) / max(len(ds), 1)
    print(f"{path}: {len(ds)} rows, {len(profs)} professions, {male:.1%} {task.harmful_names[1] if len(task.harmful_names) > 1 else '1'}")
    print(f"fingerprint {dataset_fingerprint(ds)}")


def _synth(args: argparse.Namespace) -> int:
    config = SynthConfig(
        n_bios=args.n, seed=args.seed, n_professions=args.professions, gender_cue_strength=args.gender_cue_strength,
        name_cue_rate=args.name_cue_rate, noun_cue_rate=args.noun_cue_rate, names_per_gender=args.names_per_gender,
    )
    ds, task = generate_synthetic(config)
    path = save_dataset(ds, task, args.out)
    _summary(ds, task, path)
    return 0


def _convert(args: argparse.Namespace) -> int:
    ds, task = load_bias_in_bios(args.source, trust_pickle=args.trust_pickle)
    path = save_dataset(ds, task, args.out)
    _summary(ds, task, path)
    return 0


def _info(args: argparse.Namespace) -> int:
    ds, task = load_saved_dataset(args.path)
    _summary(ds, task, args.path)
    return 0
