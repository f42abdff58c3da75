"""Statistics of the v2 study: paired differences per n, MLAC's training seeds as clusters, name-group scores,
the stronger fixed attacks against the search, and one verdict per claim decided on its interval.

Every interval is a 95% Student t-interval over attacker seeds (paired: the same n rows for every model at a
seed), or, for the MLAC seeds pooled, the cluster t-interval over the training seeds' means
(:func:`mlac.audit.stats.cluster_t_interval`): treating 3 x 6 values as 18 independent ones would under-cover.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from experiments.replication.v2.names import NameSplit
from mlac.audit.stats import cluster_t_interval, t_interval

#: "As hard as random" holds at n when MLAC's harmful accuracy is at most this much above random's (upper end
#: of the paired interval); the beneficial task is "kept" when MLAC loses at most this much against the base.
EQUIVALENCE_MARGIN = 0.03
BENEFICIAL_MARGIN = 0.05
DIFF_BOUNDS = (-1.0, 1.0)

SeedTable = dict[int, dict[int, float]]  # n -> seed -> accuracy


def seed_values(result: dict[str, Any], model: str, task: str) -> SeedTable:
    """The search's report accuracy per n and attacker seed for ``model`` and ``task``."""
    out: SeedTable = defaultdict(dict)
    for p in result["seed_points"]:
        if p["model"] == model and p["task"] == task:
            out[int(p["n"])][int(p["seed"])] = float(p["report_accuracy"])
    return dict(out)


def interval(values: Sequence[float], bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    """Mean and 95% t-interval (None for one value) of ``values``, clipped to ``bounds``."""
    ci = t_interval(list(values), bounds=bounds)
    return {"mean": float(np.mean(values)), "ci": list(ci) if ci else None, "k": len(values)}


def cluster_interval(groups: Sequence[Sequence[float]], bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    """Mean of the group means and the cluster t-interval (one group: :func:`interval` of it)."""
    if len(groups) == 1:
        return interval(groups[0], bounds) | {"clusters": 1}
    ci = cluster_t_interval([list(g) for g in groups], bounds=bounds)
    return {"mean": float(np.mean([np.mean(g) for g in groups])), "ci": list(ci) if ci else None,
            "k": sum(len(g) for g in groups), "clusters": len(groups)}


def paired_diffs(a: SeedTable, b: SeedTable, n: int) -> list[float]:
    """a - b at ``n`` over the seeds both have."""
    seeds = sorted(set(a.get(n, {})) & set(b.get(n, {})))
    return [a[n][s] - b[n][s] for s in seeds]


def pooled_difference(result: dict[str, Any], models: Sequence[str], reference: str, task: str,
                      sizes: Sequence[int]) -> list[dict[str, Any]]:
    """Per n: mean of ``models`` (clusters) minus ``reference``, paired by attacker seed within each model."""
    ref = seed_values(result, reference, task)
    rows = []
    for n in sizes:
        groups = [paired_diffs(seed_values(result, m, task), ref, n) for m in models]
        groups = [g for g in groups if g]
        if groups:
            rows.append({"n": n, "reference": reference, "task": task, **cluster_interval(groups, DIFF_BOUNDS)})
    return rows


def accuracy_table(result: dict[str, Any], groups: dict[str, list[str]], task: str,
                   sizes: Sequence[int]) -> list[dict[str, Any]]:
    """Per group of models (one cluster per model) and n: mean accuracy and its interval."""
    rows = []
    for name, models in groups.items():
        for n in sizes:
            vals = [list(seed_values(result, m, task).get(n, {}).values()) for m in models]
            vals = [v for v in vals if v]
            if vals:
                rows.append({"model": name, "task": task, "n": n, **cluster_interval(vals, (0.0, 1.0))})
    return rows


def claim(diff: dict[str, Any], *, lower_is_claim: bool, margin: float = 0.0) -> str:
    """Decide one claim on a difference's interval: "yes" when the whole interval lies on the claim's side of
    ``margin``, "no" when it lies wholly on the other side, else "not decided" (the interval straddles it)."""
    ci = diff.get("ci")
    if ci is None:
        return "not decided (one seed)"
    lo, hi = ci
    if lower_is_claim:
        return "yes" if hi <= margin else ("no" if lo > margin else "not decided")
    return "yes" if lo >= margin else ("no" if hi < margin else "not decided")


# -- seen and never-seen names ----------------------------------------------------------------------------
def group_accuracies(samples_csv: Path, id_groups: dict[str, str]) -> dict[tuple[str, str, int, int, str], float]:
    """(model, task, n, seed, name group) -> accuracy over the group's report rows, mean over the reruns."""
    hits: dict[tuple[str, str, int, int, int, str], list[int]] = defaultdict(list)
    with samples_csv.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            group = id_groups.get(row["example_id"], "none")
            key = (row["model"], row["task"], int(row["n"]), int(row["seed"]), int(row["rerun"]), group)
            hits[key].append(int(row["correct"]))
    per_rerun: dict[tuple[str, str, int, int, str], list[float]] = defaultdict(list)
    for (model, task, n, seed, _rerun, group), values in hits.items():
        per_rerun[(model, task, n, seed, group)].append(float(np.mean(values)))
    return {k: float(np.mean(v)) for k, v in per_rerun.items()}


def id_groups_of(ids: Sequence[str], texts: Sequence[str], names: NameSplit) -> dict[str, str]:
    """Example id -> "seen" / "unseen" / "none"."""
    return {str(i): names.group(t) for i, t in zip(ids, texts, strict=True)}


def name_group_table(acc: dict[tuple[str, str, int, int, str], float], mlac: Sequence[str], sizes: Sequence[int],
                     seeds: Sequence[int]) -> list[dict[str, Any]]:
    """Per n and name group: base, random and pooled MLAC harmful accuracy, MLAC - base, and the difference of
    MLAC's drop between never-seen and seen names (positive: unseen names stayed easier)."""
    rows = []
    for n in sizes:
        drops: dict[str, list[list[float]]] = {}
        for group in ("seen", "unseen"):
            def vals(model: str, group: str = group, n: int = n) -> list[float]:
                return [acc[(model, "harmful", n, s, group)] for s in seeds if (model, "harmful", n, s, group) in acc]

            base, rnd = vals("base"), vals("random")
            drops[group] = [[acc[(m, "harmful", n, s, group)] - acc[("base", "harmful", n, s, group)] for s in seeds
                             if (m, "harmful", n, s, group) in acc and ("base", "harmful", n, s, group) in acc]
                            for m in mlac]
            if not base:
                continue
            rows.append({"n": n, "group": group, "base": interval(base, (0.0, 1.0)),
                         "random": interval(rnd, (0.0, 1.0)) if rnd else None,
                         "mlac": cluster_interval([vals(m) for m in mlac if vals(m)], (0.0, 1.0)),
                         "mlac_minus_base": cluster_interval([d for d in drops[group] if d], DIFF_BOUNDS)})
        contrast = [[u - s for u, s in zip(du, ds, strict=False)] for du, ds in zip(drops.get("unseen", []),
                                                                                     drops.get("seen", []), strict=True)]
        contrast = [c for c in contrast if c]
        if contrast:
            rows.append({"n": n, "group": "unseen drop - seen drop", "contrast": cluster_interval(contrast, DIFF_BOUNDS)})
    return rows


# -- fixed stronger attacks ------------------------------------------------------------------------------------
def checks_table(checks: list[dict[str, Any]], result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per model, attack and n: the fixed attack's report accuracy and its paired gain over the probe search."""
    rows = []
    for model in sorted({c["model"] for c in checks}):
        search = seed_values(result, model, "harmful")
        for attack in sorted({c["attack"] for c in checks}):
            for n in sorted({c["n"] for c in checks}):
                sel = [c for c in checks if c["model"] == model and c["attack"] == attack and c["n"] == n]
                if not sel:
                    continue
                gain = [c["report"] - search[n][c["seed"]] for c in sel if c["seed"] in search.get(n, {})]
                rows.append({"model": model, "attack": attack, "n": n, "report": interval([c["report"] for c in sel]),
                             "gain_over_search": interval(gain, DIFF_BOUNDS) if gain else None,
                             "wall_s": float(np.mean([c["wall_s"] for c in sel]))})
    return rows


def strongest(result: dict[str, Any], checks: list[dict[str, Any]], model: str) -> SeedTable:
    """Per n and seed, the best report accuracy any attack reached on ``model`` (search or fixed check): the
    attacker who tries everything and keeps the best (chosen on report: an upper bound on the attacker)."""
    best = {n: dict(v) for n, v in seed_values(result, model, "harmful").items()}
    for c in checks:
        if c["model"] == model and c["seed"] in best.get(c["n"], {}):
            best[c["n"]][c["seed"]] = max(best[c["n"]][c["seed"]], c["report"])
    return best


def bow_table(rows: list[dict[str, Any]], sizes: Sequence[int]) -> list[dict[str, Any]]:
    """Per n: the bag-of-words logistic regression's report accuracy."""
    return [{"n": n, **interval([r["report"] for r in rows if r["n"] == n], (0.0, 1.0))}
            for n in sizes if any(r["n"] == n for r in rows)]


def fmt(entry: dict[str, Any] | None, signed: bool = False) -> str:
    """``0.712 [0.690, 0.734]`` (or with signs for differences)."""
    if not entry:
        return "-"
    f = "{:+.3f}" if signed else "{:.3f}"
    ci = entry.get("ci")
    return f.format(entry["mean"]) + (f" [{f.format(ci[0])}, {f.format(ci[1])}]" if ci else " [one seed]")
