"""Figures of the v2 study (matplotlib, Agg): harmful and beneficial curves with their intervals, the name groups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from experiments.replication.plots import save_figure

COLOURS = {"random": "#888888", "base": "#1f77b4", "MLAC": "#d62728", "bag of words": "#2ca02c"}


def _line(ax: Any, rows: list[dict[str, Any]], label: str, style: str = "-o") -> None:
    rows = sorted(rows, key=lambda r: r["n"])
    if not rows:
        return
    ns = [r["n"] for r in rows]
    colour = COLOURS.get(label.split(" (")[0])
    ax.plot(ns, [r["mean"] for r in rows], style, label=label, color=colour)
    if all(r.get("ci") for r in rows):
        ax.fill_between(ns, [r["ci"][0] for r in rows], [r["ci"][1] for r in rows], alpha=0.2, color=colour)


def curves(folder: Path, table: dict[str, list[dict[str, Any]]], bow: list[dict[str, Any]], chance: float) -> str:
    """Harmful (left, with the bag-of-words reference) and beneficial (right) accuracy against n."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, task in zip(axes, ("harmful", "beneficial"), strict=True):
        for label in ("random", "base", "MLAC"):
            _line(ax, [r for r in table[task] if r["model"] == label], label)
        if task == "harmful":
            _line(ax, bow, "bag of words (from scratch)", "--s")
            ax.axhline(chance, color="black", lw=0.8, ls=":", label="majority rate")
        ax.set_xscale("log")
        ax.set_xlabel("attacker's examples n")
        ax.set_ylabel(f"{task} accuracy (report split)")
        ax.set_title(f"{task}: best attack of the search, 95% intervals")
        ax.legend(fontsize=8)
    return save_figure(fig, folder, "v2_curves.png")


def name_groups(folder: Path, rows: list[dict[str, Any]]) -> str:
    """MLAC - base harmful accuracy on seen and never-seen names, against n."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for group, style in (("seen", "-o"), ("unseen", "--s")):
        sel = [{"n": r["n"], **r["mlac_minus_base"]} for r in rows if r["group"] == group]
        _line(ax, sel, f"{group} names", style)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("attacker's examples n")
    ax.set_ylabel("MLAC - base, harmful accuracy")
    ax.set_title("Names MLAC censored vs names it never saw")
    ax.legend(fontsize=8)
    return save_figure(fig, folder, "v2_name_groups.png")
