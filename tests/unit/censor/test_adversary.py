"""The adversary of MLAC training: what it minimises, the lr validation selects with, the AC baseline's head."""

from __future__ import annotations

import pytest
import torch

from mlac.censor.config import MLACConfig, ac_config
from mlac.censor.outer import outer_objective
from mlac.censor.train import MLACTrainer, _derived_seed, split_train_val, train_mlac
from mlac.data.encoded import encode_split
from mlac.errors import ConfigError
from mlac.models import build_tiny_bert

CFG = MLACConfig(
    inner_steps=2, outer_steps=6, outer_batch_size=8, inner_batch_sizes=(6,), val_every=3,
    checkpoint_every=10**6, val_batches=1, outer_lr=1e-3, max_length=16, device="cpu", adversary_lr=0.05,
)


def _trainer(toy_bios, tok, cfg: MLACConfig) -> MLACTrainer:
    ds, task = toy_bios
    model, _ = build_tiny_bert(len(task.beneficial_names), seed=0, tokenizer=tok)
    train, val = split_train_val(encode_split(ds, tok, task, cfg.max_length), cfg)
    return MLACTrainer(model, train, val, 2, cfg)


def test_validation_attacks_at_the_learned_inner_lr_and_records_the_initial_one(toy_bios, tiny_tokenizer):
    ds, task = toy_bios
    model, _ = build_tiny_bert(len(task.beneficial_names), seed=0, tokenizer=tiny_tokenizer)
    result = train_mlac(model, tiny_tokenizer, ds, task, CFG)
    last = result.history[-1]
    # The lr drifted away from its start, and validation used the drifted one (the attacker trained against).
    assert abs(result.inner_lr - CFG.inner_lr) > 0.1 * CFG.inner_lr
    assert last["validation_inner_lr"] == pytest.approx(result.inner_lr)
    assert {"objective_initial_lr", "simulated_attack_acc_initial_lr"} <= last.keys()
    assert last["objective"] != last["objective_initial_lr"]  # a different attacker gives a different objective
    # Fixed-lr runs have one attacker only: nothing extra is recorded.
    fixed = train_mlac(build_tiny_bert(4, seed=0, tokenizer=tiny_tokenizer)[0], tiny_tokenizer, ds, task,
                       CFG.replace(inner_lr_mode="fixed"))
    assert fixed.history[-1]["validation_inner_lr"] == CFG.inner_lr
    assert "objective_initial_lr" not in fixed.history[-1]


def test_adversary_objective_is_a_choice_and_each_is_deterministic(toy_bios, tiny_tokenizer):
    lrs = {}
    for objective in ("game", "adapted_ce"):
        runs = []
        for _ in range(2):
            trainer = _trainer(toy_bios, tiny_tokenizer, CFG.replace(adversary_objective=objective, adversary_lr=2e-5))
            records = [trainer.outer_step() for _ in range(4)]
            assert all(r["finite"] for r in records)
            runs.append(float(trainer.inner_lr.detach()))
        assert runs[0] == runs[1]
        lrs[objective] = runs[0]
    assert lrs["game"] != lrs["adapted_ce"]
    with pytest.raises(ConfigError, match="adversary_objective"):
        CFG.replace(adversary_objective="ce")
    with pytest.raises(ConfigError, match="adversary_grad_clip"):
        CFG.replace(adversary_grad_clip=0.0)


@pytest.mark.parametrize("objective", ["game", "adapted_ce"])
def test_one_adversary_step_improves_the_attack_by_its_own_objective(toy_bios, tiny_tokenizer, objective):
    """After one adversary step (its lr only; the defender barely moves), the same inner attack on the same
    draws scores better by the adversary's objective: lower remap loss (game) or lower adapted CE."""
    cfg = CFG.replace(adversary_objective=objective, adversary_lr=1e-5, outer_lr=1e-12, dropout=False)
    trainer = _trainer(toy_bios, tiny_tokenizer, cfg)

    def score(lr: float) -> float:
        trainer.model.eval()
        gen = torch.Generator().manual_seed(_derived_seed(cfg.seed, "step", 0))
        outer, inner, head = trainer._draw_step(gen, trainer.train)
        leaves = {k: v.detach().requires_grad_(True) for k, v in trainer.params.items()}
        terms = outer_objective(trainer.model, leaves, trainer.buffers, head, torch.tensor(lr), outer, inner, cfg)
        return float(terms.adapted_ce if objective == "adapted_ce" else terms.adv_per_step.mean())

    before = float(trainer.inner_lr.detach())
    score_before = score(before)
    trainer.outer_step()
    after = float(trainer.inner_lr.detach())
    assert after != before
    assert score(after) < score_before


def test_ac_baseline_has_no_inner_loop_and_a_learned_head_that_learns(toy_bios, tiny_tokenizer):
    cfg = ac_config(CFG.replace(outer_steps=60, val_every=60))
    assert cfg.inner_steps == 0 and cfg.adversary_head == "learned" and cfg.adv_loss == "neg_ce"
    trainer = _trainer(toy_bios, tiny_tokenizer, cfg.replace(w_adv=1.0))
    head_before = {k: v.detach().clone() for k, v in trainer.adv_head.items()}
    for _ in range(5):
        trainer.outer_step()
    assert any(not torch.equal(head_before[k], v) for k, v in trainer.adv_head.items())
    # Without a defender fighting it, the adversary's head learns to read gender from the features; a
    # freshly drawn random head at K = 0 (the former AC) reads nothing.
    probe = cfg.replace(w_adv=0.0, adversary_objective="adapted_ce", outer_lr=1e-12, adversary_lr=1e-2, val_batches=4,
                        outer_batch_size=16)
    learned = _trainer(toy_bios, tiny_tokenizer, probe)
    for _ in range(60):
        learned.outer_step()
    acc = learned.validate()["simulated_attack_acc"]
    fresh = _trainer(toy_bios, tiny_tokenizer, probe.replace(adversary_head="fresh"))
    fresh_acc = fresh.validate()["simulated_attack_acc"]
    print(f"learned head {acc:.3f}, fresh head {fresh_acc:.3f}")
    assert acc >= 0.8 and acc > fresh_acc + 0.2
