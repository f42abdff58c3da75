"""MLAC training loop: determinism, resume, stop flag, checkpoint + provenance, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from mlac.censor.config import MLACConfig
from mlac.censor.train import train_mlac
from mlac.errors import ConfigError, DataError, StoppedError
from mlac.models import build_tiny_bert, load_checkpoint

CFG = MLACConfig(
    inner_steps=2, outer_steps=5, outer_batch_size=8, inner_batch_sizes=(4, 6), val_every=2,
    checkpoint_every=2, val_batches=1, outer_lr=1e-3, max_length=16, device="cpu",
)


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _run(toy_bios, tok, cfg=CFG, **kwargs):
    ds, task = toy_bios
    model, _ = build_tiny_bert(len(task.beneficial_names), seed=0, tokenizer=tok)
    return train_mlac(model, tok, ds, task, cfg, **kwargs)


@pytest.mark.parametrize(
    "cfg",
    [CFG, CFG.replace(adversary_head="learned", inner_lr_mode="sampled", adv_loss="neg_ce", w_grad_norm=0.1)],
    ids=["default", "learned-head-sampled-lr"],
)
def test_same_seed_gives_bit_identical_weights_and_other_seed_does_not(toy_bios, tiny_tokenizer, cfg):
    a = _run(toy_bios, tiny_tokenizer, cfg)
    b = _run(toy_bios, tiny_tokenizer, cfg)
    assert _same(_weights(a.model), _weights(b.model))
    assert a.history == b.history
    c = _run(toy_bios, tiny_tokenizer, cfg.replace(seed=1))
    assert not _same(_weights(a.model), _weights(c.model))
    # Training moved the weights and the adversary learned (or kept) a valid inner lr.
    fresh, _ = build_tiny_bert(4, seed=0, tokenizer=tiny_tokenizer)
    assert not _same(_weights(a.model), _weights(fresh))
    assert cfg.inner_lr_min <= a.inner_lr <= cfg.inner_lr_max
    assert a.skipped_nonfinite == 0


def test_stop_then_resume_equals_uninterrupted_run(toy_bios, tiny_tokenizer, tmp_path):
    cfg = CFG.replace(adversary_head="learned")
    full = _run(toy_bios, tiny_tokenizer, cfg, out_dir=tmp_path / "full")
    calls = {"n": 0}

    def stop_after_three() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    events: list[dict] = []
    with pytest.raises(StoppedError, match="step 3"):
        _run(toy_bios, tiny_tokenizer, cfg, out_dir=tmp_path / "cut", should_stop=stop_after_three, progress=events.append)
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2, 3]
    assert all(e["eta_s"] is not None for e in events if e["event"] == "step")
    resumed = _run(toy_bios, tiny_tokenizer, cfg, out_dir=tmp_path / "cut")
    assert resumed.resumed_from == 3
    assert _same(_weights(full.model), _weights(resumed.model))
    assert full.history == resumed.history
    assert full.weights_sha256 == resumed.weights_sha256
    # A finished run resumed again does no more steps and gives the same model.
    again = _run(toy_bios, tiny_tokenizer, cfg, out_dir=tmp_path / "cut")
    assert again.resumed_from == cfg.outer_steps and again.weights_sha256 == full.weights_sha256


def test_saved_model_has_best_weights_and_provenance(toy_bios, tiny_tokenizer, tmp_path):
    res = _run(toy_bios, tiny_tokenizer, out_dir=tmp_path, parent_sha256="ab" * 32)
    loaded = load_checkpoint(tmp_path)
    assert loaded.sha256 == res.weights_sha256
    assert _same(_weights(loaded.model), _weights(res.model))
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["parent_sha256"] == "ab" * 32
    assert prov["dataset_fingerprint"] == res.dataset_fingerprint and len(res.dataset_fingerprint) == 64
    assert prov["training"]["config"] == CFG.to_dict()
    assert prov["seed"] == CFG.seed and "torch" in prov["package_versions"]
    assert res.best_step in {r["step"] for r in res.history if r["best"]}
    assert not list(tmp_path.rglob("*.bin")) and not list(tmp_path.rglob("*.pt"))


def test_resume_with_other_settings_is_refused(toy_bios, tiny_tokenizer, tmp_path):
    _run(toy_bios, tiny_tokenizer, CFG.replace(outer_steps=2), out_dir=tmp_path)
    with pytest.raises(ConfigError, match="w_adv"):
        _run(toy_bios, tiny_tokenizer, CFG.replace(w_adv=0.5), out_dir=tmp_path)
    # resume=False starts over.
    res = _run(toy_bios, tiny_tokenizer, CFG.replace(w_adv=0.5, outer_steps=2), out_dir=tmp_path, resume=False)
    assert res.resumed_from is None


def test_dataset_without_label_column_is_a_data_error(toy_bios, tiny_tokenizer):
    ds, task = toy_bios
    model, _ = build_tiny_bert(4, seed=0, tokenizer=tiny_tokenizer)
    with pytest.raises(DataError, match="gender"):
        train_mlac(model, tiny_tokenizer, ds.remove_columns("gender"), task, CFG)
    with pytest.raises(DataError, match="too few"):
        train_mlac(model, tiny_tokenizer, ds.select(range(8)), task, CFG)
