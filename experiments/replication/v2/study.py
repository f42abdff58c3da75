"""The v2 study's data, name split and models (base, random, MLAC seeds, ablations), each a cached piece.

Every model is a checkpoint directory under ``<out>/models/<label>`` written by the project's
``save_checkpoint``/``train_mlac``, so the audit engine reads them as it reads a user's checkpoint; the
directory name is the label the audit reports.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.replication.pieces import Pieces
from experiments.replication.scales import DATA_KNOBS
from experiments.replication.setup import data_piece
from experiments.replication.v2.names import NameSplit, draw_name_split
from experiments.replication.v2.scales import V2Scale
from mlac.censor import MLACConfig, train_mlac
from mlac.data import Splits, SynthConfig, load_saved_dataset, make_splits
from mlac.data.encoded import encode_split
from mlac.data.synth import name_pools
from mlac.models import default_tokenizer, load_checkpoint, load_minilm, random_reinit, save_checkpoint
from mlac.models.base_model import make_base_model
from mlac.tasks import TaskSpec

log = logging.getLogger("replication")


@dataclass
class V2Study:
    """Paths, task, splits, the name split and the model checkpoints of one run of the study."""

    out: Path
    scale: V2Scale
    pieces: Pieces
    dataset_path: Path
    task: TaskSpec
    splits: Splits
    names: NameSplit
    models: dict[str, Path]

    def texts(self, split: str) -> list[str]:
        """The text column the task reads, of split ``split``."""
        return list(self.splits.get(split)[self.task.text_field])


def synth_config(scale: V2Scale) -> SynthConfig:
    """The calibrated generator of the first study (every first name of the pools, 95% name cues)."""
    knobs = dict(DATA_KNOBS)
    knobs["names_per_gender"] = min(len(v) for v in name_pools().values())
    return SynthConfig(n_bios=scale.n_bios, seed=0, **knobs)


def make_base(study: V2Study) -> dict[str, Any]:
    """``models/base``: the offline MiniLM-L6 (fresh beneficial head) or, at the ``ci`` scale and as the
    secondary setting, the tiny supervised base trained on both labels of the train split."""
    path = study.out / "models" / "base"
    nb = study.task.num_labels("beneficial")

    def build() -> dict[str, Any]:
        if study.scale.base_kind == "minilm":
            loaded = load_minilm(nb)
            save_checkpoint(loaded.model, loaded.tokenizer, path, {"baseline": "base", "kind": "minilm"},
                            beneficial_names=study.task.beneficial_names)
            return {"kind": "minilm", "parameters": sum(p.numel() for p in loaded.model.parameters())}
        tok = default_tokenizer()
        train = encode_split(study.splits.train, tok, study.task, study.scale.max_length)
        model = make_base_model(train, tok, num_beneficial=nb, steps=200, lr=1e-3, seed=0)
        save_checkpoint(model, tok, path, {"baseline": "base", "kind": "supervised"},
                        beneficial_names=study.task.beneficial_names)
        return {"kind": "supervised", "parameters": sum(p.numel() for p in model.parameters())}

    study.models["base"] = path
    return study.pieces.run("models/base", build)


def make_random(study: V2Study) -> None:
    """``models/random``: the base's architecture with every weight re-initialised."""
    path = study.out / "models" / "random"

    def build() -> dict[str, Any]:
        base = load_checkpoint(study.models["base"])
        save_checkpoint(random_reinit(base.model, 1), base.tokenizer, path,
                        {"baseline": "random", "parent_sha256": base.sha256}, beneficial_names=study.task.beneficial_names)
        return {"label": "random"}

    study.pieces.run("models/random", build)
    study.models["random"] = path


def train_piece(study: V2Study, label: str, cfg: MLACConfig) -> dict[str, Any]:
    """MLAC ``cfg`` from the base on the train bios with a *seen* name, into ``models/<label>`` (resumable:
    ``train_mlac`` keeps its state every ``checkpoint_every`` outer steps)."""
    path = study.out / "models" / label

    def build() -> dict[str, Any]:
        base = load_checkpoint(study.models["base"], device=study.scale.device)
        rows = study.names.rows(study.texts("train"), "seen")
        train = study.splits.train.select(rows)
        started, cpu = time.monotonic(), time.process_time()
        result = train_mlac(copy.deepcopy(base.model), base.tokenizer, train, study.task, cfg, out_dir=path,
                            resume=True, parent_sha256=base.sha256, beneficial_names=study.task.beneficial_names)
        wall = time.monotonic() - started
        return {"label": label, "config": cfg.to_dict(), "train_rows": len(rows), "best_step": result.best_step,
                "skipped_nonfinite": result.skipped_nonfinite, "history": result.history, "wall_s": wall,
                "cpu_s": time.process_time() - cpu, "s_per_outer_step": wall / max(cfg.outer_steps, 1)}

    info = study.pieces.run(f"models/{label}", build)
    study.models[label] = path
    return info


def mlac_labels(scale: V2Scale) -> list[str]:
    """Labels of the main MLAC models, one per training seed."""
    return [f"mlac_s{s}" for s in scale.mlac_seeds]


def ablation_labels(scale: V2Scale) -> dict[str, list[str]]:
    """Ablation name -> labels of its models, one per training seed."""
    return {name: [f"{name}_s{s}" for s in seeds] for name, (_, seeds) in scale.ablations.items()}


def make_models(study: V2Study) -> dict[str, Any]:
    """Random, the MLAC seeds and the ablations (each cached); returns their training records."""
    scale = study.scale
    make_random(study)
    info: dict[str, Any] = {}
    for seed, label in zip(scale.mlac_seeds, mlac_labels(scale), strict=True):
        info[label] = train_piece(study, label, scale.mlac.replace(seed=seed))
    for name, (overrides, seeds) in scale.ablations.items():
        for seed, label in zip(seeds, ablation_labels(scale)[name], strict=True):
            info[label] = train_piece(study, label, scale.mlac.replace(seed=seed, **overrides))
    return info


def prepare(out: Path, scale: V2Scale) -> V2Study:
    """Data, splits, the name split and the base model (cached pieces)."""
    pieces = Pieces(out)
    path = data_piece(out, pieces, synth_config(scale))
    ds, task = load_saved_dataset(path)
    study = V2Study(out, scale, pieces, path, task, make_splits(ds, 0), draw_name_split(scale.seen_fraction), {})
    make_base(study)
    return study
