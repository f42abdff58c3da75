"""Checkpoints as HF-style directories: config.json + model.safetensors + tokenizer + provenance.json.

Loading never unpickles: weights come only from a structurally validated ``model.safetensors`` whose
tensors must match the architecture that ``config.json`` declares. A directory that holds only a
pickle-based checkpoint (``pytorch_model.bin``, ``*.pt``, ``*.pkl``) is refused. The declared sizes are
checked against :class:`~mlac.limits.ModelLimits` before any model is built (:mod:`mlac.models.config_check`),
so a small hostile config costs milliseconds, not a model of 15,000 layers.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import huggingface_hub.errors as hub_errors
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from mlac.errors import CheckpointError
from mlac.limits import MODEL_LIMITS, ModelLimits
from mlac.models.build import ATTN_IMPLEMENTATION, minilm_path, trunk_from_config, with_fresh_beneficial_head
from mlac.models.config_check import (
    check_built_config,
    check_config_limits,
    check_parameter_budget,
    read_config_json,
)
from mlac.models.custom_code import refuse_custom_code
from mlac.models.dtype_policy import INDEX_BUFFER_SUFFIXES, check_dtype
from mlac.models.encoder import EncoderClassifier
from mlac.models.provenance import package_versions, sha256_file
from mlac.models.safetensors_check import TensorEntry, read_header
from mlac.models.tokenizer_check import check_tokenizer

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
PROVENANCE_FILE = "provenance.json"
HEAD_PREFIX = "mlac.beneficial_head."
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "spiece.model", "vocab.json")
#: Buffers some checkpoints carry that are not parameters of the architecture (safe to ignore).
IGNORED_SUFFIXES = INDEX_BUFFER_SUFFIXES
#: What transformers raises for a config it cannot build (besides what the limits catch first): e.g.
#: ValueError for hidden_size not divisible by the heads, huggingface_hub's StrictDataclassError for a field
#: of the wrong type (transformers 5 validates configs), TypeError/AttributeError where nothing validates,
#: RuntimeError/OverflowError from torch for a size it cannot allocate even on the meta device, and
#: AssertionError, with which torch checks some arguments (nn.Embedding's padding_idx).
CONFIG_BUILD_ERRORS: tuple[type[Exception], ...] = (
    ValueError, KeyError, TypeError, AttributeError, IndexError, ZeroDivisionError, OverflowError, RuntimeError,
    OSError, AssertionError, getattr(hub_errors, "StrictDataclassError", ValueError),
)


@dataclass(frozen=True)
class CheckpointInfo:
    """What validation learned about a checkpoint directory."""

    path: Path
    sha256: str
    model_type: str
    hidden_size: int
    num_parameters: int
    num_beneficial: int | None
    beneficial_names: tuple[str, ...]
    pooling: str
    key_prefix: str


@dataclass
class LoadedModel:
    """A loaded checkpoint: the model, its tokenizer and where it came from."""

    model: EncoderClassifier
    tokenizer: PreTrainedTokenizerBase
    info: CheckpointInfo
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        """sha256 of the weights file (the checkpoint's content address)."""
        return self.info.sha256


def _read_config(path: Path, limits: ModelLimits = MODEL_LIMITS) -> tuple[PretrainedConfig, dict[str, Any]]:
    """The config (sizes within ``limits``, checked before and after transformers builds it) and its mlac block."""
    cfg_path = path / CONFIG_FILE
    if not cfg_path.is_file():
        raise CheckpointError(f"{path}: missing {CONFIG_FILE} (an HF encoder directory needs one)", code="missing_config")
    raw = read_config_json(cfg_path, limits)
    check_config_limits(raw, limits)
    refuse_custom_code(CONFIG_FILE, raw)
    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    except CONFIG_BUILD_ERRORS as exc:
        raise CheckpointError(f"{cfg_path.name}: cannot build a config from it ({str(exc)[:300]})", code="bad_config") from exc
    check_built_config(config, limits)
    mlac_meta = raw.get("mlac", {})
    return config, mlac_meta if isinstance(mlac_meta, dict) else {}


def _expected_shapes(config: PretrainedConfig) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of the architecture, from a model on the meta device (no memory; time bounded by the limits)."""
    try:
        with torch.device("meta"):
            trunk = AutoModel.from_config(config, attn_implementation=ATTN_IMPLEMENTATION)
    except CONFIG_BUILD_ERRORS as exc:
        raise CheckpointError(f"config.json does not describe a supported encoder ({str(exc)[:300]})", code="bad_config") from exc
    return {k: tuple(v.shape) for k, v in trunk.state_dict().items()}


def _required_parameters(expected: dict[str, tuple[int, ...]]) -> int:
    """Parameters the weights file must hold (the pooler and ignored buffers may be absent)."""
    return sum(math.prod(shape) for key, shape in expected.items()
               if not key.startswith("pooler.") and not key.endswith(IGNORED_SUFFIXES))


def _strip_prefix(names: list[str], expected: dict[str, tuple[int, ...]], config: PretrainedConfig) -> str:
    """Find the prefix (e.g. 'bert.') under which the trunk's tensors are stored."""
    candidates = ["", f"{getattr(config, 'model_type', '')}.", "model.", "encoder_model."]
    trunk_names = [n for n in names if not n.startswith(HEAD_PREFIX)]
    best, best_hits = "", -1
    for prefix in candidates:
        hits = sum(1 for n in trunk_names if n.startswith(prefix) and n[len(prefix):] in expected)
        if hits > best_hits:
            best, best_hits = prefix, hits
    return best


def validate_checkpoint_dir(path: str | Path, *, check_values: bool = True, max_header_bytes: int | None = None,
                            limits: ModelLimits = MODEL_LIMITS) -> CheckpointInfo:
    """Validate an HF encoder directory without unpickling anything; raise CheckpointError with a code.

    Codes: missing_dir, pickle_refused, missing_weights, missing_config, bad_config, model_too_large,
    custom_code_refused (:mod:`~mlac.models.custom_code`), missing_tokenizer, the structural codes of
    :func:`read_header`, bad_dtype (:mod:`~mlac.models.dtype_policy`), size_mismatch (the config implies more
    parameters than the file holds), unexpected_tensor, missing_tensor, shape_mismatch, bad_head, bad_tokenizer
    and vocab_mismatch (:mod:`~mlac.models.tokenizer_check`), non_finite. Cheapest first: sizes are checked before
    anything is built, the header before any tensor is read, the tokenizer before the weights' values.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: checkpoint directory not found", code="missing_dir")
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise CheckpointError(
                f"{path}: only pickle-based weights ({', '.join(pickles)}); pickles are never loaded. "
                "Convert them to model.safetensors (safetensors.torch.save_file) where you trust them.",
                code="pickle_refused",
            )
        raise CheckpointError(f"{path}: missing {WEIGHTS_FILE}", code="missing_weights")
    config, meta = _read_config(path, limits)
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise CheckpointError(f"{path}: no tokenizer files (one of {', '.join(TOKENIZER_FILES)})", code="missing_tokenizer")
    entries = read_header(weights, max_header_bytes=max_header_bytes or limits.max_header_bytes)
    for entry in entries.values():
        check_dtype(WEIGHTS_FILE, entry)
    expected = _expected_shapes(config)
    check_parameter_budget(_required_parameters(expected), sum(e.end - e.begin for e in entries.values()), limits)
    prefix = _strip_prefix(list(entries), expected, config)
    num_beneficial = _check_tensors(entries, expected, prefix, int(config.hidden_size), path)
    check_tokenizer(path, int(config.vocab_size), limits)
    if check_values:
        _check_finite(weights)
    names = meta.get("beneficial_names", [])
    return CheckpointInfo(
        path=path,
        sha256=sha256_file(weights),
        model_type=str(config.model_type),
        hidden_size=int(config.hidden_size),
        num_parameters=sum(int(torch.Size(s).numel()) for s in expected.values()),
        num_beneficial=num_beneficial,
        beneficial_names=tuple(str(n) for n in names) if isinstance(names, list) else (),
        pooling=str(meta.get("pooling", "mean")),
        key_prefix=prefix,
    )


def _check_tensors(
    entries: dict[str, TensorEntry], expected: dict[str, tuple[int, ...]], prefix: str, hidden: int, path: Path
) -> int | None:
    seen: set[str] = set()
    head: dict[str, TensorEntry] = {}
    for name, entry in entries.items():
        if name.startswith(HEAD_PREFIX):
            head[name[len(HEAD_PREFIX):]] = entry
            continue
        key = name[len(prefix):] if name.startswith(prefix) else name
        if key not in expected:
            if key.endswith(IGNORED_SUFFIXES) or key.startswith(("pooler.", "cls.", "classifier.", "lm_head.")):
                continue
            raise CheckpointError(f"{path.name}: tensor {name!r} is not part of the declared architecture", code="unexpected_tensor")
        if entry.shape != expected[key]:
            raise CheckpointError(
                f"{path.name}: tensor {name!r} has shape {list(entry.shape)}, config.json implies {list(expected[key])}",
                code="shape_mismatch",
            )
        seen.add(key)
    missing = sorted(k for k in set(expected) - seen if not k.startswith("pooler."))
    if missing:
        raise CheckpointError(
            f"{path.name}: {len(missing)} tensors of the architecture are missing, e.g. {missing[:3]}", code="missing_tensor"
        )
    if not head:
        return None
    weight, bias = head.get("weight"), head.get("bias")
    if weight is None or bias is None or len(weight.shape) != 2 or weight.shape[1] != hidden or bias.shape != (weight.shape[0],):
        raise CheckpointError(f"{path.name}: the beneficial head tensors are malformed", code="bad_head")
    return int(weight.shape[0])


def _check_finite(weights: Path) -> None:
    for name, tensor in load_file(str(weights)).items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{weights.name}: tensor {name!r} contains NaN or Inf values", code="non_finite")


def load_checkpoint(
    path: str | Path,
    *,
    num_beneficial: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> LoadedModel:
    """Load a validated checkpoint directory as an :class:`EncoderClassifier`.

    A plain HF encoder directory (no beneficial head saved) gets a fresh beneficial head of
    ``num_beneficial`` classes initialised from ``seed``.
    """
    info = validate_checkpoint_dir(path)
    path = Path(path)
    config, _ = _read_config(path)
    n_classes = info.num_beneficial if info.num_beneficial is not None else num_beneficial
    if n_classes is None:
        raise CheckpointError(
            f"{path}: no beneficial head saved; say how many beneficial classes the head needs (num_beneficial)",
            code="missing_head",
        )
    if num_beneficial is not None and info.num_beneficial is not None and num_beneficial != info.num_beneficial:
        raise CheckpointError(
            f"{path}: the saved beneficial head has {info.num_beneficial} classes, {num_beneficial} were asked for",
            code="bad_head",
        )
    model = with_fresh_beneficial_head(trunk_from_config(config, seed), n_classes, seed)
    model.pooling = info.pooling
    tensors = load_file(str(path / WEIGHTS_FILE))
    trunk_state = {}
    for name, tensor in tensors.items():
        if name.startswith(HEAD_PREFIX):
            continue
        key = name[len(info.key_prefix):] if name.startswith(info.key_prefix) else name
        trunk_state[key] = tensor.float()
    expected = model.trunk.state_dict()
    model.trunk.load_state_dict({k: v for k, v in trunk_state.items() if k in expected}, strict=False)
    if info.num_beneficial is not None:
        model.beneficial_head.load_state_dict(
            {"weight": tensors[HEAD_PREFIX + "weight"].float(), "bias": tensors[HEAD_PREFIX + "bias"].float()}
        )
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    prov_path = path / PROVENANCE_FILE
    provenance = json.loads(prov_path.read_text(encoding="utf-8")) if prov_path.is_file() else {}
    return LoadedModel(model.to(device), tokenizer, info, provenance)


def load_minilm(num_beneficial: int, *, seed: int = 0, device: torch.device | str = "cpu") -> LoadedModel:
    """The offline pre-trained MiniLM-L6 (22.7M parameters) with a fresh beneficial head."""
    return load_checkpoint(minilm_path(), num_beneficial=num_beneficial, seed=seed, device=device)


def save_checkpoint(
    model: EncoderClassifier,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: str | Path,
    provenance: dict[str, Any] | None = None,
    *,
    beneficial_names: tuple[str, ...] = (),
) -> str:
    """Write ``model`` as an HF-style directory; return the sha256 of its weights.

    ``provenance.json`` gets the weights sha256, the package versions and whatever the caller passes
    (parent checkpoint sha256, dataset fingerprint, training config, seed).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in model.trunk.state_dict().items()}
    for k, v in model.beneficial_head.state_dict().items():
        state[HEAD_PREFIX + k] = v.detach().to("cpu", torch.float32).contiguous().clone()
    tmp = out / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, out / WEIGHTS_FILE)
    config = model.trunk.config.to_dict()
    config["mlac"] = {
        "num_beneficial": model.num_beneficial,
        "pooling": model.pooling,
        "beneficial_names": list(beneficial_names),
    }
    if len(beneficial_names) == model.num_beneficial:  # what any Hugging Face tool shows as the model's labels
        config["id2label"] = {str(i): name for i, name in enumerate(beneficial_names)}
        config["label2id"] = {name: i for i, name in enumerate(beneficial_names)}
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True, default=str), encoding="utf-8")
    tokenizer.save_pretrained(str(out))
    sha = sha256_file(out / WEIGHTS_FILE)
    record = {"weights_sha256": sha, "package_versions": package_versions(), **(provenance or {})}
    (out / PROVENANCE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=str), encoding="utf-8")
    return sha
