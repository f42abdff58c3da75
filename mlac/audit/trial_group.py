"""Trial groups: ready trials grouped so that each group trains side by side (:mod:`mlac.attacks.batched`).

The study drivers keep several studies in flight (:func:`~mlac.audit.scheduling.run_studies_lockstep`), so
an executor receives many ready trials at once. :func:`spec_groups` cuts them into groups from the plain
specs alone (what an executor on another machine can do without loading anything); :func:`run_trial_group`
runs one such group in a worker: it loads what the trials need, regroups them by the real
:func:`~mlac.attacks.batched.group_key`, sizes each group to the free memory (:func:`group_capacity`, at
most ``max_group``) and trains each group together (on a CPU, probes only: :func:`batches_here`). A trial
that cannot be batched (a plug-in kind, a
trunk the stacked forward does not cover, a probe without the feature cache) runs alone through
:func:`~mlac.audit.trial.run_trial`, exactly as without batching. Results do not depend on how trials
were grouped (each member's randomness is its own), so grouping is free to follow the hardware.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mlac.attacks.batched import TrialMember, group_key, run_trials_batched
from mlac.audit.trial import WorkerContext, failed_trial, load_trial, run_trial
from mlac.contracts import TrialResult
from mlac.errors import ConfigError

#: Default upper bound on the trials trained together (``MLAC_MAX_GROUP`` / the executors' ``max_group``).
DEFAULT_MAX_GROUP = 32
#: Share of the free memory a group may plan to use.
MEMORY_SHARE = 0.5
#: Spec fields that must agree for trials to share a group (the rest may differ per member).
_SPEC_GROUP_FIELDS = ("dataset", "split_seed", "task", "eval_every", "max_length", "selection_max", "report_max",
                      "device", "fast_probe")
_PARAM_GROUP_FIELDS = ("kind", "batch_size", "optimizer", "lora_r")


def spec_group_key(spec: dict[str, Any]) -> tuple[Hashable, ...]:
    """What must agree between plain specs for their trials to be grouped (checked again, exactly, in the worker)."""
    params = spec.get("params") or {}
    return (tuple(str(spec.get(f)) for f in _SPEC_GROUP_FIELDS)
            + tuple(str(params.get(f)) for f in _PARAM_GROUP_FIELDS))


def spec_groups(specs: Sequence[dict[str, Any]], max_group: int) -> list[list[int]]:
    """Indices of ``specs`` cut into groups of at most ``max_group`` with one :func:`spec_group_key`, in first-seen order."""
    if max_group < 1:
        raise ConfigError(f"max_group must be at least 1, got {max_group}")
    by_key: dict[tuple[Hashable, ...], list[int]] = {}
    for i, spec in enumerate(specs):
        by_key.setdefault(spec_group_key(spec), []).append(i)
    return [idx[k : k + max_group] for idx in by_key.values() for k in range(0, len(idx), max_group)]


def free_memory_bytes(device: torch.device) -> int:
    """Free memory of ``device``: the GPU's free bytes, or the host's available memory (``/proc/meminfo``)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def member_bytes(member: TrialMember) -> int:
    """Planned memory of one member: its trained tensors five times (weights, gradient, two optimiser moments,
    best checkpoint) plus the activations of its batch kept for backward (a generous bound per token)."""
    model, p = member.model, member.params
    element = next(model.parameters()).element_size()
    head = (model.hidden_size + 1) * member.num_labels
    if p.kind == "probe":
        return 5 * head * element + p.batch_size * model.hidden_size * element
    trunk = sum(t.numel() for t in model.trunk.parameters())
    trained = trunk if p.kind != "lora" else trunk // 50 + 1
    config = model.trunk.config
    layers, heads = int(config.num_hidden_layers), int(config.num_attention_heads)
    width = max((len(ids) for ids in member.data.pool.ids), default=1)
    tokens = p.batch_size * width
    activations = layers * (20 * tokens * model.hidden_size + 3 * p.batch_size * heads * width * width) * element
    return 5 * (trained + head) * element + activations


def group_capacity(member: TrialMember, device: torch.device, max_group: int) -> int:
    """How many members like ``member`` fit in :data:`MEMORY_SHARE` of the free memory (1 to ``max_group``)."""
    fits = int(MEMORY_SHARE * free_memory_bytes(device)) // max(1, member_bytes(member))
    return max(1, min(max_group, fits))


@dataclass
class _Prepared:
    """One parsed spec: the member to train, or the result it already has (an input error)."""

    index: int
    spec: dict[str, Any]
    member: TrialMember | None = None
    device: torch.device | None = None
    eval_every: int = 50
    cached: bool = True
    failure: TrialResult | None = None


def _prepare(index: int, spec_data: dict[str, Any], ctx: WorkerContext) -> _Prepared:
    """Load what the spec's trial needs (through the worker's caches) and build its member."""
    prepared = _Prepared(index, spec_data)
    try:
        t = load_trial(spec_data, ctx)
    except Exception as exc:  # a failed trial is data for the search, not the end of the audit
        prepared.failure = failed_trial(exc)
        return prepared
    prepared.member = TrialMember(t.model, t.model_key, t.data, t.spec.task, t.num_labels, t.params, t.spec.trial_seed,
                                  report_hook=t.report_hook, record_ids=t.spec.record_ids, log_samples=t.spec.log_samples)
    prepared.device, prepared.eval_every, prepared.cached = t.device, t.spec.eval_every, t.spec.fast_probe
    return prepared


def _run_group(group: list[_Prepared], ctx: WorkerContext) -> list[TrialResult]:
    """Train ``group`` together; a failure inside it fails each of its trials with the traceback."""
    first = group[0]
    assert first.member is not None and first.device is not None
    try:
        outcomes = run_trials_batched([p.member for p in group if p.member is not None], eval_every=first.eval_every,
                                      feature_cache=ctx.features if first.cached else None, device=first.device)
        return [TrialResult.succeeded(o) for o in outcomes]
    except Exception as exc:
        return [failed_trial(exc)] * len(group)


def batches_here(kind: str, device: torch.device | None, trunk_on_cpu: bool = False) -> bool:
    """Whether a trial of ``kind`` on ``device`` trains in a group: probes everywhere; trunk kinds on a GPU, and on
    a CPU only when asked. On CPU a serial trunk trial runs its real tokens only (the packed forward) while a
    group pads every row to the group's longest: measured 0.5-0.6x the serial speed on the tiny BERT
    (``benchmarks/RESULTS.md``, "Batched trials"), so there the serial path is the faster one."""
    return kind == "probe" or trunk_on_cpu or (device is not None and device.type != "cpu")


def run_trial_group(specs: Sequence[dict[str, Any]], context: WorkerContext | None = None, *,
                    max_group: int = DEFAULT_MAX_GROUP, trunk_on_cpu: bool = False) -> list[TrialResult]:
    """Run ``specs`` (see the module docstring); one result per spec, in order. Never raises for a trial's failure.

    ``trunk_on_cpu``: group trunk kinds on a CPU too (:func:`batches_here`)."""
    ctx = context if context is not None else WorkerContext()
    results: list[TrialResult | None] = [None] * len(specs)
    groups: dict[tuple[Hashable, ...], list[_Prepared]] = {}
    for i, spec in enumerate(specs):
        prepared = _prepare(i, dict(spec), ctx)
        if prepared.failure is not None:
            results[i] = prepared.failure
            continue
        assert prepared.member is not None
        key = group_key(prepared.member, cached=prepared.cached)
        if key is None or not batches_here(prepared.member.params.kind, prepared.device, trunk_on_cpu):
            results[i] = run_trial(dict(spec), ctx)
            continue
        groups.setdefault((key, str(prepared.device), prepared.eval_every, prepared.cached), []).append(prepared)
    for members in groups.values():
        assert members[0].member is not None and members[0].device is not None
        size = group_capacity(members[0].member, members[0].device, max_group)
        for start in range(0, len(members), size):
            chunk = members[start : start + size]
            out = [run_trial(dict(chunk[0].spec), ctx)] if len(chunk) == 1 else _run_group(chunk, ctx)
            for prepared, result in zip(chunk, out, strict=True):
                results[prepared.index] = result
    return [r if r is not None else TrialResult.failed("trial was not run", user_error=False) for r in results]
