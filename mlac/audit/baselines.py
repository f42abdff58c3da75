"""Baselines of the paper's figure, built from a base model and cached as checkpoints in the audit folder.

- ``base``: the pre-trained model as given (``tiny`` builds a small one: a tiny BERT trained briefly on
  both labels of the train split, so that its features carry the harmful information);
- ``random``: the same architecture with every weight re-initialised;
- ``beneficial_tuned``: the base fine-tuned on the beneficial task only (the ``beneficial_only`` defense's
  training, :func:`mlac.defenses.beneficial_only.train_beneficial_only`);
- ``ac``: adversarial censoring, MLAC with K = 0 and a learned adversary head (no simulated fine-tuning;
  the defender maximises the bounded negative CE of a head the adversary keeps training,
  :func:`mlac.censor.config.ac_config`): the ``ac`` defense's training, :func:`mlac.defenses.adversarial.train_ac`.

Each is saved under ``<out>/baselines/<name>/`` with a ``recipe.json``; a later run with the same
recipe (base sha256, train-split fingerprint, settings) reuses it instead of training again.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset

from mlac.audit.protocol import TINY_BASE, AuditRequest, BaselineConfig
from mlac.data.encoded import encode_split
from mlac.defenses.adversarial import ACConfig, train_ac
from mlac.defenses.beneficial_only import BeneficialOnlyConfig, train_beneficial_only
from mlac.device import resolve_device
from mlac.errors import CheckpointError
from mlac.models import (
    EncoderClassifier,
    LoadedModel,
    default_tokenizer,
    load_checkpoint,
    random_reinit,
    save_checkpoint,
)
from mlac.models.base_model import make_base_model
from mlac.models.provenance import sha256_file
from mlac.tasks import TaskSpec

RECIPE_FILE = "recipe.json"
Progress = Callable[[dict[str, Any]], None]


def _cached(path: Path, recipe: dict[str, Any]) -> bool:
    file = path / RECIPE_FILE
    if not (file.is_file() and (path / "model.safetensors").is_file()):
        return False
    try:
        return bool(json.loads(file.read_text(encoding="utf-8")).get("recipe") == recipe)
    except json.JSONDecodeError:
        return False


def _write_recipe(path: Path, recipe: dict[str, Any]) -> None:
    sha = sha256_file(path / "model.safetensors")
    (path / RECIPE_FILE).write_text(json.dumps({"recipe": recipe, "sha256": sha}, indent=2, sort_keys=True), encoding="utf-8")


def load_base(path: str, task: TaskSpec, device: torch.device) -> LoadedModel:
    """A base checkpoint, with a fresh beneficial head when the directory has none."""
    try:
        return load_checkpoint(path, device=device)
    except CheckpointError as exc:
        if exc.code != "missing_head":
            raise
        return load_checkpoint(path, num_beneficial=task.num_labels("beneficial"), device=device)


def train_beneficial(model: EncoderClassifier, tokenizer: Any, train: Dataset, task: TaskSpec, cfg: BaselineConfig,
                     max_length: int, device: torch.device) -> EncoderClassifier:
    """Fine-tune trunk + beneficial head on the beneficial labels only (Adam, batch 32, clip 1): the
    ``beneficial_only`` defense with the baseline's steps, learning rate and seed."""
    config = BeneficialOnlyConfig(steps=cfg.beneficial_steps, lr=cfg.beneficial_lr, batch_size=32,
                                  max_length=max_length, seed=cfg.seed, device=str(device))
    return train_beneficial_only(model, tokenizer, train, task, config, device)


def build_baselines(
    request: AuditRequest, train: Dataset, train_fingerprint: str, task: TaskSpec, out_dir: str | Path,
    progress: Progress | None = None,
) -> dict[str, str]:
    """Build (or reuse) every baseline the request names; return label -> checkpoint directory."""
    if not request.baselines:
        return {}
    assert request.base is not None  # validate() guarantees it
    cfg = request.baseline_config
    device = resolve_device(request.device)
    root = Path(out_dir) / "baselines"
    emit = progress or (lambda event: None)
    names = task.beneficial_names

    base_path = request.base
    if request.base == TINY_BASE:
        path = root / "base"
        base_recipe = {"kind": "tiny_base", "data": train_fingerprint, "steps": cfg.tiny_base_steps,
                       "batch_size": cfg.tiny_base_batch_size, "harmful_weight": cfg.tiny_base_harmful_weight,
                       "seed": cfg.seed, "max_length": request.max_length}
        if not _cached(path, base_recipe):
            emit({"stage": "baselines", "building": "base (tiny BERT)"})
            tok = default_tokenizer()
            enc = encode_split(train, tok, task, request.max_length)
            model = make_base_model(enc, tok, num_beneficial=task.num_labels("beneficial"), steps=cfg.tiny_base_steps,
                                    batch_size=cfg.tiny_base_batch_size, harmful_weight=cfg.tiny_base_harmful_weight,
                                    seed=cfg.seed, device=device)
            save_checkpoint(model, tok, path, {"baseline": "base", "recipe": base_recipe}, beneficial_names=names)
            _write_recipe(path, base_recipe)
        base_path = str(path)
    out: dict[str, str] = {}
    if "base" in request.baselines:
        out["base"] = base_path
    others = [b for b in ("random", "beneficial_tuned", "ac") if b in request.baselines]
    if not others:
        return out
    base = load_base(base_path, task, device)
    common = {"base_sha256": base.sha256, "data": train_fingerprint, "seed": cfg.seed}
    for name in others:
        path = root / name
        recipe: dict[str, Any] = {"kind": name, **common}
        if name == "beneficial_tuned":
            recipe.update(steps=cfg.beneficial_steps, lr=cfg.beneficial_lr, max_length=request.max_length)
        if name == "ac":
            recipe.update(steps=cfg.ac_steps, lr=cfg.ac_lr, max_length=request.max_length, adversary="learned_head")
        if not _cached(path, recipe):
            emit({"stage": "baselines", "building": name})
            built = _build(name, base, train, task, cfg, request, device, path)
            if built is not None:
                save_checkpoint(built, base.tokenizer, path, {"baseline": name, "parent_sha256": base.sha256, "recipe": recipe},
                                beneficial_names=names)
            _write_recipe(path, recipe)
        out[name] = str(path)
    return out


def _build(name: str, base: LoadedModel, train: Dataset, task: TaskSpec, cfg: BaselineConfig, request: AuditRequest,
           device: torch.device, path: Path) -> EncoderClassifier | None:
    """Train one baseline; returns the model to save (None when the trainer saved it itself)."""
    if name == "random":
        return random_reinit(base.model, cfg.seed + 1)
    if name == "beneficial_tuned":
        return train_beneficial(base.model, base.tokenizer, train, task, cfg, request.max_length, device)
    config = ACConfig(steps=cfg.ac_steps, lr=cfg.ac_lr, max_length=request.max_length, seed=cfg.seed, device=str(device))
    train_ac(copy.deepcopy(base.model), base.tokenizer, train, task, config, out_dir=path, resume=False,
             parent_sha256=base.sha256)
    return None
