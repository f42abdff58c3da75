"""Batched trials: each member equals the same trial run alone, whatever shares its group."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mlac.attacks import AttackData, AttackParams, TrialOutcome, run_attack_trial
from mlac.attacks.batched import TrialMember, group_key, run_trials_batched
from mlac.audit.features import FeatureCache
from mlac.audit.trial import TrialSpec, WorkerContext
from mlac.errors import ConfigError
from mlac.models import EncoderClassifier


def _data(ctx: WorkerContext, ckpt: Path, dataset: Path, n: int, subset_seed: int) -> tuple[AttackData, EncoderClassifier, str]:
    spec = TrialSpec(checkpoint=str(ckpt), dataset=str(dataset), task="harmful", n=n, subset_seed=subset_seed, params={},
                     trial_seed=0, selection_max=60, report_max=80)
    task = ctx.dataset(str(dataset))[1]
    loaded = ctx.model(str(ckpt), torch.device("cpu"), len(task.beneficial_names))
    return ctx.attack_data(spec, loaded), loaded.model, ctx.model_key(loaded)


@pytest.fixture(scope="module")
def setting(tiny_checkpoint: Path, audit_dataset: Path) -> dict[str, object]:
    """A float64 copy of the tiny checkpoint (dropout on) and two data subsets of the attack pool."""
    torch.set_num_threads(1)
    ctx = WorkerContext()
    data_a, model, key = _data(ctx, tiny_checkpoint, audit_dataset, 30, 1)
    data_b, _, _ = _data(ctx, tiny_checkpoint, audit_dataset, 50, 2)
    model64 = copy.deepcopy(model).double()
    return {"model": model, "model64": model64, "key": key, "a": data_a, "b": data_b}


def _alone(m: TrialMember, eval_every: int, cache: FeatureCache | None) -> TrialOutcome:
    return run_attack_trial(m.model, m.data, m.task, m.num_labels, m.params, m.seed, eval_every=eval_every,
                            report_hook=m.report_hook, feature_cache=cache, model_key=m.model_key, log_samples=m.log_samples)


def _members(s: dict[str, object], kind: str, model_name: str) -> list[TrialMember]:
    model = s[model_name]
    assert isinstance(model, EncoderClassifier)
    variants = [(1e-3, 8, "a", 3, "constant"), (3e-3, 6, "b", 4, "warmup_linear"), (5e-4, 8, "b", 5, "warmup_cosine")]
    out = []
    for lr, steps, data, seed, schedule in variants:
        params = AttackParams(kind=kind, lr=lr, steps=steps, batch_size=6, optimizer="adamw", schedule=schedule,
                              weight_decay=0.01 if seed % 2 else 0.0, grad_clip=0.5 if seed == 4 else 100.0, lora_r=4)
        out.append(TrialMember(model, str(s["key"]), s[data], "harmful", 2, params, seed, log_samples=True))  # type: ignore[arg-type]
    return out


def _assert_same(batched: TrialOutcome, alone: TrialOutcome, tol: float) -> None:
    assert [st for st, _ in batched.selection_curve] == [st for st, _ in alone.selection_curve]
    for (_, a), (_, b) in zip(batched.selection_curve, alone.selection_curve, strict=True):
        assert abs(a - b) <= tol
    assert batched.best_step == alone.best_step
    assert batched.steps_run == alone.steps_run and batched.pruned == alone.pruned
    assert alone.report_accuracy is not None and batched.report_accuracy is not None
    assert abs(batched.report_accuracy - alone.report_accuracy) <= tol
    assert batched.report_predictions == alone.report_predictions
    assert batched.flops == pytest.approx(alone.flops, rel=1e-12)


@pytest.mark.parametrize("kind", ["full", "lora", "reinit"])
def test_trunk_members_equal_trials_run_alone_in_float64(kind: str, setting: dict[str, object]) -> None:
    members = _members(setting, kind, "model64")
    outcomes = run_trials_batched(members, eval_every=2)
    for member, batched in zip(members, outcomes, strict=True):
        _assert_same(batched, _alone(member, 2, None), 1e-6)
    # Negative control: another seed is another trial (the comparison above can fail).
    other = _alone(replace(members[0], seed=99), 2, None)
    assert other.report_predictions != outcomes[0].report_predictions or other.selection_curve != outcomes[0].selection_curve


def test_probe_members_equal_trials_run_alone(setting: dict[str, object]) -> None:
    members = _members(setting, "probe", "model")
    cache = FeatureCache()
    outcomes = run_trials_batched(members, eval_every=2, feature_cache=cache)
    for member, batched in zip(members, outcomes, strict=True):
        _assert_same(batched, _alone(member, 2, cache), 1e-6)


def test_a_member_does_not_depend_on_its_group(setting: dict[str, object]) -> None:
    members = _members(setting, "full", "model64")
    together = run_trials_batched(members, eval_every=2)
    pair = run_trials_batched([members[2], members[0]], eval_every=2)
    single = run_trials_batched([members[2]], eval_every=2)
    for outcome in (pair[0], single[0]):
        assert outcome.selection_curve == together[2].selection_curve
        assert outcome.report_predictions == together[2].report_predictions


def test_pruned_members_leave_and_the_rest_go_on(setting: dict[str, object]) -> None:
    members = _members(setting, "full", "model64")

    def prune_at_four(step: int, acc: float) -> bool:
        return step >= 4

    members[1] = replace(members[1], report_hook=prune_at_four)
    outcomes = run_trials_batched(members, eval_every=2)
    assert outcomes[1].pruned and outcomes[1].report_accuracy is None and outcomes[1].steps_run == 4
    assert outcomes[1].report_predictions is None
    for member, batched in zip(members, outcomes, strict=True):
        alone = _alone(member, 2, None)
        assert batched.selection_curve == alone.selection_curve
        assert batched.pruned == alone.pruned


def test_float32_members_choose_the_same_steps(setting: dict[str, object]) -> None:
    """float32: batched matmuls round differently; the stated bound is one flipped example per score."""
    members = _members(setting, "full", "model")
    outcomes = run_trials_batched(members, eval_every=2)
    for member, batched in zip(members, outcomes, strict=True):
        alone = _alone(member, 2, None)
        selection, report = len(member.data.selection), len(member.data.report)
        for (_, a), (_, b) in zip(batched.selection_curve, alone.selection_curve, strict=True):
            assert abs(a - b) <= 1.0 / selection + 1e-9
        assert alone.report_accuracy is not None and batched.report_accuracy is not None
        assert abs(batched.report_accuracy - alone.report_accuracy) <= 1.0 / report + 1e-9


def test_groups_are_refused_when_members_differ(setting: dict[str, object]) -> None:
    probe = _members(setting, "probe", "model")[0]
    full = _members(setting, "full", "model")[0]
    assert group_key(probe, cached=False) is None  # a probe batches on cached features only
    assert group_key(probe, cached=True) != group_key(full, cached=True)
    with pytest.raises(ConfigError):
        run_trials_batched([probe, full], feature_cache=FeatureCache())
