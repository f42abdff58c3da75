"""Limits on untrusted inputs, in one place: declared model sizes, JSON files, safetensors headers, datasets.

A small file must not make the process build a huge model, allocate gigabytes or recurse without end, so
every size a checkpoint or dataset declares is checked against these before anything is built from it.
The defaults admit every real encoder this project audits (BERT-base/large, RoBERTa-large, XLM-R-large,
MiniLM, DeBERTa-v2-xxlarge at 48 layers) and the label sets of its tasks (Bias in Bios: 28 professions,
binary gender).
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024

#: Deepest nesting of arrays/objects accepted in any JSON we parse (real configs and headers use 3-4).
MAX_JSON_DEPTH = 32
#: Longest integer literal accepted in JSON (20 digits hold every 64-bit value; the Rust loader's usize).
MAX_JSON_INT_DIGITS = 20
#: The same for tokenizer JSON files: transformers writes ``model_max_length = int(1e30)`` (31 digits) into
#: tokenizer_config.json when a tokenizer has no length of its own.
MAX_TOKENIZER_INT_DIGITS = 40


@dataclass(frozen=True)
class ModelLimits:
    """Caps on what a checkpoint's config.json and model.safetensors may declare."""

    max_layers: int = 48
    max_hidden_size: int = 4096
    max_attention_heads: int = 64
    max_intermediate_size: int = 16384
    max_vocab_size: int = 300_000
    max_position_embeddings: int = 16384
    #: config.json is read whole; real ones are a few kB (with a 1000-class id2label, ~50 kB).
    max_config_bytes: int = 1 * MiB
    #: The safetensors header; a 48-layer encoder's is under 200 kB (the format's own cap is 100 MB).
    max_header_bytes: int = 16 * MiB
    #: Bytes per parameter of the narrowest float dtype a trunk tensor may have (F16/BF16): a config that
    #: implies more parameters than ``data bytes / this`` cannot match the weights file.
    min_bytes_per_parameter: int = 2
    #: tokenizer.json is parsed twice at intake (strict JSON, then the Rust ``tokenizers`` library); BERT's is
    #: 0.5 MB, XLM-R's (250k pieces) 17 MB.
    max_tokenizer_json_bytes: int = 32 * MiB
    #: tokenizer_config.json, special_tokens_map.json, added_tokens.json, generation_config.json and
    #: provenance.json: a few kB in real checkpoints (LLM tokenizer configs with hundreds of added tokens ~1 MB).
    max_tokenizer_config_bytes: int = 4 * MiB
    #: vocab.txt (multilingual BERT: 1 MB), vocab.json + merges.txt (RoBERTa: 1 MB + 0.5 MB).
    max_vocab_file_bytes: int = 16 * MiB


@dataclass(frozen=True)
class DatasetLimits:
    """Caps on an uploaded dataset file."""

    #: Beneficial labels are class indices 0..max_beneficial_classes-1 (one name per class is stored and returned).
    max_beneficial_classes: int = 1000
    #: The harmful task is binary (PROTOCOL.md): labels 0 or 1.
    harmful_classes: int = 2
    #: Rows of one file (Bias in Bios has ~400k); a parquet file declares its row count before it is read.
    max_rows: int = 2_000_000
    #: Decoded size of the columns read from a parquet file (a dictionary-encoded, compressed file can be a
    #: thousand times smaller than its contents).
    max_decoded_bytes: int = 2048 * MiB


MODEL_LIMITS = ModelLimits()
DATASET_LIMITS = DatasetLimits()
