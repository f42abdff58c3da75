"""Data: synthetic biographies, Bias-in-Bios loaders, pronoun scrubbing, splits, encoded (tokenised) splits."""

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
