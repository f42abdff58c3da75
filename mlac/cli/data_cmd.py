"""``mlac-audit data ...``: make, convert and inspect datasets.

Only :class:`~mlac.data.synth.SynthConfig` (light) is read to build the parser; ``datasets`` and the loaders
are imported by the handlers.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlac.data.synth import SynthConfig
from mlac.errors import ConfigError
from mlac.tasks import TaskSpec

if TYPE_CHECKING:
    from datasets import Dataset


def synth_defaults() -> dict[str, Any]:
    """SynthConfig's field defaults, read without constructing one (its validation loads Faker's name lists)."""
    return {f.name: f.default for f in fields(SynthConfig)}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``data`` command group (synth, convert, info)."""
    data = sub.add_parser("data", help="make, convert and inspect datasets",
                          description="Make a synthetic dataset, convert the real Bias in Bios, or summarise a saved "
                          "dataset. Every dataset is a .parquet file with a .task.json beside it (its label columns).")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True

    synth = dsub.add_parser("synth", help="generate synthetic pronoun-scrubbed biographies",
                            description="Generate seeded synthetic biographies (profession = beneficial label, "
                            "gender = harmful label, pronouns scrubbed); the same flags give the same rows.")
    d = synth_defaults()
    synth.add_argument("--n", type=int, default=d["n_bios"], help=f"number of biographies (default {d['n_bios']})")
    synth.add_argument("--seed", type=int, default=d["seed"], help=f"seed of the bios' random draws (default {d['seed']})")
    synth.add_argument("--professions", type=int, default=d["n_professions"], help=f"number of professions (2-16, default {d['n_professions']})")
    synth.add_argument("--gender-cue-strength", type=float, default=d["gender_cue_strength"],
                       help=f"0 = no gender signal in the text, 1 = full (default {d['gender_cue_strength']})")
    synth.add_argument("--name-cue-rate", type=float, default=d["name_cue_rate"], help=f"share of bios repeating the first name, at strength 1 (default {d['name_cue_rate']})")
    synth.add_argument("--noun-cue-rate", type=float, default=d["noun_cue_rate"], help=f"share of bios with a gendered noun, at strength 1 (default {d['noun_cue_rate']})")
    synth.add_argument("--names-per-gender", type=int, default=d["names_per_gender"], help=f"first-name vocabulary per gender (default {d['names_per_gender']})")
    synth.add_argument("--male-fraction", type=float, default=d["male_fraction"],
                       help=f"share of male bios (default {d['male_fraction']})")
    synth.add_argument("--specialty-rate", type=float, default=d["specialty_rate"], help=f"share of bios with a Faker job-title sentence (default {d['specialty_rate']})")
    synth.add_argument("--vocab-seed", type=int, default=d["vocab_seed"], help=f"seed of the name/place vocabulary (shared across --seed; default {d['vocab_seed']})")
    synth.add_argument("--out", type=Path, required=True, help="output .parquet (a .task.json is written beside it)")
    synth.set_defaults(func=_synth)

    convert = dsub.add_parser("convert", help="convert the real Bias in Bios (bias_in_bios parquet/json files or biosbias BIOS.pkl)",
                              description="Convert a local copy of Bias in Bios (nothing is downloaded): the HF "
                              "bias_in_bios parquet/json files, or the biosbias BIOS.pkl with --trust-pickle.")
    convert.add_argument("source", type=Path, nargs="?", help="a bias_in_bios parquet/json/jsonl file or folder")
    convert.add_argument("--bios-pkl", type=Path, help="the biosbias BIOS.pkl (needs --trust-pickle)")
    convert.add_argument("--trust-pickle", action="store_true", help="allow reading BIOS.pkl (a pickle) once; it is converted to parquet")
    convert.add_argument("--converted-out", type=Path, help="where the one-off parquet conversion of BIOS.pkl goes (default: beside it)")
    convert.add_argument("--out", type=Path, required=True, help="output .parquet (a .task.json is written beside it)")
    convert.set_defaults(func=_convert)

    info = dsub.add_parser("info", help="summarise a saved dataset",
                           description="Print a saved dataset's rows, label balance of both tasks and fingerprint.")
    info.add_argument("path", type=Path, help="dataset .parquet written by `mlac-audit data synth|convert`")
    info.set_defaults(func=_info)


def summary_lines(ds: Dataset, task: TaskSpec) -> list[str]:
    """Rows, label balance of both tasks and the content fingerprint, as printable lines."""
    from mlac.data import dataset_fingerprint

    n = max(len(ds), 1)
    harmful = Counter(ds[task.harmful_label])
    beneficial = Counter(ds[task.beneficial_label])
    h_names = task.harmful_names or tuple(str(i) for i in sorted(harmful))
    balance = ", ".join(f"{name} {harmful.get(i, 0) / n:.1%}" for i, name in enumerate(h_names))
    counts = sorted(beneficial.values()) or [0]
    return [
        f"{len(ds)} rows, text field {task.text_field!r}",
        f"{task.harmful_label} (harmful): {balance}",
        f"{task.beneficial_label} (beneficial): {len(beneficial)} classes, {counts[0]}..{counts[-1]} rows each",
        f"fingerprint {dataset_fingerprint(ds)}",
    ]


def _print_summary(ds: Dataset, task: TaskSpec, path: Path) -> None:
    print(f"{path}:")
    for line in summary_lines(ds, task):
        print(f"  {line}")


def _synth(args: argparse.Namespace) -> int:
    from mlac.data import generate_synthetic, save_dataset

    config = SynthConfig(
        n_bios=args.n, seed=args.seed, n_professions=args.professions, gender_cue_strength=args.gender_cue_strength,
        name_cue_rate=args.name_cue_rate, noun_cue_rate=args.noun_cue_rate, names_per_gender=args.names_per_gender,
        male_fraction=args.male_fraction, specialty_rate=args.specialty_rate, vocab_seed=args.vocab_seed,
    )
    ds, task = generate_synthetic(config)
    path = save_dataset(ds, task, args.out)
    _print_summary(ds, task, path)
    print(f"  bios with a gender cue in {task.text_field!r}: {config.cue_probability():.1%} expected")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from mlac.data import load_bias_in_bios, save_dataset

    if (args.source is None) == (args.bios_pkl is None):
        raise ConfigError("give exactly one source: a bias_in_bios file/folder, or --bios-pkl PATH --trust-pickle")
    source = args.bios_pkl if args.bios_pkl is not None else args.source
    ds, task = load_bias_in_bios(source, trust_pickle=args.trust_pickle, converted_out=args.converted_out)
    path = save_dataset(ds, task, args.out)
    _print_summary(ds, task, path)
    return 0


def _info(args: argparse.Namespace) -> int:
    from mlac.data import load_saved_dataset

    ds, task = load_saved_dataset(args.path)
    _print_summary(ds, task, args.path)
    return 0
