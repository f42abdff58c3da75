"""The v2 study's attacks: the audit engine's searches, fixed stronger attacks and a learning-from-scratch reference.

- :func:`main_audit`: ``run_audit`` over base, random and the MLAC seeds, both tasks, every n and attacker seed,
  with the scale's space (at the ``cpu`` scale the strong preset's space with the probe as the kind) and
  per-example report predictions (``log_samples``) for the seen / unseen name scores.
- :func:`ablation_audit`: the same attacker on base, random and the ablation models, harmful task only.
- :func:`fixed_checks`: full fine-tuning and LoRA with fixed hyperparameters on base, random and the first MLAC
  seed, run as the audit's own trials (same rows, same splits), to see what a differently shaped attack gets.
- :func:`bag_of_words`: a logistic regression on word presence trained on the attacker's n rows: what learning
  from scratch gets at each n (where even a model that knows nothing can learn, "as hard as random" means
  something).
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import replace
from typing import Any

import torch

from experiments.replication.v2.study import V2Study, ablation_labels, mlac_labels
from mlac.audit.protocol import AuditRequest, plan_counts
from mlac.audit.runner import base_spec, run_audit, subset_seed
from mlac.audit.space import reference_grid
from mlac.audit.trial import WorkerContext, attacker_rows, capped_split, run_trial
from mlac.audit.verdict import VerdictPolicy
from mlac.contracts import StudyKey

log = logging.getLogger("replication")


def request_for(study: V2Study, labels: list[str], tasks: tuple[str, ...], sizes: tuple[int, ...],
                log_samples: bool = False) -> AuditRequest:
    """The audit request of ``labels`` (checkpoint directories of the study) with the scale's attacker."""
    s = study.scale
    return AuditRequest(dataset=str(study.dataset_path), models=tuple(str(study.models[m]) for m in labels),
                        tasks=tasks, sizes=sizes, seeds=s.attack_seeds, space=s.space, search=s.search,
                        selection_max=s.selection_max, report_max=s.report_max, max_length=s.max_length,
                        device=s.device, verdict=VerdictPolicy(statistic="ci"), log_samples=log_samples)


def _audit(study: V2Study, name: str, request: AuditRequest) -> dict[str, Any]:
    """``run_audit`` of ``request`` into ``<out>/<name>`` as a cached piece. Every progress event is kept with its
    time in ``<out>/<name>/eta_recording.json``, in the format of ``benchmarks/bench_eta.py``'s ``events.json``
    (``--replay`` re-analyses it): a long held-out recording for the audit ETA."""
    folder = study.out / name
    last = {"done": -1}
    events: list[tuple[float, dict[str, Any]]] = []

    def progress(event: dict[str, Any]) -> None:
        events.append((time.monotonic(), dict(event)))
        done = event.get("studies_done")
        if event.get("stage") == "search" and done is not None and done != last["done"] and done % 10 == 0:
            last["done"] = done
            log.info("%s: %s/%s searches, eta %s s", name, done, event.get("studies_total"), event.get("eta_s"))

    def run() -> dict[str, Any]:
        counts = plan_counts(request)
        grid = min(len(reference_grid(request.space)), request.search.max_trials) if request.search.grid_start else 0
        t0 = time.monotonic()
        result = run_audit(request, folder, progress=progress).to_dict()
        recording = {"t0": t0, "t1": time.monotonic(), "studies": counts["studies"], "max_trials": counts["max_trials"],
                     "max_trials_per_study": request.search.max_trials, "reruns": request.search.reruns,
                     "patience": request.search.patience, "grid_trials": grid, "events": events}
        (folder / "eta_recording.json").write_text(json.dumps(recording, default=str), encoding="utf-8")
        return result

    return study.pieces.run(name, run)


def main_audit(study: V2Study) -> dict[str, Any]:
    """Base, random and the MLAC seeds, harmful and beneficial, every n and attacker seed."""
    labels = ["base", "random", *mlac_labels(study.scale)]
    return _audit(study, "audit_main", request_for(study, labels, ("harmful", "beneficial"), study.scale.sizes,
                                                     log_samples=True))


def ablation_audit(study: V2Study) -> dict[str, Any] | None:
    """Base, random and every ablation model, harmful task, at the scale's ablation sizes (None without ablations)."""
    labels = [label for group in ablation_labels(study.scale).values() for label in group]
    if not labels:
        return None
    return _audit(study, "audit_ablations",
                  request_for(study, ["base", "random", *labels], ("harmful",), study.scale.ablation_sizes))


def fixed_checks(study: V2Study) -> list[dict[str, Any]]:
    """Each fixed attack of the scale on base, random and the first MLAC seed, at the check sizes and seeds,
    as the audit's own trials; each row keeps the report predictions for the name-group scores."""
    s = study.scale
    targets = ["base", "random", mlac_labels(s)[0]]
    request = request_for(study, targets, ("harmful",), tuple(sorted({n for _, _, sizes in s.checks for n in sizes})))

    def run(label: str) -> list[dict[str, Any]]:
        context = WorkerContext()
        rows = []
        for name, params, sizes in s.checks:
            for n in sizes:
                for seed in s.check_seeds:
                    key = StudyKey(label, str(study.models[label]), "harmful", n, seed)
                    spec = replace(base_spec(request, key), params=params.to_dict(), trial_seed=seed,
                                   eval_every=s.check_eval_every, log_samples=True)
                    result = run_trial(spec.to_dict(), context)
                    if not result.ok:
                        raise RuntimeError(f"check {name} on {label} n={n} seed={seed} failed: {result.error}")
                    rows.append({"model": label, "attack": name, "n": n, "seed": seed, "params": params.to_dict(),
                                 "report": result.report_accuracy, "best_step": result.best_step,
                                 "selection_best": result.best_selection_accuracy, "wall_s": result.wall_s,
                                 "flops": result.flops, "predictions": list(result.report_predictions or ())})
        return rows

    out: list[dict[str, Any]] = []
    for label in targets:
        out += study.pieces.run(f"checks/{label}", lambda label=label: run(label))  # type: ignore[misc]
    return out


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def _presence(texts: list[str], vocab: dict[str, int]) -> torch.Tensor:
    x = torch.zeros(len(texts), len(vocab))
    for i, text in enumerate(texts):
        for w in _words(text):
            j = vocab.get(w)
            if j is not None:
                x[i, j] = 1.0
    return x


def _logistic(x: torch.Tensor, y: torch.Tensor, l2: float, steps: int) -> torch.nn.Linear:
    torch.manual_seed(0)
    head = torch.nn.Linear(x.shape[1], 2)
    opt = torch.optim.LBFGS(head.parameters(), lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(x), y) + l2 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return head


def bag_of_words(study: V2Study) -> list[dict[str, Any]]:
    """Logistic regression on word presence from the attacker's n rows (vocabulary from those rows only), the L2
    weight chosen on the selection split, scored on the report split: the audit's rows and splits."""
    s = study.scale

    def run() -> list[dict[str, Any]]:
        col, label = study.task.text_field, study.task.label_column("harmful")
        pool = study.splits.attack_pool
        sel = capped_split(study.splits.selection, s.selection_max, 0)
        rep = capped_split(study.splits.report, s.report_max, 0)
        out = []
        for n in s.sizes:
            for seed in s.attack_seeds:
                rows = attacker_rows(len(pool), n, subset_seed(seed, n))
                part = pool.select(rows)
                vocab = {w: i for i, w in enumerate(sorted(set().union(*(_words(t) for t in part[col]))))}
                x, y = _presence(list(part[col]), vocab), torch.tensor(part[label])
                xs, ys = _presence(list(sel[col]), vocab), torch.tensor(sel[label])
                xr, yr = _presence(list(rep[col]), vocab), torch.tensor(rep[label])
                best: dict[str, Any] | None = None
                for l2 in (1e-4, 1e-3, 1e-2, 1e-1):
                    head = _logistic(x, y, l2, s.bow_steps)
                    with torch.no_grad():
                        acc_sel = float((head(xs).argmax(1) == ys).float().mean())
                        acc_rep = float((head(xr).argmax(1) == yr).float().mean())
                    if best is None or acc_sel > best["selection"]:
                        best = {"n": n, "seed": seed, "l2": l2, "selection": acc_sel, "report": acc_rep}
                assert best is not None
                out.append(best)
        return out

    return study.pieces.run("bag_of_words", run)
