"""Figures of the study (matplotlib, Agg backend): one PNG per panel group, paths returned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLOURS = {"random": "#888888", "base": "#1f77b4", "beneficial_tuned": "#2ca02c", "ac": "#ff7f0e"}
MLAC_COLOUR = "#d62728"


def save_figure(fig: Any, folder: Path, name: str) -> str:
    """Write ``fig`` as ``folder/name`` (tight layout, 110 dpi), close it and return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def _err(summary: dict[str, Any]) -> tuple[float, float]:
    if summary["ci_bootstrap"] is None:  # a single seed: no interval ("insufficient")
        return 0.0, 0.0
    lo, hi = summary["ci_bootstrap"]
    return max(0.0, summary["mean"] - lo), max(0.0, hi - summary["mean"])


def calibration(folder: Path, table: list[dict[str, Any]], variants: dict[str, Any]) -> list[str]:
    """Random vs base accuracy against n, one panel per generator variant, probe and full fine-tuning."""
    fig, axes = plt.subplots(1, len(variants), figsize=(5 * len(variants), 3.8), squeeze=False)
    for ax, variant in zip(axes[0], variants, strict=True):
        for model in ("random", "base"):
            for attack, style in (("probe", "--"), ("full", "-")):
                rows = sorted((r for r in table if r["variant"] == variant and r["model"] == model), key=lambda r: r["n"])
                ns = [r["n"] for r in rows]
                means = [r[attack]["mean"] for r in rows]
                errs = list(zip(*[_err(r[attack]) for r in rows], strict=True)) if rows else None
                ax.errorbar(ns, means, yerr=errs, ls=style, marker="o", capsize=3, color=COLOURS[model],
                            label=f"{model}, {attack}")
        ax.axhline(0.5, color="k", lw=0.5)
        ax.set_xscale("log")
        ax.set_title(variant, fontsize=9)
        ax.set_xlabel("attacker examples n")
        ax.set_ylabel("harmful (gender) accuracy")
        ax.set_ylim(0.4, 1.02)
        ax.legend(fontsize=7)
    return [save_figure(fig, folder, "calibration_hardness.png")]


def exp1(folder: Path, table: list[dict[str, Any]], pooled: list[dict[str, Any]], mlac: list[str]) -> list[str]:
    """The paper's figure: harmful and beneficial curves with 95% bootstrap CIs."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, task in zip(axes, ("harmful", "beneficial"), strict=True):
        models = [m for m in ("random", "base", "beneficial_tuned", "ac", *mlac) if any(r["model"] == m and r["task"] == task for r in table)]
        for m in models:
            rows = sorted((r for r in table if r["model"] == m and r["task"] == task), key=lambda r: r["n"])
            ns, means = [r["n"] for r in rows], [r["mean"] for r in rows]
            errs = list(zip(*[_err(r) for r in rows], strict=True))
            is_mlac = m in mlac
            ax.errorbar(ns, means, yerr=errs, marker="o", capsize=3, lw=1 if is_mlac else 1.8, alpha=0.55 if is_mlac else 1,
                        color=MLAC_COLOUR if is_mlac else COLOURS.get(m), ls=":" if is_mlac else "-", label=m)
        rows = sorted((r for r in pooled if r["task"] == task), key=lambda r: r["n"])
        if rows:
            ax.errorbar([r["n"] for r in rows], [r["mean"] for r in rows], yerr=list(zip(*[_err(r) for r in rows], strict=True)),
                        marker="s", capsize=3, lw=2.2, color=MLAC_COLOUR, label="MLAC (seeds pooled)")
        ax.set_xscale("log")
        ax.set_xlabel("attacker examples n")
        ax.set_ylabel(f"{task} accuracy (report split)")
        ax.set_title(f"{task} task: attacker's best (search) per n")
        ax.legend(fontsize=7)
    return [save_figure(fig, folder, "exp1_main_figure.png")]


def suite_bars(folder: Path, table: list[dict[str, Any]], title: str, name: str) -> list[str]:
    """Grouped bars: each model's accuracy under each fixed attack (95% CI over seeds)."""
    keys = ("simulated", "probe", "full", "beneficial_probe")
    fig, ax = plt.subplots(figsize=(max(7, 1.4 * len(table)), 4))
    width = 0.8 / len(keys)
    for i, key in enumerate(keys):
        xs = [j + i * width for j in range(len(table))]
        ax.bar(xs, [r[key]["mean"] for r in table], width, yerr=list(zip(*[_err(r[key]) for r in table], strict=True)),
               capsize=2, label=key)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(table))])
    ax.set_xticklabels([r["model"] for r in table], rotation=20, fontsize=8, ha="right")
    ax.axhline(0.5, color="k", lw=0.5)
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("accuracy (report split)")
    ax.set_title(f"{title}: fixed attacks (gender unless 'beneficial')")
    ax.legend(fontsize=7, ncol=4)
    return [save_figure(fig, folder, name)]


def compute_curve(folder: Path, rows: list[dict[str, Any]]) -> list[str]:
    """Harmful accuracy under fixed attacks against MLAC outer steps (training compute)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    xs = [r["outer_steps"] for r in rows]
    for key in ("simulated", "probe", "full", "beneficial_probe"):
        ax.errorbar(xs, [r[key]["mean"] for r in rows], yerr=list(zip(*[_err(r[key]) for r in rows], strict=True)),
                    marker="o", capsize=3, label=key)
    ax.set_xlabel(f"MLAC outer steps (K={rows[0]['inner_steps']}; training CPU seconds marked at the top)")
    for r in rows:
        ax.annotate(f"{r['train_cpu_s']:.0f}s", (r["outer_steps"], 1.0), fontsize=7, ha="center")
    ax.set_ylabel("accuracy (report split)")
    ax.set_ylim(0.3, 1.05)
    ax.set_title("MLAC effect against its training compute")
    ax.legend(fontsize=7)
    return [save_figure(fig, folder, "exp2_compute_curve.png")]


def _colour(model: str) -> str:
    return COLOURS.get(model, MLAC_COLOUR)


def exp4(folder: Path, runs: list[dict[str, Any]], table: list[dict[str, Any]], models: list[str]) -> list[str]:
    """Long attack curves, the learning-rate grid and accuracy against n up to the large sizes."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for m in models:
        for r in (r for r in runs if r["model"] == m and r["attack"] == "long"):
            steps, accs = zip(*r["curve"], strict=True)
            axes[0].plot(steps, accs, color=_colour(m), alpha=0.8, label=m if r["seed"] == runs[0]["seed"] else None)
        grid = sorted((t for t in table if t["model"] == m and t["attack"] == "lr_grid"), key=lambda t: t["lr"])
        axes[1].errorbar([t["lr"] for t in grid], [t["report"]["mean"] for t in grid],
                         yerr=list(zip(*[_err(t["report"]) for t in grid], strict=True)) if grid else None,
                         marker="o", capsize=3, color=_colour(m), label=m)
        sized = sorted((t for t in table if t["model"] == m and t["attack"] in ("large_n",)), key=lambda t: t["n"])
        axes[2].errorbar([t["n"] for t in sized], [t["report"]["mean"] for t in sized],
                         yerr=list(zip(*[_err(t["report"]) for t in sized], strict=True)) if sized else None,
                         marker="o", capsize=3, color=_colour(m), label=m)
    axes[0].set_title("long full fine-tune (lr 1e-4): selection acc. vs steps")
    axes[0].set_xlabel("attack steps")
    axes[1].set_xscale("log")
    axes[1].set_title("full fine-tune: learning-rate grid")
    axes[1].set_xlabel("attacker lr")
    axes[2].set_xscale("log")
    axes[2].set_title("full fine-tune at large n")
    axes[2].set_xlabel("attacker examples n")
    for ax in axes:
        ax.set_ylabel("harmful accuracy")
        ax.axhline(0.5, color="k", lw=0.5)
        ax.legend(fontsize=7)
    return [save_figure(fig, folder, "exp4_strong_attackers.png")]


def exp5(folder: Path, rows: list[dict[str, Any]], long_rows: list[dict[str, Any]], target: float) -> list[str]:
    """Examples and attack FLOPs needed to reach the base model's n=20 harmful accuracy."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    names = [r["model"] for r in rows]
    axes[0].bar(names, [r["examples_needed"] or 0 for r in rows], color=[_colour(m) for m in names])
    for i, r in enumerate(rows):
        if r["examples_needed"] is None:
            axes[0].annotate("never", (i, 1), ha="center", fontsize=8)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("examples needed (interpolated)")
    axes[0].set_title(f"data to reach base@n=20 accuracy {target:.3f}")
    axes[0].tick_params(axis="x", rotation=25, labelsize=8)
    models = sorted({r["model"] for r in long_rows})
    vals = [[r["flops_to_target"] for r in long_rows if r["model"] == m and r["flops_to_target"]] for m in models]
    axes[1].bar(models, [sum(v) / len(v) if v else 0 for v in vals], color=[_colour(m) for m in models])
    for i, v in enumerate(vals):
        if not v:
            axes[1].annotate("not reached", (i, 1), ha="center", fontsize=8)
    axes[1].set_yscale("log")
    axes[1].set_ylabel("attacker FLOPs (long fine-tune)")
    axes[1].set_title("compute to reach the same accuracy")
    axes[1].tick_params(axis="x", rotation=25, labelsize=8)
    return [save_figure(fig, folder, "exp5_cost.png")]
