"""The warmup_cosine schedule and the reinit kind: what they compute, and that they differ from the plain ones."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

import mlac.attacks.loop as loop
from mlac.attacks import AttackData, AttackParams, get_attack, lr_factor, run_attack_trial
from mlac.attacks.reinit import encoder_layers
from mlac.audit.trial import TrialSpec, WorkerContext
from mlac.errors import ConfigError
from mlac.models import EncoderClassifier
from mlac.models.packed import supports_packed


def _data(ckpt: Path, dataset: Path, n: int = 40) -> tuple[AttackData, EncoderClassifier]:
    ctx = WorkerContext()
    spec = TrialSpec(checkpoint=str(ckpt), dataset=str(dataset), task="harmful", n=n, subset_seed=1, params={},
                     trial_seed=0, selection_max=60, report_max=60)
    task = ctx.dataset(str(dataset))[1]
    loaded = ctx.model(str(ckpt), torch.device("cpu"), len(task.beneficial_names))
    return ctx.attack_data(spec, loaded), loaded.model


def test_warmup_cosine_schedule() -> None:
    p = AttackParams(steps=20, schedule="warmup_cosine", warmup_fraction=0.2)
    f = [lr_factor(s, p) for s in range(20)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]  # linear warm-up over round(0.2 * 20) = 4 steps
    assert f[4] == 1.0 and all(a > b for a, b in itertools.pairwise(f[4:]))  # then strictly decreasing
    assert f[12] == pytest.approx(0.5 * (1 + math.cos(math.pi * 8 / 16)))
    assert 0 < f[-1] < 0.01  # towards 0
    linear = [lr_factor(s, AttackParams(steps=20, schedule="warmup_linear", warmup_fraction=0.2)) for s in range(20)]
    assert f[:5] == linear[:5] and f[12] == pytest.approx(linear[12])  # the same warm-up and mid-point
    assert all(c > lin for c, lin in zip(f[5:12], linear[5:12], strict=True))  # higher before, lower after
    assert all(c < lin for c, lin in zip(f[13:], linear[13:], strict=True))


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_warmup_cosine_trial_uses_its_schedule(optimizer: str, tiny_checkpoint: Path, audit_dataset: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The optimiser gets lr * the cosine factor at every step (and not the linear one), with AdamW and SGD."""
    torch.set_num_threads(1)
    data, model = _data(tiny_checkpoint, audit_dataset)
    seen: list[tuple[str, float]] = []
    original = loop.optimizer_step

    def spy(config, tensors, state, lr):  # type: ignore[no-untyped-def]
        seen.append((config.name, lr))
        return original(config, tensors, state, lr)

    monkeypatch.setattr(loop, "optimizer_step", spy)
    outcomes = {}
    for schedule in ("warmup_cosine", "warmup_linear"):
        seen.clear()
        p = AttackParams(kind="full", lr=1e-2, steps=8, batch_size=8, optimizer=optimizer, schedule=schedule,
                         warmup_fraction=0.25)
        outcomes[schedule] = run_attack_trial(model, data, "harmful", 2, p, seed=1, eval_every=4)
        assert seen == [(optimizer, 1e-2 * lr_factor(s, p)) for s in range(8)]
    assert outcomes["warmup_cosine"].steps_run == 8
    cosine = AttackParams(steps=8, schedule="warmup_cosine", warmup_fraction=0.25)
    linear = AttackParams(steps=8, schedule="warmup_linear", warmup_fraction=0.25)
    assert [lr_factor(s, cosine) for s in range(8)] != [lr_factor(s, linear) for s in range(8)]


def _trunk_features(model: EncoderClassifier, kind: str, k: int = 1, seed: int = 4) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    setup = get_attack(kind).setup(model, AttackParams(kind=kind, reinit_layers=k), seed)
    model.eval()
    with torch.no_grad(), setup.applied():
        return model.features(*_inputs(), packed=setup.packed), setup.trainable


@pytest.mark.parametrize("trunk_name", ["bert", "distil"])
def test_reinit_redraws_the_top_layers_only(trunk_name: str, distil_model: EncoderClassifier) -> None:
    from mlac.models import build_tiny_bert

    model = build_tiny_bert(6, seed=1)[0] if trunk_name == "bert" else distil_model
    name, layers = encoder_layers(model.trunk)
    own = dict(model.named_parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    full_out, full_t = _trunk_features(model, "full")
    re_out, re_t = _trunk_features(model, "reinit", k=1)
    again, again_t = _trunk_features(model, "reinit", k=1)
    other_seed, other_t = _trunk_features(model, "reinit", k=1, seed=5)
    assert list(full_t) == list(re_t)  # the same tensors train, in the same order
    top = f"trunk.{name}.{len(layers) - 1}."
    for key, value in re_t.items():
        if key.startswith(top):
            assert not torch.equal(value, own[key]) or value.dim() == 1  # weights re-drawn (biases/LN may coincide)
        else:
            assert torch.equal(value, own[key])
    with torch.no_grad():
        assert torch.equal(full_out, model.features(*_inputs(), packed=supports_packed(model.trunk)))  # full: own weights
    assert not torch.allclose(re_out, full_out)  # negative control: reinit changes what the model computes
    assert torch.equal(re_out, again) and all(torch.equal(again_t[k], v) for k, v in re_t.items())  # seeded
    assert not torch.equal(other_seed, re_out) and any(not torch.equal(other_t[k], v) for k, v in re_t.items())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is never modified
    everything, _ = _trunk_features(model, "reinit", k=len(layers))
    assert not torch.allclose(everything, re_out)
    with pytest.raises(ConfigError, match=f"exceeds the trunk's {len(layers)} encoder layers"):
        _trunk_features(model, "reinit", k=len(layers) + 1)


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(5, 100, (2, 7), generator=torch.Generator().manual_seed(0))
    return ids, torch.ones_like(ids)


def test_reinit_trial_runs_and_differs_from_full(tiny_checkpoint: Path, audit_dataset: Path,
                                                 distil_model: EncoderClassifier) -> None:
    torch.set_num_threads(1)
    data, model = _data(tiny_checkpoint, audit_dataset)
    for m in (model, distil_model):
        before = {k: v.clone() for k, v in m.state_dict().items()}
        kw = {"lr": 1e-3, "steps": 6, "batch_size": 12}
        re1 = run_attack_trial(m, data, "harmful", 2, AttackParams(kind="reinit", **kw), seed=2, eval_every=3,
                               record_ids=True)
        re2 = run_attack_trial(m, data, "harmful", 2, AttackParams(kind="reinit", **kw), seed=2, eval_every=3,
                               record_ids=True)
        full = run_attack_trial(m, data, "harmful", 2, AttackParams(kind="full", **kw), seed=2, eval_every=3)
        assert re1.selection_curve == re2.selection_curve and re1.report_accuracy == re2.report_accuracy
        assert re1.steps_run == 6 and re1.flops == full.flops > 0  # the same work as a full fine-tune
        assert set(re1.seen_ids["train"]) <= set(data.train_ids)
        assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
        with pytest.raises(ConfigError, match="exceeds"):
            run_attack_trial(m, data, "harmful", 2, AttackParams(kind="reinit", reinit_layers=9, **kw), seed=2)
