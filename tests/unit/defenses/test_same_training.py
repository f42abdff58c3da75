"""The audit's ``ac`` and ``beneficial_tuned`` baselines and the ``ac`` / ``beneficial_only`` defenses are one
training: the same settings give the same weights, byte for byte."""

from __future__ import annotations

from pathlib import Path

import torch

from mlac.audit.baselines import build_baselines
from mlac.audit.presets import build_request
from mlac.audit.protocol import BaselineConfig
from mlac.data import load_saved_dataset, make_splits
from mlac.defenses import DefenseCall, DefenseSpec, run_defense
from mlac.models import load_checkpoint
from mlac.models.provenance import sha256_file


def test_baselines_and_defenses_train_the_same_weights(bios: Path, base_checkpoint: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    ds, task = load_saved_dataset(bios)
    splits = make_splits(ds, 0)
    request = build_request("smoke", dataset=str(bios), base=str(base_checkpoint), baselines=("beneficial_tuned", "ac"),
                            max_length=48, baseline_config=BaselineConfig(beneficial_steps=3, ac_steps=2))
    built = build_baselines(request, splits.train, splits.fingerprints["train"], task, tmp_path / "audit")
    progress: list[dict[str, object]] = []
    for baseline, defense, config in (("ac", "ac", {"steps": 2}), ("beneficial_tuned", "beneficial_only", {"steps": 3})):
        call = DefenseCall(defense=DefenseSpec.build(defense, None, {**config, "max_length": 48}),
                           base=str(base_checkpoint), dataset=str(bios), split_seed=0, out_dir=str(tmp_path / defense))
        result = run_defense(call, progress=progress.append)
        ours = sha256_file(Path(result.checkpoint) / "model.safetensors")
        assert ours == sha256_file(Path(built[baseline]) / "model.safetensors"), defense
        assert result.weights_sha256 == ours and result.steps_done == config["steps"]
        loaded = load_checkpoint(result.checkpoint)  # a loadable checkpoint with its provenance
        assert loaded.provenance["parent_sha256"] == load_checkpoint(base_checkpoint).sha256
    assert any(e.get("event") == "step" and e.get("step") == 3 for e in progress)  # beneficial_only reports its steps
