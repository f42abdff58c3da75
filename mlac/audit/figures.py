"""Figures like the paper's: few-shot curves (harmful and beneficial panels) and attack-budget curves.

Matplotlib with the Agg backend (no display). Each model keeps one colour across panels and figures;
models under audit are solid lines, baselines dashed. Both functions return the labels of the series
they drew, so callers (and tests) can check what is on the figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator, NullFormatter

from mlac.audit.curves import CurvePoint, series
from mlac.audit.derived import BASELINE_LABELS

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from mlac.audit.result_schema import AuditResult

TASK_TITLES = {"harmful": "Harmful task (attacker's accuracy)", "beneficial": "Beneficial task"}
BUDGET_PANELS = (("by_trials", "trials", "trials searched", False),
                 ("by_wall_s", "wall_s", "attacker wall time (s)", True),
                 ("by_flops", "flops", "attacker compute (estimated FLOPs)", True))
LINESTYLES = ("-", "--", ":", "-.")


def models_of(curves: list[CurvePoint]) -> list[str]:
    """Model labels in order of first appearance."""
    return list(dict.fromkeys(c.model for c in curves))


def _text(label: str) -> str:
    """A user label as literal figure text (a ``$`` would otherwise start matplotlib mathtext)."""
    return label.replace("$", r"\$")


def _colours(models: list[str]) -> dict[str, Any]:
    cycle = plt.get_cmap("tab10")
    return {m: cycle(i % 10) for i, m in enumerate(models)}


def _style(model: str) -> str:
    return "--" if model in BASELINE_LABELS else "-"


def _tasks(result: AuditResult) -> list[str]:
    present = list(dict.fromkeys(c.task for c in result.curves))
    ordered = [t for t in ("harmful", "beneficial") if t in present]
    return ordered + [t for t in present if t not in ordered]


def plot_curves(result: AuditResult, path: str | Path) -> list[str]:
    """One panel per task (harmful, beneficial), log-x data size, mean line and 95% bootstrap CI band
    per model. Returns the series labels drawn, as ``"task:model"``."""
    tasks = _tasks(result) or ["harmful"]
    models = models_of(result.curves)
    colours = _colours(models)
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.4), squeeze=False)
    labels: list[str] = []
    for ax, task in zip(axes[0], tasks, strict=True):
        for model in models:
            curve = series(result.curves, model, task)
            if not curve:
                continue
            ns = [c.n for c in curve]
            ax.plot(ns, [c.mean for c in curve], marker="o", linestyle=_style(model), color=colours[model],
                    label=_text(model))
            ax.fill_between(ns, [c.ci_bootstrap[0] for c in curve], [c.ci_bootstrap[1] for c in curve],
                            color=colours[model], alpha=0.15, linewidth=0)
            labels.append(f"{task}:{model}")
        sizes = sorted({c.n for c in result.curves if c.task == task})
        ax.set_xscale("log")
        if sizes:
            ax.set_xticks(sizes, [str(n) for n in sizes])
            ax.minorticks_off()
        ax.set_xlabel("attacker's training examples n (log scale)")
        ax.set_ylabel("accuracy on the report split")
        ax.set_title(TASK_TITLES.get(task, task))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no curve measured", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle("Few-shot attack curves (mean over seeds, 95% bootstrap CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return labels


def _budget_panel(ax: Axes, entries: list[dict[str, Any]], key: str, x_key: str, log_x: bool,
                  colours: dict[str, Any], size_style: dict[int, str]) -> None:
    """One step line (mean over seeds of the report accuracy, a dot where the search ended) and a min-max
    band per entry."""
    for e in entries:
        rows = [r for r in e.get(key) or [] if r.get("report") and (not log_x or float(r[x_key]) > 0)]
        if not rows:
            continue
        xs = [float(r[x_key]) for r in rows]
        colour = colours.get(e["model"], "black")
        ax.step(xs, [r["report"]["mean"] for r in rows], where="post", color=colour, marker="o", markersize=3,
                markevery=[len(xs) - 1], linestyle=size_style[int(e["n"])], label=_text(f"{e['model']} n={e['n']}"))
        ax.fill_between(xs, [r["report"]["min"] for r in rows], [r["report"]["max"] for r in rows], step="post",
                        color=colour, alpha=0.1, linewidth=0)


def plot_attack_budget(result: AuditResult, path: str | Path, task: str = "harmful") -> list[str]:
    """Best-so-far ``task`` accuracy vs trials searched, attacker wall time and estimated FLOPs: a step
    line (mean over seeds) and a min-max band per model and n. Returns the labels ``"model n=N"`` drawn."""
    entries = [b for b in (result.derived or {}).get("budget_curves", []) if b["task"] == task]
    models = models_of(result.curves)
    colours = _colours(models)
    sizes = sorted({int(e["n"]) for e in entries})
    size_style = {n: LINESTYLES[i % len(LINESTYLES)] for i, n in enumerate(sizes)}
    fig, axes = plt.subplots(1, len(BUDGET_PANELS), figsize=(16, 4.6), squeeze=False)
    for ax, (key, x_key, xlabel, log_x) in zip(axes[0], BUDGET_PANELS, strict=True):
        _budget_panel(ax, entries, key, x_key, log_x, colours, size_style)
        has_data = bool(ax.get_legend_handles_labels()[0])
        if log_x and has_data:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        elif not log_x:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(xlabel + (" (log scale)" if log_x and has_data else ""))
        ax.set_ylabel(f"best {task} accuracy so far")
        ax.grid(alpha=0.3)
        if not has_data:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
    handles, names = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="center right", fontsize=7)
    fig.suptitle(f"Attack budget ({task} task): report accuracy of the best trial so far (chosen on the "
                 "selection split), mean over seeds, min-max band")
    fig.tight_layout(rect=(0, 0, 0.88 if handles else 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [f"{e['model']} n={e['n']}" for e in entries if e.get("by_trials")]
