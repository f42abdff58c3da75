"""Batched trials: N attack trials of one group trained side by side, one forward and backward for all.

An audit is thousands of small fine-tunes of the same architecture that differ in learning rate, seed, data
subset, steps and head. Here the tensors of N such trials are stacked ``[N, ...]`` and trained together:
a probe's heads as one batched matrix product over cached features, a trunk attack (``full``, ``reinit``,
``lora``) through ``torch.func.vmap`` over the pure BERT forward of :mod:`mlac.models.stacked_bert`. Each
member keeps everything a trial alone has (:func:`~mlac.attacks.engine.run_attack_trial`): its own batch
generator, its own dropout generator (masks drawn as the serial packed forward draws them, so a member's
randomness depends on its own seed and batch only, never on N or on who shares the group), its own
gradient clip, lr schedule, weight decay and optimiser state (:mod:`mlac.attacks.stacked_optim`), its
own evaluations, best-on-selection checkpoint, pruning hook and report score. Members that finish (their
steps, or pruned) leave the stack; the others go on.

A member's selection curve, chosen step and report accuracy equal those of the same trial run alone up to
float rounding (tested: float64 within 1e-9, float32 the same chosen steps on the test models). FLOPs are
counted as the serial trial counts them; ``wall_s`` is the member's share of the group's time.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from mlac.attacks.engine import AttackData, ReportHook, TrialOutcome, trunk_flop_params
from mlac.attacks.lora import LORA_SCALING
from mlac.attacks.optim import OptimizerConfig
from mlac.attacks.params import AttackParams, labels_of, lr_factor, majority_rate
from mlac.attacks.registry import get_attack
from mlac.attacks.stacked_optim import StackedOptimizerState, clip_stacked, stacked_step
from mlac.data.encoded import EncodedSplit
from mlac.errors import ConfigError
from mlac.models import EncoderClassifier, make_head
from mlac.models.encoder import feature_dtype
from mlac.models.packed import supports_packed
from mlac.models.stacked_bert import (
    BertShape,
    DropoutMasks,
    bert_shape,
    draw_dropout_masks,
    padded_features,
    stack_dropout_masks,
    stack_weights,
)

if TYPE_CHECKING:
    from mlac.audit.features import FeatureCache

#: Kinds whose computation the batched runner knows (a plug-in kind's ``applied()`` context is opaque: it runs alone).
BATCHABLE_KINDS = ("probe", "full", "lora", "reinit")
#: Rows per evaluation chunk (the serial ``_accuracy`` uses the same length-sorted chunks).
EVAL_CHUNK = 128
#: The word-embedding table (looked up outside ``vmap``, see :func:`~mlac.models.stacked_bert.padded_hidden`).
WORD_EMBEDDINGS = "trunk.embeddings.word_embeddings.weight"


@dataclass(frozen=True)
class TrialMember:
    """One trial of a group: what :func:`~mlac.attacks.engine.run_attack_trial` takes, per trial."""

    model: EncoderClassifier
    model_key: str
    data: AttackData
    task: str
    num_labels: int
    params: AttackParams
    seed: int
    report_hook: ReportHook | None = None
    record_ids: bool = False
    log_samples: bool = False


def group_key(member: TrialMember, *, cached: bool) -> tuple[Hashable, ...] | None:
    """Members with equal keys can train in one group; None: this trial runs alone (the serial path).

    ``cached``: a probe feature cache is available (batched probes train on cached features only).
    """
    p, model = member.params, member.model
    if p.kind not in BATCHABLE_KINDS or (p.kind == "probe" and not cached):
        return None
    dtype = str(next(model.parameters()).dtype)
    common = (p.kind, p.batch_size, p.optimizer, member.num_labels, len(member.data.selection), len(member.data.report), dtype)
    if p.kind == "probe":
        return (*common, model.hidden_size)
    if not supports_packed(model.trunk):
        return None
    arch = tuple((n, tuple(t.shape)) for n, t in model.trunk.named_parameters())
    return (*common, p.lora_r if p.kind == "lora" else 0, bert_shape(model), arch)


def _tokens(split: EncodedSplit, rows: Sequence[int]) -> int:
    return sum(len(split.ids[i]) for i in rows)


def _own_batch(split: EncodedSplit, rows: Sequence[int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ``split`` padded to their own longest row (as the serial trial batches them): ids and mask."""
    inputs = split.batch(rows, device).inputs
    return inputs["input_ids"], inputs["attention_mask"]


def _widened(batch: tuple[torch.Tensor, torch.Tensor], width: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A right-padded batch padded further to ``width`` (the group's common width)."""
    ids, mask = batch
    extra = width - ids.shape[1]
    if extra:
        ids = F.pad(ids, (0, extra), value=pad_id)
        mask = F.pad(mask, (0, extra), value=0)
    return ids, mask


def _length_order(split: EncodedSplit) -> list[int]:
    """Rows sorted by length (then index): the serial evaluation's chunk order."""
    return sorted(range(len(split)), key=lambda i: (len(split.ids[i]), i))


def _stack(tensors: Sequence[torch.Tensor], leaf: bool) -> torch.Tensor:
    out = torch.stack([t.detach() for t in tensors])
    return out.requires_grad_(True) if leaf else out


@dataclass
class _MemberState:
    """What one member accumulates (kept when it leaves the stack)."""

    member: TrialMember
    gen: torch.Generator
    dropout_gen: torch.Generator
    labels_train: torch.Tensor
    labels_sel: torch.Tensor
    labels_rep: torch.Tensor
    p_flop: int
    sel_tokens: int
    flops: float = 0.0
    wall_s: float = 0.0
    curve: list[tuple[int, float]] = field(default_factory=list)
    best_acc: float = -1.0
    best_step: int = 0
    pruned: bool = False
    read: dict[str, set[int]] = field(default_factory=lambda: {"pool": set(), "selection": set(), "report": set()})
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    pool_pos: dict[int, int] = field(default_factory=dict)


class _Group:
    """The stacked state of the members still training, and the steps that advance them together."""

    def __init__(self, members: Sequence[TrialMember], *, eval_every: int, feature_cache: FeatureCache | None,
                 device: torch.device) -> None:
        self.eval_every, self.cache, self.device = eval_every, feature_cache, device
        first = members[0]
        self.kind = first.params.kind
        self.trains_trunk = self.kind != "probe"
        self.dtype = feature_dtype(first.model)
        self.config = OptimizerConfig(first.params.optimizer)
        self.states = [self._member_state(m) for m in members]
        self.active = list(range(len(members)))
        heads = [make_head(m.model.hidden_size, m.num_labels, m.seed, device=device, dtype=self.dtype) for m in members]
        self.head_w = _stack([h.weight for h in heads], True)
        self.head_b = _stack([h.bias for h in heads], True)
        self.trunk_names: list[str] = []
        self.trunk: list[torch.Tensor] = []
        self.shared: dict[str, torch.Tensor] = {}
        self.frozen: dict[str, torch.Tensor] = {}
        self.shape: BertShape | None = None
        self.scaling = 2.0
        if self.trains_trunk:
            self._stack_trunks(members)
        self.opt = StackedOptimizerState()
        self.best = [t.detach().clone() for t in self.tensors]
        self.steps = 0

    def _member_state(self, m: TrialMember) -> _MemberState:
        data = m.data
        state = _MemberState(m, torch.Generator().manual_seed(m.seed), torch.Generator().manual_seed(m.seed),
                             labels_of(data.pool, m.task), labels_of(data.selection, m.task), labels_of(data.report, m.task),
                             trunk_flop_params(m.model), _tokens(data.selection, range(len(data.selection))))
        if not self.trains_trunk:
            assert self.cache is not None
            rows = sorted(set(data.pool_rows))
            state.pool_pos = {r: i for i, r in enumerate(rows)}
            state.features["pool"] = self.cache.features(m.model, m.model_key, data.pool, self.device, rows=rows)
            state.flops += 2.0 * state.p_flop * (_tokens(data.pool, data.pool_rows) + state.sel_tokens)
        return state

    def _stack_trunks(self, members: Sequence[TrialMember]) -> None:
        """Each member's trainable trunk tensors (its attack's own setup: clones, re-drawn layers, adapters)
        stacked; the frozen weights of a LoRA group shared when every member attacks the same model."""
        self.shape = bert_shape(members[0].model)
        stacked = stack_weights([get_attack(m.params.kind).setup(m.model, m.params, m.seed).trainable for m in members])
        self.trunk_names = list(stacked)
        self.trunk = [t.detach().requires_grad_(True) for t in stacked.values()]
        del stacked
        if self.kind == "lora":
            self.scaling = LORA_SCALING
            own = [{f"trunk.{n}": p.detach() for n, p in m.model.trunk.named_parameters()} for m in members]
            if len({id(m.model) for m in members}) == 1:
                self.shared = own[0]
            else:
                self.frozen = stack_weights(own)

    @property
    def tensors(self) -> list[torch.Tensor]:
        """The stacked leaves the optimiser updates, in the serial loop's order (trunk side, then the head)."""
        return [*self.trunk, self.head_w, self.head_b]

    def _weights(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(per-member weights, per-member adapters) of the live stack."""
        if self.kind == "lora":
            return dict(self.frozen), dict(zip(self.trunk_names, self.trunk, strict=True))
        return dict(zip(self.trunk_names, self.trunk, strict=True)), {}

    def _trunk_features(self, member_weights: dict[str, torch.Tensor], adapters: dict[str, torch.Tensor],
                        ids: torch.Tensor, mask: torch.Tensor, masks: DropoutMasks | None) -> torch.Tensor:
        """Pooled features ``[A, B, H]`` of every member's own batch ``ids``/``mask`` ``[A, B, L]``."""
        assert self.shape is not None
        shape, shared, scaling = self.shape, self.shared, self.scaling
        table = member_weights.get(WORD_EMBEDDINGS)
        if table is not None:  # one table per member: index the stack (a scatter in backward, not a one-hot product)
            members = torch.arange(ids.shape[0], device=ids.device).view(-1, 1, 1)
            words = table[members, ids]
        else:
            words = F.embedding(ids, shared[WORD_EMBEDDINGS])

        def one(weights: dict[str, torch.Tensor], adapt: dict[str, torch.Tensor], i: torch.Tensor, m: torch.Tensor,
                d: DropoutMasks | None, e: torch.Tensor) -> torch.Tensor:
            return padded_features(shape, {**shared, **weights}, i, m, masks=d, adapters=adapt or None,
                                   lora_scaling=scaling, word_embeds=e)

        rest = {n: t for n, t in member_weights.items() if n != WORD_EMBEDDINGS}
        in_dims: tuple[Any, ...] = (0, 0, 0, 0, 0 if masks is not None else None, 0)
        return torch.func.vmap(one, in_dims=in_dims)(rest, adapters, ids, mask, masks, words)

    def _logits(self, feats: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-member head: ``feats`` ``[A, B, H]`` -> logits ``[A, B, C]``."""
        return torch.baddbmm(b.unsqueeze(1), feats, w.transpose(1, 2))

    def _batch_loss(self, rows: list[list[int]]) -> torch.Tensor:
        """Sum over members of each member's mean cross-entropy on its own batch (gradients stay per member)."""
        states = [self.states[i] for i in self.active]
        targets = torch.stack([s.labels_train[torch.as_tensor(r)] for s, r in zip(states, rows, strict=True)]).to(self.device)
        if not self.trains_trunk:
            feats = torch.stack([s.features["pool"][torch.as_tensor([s.pool_pos[x] for x in r], device=self.device)]
                                 for s, r in zip(states, rows, strict=True)])
        else:
            own = [_own_batch(s.member.data.pool, r, self.device) for s, r in zip(states, rows, strict=True)]
            width = max(b[0].shape[1] for b in own)
            batches = [_widened(b, width, s.member.data.pool.pad_id) for s, b in zip(states, own, strict=True)]
            ids = torch.stack([b[0] for b in batches])
            mask = torch.stack([b[1] for b in batches])
            assert self.shape is not None
            masks = stack_dropout_masks([draw_dropout_masks(self.shape, b[1], width, s.dropout_gen, self.dtype, self.device)
                                         for s, b in zip(states, own, strict=True)])
            weights, adapters = self._weights()
            feats = self._trunk_features(weights, adapters, ids, mask, masks)
        logits = self._logits(feats, self.head_w, self.head_b)
        count, batch, classes = logits.shape
        losses = F.cross_entropy(logits.reshape(count * batch, classes), targets.reshape(-1), reduction="none")
        return losses.view(count, batch).mean(dim=1).sum()

    @torch.no_grad()
    def _predictions(self, positions: list[int], split_name: str, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """Predicted labels of every row of ``split_name`` (in the split's row order), for the members at
        stack ``positions``, computed with ``tensors`` (live or best, same layout as :attr:`tensors`)."""
        pick = torch.as_tensor(positions, device=self.device)
        chosen = [t.index_select(0, pick) for t in tensors]
        head_w, head_b = chosen[-2], chosen[-1]
        states = [self.states[self.active[p]] for p in positions]
        for s in states:
            split = getattr(s.member.data, split_name)
            s.read[split_name].update(range(len(split)))
        if not self.trains_trunk:
            assert self.cache is not None
            cached = []
            for s in states:
                if split_name not in s.features:
                    s.features[split_name] = self.cache.features(s.member.model, s.member.model_key,
                                                                 getattr(s.member.data, split_name), self.device)
                cached.append(s.features[split_name])
            return list(self._logits(torch.stack(cached), head_w, head_b).argmax(-1).cpu())
        trunk = dict(zip(self.trunk_names, chosen[:-2], strict=True))
        if self.kind == "lora":
            weights = {n: t.index_select(0, pick) for n, t in self.frozen.items()}
            adapters = trunk
        else:
            weights, adapters = trunk, {}
        splits = [getattr(s.member.data, split_name) for s in states]
        orders = [_length_order(sp) for sp in splits]
        preds = [torch.empty(len(sp), dtype=torch.long) for sp in splits]
        for start in range(0, len(orders[0]), EVAL_CHUNK):
            chunks = [o[start : start + EVAL_CHUNK] for o in orders]
            own = [_own_batch(sp, c, self.device) for sp, c in zip(splits, chunks, strict=True)]
            width = max(b[0].shape[1] for b in own)
            batches = [_widened(b, width, sp.pad_id) for sp, b in zip(splits, own, strict=True)]
            feats = self._trunk_features(weights, adapters, torch.stack([b[0] for b in batches]),
                                         torch.stack([b[1] for b in batches]), None)
            pred = self._logits(feats, head_w, head_b).argmax(-1).cpu()
            for k, c in enumerate(chunks):
                preds[k][torch.as_tensor(c)] = pred[k]
        return preds

    def step(self) -> None:
        """One training step of every live member, then its evaluation where due."""
        started = time.perf_counter()
        live = [self.states[i] for i in self.active]
        rows = []
        for s in live:
            picks = torch.randint(0, len(s.member.data.pool_rows), (s.member.params.batch_size,), generator=s.gen).tolist()
            rows.append([s.member.data.pool_rows[i] for i in picks])
            s.read["pool"].update(rows[-1])
            if self.trains_trunk:
                s.flops += 6.0 * s.p_flop * _tokens(s.member.data.pool, rows[-1])
            s.flops += 6.0 * s.member.model.hidden_size * s.member.num_labels * len(rows[-1])
        for t in self.tensors:
            t.grad = None
        with torch.enable_grad():
            self._batch_loss(rows).backward()
        params = [s.member.params for s in live]
        clip_stacked(self.tensors, torch.tensor([p.grad_clip for p in params], dtype=torch.float64))
        stacked_step(self.config, self.tensors, self.opt, [p.lr * lr_factor(self.steps, p) for p in params],
                     [p.weight_decay for p in params])
        self.steps += 1
        self._evaluate(live)
        share = (time.perf_counter() - started) / len(live)
        for s in live:
            s.wall_s += share

    def _evaluate(self, live: list[_MemberState]) -> None:
        """Score selection for the members whose evaluation is due; keep bests, ask the pruning hooks."""
        done = self.steps
        due = [pos for pos, s in enumerate(live) if done % self.eval_every == 0 or done == s.member.params.steps]
        if not due:
            return
        preds = self._predictions(due, "selection", self.tensors)
        improved = []
        for pos, pred in zip(due, preds, strict=True):
            s = live[pos]
            acc = int((pred == s.labels_sel).sum()) / max(1, len(s.labels_sel))
            if self.trains_trunk:
                s.flops += 2.0 * s.p_flop * s.sel_tokens
            s.curve.append((done, acc))
            if acc > s.best_acc:
                s.best_acc, s.best_step = acc, done
                improved.append(pos)
            hook = s.member.report_hook
            if hook is not None and done < s.member.params.steps and hook(done, acc):
                s.pruned = True
        if improved:
            index = torch.as_tensor(improved, device=self.device)
            with torch.no_grad():
                for best, live_t in zip(self.best, self.tensors, strict=True):
                    best.index_copy_(0, index, live_t.detach().index_select(0, index))

    def finish_ready(self) -> list[tuple[int, float | None, list[int] | None]]:
        """Members that finished this step: (member index, report accuracy or None if pruned, report
        predictions if asked); they leave the stack."""
        live = [self.states[i] for i in self.active]
        ready = [pos for pos, s in enumerate(live) if s.pruned or self.steps >= s.member.params.steps]
        if not ready:
            return []
        scored = [pos for pos in ready if not live[pos].pruned]
        reports = dict(zip(scored, self._predictions(scored, "report", self.best), strict=True)) if scored else {}
        out: list[tuple[int, float | None, list[int] | None]] = []
        for pos in ready:
            s = live[pos]
            pred = reports.get(pos)
            acc = None if pred is None else int((pred == s.labels_rep).sum()) / max(1, len(s.labels_rep))
            samples = pred.tolist() if pred is not None and s.member.log_samples else None
            out.append((self.active[pos], acc, samples))
        keep = [pos for pos in range(len(live)) if pos not in set(ready)]
        self._compact(keep)
        return out

    def _compact(self, keep: list[int]) -> None:
        """Drop the finished members from every stacked tensor and optimiser state."""
        self.active = [self.active[p] for p in keep]
        if not keep:
            return
        index = torch.as_tensor(keep, device=self.device)
        with torch.no_grad():
            self.trunk = [t.detach().index_select(0, index).requires_grad_(True) for t in self.trunk]
            self.head_w = self.head_w.detach().index_select(0, index).requires_grad_(True)
            self.head_b = self.head_b.detach().index_select(0, index).requires_grad_(True)
            self.best = [b.index_select(0, index) for b in self.best]
            self.frozen = {n: t.index_select(0, index) for n, t in self.frozen.items()}
        self.opt = self.opt.select(index)


def run_trials_batched(
    members: Sequence[TrialMember],
    *,
    eval_every: int = 50,
    feature_cache: FeatureCache | None = None,
    device: torch.device | None = None,
) -> list[TrialOutcome]:
    """Train ``members`` (all with one :func:`group_key`) together; one outcome per member, in order.

    Each outcome is what :func:`~mlac.attacks.engine.run_attack_trial` gives for that member alone (see the
    module docstring). The models are never modified; two groups must not share a model at the same time
    only where a LoRA setup is drawn (never: setups do not touch the model).
    """
    if not members:
        return []
    if eval_every < 1:
        raise ConfigError(f"eval_every must be at least 1, got {eval_every}")
    keys = {group_key(m, cached=feature_cache is not None) for m in members}
    if len(keys) != 1 or None in keys:
        raise ConfigError("run_trials_batched needs members of one batchable group (see group_key)")
    if any(not m.data.pool_rows for m in members):
        raise ConfigError("an attack needs at least one training example")
    device = device if device is not None else next(members[0].model.parameters()).device
    group = _Group(members, eval_every=eval_every, feature_cache=feature_cache, device=device)
    results: dict[int, tuple[float | None, list[int] | None]] = {}
    while group.active:
        group.step()
        for index, acc, samples in group.finish_ready():
            results[index] = (acc, samples)
    outcomes = []
    for index, s in enumerate(group.states):
        acc, samples = results[index]
        seen: dict[str, list[str]] = {}
        data = s.member.data
        if s.member.record_ids:
            seen["train"] = sorted(data.pool_ids[i] for i in s.read["pool"])
            seen["selection"] = sorted(data.selection_ids[i] for i in s.read["selection"])
            seen["report"] = sorted(data.report_ids[i] for i in s.read["report"])
        outcomes.append(TrialOutcome(
            selection_curve=s.curve, best_selection_accuracy=s.best_acc, best_step=s.best_step, report_accuracy=acc,
            steps_run=s.curve[-1][0] if s.curve else 0, pruned=s.pruned, wall_s=s.wall_s, flops=s.flops,
            report_majority_rate=majority_rate(s.labels_rep), seen_ids=seen, report_predictions=samples,
        ))
    return outcomes
