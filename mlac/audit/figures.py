"""Figures like the paper's: few-shot curves (harmful and beneficial panels) and attack-budget curves.

Matplotlib with the Agg backend (no display). Each model keeps one colour across panels and figures;
models under audit are solid lines, baselines dashed. A curve panel also shows what the verdict reads it
against: the chance rate (the report split's majority class), the verdict limits where their baselines
were measured (harmful: random + delta; beneficial: base - epsilon), the 95% t-interval as a band (none
for a single seed) and hollow markers where the attack failed (mean at or below chance). Both plotting
functions return the labels of the series they drew, so callers (and tests) can check what is on the
figure; :func:`draw_curves` returns the open figure itself.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, NullFormatter

from mlac.audit.curves import CurvePoint, series
from mlac.audit.derived import BASELINE_LABELS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from mlac.audit.result_schema import AuditResult

TASK_TITLES = {"harmful": "Harmful task (attacker's accuracy)", "beneficial": "Beneficial task"}
BUDGET_PANELS = (("by_trials", "trials", "trials searched", False),
                 ("by_wall_s", "wall_s", "attacker wall time (s)", True),
                 ("by_flops", "flops", "attacker compute (estimated FLOPs)", True))
LINESTYLES = ("-", "--", ":", "-.")
CHANCE_LABEL = "chance (majority class)"
ATTACK_FAILED_LABEL = "attack failed (<= chance)"
LIMIT_COLOUR = "#cf222e"
#: task -> (baseline the limit is read from, sign of the policy margin, policy field, label template)
LIMITS = {"harmful": ("random", +1, "delta_random", "harmful limit (random + {:g})"),
          "beneficial": ("base", -1, "epsilon_beneficial", "beneficial limit (base - {:g})")}


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


def _model_curve(ax: Axes, curve: list[CurvePoint], label: str, colour: Any, linestyle: str) -> None:
    """Mean line (filled markers), t-interval band (an error bar where an interval has no neighbour to span to;
    nothing for one-seed points), hollow markers on attack-failed points."""
    ns = [c.n for c in curve]
    solid = [i for i, c in enumerate(curve) if not c.attack_failed]
    ax.plot(ns, [c.mean for c in curve], marker="o", markevery=solid, linestyle=linestyle, color=colour, label=label)
    failed = [c for c in curve if c.attack_failed]
    if failed:
        ax.plot([c.n for c in failed], [c.mean for c in failed], linestyle="none", marker="o", markersize=7,
                markerfacecolor="white", markeredgecolor=colour, markeredgewidth=1.5, label="_attack_failed")
    nan = float("nan")
    lows = [c.interval[0] if c.interval is not None else nan for c in curve]
    highs = [c.interval[1] if c.interval is not None else nan for c in curve]
    # a band needs two neighbouring intervals: an isolated one (a single n, or next to one-seed points) gets a bar
    has = [c.interval is not None for c in curve]
    if any(a and b for a, b in pairwise(has)):
        ax.fill_between(ns, lows, highs, color=colour, alpha=0.15, linewidth=0)
    alone = [i for i, h in enumerate(has) if h and not (i > 0 and has[i - 1]) and not (i + 1 < len(has) and has[i + 1])]
    if alone:
        ax.errorbar([ns[i] for i in alone], [curve[i].mean for i in alone],
                    yerr=[[curve[i].mean - lows[i] for i in alone], [highs[i] - curve[i].mean for i in alone]],
                    fmt="none", ecolor=colour, alpha=0.5, capsize=3, label="_interval")


def _chance_line(ax: Axes, points: list[CurvePoint]) -> bool:
    """The majority-class rate of the task (one horizontal line, or a line over n if it varies); False when
    no point records it (results of schema 1.0)."""
    by_n: dict[int, float] = {}
    for c in points:
        if c.majority_rate is not None:
            by_n[c.n] = max(by_n.get(c.n, 0.0), float(c.majority_rate))
    if not by_n:
        return False
    rates = sorted(set(by_n.values()))
    if rates[-1] - rates[0] < 1e-9:
        ax.axhline(rates[0], linestyle="--", color="grey", linewidth=1.2, label=CHANCE_LABEL)
    else:
        ns = sorted(by_n)
        ax.plot(ns, [by_n[n] for n in ns], linestyle="--", color="grey", linewidth=1.2, marker="_", label=CHANCE_LABEL)
    return True


def limit_series(result: AuditResult, task: str) -> tuple[str, list[tuple[int, float]]] | None:
    """The verdict limit the audited models are compared with on ``task``, per n, and its legend label;
    None when the task has no limit or its baseline was not measured."""
    if task not in LIMITS:
        return None
    baseline, sign, field_name, template = LIMITS[task]
    reference = series(result.curves, baseline, task)
    if not reference:
        return None
    margin = float(getattr(result.policy, field_name))
    return template.format(margin), [(c.n, c.mean + sign * margin) for c in reference]


def _legend(ax: Axes, any_failed: bool) -> None:
    handles, names = ax.get_legend_handles_labels()
    if any_failed:
        handles.append(Line2D([], [], linestyle="none", marker="o", markersize=7, markerfacecolor="white",
                              markeredgecolor="black", markeredgewidth=1.5))
        names.append(ATTACK_FAILED_LABEL)
    ax.legend(handles, names, fontsize=8)


def draw_curves(result: AuditResult) -> tuple[Figure, list[str]]:
    """The few-shot curve figure, left open (the caller saves and closes it), and the series labels drawn as
    ``"task:model"``. One panel per task, log-x data size; per model the mean line and its 95% t-interval
    band; per panel the chance line, the verdict limit and the attack-failed legend entry where they apply."""
    tasks = _tasks(result) or ["harmful"]
    models = models_of(result.curves)
    colours = _colours(models)
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.4), squeeze=False)
    labels: list[str] = []
    for ax, task in zip(axes[0], tasks, strict=True):
        drawn = False
        for model in models:
            curve = series(result.curves, model, task)
            if not curve:
                continue
            _model_curve(ax, curve, _text(model), colours[model], _style(model))
            labels.append(f"{task}:{model}")
            drawn = True
        points = [c for c in result.curves if c.task == task]
        if drawn:
            _chance_line(ax, points)
            limit = limit_series(result, task)
            if limit is not None:
                name, rows = limit
                ax.plot([n for n, _ in rows], [v for _, v in rows], linestyle=":", color=LIMIT_COLOUR, linewidth=1.4,
                        marker="_", markersize=14, label=name)
        sizes = sorted({c.n for c in points})
        ax.set_xscale("log")
        if sizes:
            ax.set_xticks(sizes, [str(n) for n in sizes])
            ax.minorticks_off()
        ax.set_xlabel("attacker's training examples n (log scale)")
        ax.set_ylabel("accuracy on the report split")
        ax.set_title(TASK_TITLES.get(task, task))
        ax.grid(alpha=0.3)
        if drawn:
            _legend(ax, any(c.attack_failed for c in points))
        else:
            ax.text(0.5, 0.5, "no curve measured", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle("Few-shot attack curves (mean over seeds, band or bar: 95% t-interval; hollow marker: attack failed)")
    fig.tight_layout()
    return fig, labels


def plot_curves(result: AuditResult, path: str | Path) -> list[str]:
    """Draw :func:`draw_curves` into ``path`` (PNG) and return the series labels drawn, as ``"task:model"``."""
    fig, labels = draw_curves(result)
    try:
        fig.savefig(path, dpi=110)
    finally:
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
