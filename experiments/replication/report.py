"""Markdown tables of a finished run and a copy of its figures: ``python -m experiments.replication.report OUT DOCS``.

Writes ``DOCS/tables.md`` (one table per experiment, 95% bootstrap CIs) and copies every figure to ``DOCS/``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any


def _ci(s: dict[str, Any] | None) -> str:
    if not s:
        return "-"
    if s["ci_bootstrap"] is None:  # a single seed: no interval ("insufficient")
        return f"{s['mean']:.3f} [n/a]"
    lo, hi = s["ci_bootstrap"]
    return f"{s['mean']:.3f} [{lo:.3f}, {hi:.3f}]"


def _load(out: Path, name: str) -> dict[str, Any] | None:
    path = out / name / "results.json"
    return json.loads(path.read_text()) if path.is_file() else None


def tables(out: Path) -> str:
    """Every table of the run in ``out`` as markdown."""
    parts: list[str] = []
    cal = _load(out, "calibration")
    if cal:
        parts.append("### Data hardness calibration (fixed attacks: probe 200 steps lr 1e-3; full 100 steps lr 3e-4)\n")
        parts.append("| variant | model | n | probe | full fine-tune |\n| --- | --- | --- | --- | --- |")
        for r in cal["table"]:
            parts.append(f"| {r['variant']} | {r['model']} | {r['n']} | {_ci(r['probe'])} | {_ci(r['full'])} |")
        parts.append("\nBase model: " + json.dumps(cal["base_note"], sort_keys=True) + "\n")
    e1 = _load(out, "exp1")
    if e1:
        for task in ("harmful", "beneficial"):
            rows = [r for r in e1["table"] if r["task"] == task]
            sizes = sorted({r["n"] for r in rows})
            parts.append(f"### Experiment 1, {task} task (audit search; mean over attacker seeds, 95% bootstrap CI)\n")
            parts.append("| model | " + " | ".join(f"n={n}" for n in sizes) + " |\n| --- |" + " --- |" * len(sizes))
            for model in dict.fromkeys(r["model"] for r in rows):
                cells = []
                for n in sizes:
                    r = next((x for x in rows if x["model"] == model and x["n"] == n), None)
                    cells.append(_ci({"mean": r["mean"], "ci_bootstrap": r["ci_bootstrap"]}) if r else "-")
                parts.append(f"| {model} | " + " | ".join(cells) + " |")
            pooled = [r for r in e1["mlac_pooled"] if r["task"] == task]
            if pooled:
                parts.append("| **MLAC, 3 training seeds pooled** | " + " | ".join(
                    _ci(next((p for p in pooled if p["n"] == n), None)) for n in sizes) + " |")
            parts.append("")
        dm = (e1.get("derived") or {}).get("models", {})
        if dm:
            parts.append("Derived (audit engine): data-cost multiplier at each base n, harmful AUC relative to random\n")
            parts.append("| model | multiplier (base n=20 / 50 / 100 / 200) | AUC ratio to random | normalised AUC (0 = random, 1 = base) |")
            parts.append("| --- | --- | --- | --- |")
            for m, d in dm.items():
                mult = " / ".join(r.get("display", "-") for r in d.get("data_cost_multiplier", []))
                auc = d.get("harmful_auc", {})
                ratio, norm = auc.get("ratio_to_random"), auc.get("normalised")
                parts.append(f"| {m} | {mult} | {ratio:.3f} | {norm:.3f} |" if ratio is not None and norm is not None
                             else f"| {m} | {mult} | - | - |")
            parts.append("")
    for name, title in (("exp2", "Experiment 2, K ablation"), ("exp3", "Experiment 3, order and loss")):
        e = _load(out, name)
        if not e:
            continue
        parts.append(f"### {title} (fixed attacks at n={e['suite_n']}, seeds {e['suite_seeds']}; MLAC main pools its training seeds)\n")
        parts.append("| model | simulated (K=4, lr 1e-3) | linear probe | full FT 100 steps lr 1e-4 | beneficial probe |")
        parts.append("| --- | --- | --- | --- | --- |")
        for r in e["table"]:
            parts.append(f"| {r['model']} | {_ci(r['simulated'])} | {_ci(r['probe'])} | {_ci(r['full'])} | {_ci(r['beneficial_probe'])} |")
        if name == "exp2":
            parts.append("\nTraining-compute curve (MLAC seed 0):\n")
            parts.append("| outer steps run | checkpoint kept (best validated step) | training CPU s | simulated | probe | full FT | beneficial probe |")
            parts.append("| --- | --- | --- | --- | --- | --- | --- |")
            for r in e["compute_curve"]:
                parts.append(f"| {r['outer_steps']} | {r.get('best_step', '-')} | {r.get('train_cpu_s', 0):.0f} | {_ci(r['simulated'])} | {_ci(r['probe'])} | "
                             f"{_ci(r['full'])} | {_ci(r['beneficial_probe'])} |")
        parts.append("")
    e4 = _load(out, "exp4")
    if e4:
        parts.append(f"### Experiment 4, stronger attackers (fixed hyperparameters, seeds {e4['seeds']}; report split)\n")
        parts.append("| model | attack | n | lr | steps | harmful acc. | attacker GFLOPs |\n| --- | --- | --- | --- | --- | --- | --- |")
        for r in e4["table"]:
            parts.append(f"| {r['model']} | {r['attack']} | {r['n']} | {r['lr']:g} | {r['steps']} | {_ci(r['report'])} | {r['flops'] / 1e9:.1f} |")
        parts.append("")
    e5 = _load(out, "exp5")
    if e5:
        parts.append(f"### Experiment 5, cost to reach the base model's n={e5['target_n']} harmful accuracy ({e5['target']:.3f})\n")
        parts.append("| model | examples needed | multiplier | first audited n reaching it | search GFLOPs at that n (per seed) | search wall s |")
        parts.append("| --- | --- | --- | --- | --- | --- |")
        for r in e5["data_cost"]:
            def f(x: Any, scale: float = 1.0, fmt: str = ".1f") -> str:
                return "never (within the audited n)" if x is None else format(x / scale, fmt)
            parts.append(f"| {r['model']} | {f(r['examples_needed'])} | {f(r['multiplier'], fmt='.2f')} | {r['first_n_reaching'] or '-'} | "
                         f"{f(r['search_flops_at_that_n'], 1e9)} | {f(r['search_wall_s_at_that_n'])} |")
        parts.append("\nLong full fine-tune (lr 1e-4, n=100): steps and FLOPs until the selection accuracy first reaches the target\n")
        parts.append("| model | seed | steps to target | GFLOPs to target | final report acc. |\n| --- | --- | --- | --- | --- |")
        for r in e5["long_attack_cost"]:
            g = "not reached" if r["flops_to_target"] is None else f"{r['flops_to_target'] / 1e9:.1f}"
            parts.append(f"| {r['model']} | {r['seed']} | {r['steps_to_target'] or 'not reached'} | {g} | {r['final_report']:.3f} |")
        parts.append("")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Write DOCS/tables.md and copy the figures."""
    args = argv if argv is not None else sys.argv[1:]
    out, docs = Path(args[0]), Path(args[1])
    docs.mkdir(parents=True, exist_ok=True)
    for png in sorted(out.glob("*/*.png")):
        if png.parent.name.startswith("exp") or png.parent.name == "calibration":
            shutil.copy(png, docs / png.name)
    (docs / "tables.md").write_text(tables(out) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
