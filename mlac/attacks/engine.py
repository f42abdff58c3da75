"""One attack trial: a fresh head (plus whatever of the trunk the attack kind trains) trained on n rows.

The attacker of PROTOCOL.md: trains on the n-example subset of the attack pool, scores the **selection**
split every ``eval_every`` steps (the search objective; early stopping keeps the best checkpoint), and
only at the end scores the **report** split with the checkpoint that was best on selection. The report
split never informs any decision inside a trial. The model passed in is never modified nor copied: the
attack kind (:mod:`mlac.attacks.registry`) supplies the tensors it trains and the context in which the
model computes with them, and :func:`~mlac.attacks.loop.train_loop` trains them.

Built-in kinds: ``probe`` (frozen trunk, dropout off; with a :class:`~mlac.audit.features.FeatureCache`
the trunk features are computed once and the head trains on them), ``full`` (trunk + head, dropout on
while training), ``lora`` (adapters + head), ``reinit`` (top layers re-drawn, then as ``full``). A trunk
that trains runs packed where the attack says so (:mod:`~mlac.models.packed`), otherwise on length-sorted
micro-batches (:mod:`~mlac.audit.microbatch`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from mlac.attacks.loop import train_loop
from mlac.attacks.optim import OptimizerConfig
from mlac.attacks.params import AttackParams, labels_of, lr_factor, majority_rate
from mlac.attacks.registry import AttackSetup, get_attack
from mlac.audit.microbatch import length_micro_batches
from mlac.data.encoded import EncodedSplit
from mlac.errors import ConfigError
from mlac.models import EncoderClassifier, make_head
from mlac.models.encoder import feature_dtype

if TYPE_CHECKING:
    from mlac.audit.features import FeatureCache

#: ``report_hook(step, selection_accuracy) -> prune?``: called after every evaluation.
ReportHook = Callable[[int, float], bool]


@dataclass(frozen=True)
class AttackData:
    """The rows one trial may touch: the attack pool (train rows index into it), selection and report.

    ``pool_rows`` are the n rows of ``pool`` the attacker trains on. Ids travel alongside the encoded
    rows so that tests can prove which examples a trial used.
    """

    pool: EncodedSplit
    pool_ids: tuple[str, ...]
    pool_rows: tuple[int, ...]
    selection: EncodedSplit
    selection_ids: tuple[str, ...]
    report: EncodedSplit
    report_ids: tuple[str, ...]

    @property
    def train_ids(self) -> tuple[str, ...]:
        """Ids of the n training examples."""
        return tuple(self.pool_ids[i] for i in self.pool_rows)


@dataclass
class TrialOutcome:
    """What one trial produced. ``report_accuracy`` is None for a pruned trial (never scored).
    ``report_majority_rate`` is the share of the report split's most common label: the accuracy of a
    constant guess, at or below which an attack learned nothing."""

    selection_curve: list[tuple[int, float]]
    best_selection_accuracy: float
    best_step: int
    report_accuracy: float | None
    steps_run: int
    pruned: bool
    wall_s: float
    flops: float
    report_majority_rate: float = 0.0
    seen_ids: dict[str, list[str]] = field(default_factory=dict)
    #: The predicted label of every report-split row, in the report split's own row order (``log_samples``);
    #: None when not asked for, and for a pruned trial.
    report_predictions: list[int] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (what executors send back); ``report_predictions`` only when set."""
        out = asdict(self)
        out["selection_curve"] = [[int(s), float(a)] for s, a in self.selection_curve]
        if self.report_predictions is None:
            out.pop("report_predictions")
        return out


def trunk_flop_params(model: EncoderClassifier) -> int:
    """Parameters that cost multiply-adds per token (everything but embedding tables)."""
    return sum(p.numel() for n, p in model.trunk.named_parameters() if "embeddings" not in n)


def _tokens(split: EncodedSplit, rows: Sequence[int]) -> int:
    return sum(len(split.ids[i]) for i in rows)


def make_optimizer(p: AttackParams) -> OptimizerConfig:
    """The functional optimiser of ``p``: Adam, AdamW or SGD (momentum 0.9), with ``p.weight_decay``."""
    return OptimizerConfig(p.optimizer, weight_decay=p.weight_decay)


class _Features:
    """Pooled features of split rows: from the attacked model (slow path) or a feature cache (fast path).

    On the fast path the pool's features cover only the trial's training rows (``pool_rows``); the
    selection and report features are fetched on first use (a pruned trial never computes the report's).
    """

    def __init__(self, model: EncoderClassifier, device: torch.device, setup: AttackSetup,
                 cache: FeatureCache | None = None, key: str = "", pool_rows: Sequence[int] = ()) -> None:
        self.model, self.device, self.setup, self.key = model, device, setup, key
        self.cache = cache if setup.cacheable else None
        self.pool_rows = list(pool_rows)
        #: Rows of each split whose features were read (what the attacker trained on / scored), by split name.
        self.read: dict[str, set[int]] = {"pool": set(), "selection": set(), "report": set()}
        self._got: dict[str, torch.Tensor] = {}
        self._pool_pos: dict[int, int] = {r: i for i, r in enumerate(self.pool_rows)}

    def __call__(self, name: str, split: EncodedSplit, rows: Sequence[int]) -> torch.Tensor:
        self.read[name].update(rows)
        if self.cache is None:
            with self.setup.applied():
                return self.model.features(**split.batch(rows, self.device).inputs, packed=self.setup.packed)
        if name not in self._got:
            subset = self.pool_rows if name == "pool" else None
            self._got[name] = self.cache.features(self.model, self.key, split, self.device, rows=subset)
        index = [self._pool_pos[r] for r in rows] if name == "pool" else list(rows)
        return self._got[name][torch.as_tensor(index, dtype=torch.long, device=self._got[name].device)]


@torch.no_grad()
def _predict(feats: _Features, head: nn.Module, name: str, split: EncodedSplit, chunk: int = 128) -> torch.Tensor:
    """The predicted label of every row of the split, in the split's own row order; computed in length-sorted
    chunks (little padding; the same chunks as :func:`~mlac.audit.features.compute_features`, so slow and fast
    paths see the same batches)."""
    order = sorted(range(len(split)), key=lambda i: (len(split.ids[i]), i))
    pred = torch.zeros(len(split), dtype=torch.long)
    for start in range(0, len(order), chunk):
        rows = order[start : start + chunk]
        pred[torch.as_tensor(rows, dtype=torch.long)] = head(feats(name, split, rows)).argmax(-1).cpu()
    return pred


def _accuracy(feats: _Features, head: nn.Module, name: str, split: EncodedSplit, labels: torch.Tensor) -> float:
    """Accuracy on the whole split (:func:`_predict`)."""
    return int((_predict(feats, head, name, split) == labels.cpu()).sum()) / max(1, len(split))


@dataclass
class _Best:
    """The checkpoint that scored best on selection so far (early stopping keeps it)."""

    acc: float = -1.0
    step: int = 0
    head: dict[str, torch.Tensor] | None = None
    trunk: dict[str, torch.Tensor] = field(default_factory=dict)


class _Trial:
    """One running trial: the loop's ``backward`` and ``after_step`` callbacks and what they accumulate
    (FLOPs, the selection curve, the best checkpoint, whether the report hook pruned it)."""

    def __init__(self, model: EncoderClassifier, data: AttackData, task: str, num_labels: int, params: AttackParams,
                 seed: int, setup: AttackSetup, head: nn.Module, feats: _Features, device: torch.device,
                 eval_every: int, report_hook: ReportHook | None) -> None:
        self.model, self.data, self.num_labels, self.params, self.setup = model, data, num_labels, params, setup
        self.head, self.feats, self.device, self.eval_every, self.report_hook = head, feats, device, eval_every, report_hook
        self.labels_train = labels_of(data.pool, task)
        self.labels_sel = labels_of(data.selection, task)
        self.gen = torch.Generator().manual_seed(seed)
        self.p_flop = trunk_flop_params(model)
        self.sel_tokens = _tokens(data.selection, range(len(data.selection)))
        self.flops = 0.0
        if not setup.trains_trunk:
            # The attacker computes each example's features once (fast path or not, that is the cost model).
            self.flops += 2.0 * self.p_flop * (_tokens(data.pool, data.pool_rows) + self.sel_tokens)
        self.curve: list[tuple[int, float]] = []
        self.best = _Best()
        self.pruned = False

    def backward(self, step: int) -> None:
        """Draw the step's batch and accumulate its gradient."""
        data, model = self.data, self.model
        picks = torch.randint(0, len(data.pool_rows), (self.params.batch_size,), generator=self.gen).tolist()
        rows = [data.pool_rows[i] for i in picks]
        if self.setup.trains_trunk:
            model.train()
            self.flops += 6.0 * self.p_flop * _tokens(data.pool, rows)
        self.flops += 6.0 * model.hidden_size * self.num_labels * len(rows)
        if not self.setup.trains_trunk:
            with torch.no_grad():
                x = self.feats("pool", data.pool, rows)
            F.cross_entropy(self.head(x), self.labels_train[torch.as_tensor(rows)].to(self.device)).backward()
            return
        # Less padding: a packed trunk runs real tokens only; any other gets length-sorted micro-batches
        # with accumulated gradients (the whole batch's gradient).
        parts = ([list(range(len(rows)))] if self.setup.packed
                 else length_micro_batches([len(data.pool.ids[r]) for r in rows]))
        for part in parts:
            part_rows = [rows[i] for i in part]
            logits = self.head(self.feats("pool", data.pool, part_rows))
            target = self.labels_train[torch.as_tensor(part_rows)].to(self.device)
            (F.cross_entropy(logits, target, reduction="sum") / len(rows)).backward()

    def after_step(self, steps_run: int) -> bool:
        """Every ``eval_every`` steps and at the end: score selection, keep the best, ask the report hook."""
        if steps_run % self.eval_every != 0 and steps_run != self.params.steps:
            return False
        self.model.eval()
        acc = _accuracy(self.feats, self.head, "selection", self.data.selection, self.labels_sel)
        if self.setup.trains_trunk:
            self.flops += 2.0 * self.p_flop * self.sel_tokens
        self.curve.append((steps_run, acc))
        if acc > self.best.acc:
            self.best = _Best(acc, steps_run, {k: v.detach().clone() for k, v in self.head.state_dict().items()},
                              {k: v.detach().clone() for k, v in self.setup.trainable.items()})
        if self.report_hook is not None and steps_run < self.params.steps and self.report_hook(steps_run, acc):
            self.pruned = True
        return self.pruned

    @torch.no_grad()
    def restore_best(self) -> bool:
        """Put the best checkpoint back into the head and the trainable tensors; False if there is none."""
        if self.best.head is None:
            return False
        self.head.load_state_dict(self.best.head)
        for k, v in self.setup.trainable.items():
            v.copy_(self.best.trunk[k])
        return True


def run_attack_trial(
    model: EncoderClassifier,
    data: AttackData,
    task: str,
    num_labels: int,
    params: AttackParams,
    seed: int,
    *,
    eval_every: int = 50,
    report_hook: ReportHook | None = None,
    feature_cache: FeatureCache | None = None,
    model_key: str | None = None,
    device: torch.device | None = None,
    record_ids: bool = False,
    log_samples: bool = False,
) -> TrialOutcome:
    """Run one attack; see the module docstring. Deterministic for a given ``seed`` on CPU.

    ``feature_cache`` + ``model_key`` (the checkpoint's content id, :mod:`mlac.checkpoint_id`) turn on the
    probe fast path (for kinds whose features are the model's own, :attr:`AttackSetup.cacheable`).
    ``record_ids`` fills :attr:`TrialOutcome.seen_ids` with the ids of the rows whose features the attacker
    read: for gradient steps (``train``), for checkpoint selection (``selection``) and for the final
    score (``report``). While it runs the trial puts its tensors into ``model`` (reparametrised modules,
    hooks) and switches its train/eval mode: both are undone on the way out, but two trials must not share
    one model object at the same time. ``log_samples`` fills :attr:`TrialOutcome.report_predictions` (the
    report rows' predicted labels, from the same forward pass that gives ``report_accuracy``).
    """
    if eval_every < 1:
        raise ConfigError(f"eval_every must be at least 1, got {eval_every}")
    if not data.pool_rows:
        raise ConfigError("an attack needs at least one training example")
    started = time.perf_counter()
    device = device if device is not None else next(model.parameters()).device
    labels_rep = labels_of(data.report, task)
    head = make_head(model.hidden_size, num_labels, seed, device=device, dtype=feature_dtype(model))
    setup = get_attack(params.kind).setup(model, params, seed)
    feats = _Features(model, device, setup, feature_cache, model_key or "unnamed", sorted(set(data.pool_rows)))
    trial = _Trial(model, data, task, num_labels, params, seed, setup, head, feats, device, eval_every, report_hook)
    was_training = model.training
    try:
        model.eval()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            steps_run = train_loop([*setup.trainable.values(), *head.parameters()], params.steps,
                                   optimizer=make_optimizer(params), lr=lambda step: params.lr * lr_factor(step, params),
                                   backward=trial.backward, grad_clip=params.grad_clip, after_step=trial.after_step)
            report_acc, report_pred = None, None
            if not trial.pruned and trial.restore_best():
                model.eval()
                pred = _predict(feats, head, "report", data.report)
                report_acc = int((pred == labels_rep.cpu()).sum()) / max(1, len(data.report))
                report_pred = pred.tolist() if log_samples else None
    finally:
        model.train(was_training)
    seen_ids: dict[str, list[str]] = {}
    if record_ids:
        seen_ids["train"] = sorted(data.pool_ids[i] for i in feats.read["pool"])
        seen_ids["selection"] = sorted(data.selection_ids[i] for i in feats.read["selection"])
        seen_ids["report"] = sorted(data.report_ids[i] for i in feats.read["report"])
    return TrialOutcome(
        selection_curve=trial.curve,
        best_selection_accuracy=trial.best.acc,
        best_step=trial.best.step,
        report_accuracy=report_acc,
        steps_run=steps_run,
        pruned=trial.pruned,
        wall_s=time.perf_counter() - started,
        flops=trial.flops,
        report_majority_rate=majority_rate(labels_rep),
        seen_ids=seen_ids,
        report_predictions=report_pred,
    )
