"""One attack trial: a fresh head (plus a frozen, fully trained or LoRA-adapted trunk) trained on n rows.

The attacker of PROTOCOL.md: trains on the n-example subset of the attack pool, scores the **selection**
split every ``eval_every`` steps (the search objective; early stopping keeps the best checkpoint), and
only at the end scores the **report** split with the checkpoint that was best on selection. The report
split never informs any decision inside a trial. The model passed in is never modified.

Kinds: ``probe`` (frozen trunk, dropout off; with a :class:`~mlac.audit.features.FeatureCache` the
trunk features are computed once and the head trains on them), ``full`` (deep copy of trunk + head,
dropout on while training; a BERT trunk trains on packed real tokens, see :mod:`~mlac.models.packed`, any
other trunk on length-sorted micro-batches, see :mod:`~mlac.audit.microbatch`), ``lora`` (peft LoRA adapters on a copy of the trunk + head).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from mlac.audit.microbatch import length_micro_batches
from mlac.data.encoded import EncodedSplit
from mlac.errors import ConfigError
from mlac.models import EncoderClassifier, make_head
from mlac.models.packed import supports_packed

if TYPE_CHECKING:
    from mlac.audit.features import FeatureCache

KINDS = ("probe", "full", "lora")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "warmup_linear")
TASKS = ("harmful", "beneficial")

#: ``report_hook(step, selection_accuracy) -> prune?``: called after every evaluation.
ReportHook = Callable[[int, float], bool]


@dataclass(frozen=True)
class AttackParams:
    """Hyperparameters of one attack (what the search chooses)."""

    kind: str = "full"
    lr: float = 1e-4
    steps: int = 100
    batch_size: int = 12
    optimizer: str = "adam"
    schedule: str = "constant"
    weight_decay: float = 0.0
    warmup_fraction: float = 0.1
    grad_clip: float = 100.0
    lora_r: int = 8

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"attack kind must be one of {KINDS}, got {self.kind!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        if self.steps < 1 or self.batch_size < 1 or self.lora_r < 1:
            raise ConfigError("steps, batch_size and lora_r must be at least 1")
        if self.weight_decay < 0 or not 0 <= self.warmup_fraction < 1 or self.grad_clip <= 0:
            raise ConfigError("weight_decay >= 0, warmup_fraction in [0, 1) and grad_clip > 0 are required")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttackParams:
        """Inverse of :meth:`to_dict`; unknown keys are a ConfigError."""
        known = {f for f in cls.__dataclass_fields__}
        extra = sorted(set(data) - known)
        if extra:
            raise ConfigError(f"unknown attack parameters {extra}; known: {sorted(known)}")
        return cls(**data)


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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (what executors send back)."""
        out = asdict(self)
        out["selection_curve"] = [[int(s), float(a)] for s, a in self.selection_curve]
        return out


def labels_of(split: EncodedSplit, task: str) -> torch.Tensor:
    """The label tensor of ``task`` in ``split``."""
    if task not in TASKS:
        raise ConfigError(f"task must be one of {TASKS}, got {task!r}")
    return split.harmful if task == "harmful" else split.beneficial


def majority_rate(labels: torch.Tensor) -> float:
    """Share of the most common label (the accuracy of always guessing it); 0.0 for no labels."""
    if labels.numel() == 0:
        return 0.0
    return float(torch.bincount(labels.long().flatten()).max().item() / labels.numel())


def trunk_flop_params(model: EncoderClassifier) -> int:
    """Parameters that cost multiply-adds per token (everything but embedding tables)."""
    return sum(p.numel() for n, p in model.trunk.named_parameters() if "embeddings" not in n)


def _tokens(split: EncodedSplit, rows: Sequence[int]) -> int:
    return sum(len(split.ids[i]) for i in rows)


def make_optimizer(params: list[nn.Parameter], p: AttackParams) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (momentum 0.9) over ``params`` at ``p.lr``.

    The fused implementations (one kernel over every tensor): on CPU, 10x faster than the per-tensor
    loop for a tiny BERT's 4M parameters, which made the optimizer a fifth of a full fine-tune's time.
    """
    if p.optimizer == "adam":
        return torch.optim.Adam(params, lr=p.lr, weight_decay=p.weight_decay, fused=True)
    if p.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=p.lr, weight_decay=p.weight_decay, fused=True)
    return torch.optim.SGD(params, lr=p.lr, momentum=0.9, weight_decay=p.weight_decay, fused=True)


def lr_factor(step: int, p: AttackParams) -> float:
    """Multiplier of the base lr at ``step`` (0-based): 1, or linear warm-up then linear decay to 0."""
    if p.schedule == "constant":
        return 1.0
    warm = max(1, round(p.warmup_fraction * p.steps))
    if step < warm:
        return (step + 1) / warm
    return max(0.0, (p.steps - step) / max(1, p.steps - warm))


def lora_trunk(trunk: nn.Module, r: int, seed: int = 0) -> nn.Module:
    """A copy of ``trunk`` with LoRA adapters (rank ``r``) on its linear layers; base weights frozen.

    The adapters' random initialisation is drawn from a generator seeded with ``seed`` (peft draws from
    the global one), so that a trial is deterministic whatever ran before it in the process."""
    from peft import LoraConfig, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, m in trunk.named_modules() if isinstance(m, nn.Linear)}
    targets = sorted(names & {"query", "key", "value", "dense", "q_proj", "k_proj", "v_proj", "out_proj", "q_lin", "v_lin"})
    if not targets:
        raise ConfigError("LoRA found no attention/dense linear layers in this trunk; use kind 'full' or 'probe'")
    config = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=targets, bias="none")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(copy.deepcopy(trunk), config)


class _Features:
    """Pooled features of split rows: from the live trunk (slow path) or a feature cache (fast path).

    On the fast path the pool's features cover only the trial's training rows (``pool_rows``); the
    selection and report features are fetched on first use (a pruned trial never computes the report's).
    """

    def __init__(self, model: nn.Module, device: torch.device, cache: FeatureCache | None = None, key: str = "",
                 pool_rows: Sequence[int] = (), packed: bool = False) -> None:
        self.model, self.device, self.cache, self.key, self.packed = model, device, cache, key, packed
        self.pool_rows = list(pool_rows)
        #: Rows of each split whose features were read (what the attacker trained on / scored), by split name.
        self.read: dict[str, set[int]] = {"pool": set(), "selection": set(), "report": set()}
        self._got: dict[str, torch.Tensor] = {}
        self._pool_pos: dict[int, int] = {r: i for i, r in enumerate(self.pool_rows)}

    def __call__(self, name: str, split: EncodedSplit, rows: Sequence[int]) -> torch.Tensor:
        self.read[name].update(rows)
        if self.cache is None:
            return self.model.features(**split.batch(rows, self.device).inputs, packed=self.packed)  # type: ignore[operator]
        if name not in self._got:
            subset = self.pool_rows if name == "pool" else None
            self._got[name] = self.cache.features(self.model, self.key, split, self.device, rows=subset)  # type: ignore[arg-type]
        index = [self._pool_pos[r] for r in rows] if name == "pool" else list(rows)
        return self._got[name][torch.as_tensor(index, dtype=torch.long, device=self._got[name].device)]


@torch.no_grad()
def _accuracy(feats: _Features, head: nn.Module, name: str, split: EncodedSplit, labels: torch.Tensor, chunk: int = 128) -> float:
    """Accuracy on the whole split, in length-sorted chunks (little padding; the same chunks as
    :func:`~mlac.audit.features.compute_features`, so slow and fast paths see the same batches)."""
    order = sorted(range(len(split)), key=lambda i: (len(split.ids[i]), i))
    correct = 0
    for start in range(0, len(order), chunk):
        rows = order[start : start + chunk]
        pred = head(feats(name, split, rows)).argmax(-1).cpu()
        correct += int((pred == labels[torch.as_tensor(rows)]).sum())
    return correct / max(1, len(split))


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
) -> TrialOutcome:
    """Run one attack; see the module docstring. Deterministic for a given ``seed`` on CPU.

    ``feature_cache`` + ``model_key`` (the checkpoint's content id, :mod:`mlac.checkpoint_id`) turn on the probe fast path.
    ``record_ids`` fills :attr:`TrialOutcome.seen_ids` with the ids of the rows whose features the attacker
    read: for gradient steps (``train``), for checkpoint selection (``selection``) and for the final
    score (``report``).
    """
    if eval_every < 1:
        raise ConfigError(f"eval_every must be at least 1, got {eval_every}")
    if not data.pool_rows:
        raise ConfigError("an attack needs at least one training example")
    started = time.perf_counter()
    device = device if device is not None else next(model.parameters()).device
    labels_train = labels_of(data.pool, task)
    labels_sel = labels_of(data.selection, task)
    labels_rep = labels_of(data.report, task)
    p_flop = trunk_flop_params(model)
    head = make_head(model.hidden_size, num_labels, seed, device=device)
    flops = 0.0

    cache = None
    if params.kind == "probe":
        attacker: nn.Module = model
        was_training = model.training
        model.eval()
        trainable = list(head.parameters())
        cache = feature_cache
        # The attacker computes each example's features once (fast path or not, that is the cost model).
        flops += 2.0 * p_flop * (_tokens(data.pool, data.pool_rows) + _tokens(data.selection, range(len(data.selection))))
    else:
        attacker = copy.deepcopy(model).to(device)
        if params.kind == "lora":
            attacker.trunk = lora_trunk(attacker.trunk, params.lora_r, seed)  # type: ignore[assignment]
        for p in attacker.beneficial_head.parameters():
            p.requires_grad_(False)
        trainable = [p for p in attacker.trunk.parameters() if p.requires_grad] + list(head.parameters())
    packed = params.kind != "probe" and supports_packed(attacker.trunk)  # type: ignore[arg-type]
    feats = _Features(attacker, device, cache, model_key or "unnamed", sorted(set(data.pool_rows)), packed=packed)
    opt = make_optimizer(trainable, params)
    gen = torch.Generator().manual_seed(seed)
    curve: list[tuple[int, float]] = []
    best_acc, best_step, best_state = -1.0, 0, None
    pruned = False
    steps_run = 0
    n_train = len(data.pool_rows)
    sel_tokens = _tokens(data.selection, range(len(data.selection)))
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for step in range(params.steps):
                picks = torch.randint(0, n_train, (params.batch_size,), generator=gen).tolist()
                rows = [data.pool_rows[i] for i in picks]
                for group in opt.param_groups:
                    group["lr"] = params.lr * lr_factor(step, params)
                if params.kind != "probe":
                    attacker.train()
                    flops += 6.0 * p_flop * _tokens(data.pool, rows)
                flops += 6.0 * model.hidden_size * num_labels * len(rows)
                opt.zero_grad(set_to_none=True)
                with torch.set_grad_enabled(True):  # even when the caller runs under no_grad
                    if params.kind == "probe":
                        with torch.no_grad():
                            x = feats("pool", data.pool, rows)
                        F.cross_entropy(head(x), labels_train[torch.as_tensor(rows)].to(device)).backward()
                    else:
                        # Less padding: a BERT trunk runs packed (real tokens only); any other trunk gets
                        # length-sorted micro-batches with accumulated gradients (the whole batch's gradient).
                        parts = ([list(range(len(rows)))] if packed
                                 else length_micro_batches([len(data.pool.ids[r]) for r in rows]))
                        for part in parts:
                            part_rows = [rows[i] for i in part]
                            logits = head(feats("pool", data.pool, part_rows))
                            target = labels_train[torch.as_tensor(part_rows)].to(device)
                            (F.cross_entropy(logits, target, reduction="sum") / len(rows)).backward()
                nn.utils.clip_grad_norm_(trainable, params.grad_clip)
                opt.step()
                steps_run = step + 1
                if steps_run % eval_every == 0 or steps_run == params.steps:
                    attacker.eval()
                    acc = _accuracy(feats, head, "selection", data.selection, labels_sel)
                    if params.kind != "probe":
                        flops += 2.0 * p_flop * sel_tokens
                    curve.append((steps_run, acc))
                    if acc > best_acc:
                        best_acc, best_step = acc, steps_run
                        best_state = _snapshot(attacker if params.kind != "probe" else None, head)
                    if report_hook is not None and steps_run < params.steps and report_hook(steps_run, acc):
                        pruned = True
                        break
            report_acc = None
            if not pruned and best_state is not None:
                _restore(attacker if params.kind != "probe" else None, head, best_state)
                attacker.eval()
                report_acc = _accuracy(feats, head, "report", data.report, labels_rep)
    finally:
        if params.kind == "probe":
            model.train(was_training)
    seen_ids: dict[str, list[str]] = {}
    if record_ids:
        seen_ids["train"] = sorted(data.pool_ids[i] for i in feats.read["pool"])
        seen_ids["selection"] = sorted(data.selection_ids[i] for i in feats.read["selection"])
        seen_ids["report"] = sorted(data.report_ids[i] for i in feats.read["report"])
    return TrialOutcome(
        selection_curve=curve,
        best_selection_accuracy=best_acc,
        best_step=best_step,
        report_accuracy=report_acc,
        steps_run=steps_run,
        pruned=pruned,
        wall_s=time.perf_counter() - started,
        flops=flops,
        report_majority_rate=majority_rate(labels_rep),
        seen_ids=seen_ids,
    )


def _snapshot(attacker: nn.Module | None, head: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    out = {"head": {k: v.detach().clone() for k, v in head.state_dict().items()}}
    if attacker is not None:
        out["attacker"] = {k: v.detach().clone() for k, v in attacker.state_dict().items()}
    return out


def _restore(attacker: nn.Module | None, head: nn.Module, state: dict[str, dict[str, torch.Tensor]]) -> None:
    head.load_state_dict(state["head"])
    if attacker is not None:
        attacker.load_state_dict(state["attacker"])
