"""Trial groups: plain specs grouped without loading anything, groups run in a worker with the results of trials run alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import mlac.audit.trial_group as trial_group
from mlac.audit.trial import TrialSpec, WorkerContext, run_trial
from mlac.audit.trial_group import group_capacity, run_trial_group, spec_groups
from mlac.errors import ConfigError


def _spec(ckpt: Path, data: Path, kind: str, seed: int, **kw: Any) -> dict[str, Any]:
    params = {"kind": kind, "lr": 3e-3, "steps": 6, "batch_size": 6}
    return TrialSpec(checkpoint=str(ckpt), dataset=str(data), task="harmful", n=kw.pop("n", 30), subset_seed=seed,
                     params=params, trial_seed=seed, eval_every=3, selection_max=40, report_max=40, **kw).to_dict()


def test_spec_groups_follow_the_group_fields_and_the_bound(tiny_checkpoint: Path, audit_dataset: Path) -> None:
    specs = [_spec(tiny_checkpoint, audit_dataset, k, s) for k, s in
             (("probe", 0), ("full", 1), ("probe", 2), ("probe", 3), ("full", 4))]
    assert spec_groups(specs, 32) == [[0, 2, 3], [1, 4]]
    assert spec_groups(specs, 2) == [[0, 2], [3], [1, 4]]
    other_task = {**specs[2], "task": "beneficial"}
    assert spec_groups([specs[0], other_task], 32) == [[0], [1]]
    with pytest.raises(ConfigError):
        spec_groups(specs, 0)


def test_a_group_gives_each_trial_its_result_alone(tiny_checkpoint: Path, audit_dataset: Path,
                                                   trained_groups: list[int]) -> None:
    torch.set_num_threads(1)
    trained = trained_groups
    specs = [_spec(tiny_checkpoint, audit_dataset, "probe", s) for s in range(3)]
    specs.append(_spec(tiny_checkpoint, audit_dataset, "probe", 9, n=10**6))  # larger than the pool: an input error
    specs.append(_spec(tiny_checkpoint, audit_dataset, "full", 5))  # a group of one: the serial path
    specs.append(_spec(tiny_checkpoint, audit_dataset, "full", 6))
    ctx = WorkerContext()
    results = run_trial_group(specs, ctx)
    assert trained == [3]  # the full trials ran alone: on a CPU only probes train in groups
    assert run_trial_group(specs[4:], ctx, trunk_on_cpu=True)[1].selection_curve == results[5].selection_curve
    assert trained == [3, 2]
    assert not results[3].ok and results[3].user_error and "larger than the attack pool" in (results[3].error or "")
    for spec, result in zip(specs[:3] + specs[4:], results[:3] + results[4:], strict=True):  # as each alone
        alone = run_trial(spec, ctx)
        assert result.ok and result.selection_curve == alone.selection_curve
        assert result.report_accuracy == alone.report_accuracy


def test_group_capacity_follows_free_memory(tiny_checkpoint: Path, audit_dataset: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from mlac.attacks import AttackParams
    from mlac.attacks.batched import TrialMember

    ctx = WorkerContext()
    spec = TrialSpec.from_dict(_spec(tiny_checkpoint, audit_dataset, "full", 0))
    loaded = ctx.model(str(tiny_checkpoint), torch.device("cpu"), 6)
    member = TrialMember(loaded.model, ctx.model_key(loaded), ctx.attack_data(spec, loaded), "harmful", 2,
                         AttackParams.from_dict(spec.params), 0)
    monkeypatch.setattr(trial_group, "free_memory_bytes", lambda device: 10**6)
    assert group_capacity(member, torch.device("cpu"), 32) == 1
    monkeypatch.setattr(trial_group, "free_memory_bytes", lambda device: 10**13)
    assert group_capacity(member, torch.device("cpu"), 32) == 32
