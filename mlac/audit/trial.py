"""The unit of work every executor runs: one attack trial from plain, picklable inputs.

A :class:`TrialSpec` names a checkpoint directory and a saved dataset by path, the split seed, the
task, n, the subset seed, the attack parameters, the trial seed and (optionally) a pruning rule built
from the curves of already finished trials. :func:`run_trial` turns it into a
:class:`~mlac.contracts.TrialResult`. A
:class:`WorkerContext` memoises what is expensive to rebuild (loaded models, tokenised splits, probe
features) for the life of one worker process; a Ray actor or an in-process executor owns one.
"""

from __future__ import annotations

import random
import statistics
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from mlac.attacks import AttackData, AttackParams, ReportHook, run_attack_trial
from mlac.audit.features import FeatureCache
from mlac.checkpoint_id import dir_content_id
from mlac.contracts import TrialResult
from mlac.data import Splits, load_saved_dataset, make_splits
from mlac.data.encoded import EncodedSplit, encode_split
from mlac.device import resolve_device
from mlac.errors import CheckpointError, DataError, MlacError
from mlac.models import EncoderClassifier, LoadedModel, load_checkpoint
from mlac.models.checkpoint import WEIGHTS_FILE
from mlac.tasks import TaskSpec


@dataclass(frozen=True)
class PruneRule:
    """Median rule on the best-so-far selection accuracy (Optuna's MedianPruner, as plain data), with a
    warm-up that does not kill slow starters.

    A trial is pruned at step s when s >= ``warmup_steps``, s >= ``warmup_fraction`` of its own planned
    steps, at least ``min_reference`` finished trials reached s, and its best-so-far selection accuracy is
    below their median best-so-far at s (the comparison is always at equal steps). Defended models are
    trained to learn late: with no warm-up the rule kills exactly the trials that would break them (see
    ``benchmarks/RESULTS.md``, "Pruning and late starters").
    """

    reference: tuple[tuple[tuple[int, float], ...], ...] = ()
    min_reference: int = 3
    warmup_steps: int = 0
    warmup_fraction: float = 0.0

    def should_prune(self, history: list[tuple[int, float]], total_steps: int | None = None) -> bool:
        """Whether the trial whose evaluations so far are ``history`` (of ``total_steps`` planned) should stop."""
        if not history:
            return False
        step = history[-1][0]
        if step < self.warmup_steps:
            return False
        if total_steps is not None and step < self.warmup_fraction * total_steps:
            return False
        mine = max(a for _, a in history)
        others = []
        for curve in self.reference:
            reached = [a for s, a in curve if s <= step]
            if curve and curve[-1][0] >= step and reached:
                others.append(max(reached))
        if len(others) < self.min_reference:
            return False
        return mine < statistics.median(others)

    def to_dict(self) -> dict[str, Any]:
        """Plain form."""
        return {"reference": [[list(p) for p in c] for c in self.reference], "min_reference": self.min_reference,
                "warmup_steps": self.warmup_steps, "warmup_fraction": self.warmup_fraction}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PruneRule:
        """Inverse of :meth:`to_dict`."""
        ref = tuple(tuple((int(s), float(a)) for s, a in c) for c in data.get("reference", ()))
        return cls(ref, int(data.get("min_reference", 3)), int(data.get("warmup_steps", 0)),
                   float(data.get("warmup_fraction", 0.0)))


@dataclass(frozen=True)
class TrialSpec:
    """Everything one trial needs, by value or by path (picklable, JSON-able).

    ``log_samples`` asks for the report split's per-example predictions (the study driver sets it on the
    reruns of the winner of an audit run with ``log_samples``, never on search trials)."""

    checkpoint: str
    dataset: str
    task: str
    n: int
    subset_seed: int
    params: dict[str, Any]
    trial_seed: int
    split_seed: int = 0
    eval_every: int = 50
    max_length: int = 128
    selection_max: int | None = None
    report_max: int | None = None
    prune: dict[str, Any] | None = None
    device: str = "auto"
    fast_probe: bool = True
    record_ids: bool = False
    tag: dict[str, Any] = field(default_factory=dict)
    log_samples: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain form; ``log_samples`` only when set (the plain form, and so the trial store's hash of a spec,
        is what it was before the field existed)."""
        out = asdict(self)
        if not self.log_samples:
            out.pop("log_samples")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


def capped_split(ds: Any, cap: int | None, seed: int) -> Any:
    """``ds`` cut to ``cap`` rows drawn with ``seed`` (kept in their order): the selection and report splits a
    trial scores (``selection_max``, ``report_max``), rebuilt the same way wherever they are needed."""
    if cap is None or len(ds) <= cap:
        return ds
    return ds.select(sorted(random.Random(seed).sample(range(len(ds)), cap)))


def attacker_rows(pool_size: int, n: int, subset_seed: int) -> tuple[int, ...]:
    """The n rows of a pool of ``pool_size`` an attacker trains on for ``subset_seed`` (sorted): the same for every
    model at a seed, which is what makes the audit's comparisons paired."""
    return tuple(sorted(random.Random(subset_seed).sample(range(pool_size), n)))


class WorkerContext:
    """Per-process memo of models, datasets, encoded splits and probe features (plain object)."""

    def __init__(self, max_models: int = 8) -> None:
        self.max_models = max_models
        self.features = FeatureCache()
        self._models: dict[tuple[str, str], LoadedModel] = {}
        self._model_keys: dict[str, str] = {}
        self._datasets: dict[str, tuple[Any, TaskSpec]] = {}
        self._splits: dict[tuple[str, int], Splits] = {}
        self._encoded: dict[tuple[Any, ...], tuple[EncodedSplit, tuple[str, ...]]] = {}

    def dataset(self, path: str) -> tuple[Any, TaskSpec]:
        """The saved dataset at ``path`` and its task spec."""
        if path not in self._datasets:
            self._datasets[path] = load_saved_dataset(path)
        return self._datasets[path]

    def splits(self, path: str, split_seed: int) -> Splits:
        """The four disjoint splits of the dataset at ``path``."""
        key = (path, split_seed)
        if key not in self._splits:
            self._splits[key] = make_splits(self.dataset(path)[0], split_seed)
        return self._splits[key]

    def model(self, checkpoint: str, device: torch.device, num_beneficial: int | None = None) -> LoadedModel:
        """The checkpoint at ``checkpoint`` loaded on ``device`` (eval mode).

        ``num_beneficial`` sizes the beneficial head of a plain encoder directory (no head saved); the
        attack never uses that head.
        """
        key = (str(Path(checkpoint).resolve()), str(device))
        if key not in self._models:
            if len(self._models) >= self.max_models:
                self._models.pop(next(iter(self._models)))
            try:
                loaded = load_checkpoint(checkpoint, device=device)
            except CheckpointError as exc:
                if exc.code != "missing_head" or not num_beneficial:
                    raise
                loaded = load_checkpoint(checkpoint, num_beneficial=num_beneficial, device=device)
            loaded.model.eval()
            self._models[key] = loaded
            self._model_keys.pop(key[0], None)
            self.model_key(loaded)  # hashed now, from the files just loaded
        return self._models[key]

    def model_key(self, loaded: LoadedModel) -> str:
        """Content id of ``loaded``'s directory (weights, config, tokenizer: :mod:`mlac.checkpoint_id`).

        Tokenised splits and probe features are keyed by it, not by the weights' sha256: the same weights
        under another config (activation, pooling) or tokenizer give other features, and one worker process
        serves the trials of many jobs (and, in the service, of many API keys).
        """
        path = str(Path(loaded.info.path).resolve())
        if path not in self._model_keys:
            self._model_keys[path] = dir_content_id(path, known={WEIGHTS_FILE: loaded.sha256})
        return self._model_keys[path]

    def encoded(self, spec: TrialSpec, loaded: LoadedModel, split: str) -> tuple[EncodedSplit, tuple[str, ...]]:
        """``split`` of the spec's dataset tokenised with the model's tokenizer (and capped)."""
        cap = {"selection": spec.selection_max, "report": spec.report_max}.get(split)
        key = (spec.dataset, spec.split_seed, split, cap, self.model_key(loaded), spec.max_length)
        if key not in self._encoded:
            task = self.dataset(spec.dataset)[1]
            part = capped_split(self.splits(spec.dataset, spec.split_seed).get(split), cap, spec.split_seed)
            self._encoded[key] = (encode_split(part, loaded.tokenizer, task, spec.max_length), tuple(str(i) for i in part["id"]))
        return self._encoded[key]

    def attack_data(self, spec: TrialSpec, loaded: LoadedModel) -> AttackData:
        """Pool, the n-row subset of it, selection and report for ``spec``."""
        pool, pool_ids = self.encoded(spec, loaded, "attack_pool")
        if spec.n > len(pool):
            raise DataError(f"n={spec.n} is larger than the attack pool ({len(pool)} examples): use a smaller n or a larger dataset")
        rows = attacker_rows(len(pool), spec.n, spec.subset_seed)
        sel, sel_ids = self.encoded(spec, loaded, "selection")
        rep, rep_ids = self.encoded(spec, loaded, "report")
        return AttackData(pool, pool_ids, rows, sel, sel_ids, rep, rep_ids)


@dataclass(frozen=True)
class LoadedTrial:
    """A trial spec with what it needs loaded (through a :class:`WorkerContext`'s caches): what
    :func:`~mlac.attacks.run_attack_trial` takes, and the pruning hook built from the spec's rule."""

    spec: TrialSpec
    device: torch.device
    model: EncoderClassifier
    model_key: str
    data: AttackData
    num_labels: int
    params: AttackParams
    report_hook: ReportHook


def load_trial(spec_data: dict[str, Any], ctx: WorkerContext) -> LoadedTrial:
    """Parse ``spec_data`` and load its model, dataset and splits (MlacError for bad input)."""
    spec = TrialSpec.from_dict(spec_data)
    device = resolve_device(spec.device)
    ds_task = ctx.dataset(spec.dataset)[1]
    loaded = ctx.model(spec.checkpoint, device, max(2, len(ds_task.beneficial_names)))
    data = ctx.attack_data(spec, loaded)
    params = AttackParams.from_dict(spec.params)
    rule = PruneRule.from_dict(spec.prune) if spec.prune else None
    history: list[tuple[int, float]] = []

    def hook(step: int, acc: float) -> bool:
        history.append((step, acc))
        return rule.should_prune(history, params.steps) if rule is not None else False

    return LoadedTrial(spec, device, loaded.model, ctx.model_key(loaded), data, ds_task.num_labels(spec.task), params, hook)


def failed_trial(exc: BaseException) -> TrialResult:
    """The result of a trial that raised ``exc``: an input error's message (``user_error``) or the traceback."""
    if isinstance(exc, MlacError):
        return TrialResult.failed(f"{type(exc).__name__} [{exc.code}]: {exc}", user_error=True)
    return TrialResult.failed("".join(traceback.format_exception(exc)), user_error=False)


def run_trial(spec_data: dict[str, Any], context: WorkerContext | None = None) -> TrialResult:
    """Run one trial from its plain spec; an executor sends the result's :meth:`~TrialResult.to_dict` back.

    Never raises for a failure inside the trial: the result carries the traceback (or an input error's
    message, ``user_error``) and the search records it and goes on.
    """
    ctx = context if context is not None else WorkerContext()
    try:
        t = load_trial(spec_data, ctx)
        outcome = run_attack_trial(
            t.model, t.data, t.spec.task, t.num_labels, t.params, t.spec.trial_seed,
            eval_every=t.spec.eval_every, report_hook=t.report_hook,
            feature_cache=ctx.features if t.spec.fast_probe else None, model_key=t.model_key,
            device=t.device, record_ids=t.spec.record_ids, log_samples=t.spec.log_samples,
        )
        return TrialResult.succeeded(outcome)
    except Exception as exc:  # a failed trial is data for the search, not the end of the audit
        return failed_trial(exc)
