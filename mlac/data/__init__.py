"""Data: synthetic biographies, Bias-in-Bios loaders, pronoun scrubbing, splits, encoded (tokenised) splits.

The names below are loaded on first use (PEP 562), so that ``mlac.data.synth.SynthConfig`` (what the CLI's
parser needs for its defaults) can be read without importing ``datasets``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlac.data.fingerprint import dataset_fingerprint
    from mlac.data.io import load_saved_dataset, save_dataset
    from mlac.data.loaders import load_bias_in_bios
    from mlac.data.scrub import drop_first_sentence, scrub_pronouns
    from mlac.data.splits import (
        DEFAULT_FRACTIONS,
        SPLIT_NAMES,
        Splits,
        make_splits,
        sample_attack_subset,
        split_sizes,
        strata_counts,
    )
    from mlac.data.synth import SynthConfig, generate_synthetic
    from mlac.data.user_file import load_dataset_file

_WHERE = {
    "dataset_fingerprint": "fingerprint",
    "load_saved_dataset": "io", "save_dataset": "io",
    "load_bias_in_bios": "loaders",
    "drop_first_sentence": "scrub", "scrub_pronouns": "scrub",
    "DEFAULT_FRACTIONS": "splits", "SPLIT_NAMES": "splits", "Splits": "splits", "make_splits": "splits",
    "sample_attack_subset": "splits", "split_sizes": "splits", "strata_counts": "splits",
    "SynthConfig": "synth", "generate_synthetic": "synth",
    "load_dataset_file": "user_file",
}

__all__ = [
    "DEFAULT_FRACTIONS",
    "SPLIT_NAMES",
    "Splits",
    "SynthConfig",
    "dataset_fingerprint",
    "drop_first_sentence",
    "generate_synthetic",
    "load_bias_in_bios",
    "load_dataset_file",
    "load_saved_dataset",
    "make_splits",
    "sample_attack_subset",
    "save_dataset",
    "scrub_pronouns",
    "split_sizes",
    "strata_counts",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f"mlac.data.{_WHERE[name]}"), name)
        globals()[name] = value  # the name, not a submodule of the same name, from now on
        return value
    raise AttributeError(f"module 'mlac.data' has no attribute {name!r}")
