"""Checks of an untrusted config.json before any model is built from it.

Building a model (even on the meta device) costs time and memory in proportion to what the config declares,
and transformers crashes on some values (``num_attention_heads = 0``: ZeroDivisionError; ``vocab_size = -1``:
RuntimeError). So the file is read with a size cap and strict JSON, its sizes are checked against
:class:`~mlac.limits.ModelLimits` on the raw dict (cheapest) and again on the built config object (which
resolves aliases such as DistilBERT's ``n_layers``), and the parameter count the architecture implies is
compared with what the weights file can hold.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlac.errors import CheckpointError
from mlac.limits import MODEL_LIMITS, ModelLimits
from mlac.strict_json import StrictJsonError, loads_strict

#: Any other integer field whose name says it counts layers (ALBERT's ``inner_group_num``, XLNet's ``n_layer``)
#: is capped like ``num_hidden_layers``: the time to build a model grows with the number of layers. ("block"
#: would also catch BigBird's attention ``block_size``.)
LAYER_COUNT_KEY = re.compile(r"layer|group", re.IGNORECASE)


def size_caps(limits: ModelLimits) -> dict[str, int]:
    """The capped config fields and their caps."""
    return {
        "num_hidden_layers": limits.max_layers,
        "hidden_size": limits.max_hidden_size,
        "num_attention_heads": limits.max_attention_heads,
        "intermediate_size": limits.max_intermediate_size,
        "vocab_size": limits.max_vocab_size,
        "max_position_embeddings": limits.max_position_embeddings,
    }


def read_config_json(path: Path, limits: ModelLimits = MODEL_LIMITS) -> dict[str, Any]:
    """config.json as a dict: at most ``limits.max_config_bytes``, strict JSON, an object with a model_type."""
    size = path.stat().st_size
    if size > limits.max_config_bytes:
        raise CheckpointError(f"{path.name}: {size} bytes, more than the {limits.max_config_bytes} a config may have",
                              code="bad_config")
    try:
        raw = loads_strict(path.read_bytes())
    except StrictJsonError as exc:
        raise CheckpointError(f"{path.name}: not valid JSON ({exc})", code="bad_config") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("model_type"), str):
        raise CheckpointError(f"{path.name}: no 'model_type' key: not an HF model config", code="bad_config")
    return raw


def _check_size(name: str, value: Any, cap: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointError(f"config.json: {name} must be an integer, got {value!r:.40}", code="bad_config")
    if value < 1:
        raise CheckpointError(f"config.json: {name} must be at least 1, got {value}", code="bad_config")
    if value > cap:
        raise CheckpointError(f"config.json: {name} = {value} exceeds the limit of {cap}", code="model_too_large")


def check_config_limits(raw: Mapping[str, Any], limits: ModelLimits = MODEL_LIMITS) -> None:
    """Raise CheckpointError (``bad_config`` / ``model_too_large``) unless every declared size is an integer in
    range; fields the config does not set are left to the model's defaults (which are within range)."""
    caps = size_caps(limits)
    for name, cap in caps.items():
        if name in raw:
            _check_size(name, raw[name], cap)
    for name, value in raw.items():
        if name not in caps and LAYER_COUNT_KEY.search(name) and isinstance(value, int) and not isinstance(value, bool) \
                and value > limits.max_layers:
            raise CheckpointError(f"config.json: {name} = {value} exceeds the layer limit of {limits.max_layers}",
                                  code="model_too_large")


def check_built_config(config: Any, limits: ModelLimits = MODEL_LIMITS) -> None:
    """:func:`check_config_limits` on the config object (its attribute map resolves each model's own names),
    and a padding token inside the vocabulary (torch asserts it while building the embeddings)."""
    check_config_limits({name: getattr(config, name) for name in size_caps(limits) if hasattr(config, name)}, limits)
    pad, vocab = getattr(config, "pad_token_id", None), getattr(config, "vocab_size", None)
    if pad is not None and isinstance(vocab, int) and (isinstance(pad, bool) or not isinstance(pad, int)
                                                       or not 0 <= pad < vocab):
        raise CheckpointError(f"config.json: pad_token_id {pad!r:.40} is not a token id of the {vocab}-token vocabulary",
                              code="bad_config")


def check_parameter_budget(num_parameters: int, data_bytes: int, limits: ModelLimits = MODEL_LIMITS) -> None:
    """Refuse (``size_mismatch``) a config that implies more parameters than the weights' data region can hold."""
    if num_parameters * limits.min_bytes_per_parameter > data_bytes:
        raise CheckpointError(
            f"config.json implies {num_parameters:,} parameters, but model.safetensors holds {data_bytes:,} bytes of "
            f"tensors (room for at most {data_bytes // limits.min_bytes_per_parameter:,} at "
            f"{limits.min_bytes_per_parameter} bytes each)",
            code="size_mismatch",
        )
