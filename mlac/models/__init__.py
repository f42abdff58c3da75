"""Models: the encoder classifier, building/loading/saving checkpoints, heads and baselines."""

from mlac.models.build import build_tiny_bert, default_tokenizer, minilm_path, random_reinit
from mlac.models.checkpoint import (
    CheckpointInfo,
    LoadedModel,
    load_checkpoint,
    load_minilm,
    save_checkpoint,
    validate_checkpoint_dir,
)
from mlac.models.encoder import EncoderClassifier, make_head, pool

__all__ = [
    "CheckpointInfo",
    "EncoderClassifier",
    "LoadedModel",
    "build_tiny_bert",
    "default_tokenizer",
    "load_checkpoint",
    "load_minilm",
    "make_head",
    "minilm_path",
    "pool",
    "random_reinit",
    "save_checkpoint",
    "validate_checkpoint_dir",
]
