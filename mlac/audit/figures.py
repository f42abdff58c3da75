"""Figures like the paper's: few-shot curves (harmful and beneficial panels) and attack-budget curves."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mlac.audit.curves import series

if TYPE_CHECKING:
    from mlac.audit.result_schema import AuditResult

TASK_TITLES = {"harmful": "Harmful task (attacker's accuracy)", "beneficial": "Beneficial task"}


def plot_curves(result: AuditResult, path: Path) -> list[str]:
    """Two panels, log-x data size, a line with a 95% bootstrap CI band per model; returns the series labels."""
    tasks = [t for t in ("harmful", "beneficial") if any(c.task == t for c in result.curves)]
    models = sorted({c.model for c in result.curves})
    fig, axes = plt.subplots(1, max(len(tasks), 1), figsize=(6 * max(len(tasks), 1), 4.2), squeeze=False)
    labels: list[str] = []
    for ax, task in zip(axes[0], tasks, strict=False):
        for model in models:
            curve = series(result.curves, model, task)
            if not curve:
                continue
            ns = [c.n for c in curve]
            line = ax.plot(ns, [c.mean for c in curve], marker="o", label=model)[0]
            ax.fill_between(ns, [c.ci_bootstrap[0] for c in curve], [c.ci_bootstrap[1] for c in curve],
                            color=line.get_color(), alpha=0.15)
            labels.append(f"{task}:{model}")
        ax.set_xscale("log")
        ax.set_xlabel("attacker's training examples n (log scale)")
        ax.set_ylabel("accuracy on the report split")
        ax.set_title(TASK_TITLES.get(task, task))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return labels


def plot_attack_budget(result: AuditResult, path: Path) -> list[str]:
    """Best-so-far harmful accuracy vs trials searched and vs attacker wall time, per model and n."""
    budget = [b for b in (result.derived or {}).get("budget_curves", []) if b["task"] == "harmful"]
    fig, (by_trials, by_time) = plt.subplots(1, 2, figsize=(12, 4.2))
    labels: list[str] = []
    for b in budget:
        label = f"{b['model']} n={b['n']}"
        pts = b["points"]
        by_trials.plot([p["trials"] for p in pts], [p["best_accuracy"] for p in pts], marker=".", label=label)
        by_time.plot([max(p["wall_s"], 1e-3) for p in pts], [p["best_accuracy"] for p in pts], marker=".", label=label)
        labels.append(label)
    by_trials.set_xlabel("trials searched")
    by_time.set_xlabel("attacker wall time (s, log scale)")
    by_time.set_xscale("log")
    for ax in (by_trials, by_time):
        ax.set_ylabel("best harmful accuracy so far")
        ax.grid(alpha=0.3)
        if labels:
            ax.legend(fontsize=7)
    fig.suptitle("Attack budget: how fast the attacker's search finds its best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return labels
