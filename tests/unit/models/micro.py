"""Helpers of the untrusted-input tests: a micro BERT checkpoint (hidden 8, one layer, 32-token vocab; validating it
takes milliseconds) and raw edits of its files."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

MICRO_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(27)]


def write_micro_checkpoint(out: Path) -> Path:
    """Save a micro BERT (type_vocab_size 1, so one tensor has a dimension of size 1) with a 2-class head."""
    from transformers import BertConfig, BertTokenizerFast

    from mlac.models import save_checkpoint
    from mlac.models.build import trunk_from_config, with_fresh_beneficial_head

    out.mkdir(parents=True)
    vocab = out.parent / f"{out.name}-vocab.txt"
    vocab.write_text("\n".join(MICRO_VOCAB) + "\n", encoding="utf-8")
    config = BertConfig(vocab_size=len(MICRO_VOCAB), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16, type_vocab_size=1)
    model = with_fresh_beneficial_head(trunk_from_config(config, 0), 2, 0)
    save_checkpoint(model, BertTokenizerFast(vocab_file=str(vocab)), out)
    return out


def split_weights(path: Path) -> tuple[dict[str, Any], bytes]:
    """The JSON header and the data region of a safetensors file."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_weights(path: Path, header: str | bytes, data: bytes) -> None:
    """Write a safetensors file from header text (any bytes: it need not be valid JSON) and data."""
    raw = header.encode("utf-8") if isinstance(header, str) else header
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def edit_config(folder: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Change config.json through ``edit`` (in place)."""
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    edit(cfg)
    (folder / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
