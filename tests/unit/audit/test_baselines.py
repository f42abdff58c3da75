"""Baselines built from a base checkpoint: random, base, beneficial_tuned, ac (K=0, learned adversary head); cached."""

from __future__ import annotations

from pathlib import Path

import torch

from mlac.audit.baselines import build_baselines
from mlac.audit.presets import build_request
from mlac.audit.protocol import BaselineConfig
from mlac.data import load_saved_dataset, make_splits
from mlac.models import load_checkpoint


def test_every_baseline_is_built_once_and_reused(tmp_path: Path, audit_dataset: Path, tiny_checkpoint: Path) -> None:
    torch.set_num_threads(1)
    ds, task = load_saved_dataset(audit_dataset)
    splits = make_splits(ds, 0)
    req = build_request("smoke", dataset=str(audit_dataset), base=str(tiny_checkpoint),
                        baselines=("random", "base", "beneficial_tuned", "ac"), max_length=64,
                        baseline_config=BaselineConfig(beneficial_steps=3, ac_steps=2))
    events: list[dict[str, object]] = []
    built = build_baselines(req, splits.train, splits.fingerprints["train"], task, tmp_path, events.append)
    assert set(built) == {"random", "base", "beneficial_tuned", "ac"}
    assert built["base"] == str(tiny_checkpoint)
    assert sorted(e["building"] for e in events if "building" in e) == ["ac", "beneficial_tuned", "random"]
    base = load_checkpoint(tiny_checkpoint)
    shas = {name: load_checkpoint(path).sha256 for name, path in built.items()}
    assert len(set(shas.values())) == 4  # four different models
    for name in ("random", "beneficial_tuned", "ac"):
        loaded = load_checkpoint(built[name])
        prov = loaded.provenance
        assert prov["parent_sha256"] == base.sha256, (name, prov)
        same_arch = {k: v.shape for k, v in loaded.model.state_dict().items()} == {
            k: v.shape for k, v in base.model.state_dict().items()}
        assert same_arch, name
    # A second build with the same recipe trains nothing; a changed recipe rebuilds only what changed.
    again: list[dict[str, object]] = []
    assert build_baselines(req, splits.train, splits.fingerprints["train"], task, tmp_path, again.append) == built
    assert not [e for e in again if "building" in e]
    changed = req.replace(baseline_config=BaselineConfig(beneficial_steps=4, ac_steps=2))
    third: list[dict[str, object]] = []
    build_baselines(changed, splits.train, splits.fingerprints["train"], task, tmp_path, third.append)
    assert [e["building"] for e in third if "building" in e] == ["beneficial_tuned"]
