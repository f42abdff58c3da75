"""MLAC training: the outer loop around :func:`mlac.censor.outer.outer_objective` (PROTOCOL.md).

Each outer step draws an outer batch, K inner batches (one size drawn from ``inner_batch_sizes``), a
fresh random harmful head (or the adversary's learned one) and the inner learning rate, unrolls the
simulated attacker, and takes one defender step (Adam, clipped) on
``CE_beneficial - w_adv * mean_k L_adv(k) [+ options]`` and one adversary step (Adam on the inner lr
and, if learned, the head init) on the adversarial part, in the opposite direction.

Reproducibility: every random draw of step ``s`` (batches, head, sampled lr, dropout masks) comes from
generators seeded by ``(seed, s)``, so the RNG state *is* ``(seed, step)``; with the optimiser states
and the adversary's parameters saved, a resumed run continues bit for bit like an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from mlac.censor.config import MLACConfig
from mlac.censor.outer import outer_objective
from mlac.censor.resume import has_state, load_optimizer_tensors, load_state, optimizer_tensors, save_state
from mlac.censor.validation_attack import fresh_head
from mlac.data.encoded import Batch, EncodedSplit, encode_split
from mlac.device import resolve_device
from mlac.errors import ConfigError, DataError, StoppedError
from mlac.models import EncoderClassifier, save_checkpoint
from mlac.tasks import TaskSpec

log = logging.getLogger(__name__)

RESUME_DIR = "mlac_resume"
#: Config fields that may change between a run and its resumption.
RESUMABLE_CHANGES = frozenset({"outer_steps", "device", "val_every", "checkpoint_every"})

Progress = Callable[[dict[str, Any]], None]
ShouldStop = Callable[[], bool]


@dataclass
class CensorResult:
    """Outcome of :func:`train_mlac`. ``model`` holds the best validated weights."""

    model: EncoderClassifier
    steps_done: int
    best_step: int
    best_objective: float
    inner_lr: float
    history: list[dict[str, Any]] = field(default_factory=list)
    out_dir: Path | None = None
    weights_sha256: str | None = None
    resumed_from: int | None = None
    skipped_nonfinite: int = 0
    dataset_fingerprint: str = ""


def _derived_seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "little") >> 1


def split_train_val(data: EncodedSplit, cfg: MLACConfig) -> tuple[EncodedSplit, EncodedSplit]:
    """Hold out a seeded part of the training rows for validation (``val_fraction``, at most ``val_max_examples``)."""
    n = len(data)
    n_val = min(cfg.val_max_examples, max(2, round(cfg.val_fraction * n)))
    need = max(cfg.outer_batch_size, *cfg.inner_batch_sizes)
    if n - n_val < need:
        raise DataError(
            f"{n} training rows are too few: MLAC holds out {n_val} for validation and needs at least {need} "
            "more (the largest outer/inner batch); give more data or smaller batch sizes",
            code="too_few_rows",
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(_derived_seed(cfg.seed, "split"))).tolist()
    return data.subset(sorted(perm[n_val:])), data.subset(sorted(perm[:n_val]))


class MLACTrainer:
    """State and steps of one MLAC run (plain object; :func:`train_mlac` drives it)."""

    def __init__(
        self, model: EncoderClassifier, train: EncodedSplit, val: EncodedSplit, num_harmful: int, cfg: MLACConfig
    ) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.model = model.to(self.device)
        self.train, self.val = train, val
        self.num_harmful = num_harmful
        self.params = dict(self.model.named_parameters())
        self.buffers = dict(self.model.named_buffers())
        self.defender = torch.optim.Adam(list(self.params.values()), lr=cfg.outer_lr)
        dtype = next(iter(self.params.values())).dtype
        self.inner_lr = torch.tensor(cfg.inner_lr, dtype=dtype, device=self.device, requires_grad=cfg.learns_inner_lr)
        self.adv_head: dict[str, torch.Tensor] = {}
        if cfg.adversary_head == "learned":
            head = fresh_head(model.hidden_size, num_harmful, torch.Generator().manual_seed(_derived_seed(cfg.seed, "head")), self.device, dtype)
            self.adv_head = {k: v.requires_grad_(True) for k, v in head.items()}
        adv_params = ([self.inner_lr] if cfg.learns_inner_lr else []) + list(self.adv_head.values())
        self.adversary = torch.optim.Adam(adv_params, lr=cfg.adversary_lr) if adv_params else None
        self.step = 0
        self.best_objective = math.inf
        self.best_step = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[dict[str, Any]] = []
        self.skipped_nonfinite = 0

    # -- one outer step ------------------------------------------------------------------------------
    def _draw(self, gen: torch.Generator, split: EncodedSplit, batch_size: int) -> Batch:
        rows = torch.randperm(len(split), generator=gen)[:batch_size].tolist()
        return split.batch(rows, self.device)

    def _draw_step(self, gen: torch.Generator, split: EncodedSplit) -> tuple[Batch, list[Batch], dict[str, torch.Tensor]]:
        cfg = self.cfg
        outer = self._draw(gen, split, cfg.outer_batch_size)
        size = cfg.inner_batch_sizes[int(torch.randint(len(cfg.inner_batch_sizes), (1,), generator=gen))]
        inner = [self._draw(gen, split, size) for _ in range(cfg.inner_steps)]
        head = fresh_head(self.model.hidden_size, self.num_harmful, gen, self.device, self.inner_lr.dtype)
        return outer, inner, head

    def _lr_for_step(self, gen: torch.Generator) -> torch.Tensor:
        cfg = self.cfg
        if cfg.inner_lr_mode == "sampled":
            lo, hi = math.log(cfg.inner_lr_sample_low), math.log(cfg.inner_lr_sample_high)
            value = math.exp(lo + (hi - lo) * float(torch.rand((), generator=gen)))
            return torch.tensor(value, dtype=self.inner_lr.dtype, device=self.device)
        return self.inner_lr

    def outer_step(self) -> dict[str, Any]:
        """Run outer step ``self.step`` and advance; return its losses."""
        cfg = self.cfg
        seed = _derived_seed(cfg.seed, "step", self.step)
        gen = torch.Generator().manual_seed(seed)
        outer, inner, head = self._draw_step(gen, self.train)
        if self.adv_head:
            head = self.adv_head
        lr = self._lr_for_step(gen)
        self.model.train(cfg.dropout)
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        step_cfg = cfg
        if cfg.w_adv == 0 and cfg.w_grad_norm == 0 and cfg.w_max_entropy == 0:
            # No adversarial term: the inner loop cannot change the gradient; skip it (same update, and the
            # random draws above are unchanged, so the run stays comparable with w_adv > 0).
            step_cfg, inner = cfg.replace(inner_steps=0), []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            terms = outer_objective(self.model, self.params, self.buffers, head, lr, outer, inner, step_cfg)
        adv_leaves = [t for t in ([lr] if lr.requires_grad else []) + list(self.adv_head.values())]
        params = list(self.params.values())
        if adv_leaves and cfg.adversary_objective == "adapted_ce":
            # The reference's adversary: minimise the adapted harmful cross-entropy directly.
            adv_grads = list(torch.autograd.grad(terms.adapted_ce, adv_leaves, retain_graph=True,
                                                 allow_unused=True, materialize_grads=True))
            grads = list(torch.autograd.grad(terms.total, params, allow_unused=True, materialize_grads=True))
        else:
            # The game: the adversary maximises the defender's objective (minimises its adversarial part).
            both = torch.autograd.grad(terms.total, [*params, *adv_leaves], allow_unused=True, materialize_grads=True)
            grads, adv_grads = list(both[: len(params)]), [-g for g in both[len(params):]]
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.outer_grad_clip)
        finite = bool(torch.isfinite(terms.total + norm + sum((g.sum() for g in adv_grads), terms.total.new_zeros(()))))
        if finite:
            self.defender.step()
            if self.adversary is not None and adv_leaves:
                for leaf, g in zip(adv_leaves, adv_grads, strict=True):
                    leaf.grad = g
                torch.nn.utils.clip_grad_norm_(adv_leaves, cfg.adversary_grad_clip)
                self.adversary.step()
                self.adversary.zero_grad(set_to_none=True)
                with torch.no_grad():
                    self.inner_lr.clamp_(cfg.inner_lr_min, cfg.inner_lr_max)
        else:
            self.skipped_nonfinite += 1
            log.warning("MLAC step %d: non-finite loss or gradient, update skipped", self.step)
        self.defender.zero_grad(set_to_none=True)
        self.step += 1
        return {
            "step": self.step,
            "total": float(terms.total.detach()),
            "beneficial_ce": float(terms.beneficial_ce.detach()),
            "adv_mean": float(terms.adv_per_step.detach().mean()),
            "harmful_ce_final": float(terms.harmful_ce_per_step[-1]),
            "inner_lr": float(lr.detach()),
            "finite": finite,
        }

    # -- validation ----------------------------------------------------------------------------------
    def _validation_pass(self, lr_value: float) -> dict[str, float]:
        """Objective and accuracies on held-out rows with fixed draws (first order, dropout off) at ``lr_value``."""
        cfg = self.cfg
        vcfg = cfg.replace(second_order=False, w_grad_norm=0.0)
        gen = torch.Generator().manual_seed(_derived_seed(cfg.seed, "validation"))
        leaves = {k: v.detach().requires_grad_(True) for k, v in self.params.items()}
        lr = torch.tensor(lr_value, dtype=self.inner_lr.dtype, device=self.device)
        learned_head = {k: v.detach() for k, v in self.adv_head.items()}
        totals, ben_ce, adv, harm_acc, ben_acc = [], [], [], [], []
        for _ in range(cfg.val_batches):
            outer, inner, head = self._draw_step(gen, self.val)
            terms = outer_objective(self.model, leaves, self.buffers, learned_head or head, lr, outer, inner, vcfg)
            totals.append(float(terms.total.detach()))
            ben_ce.append(float(terms.beneficial_ce.detach()))
            adv.append(float(terms.adv_per_step.detach().mean()))
            harm_acc.append(float((terms.final_logits.argmax(-1) == outer.harmful).float().mean()))
            assert outer.beneficial is not None
            ben_acc.append(float((terms.beneficial_logits.argmax(-1) == outer.beneficial).float().mean()))
        return {
            "objective": sum(totals) / len(totals),
            "beneficial_ce": sum(ben_ce) / len(ben_ce),
            "adv_mean": sum(adv) / len(adv),
            "simulated_attack_acc": sum(harm_acc) / len(harm_acc),
            "beneficial_acc": sum(ben_acc) / len(ben_acc),
        }

    def validate(self) -> dict[str, Any]:
        """Validate against the attacker the model is trained against and keep the best checkpoint.

        The simulated attack runs at the adversary's current inner lr (learned mode; the configured one
        otherwise) and, with the adversary's learned head when there is one. With a learned lr, the same
        numbers at the initial lr are recorded beside them (``*_initial_lr``) but do not select.
        """
        cfg = self.cfg
        was_training = self.model.training
        self.model.eval()
        try:
            current = float(self.inner_lr.detach()) if cfg.learns_inner_lr else cfg.inner_lr
            record: dict[str, Any] = {"step": self.step, "validation_inner_lr": current, **self._validation_pass(current)}
            if cfg.learns_inner_lr and cfg.inner_steps > 0:
                initial = self._validation_pass(cfg.inner_lr)
                record.update({f"{k}_initial_lr": v for k, v in initial.items()})
        finally:
            self.model.train(was_training)
        improved = record["objective"] < self.best_objective
        if improved:
            self.best_objective = record["objective"]
            self.best_step = self.step
            self.best_state = {k: v.detach().to("cpu").clone() for k, v in self.params.items()}
        record["best"] = improved
        self.history.append(record)
        return record

    # -- persistence -----------------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything a resumed run needs, as named tensors."""
        out: dict[str, torch.Tensor] = {f"param/{k}": v for k, v in self.params.items()}
        if self.best_state is not None:
            out.update({f"best/{k}": v for k, v in self.best_state.items()})
        out.update(optimizer_tensors(self.defender, "defender"))
        if self.adversary is not None:
            out.update(optimizer_tensors(self.adversary, "adversary"))
        out["adv/inner_lr"] = self.inner_lr.detach().reshape(1)
        out.update({f"adv/head.{k}": v for k, v in self.adv_head.items()})
        return out

    def state_meta(self, fingerprint: str) -> dict[str, Any]:
        """JSON part of the state."""
        return {
            "step": self.step,
            "config": self.cfg.to_dict(),
            "best_objective": self.best_objective if math.isfinite(self.best_objective) else None,
            "best_step": self.best_step,
            "history": self.history,
            "skipped_nonfinite": self.skipped_nonfinite,
            "dataset_fingerprint": fingerprint,
        }

    def load(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], fingerprint: str) -> None:
        """Restore a state written by :meth:`state_tensors`/:meth:`state_meta` (checked for compatibility)."""
        saved = MLACConfig.from_dict(meta["config"]).to_dict()
        now = self.cfg.to_dict()
        changed = sorted(k for k in now if now[k] != saved[k] and k not in RESUMABLE_CHANGES)
        if changed:
            raise ConfigError(
                f"cannot resume: the saved run used different settings for {changed}; use a new output "
                "directory or resume=False to start over",
                code="resume_mismatch",
            )
        if meta.get("dataset_fingerprint") != fingerprint:
            raise ConfigError(
                "cannot resume: the saved run was trained on different data (dataset fingerprint differs); "
                "use a new output directory or resume=False",
                code="resume_mismatch",
            )
        with torch.no_grad():
            for k, p in self.params.items():
                p.copy_(tensors[f"param/{k}"])
            self.inner_lr.copy_(tensors["adv/inner_lr"][0])
            for k, v in self.adv_head.items():
                v.copy_(tensors[f"adv/head.{k}"])
        load_optimizer_tensors(self.defender, tensors, "defender")
        if self.adversary is not None:
            load_optimizer_tensors(self.adversary, tensors, "adversary")
        best = {k[len("best/"):]: v for k, v in tensors.items() if k.startswith("best/")}
        self.best_state = best or None
        self.step = int(meta["step"])
        self.best_objective = math.inf if meta["best_objective"] is None else float(meta["best_objective"])
        self.best_step = int(meta["best_step"])
        self.history = list(meta["history"])
        self.skipped_nonfinite = int(meta.get("skipped_nonfinite", 0))

    def load_best_into_model(self) -> None:
        """Put the best validated weights into the model (the current ones if never validated)."""
        if self.best_state is None:
            return
        with torch.no_grad():
            for k, p in self.params.items():
                p.copy_(self.best_state[k])


def train_mlac(
    model: EncoderClassifier,
    tokenizer: PreTrainedTokenizerBase,
    train_split: Any,
    task: TaskSpec,
    config: MLACConfig,
    *,
    out_dir: str | Path | None = None,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
    resume: bool = True,
    parent_sha256: str | None = None,
    dataset_fingerprint: str | None = None,
    beneficial_names: tuple[str, ...] = (),
) -> CensorResult:
    """Censor ``model`` with MLAC on ``train_split`` (a ``datasets.Dataset`` with the task's columns, or an
    :class:`EncodedSplit`); the model is trained in place and ends with its best validated weights.

    ``out_dir``: where the censored model is saved (HF directory + provenance) and the resume state is
    kept (``out_dir/mlac_resume``, written every ``checkpoint_every`` steps, on stop and at the end).
    ``progress`` receives a dict per step (``event='step'``) and per validation (``event='validation'``);
    ``should_stop`` is polled before every step: when it returns True the state is saved and
    :class:`StoppedError` is raised (``resume=True`` continues from there).
    """
    data = train_split if isinstance(train_split, EncodedSplit) else encode_split(train_split, tokenizer, task, config.max_length)
    fingerprint = dataset_fingerprint or data.fingerprint
    train, val = split_train_val(data, config)
    trainer = MLACTrainer(model, train, val, task.num_labels("harmful"), config)
    out = Path(out_dir) if out_dir is not None else None
    state_dir = out / RESUME_DIR if out is not None else None
    resumed_from = None
    if state_dir is not None and resume and has_state(state_dir):
        tensors, meta = load_state(state_dir)
        trainer.load(tensors, meta, data.fingerprint)
        resumed_from = trainer.step
        log.info("resuming MLAC from step %d", trainer.step)

    def checkpoint() -> None:
        if state_dir is not None:
            save_state(state_dir, trainer.state_tensors(), trainer.state_meta(data.fingerprint))

    start_step, started = trainer.step, time.monotonic()
    while trainer.step < config.outer_steps:
        if should_stop is not None and should_stop():
            checkpoint()
            raise StoppedError(
                f"MLAC stopped at step {trainer.step} of {config.outer_steps}"
                + (f"; the state is saved in {state_dir}: run again with the same output to resume" if state_dir else "")
            )
        record = trainer.outer_step()
        elapsed = time.monotonic() - started
        rate = (trainer.step - start_step) / max(elapsed, 1e-9)
        record.update(event="step", outer_steps=config.outer_steps, elapsed_s=elapsed,
                      eta_s=(config.outer_steps - trainer.step) / rate if rate > 0 else None)
        if progress is not None:
            progress(record)
        last = trainer.step == config.outer_steps
        if trainer.step % config.val_every == 0 or last:
            val_record = trainer.validate()
            if progress is not None:
                progress({"event": "validation", **val_record})
        if trainer.step % config.checkpoint_every == 0 or last:
            checkpoint()
    if trainer.best_state is None and trainer.step > 0:
        trainer.validate()
    trainer.load_best_into_model()
    sha = None
    if out is not None:
        provenance = {
            "parent_sha256": parent_sha256,
            "dataset_fingerprint": fingerprint,
            "seed": config.seed,
            "training": {
                "kind": "mlac",
                "config": config.to_dict(),
                "steps_done": trainer.step,
                "best_step": trainer.best_step,
                "best_objective": trainer.best_objective,
                "final_inner_lr": float(trainer.inner_lr.detach()),
                "skipped_nonfinite": trainer.skipped_nonfinite,
                "task": {"text_field": task.text_field, "beneficial_label": task.beneficial_label,
                         "harmful_label": task.harmful_label},
            },
        }
        sha = save_checkpoint(trainer.model, tokenizer, out, provenance,
                              beneficial_names=beneficial_names or task.beneficial_names)
    trainer.model.eval()
    return CensorResult(
        model=trainer.model, steps_done=trainer.step, best_step=trainer.best_step,
        best_objective=trainer.best_objective, inner_lr=float(trainer.inner_lr.detach()), history=trainer.history,
        out_dir=out, weights_sha256=sha, resumed_from=resumed_from, skipped_nonfinite=trainer.skipped_nonfinite,
        dataset_fingerprint=fingerprint,
    )
