"""Run the v2 study end to end into ``out`` and write ``summary.json``, ``tables.md`` and the figures."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from experiments.replication.v2 import analysis, attacks, plots
from experiments.replication.v2.scales import V2Scale, make_scale
from experiments.replication.v2.study import V2Study, ablation_labels, make_models, mlac_labels, prepare
from mlac.audit.trial import capped_split

log = logging.getLogger("replication")


def _chance(result: dict[str, Any]) -> float:
    rates = [p["majority_rate"] for p in result["seed_points"] if p["task"] == "harmful" and p.get("majority_rate")]
    return max(rates) if rates else 0.5


def claims(study: V2Study, main: dict[str, Any], checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One verdict per claim and n, each decided on its interval (analysis.claim)."""
    s = study.scale
    mlac = mlac_labels(s)
    rows: list[dict[str, Any]] = []
    base, rnd = (analysis.seed_values(main, m, "harmful") for m in ("base", "random"))
    for n in s.sizes:
        d = analysis.interval(analysis.paired_diffs(base, rnd, n), analysis.DIFF_BOUNDS)
        rows.append({"claim": "the base carries gender beyond a random network", "n": n, "diff": d,
                     "verdict": analysis.claim(d, lower_is_claim=False)})
    for d in analysis.pooled_difference(main, mlac, "base", "harmful", s.sizes):
        rows.append({"claim": "MLAC lowers the harmful accuracy vs the base", "n": d["n"], "diff": d,
                     "verdict": analysis.claim(d, lower_is_claim=True)})
    for d in analysis.pooled_difference(main, mlac, "random", "harmful", s.sizes):
        rows.append({"claim": f"MLAC is as hard as random (at most {analysis.EQUIVALENCE_MARGIN:+.2f})", "n": d["n"],
                     "diff": d, "verdict": analysis.claim(d, lower_is_claim=True, margin=analysis.EQUIVALENCE_MARGIN)})
    for d in analysis.pooled_difference(main, mlac, "base", "beneficial", s.sizes):
        rows.append({"claim": f"MLAC keeps the beneficial task (loses at most {analysis.BENEFICIAL_MARGIN:.2f})",
                     "n": d["n"], "diff": d,
                     "verdict": analysis.claim(d, lower_is_claim=False, margin=-analysis.BENEFICIAL_MARGIN)})
    # The attacker who tries every attack and keeps the best, on the first MLAC seed against random's best.
    first = mlac[0]
    best_m, best_r = analysis.strongest(main, checks, first), analysis.strongest(main, checks, "random")
    for n in sorted({c["n"] for c in checks}):
        d = analysis.interval(analysis.paired_diffs(best_m, best_r, n), analysis.DIFF_BOUNDS)
        rows.append({"claim": f"{first} is as hard as random against every attack tried (best of search and checks)",
                     "n": n, "diff": d,
                     "verdict": analysis.claim(d, lower_is_claim=True, margin=analysis.EQUIVALENCE_MARGIN)})
    return rows


def ablation_rows(study: V2Study, result: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per ablation and n: harmful accuracy and the paired difference to the base (training seeds as clusters)."""
    if result is None:
        return []
    rows = []
    for name, labels in ablation_labels(study.scale).items():
        acc = analysis.accuracy_table(result, {name: labels}, "harmful", study.scale.ablation_sizes)
        diff = {d["n"]: d for d in analysis.pooled_difference(result, labels, "base", "harmful", study.scale.ablation_sizes)}
        rnd = {d["n"]: d for d in analysis.pooled_difference(result, labels, "random", "harmful",
                                                             study.scale.ablation_sizes)}
        for a in acc:
            rows.append({"ablation": name, "n": a["n"], "harmful": a, "minus_base": diff.get(a["n"]),
                         "minus_random": rnd.get(a["n"])})
    for label in ("base", "random"):
        for a in analysis.accuracy_table(result, {label: [label]}, "harmful", study.scale.ablation_sizes):
            rows.append({"ablation": label, "n": a["n"], "harmful": a, "minus_base": None, "minus_random": None})
    return rows


def name_rows(study: V2Study, main: dict[str, Any]) -> list[dict[str, Any]]:
    """The name-group table from the main audit's per-example predictions."""
    rep = capped_split(study.splits.report, study.scale.report_max, 0)
    groups = analysis.id_groups_of(list(rep["id"]), list(rep[study.task.text_field]), study.names)
    acc = analysis.group_accuracies(study.out / "audit_main" / "samples.csv", groups)
    return analysis.name_group_table(acc, mlac_labels(study.scale), study.scale.sizes, study.scale.attack_seeds)


def tables_md(summary: dict[str, Any]) -> str:
    """The tables docs/replication.md quotes, as Markdown."""
    f = analysis.fmt
    lines = [f"# v2 study, scale `{summary['scale']}`", "", "## Harmful and beneficial accuracy (search's best attack)", "",
             "| task | n | random | base | MLAC (seeds pooled) | bag of words |", "|---|---|---|---|---|---|"]
    bow = {r["n"]: r for r in summary["bag_of_words"]}
    for task in ("harmful", "beneficial"):
        by = {(r["model"], r["n"]): r for r in summary["accuracy"][task]}
        for n in summary["sizes"]:
            lines.append(f"| {task} | {n} | {f(by.get(('random', n)))} | {f(by.get(('base', n)))} | "
                         f"{f(by.get(('MLAC', n)))} | {f(bow.get(n)) if task == 'harmful' else '-'} |")
    lines += ["", "## Claims (95% intervals of paired differences)", "", "| claim | n | difference | verdict |",
              "|---|---|---|---|"]
    lines += [f"| {c['claim']} | {c['n']} | {f(c['diff'], True)} | {c['verdict']} |" for c in summary["claims"]]
    lines += ["", "## Data-cost multiplier (engine's derived metric, per MLAC seed)", "",
              "| model | base n | multiplier | 95% interval |", "|---|---|---|---|"]
    for model, rows in summary["data_cost"].items():
        for r in rows:
            ci = r.get("ci")
            ci_text = "-" if not ci else "[" + ", ".join("not reached" if v is None else f"{v:.2f}" for v in ci) + "]"
            lines.append(f"| {model} | {r['n']} | {r['display']} | {ci_text} |")
    lines += ["", "## Seen vs never-seen names (harmful, MLAC - base)", "", "| n | group | base | MLAC | MLAC - base |",
              "|---|---|---|---|---|"]
    for r in summary["names"]:
        if "contrast" in r:
            lines.append(f"| {r['n']} | {r['group']} | | | {f(r['contrast'], True)} |")
        else:
            lines.append(f"| {r['n']} | {r['group']} | {f(r['base'])} | {f(r['mlac'])} | {f(r['mlac_minus_base'], True)} |")
    lines += ["", "## Fixed stronger attacks (harmful)", "", "| model | attack | n | report | gain over the search |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['attack']} | {r['n']} | {f(r['report'])} | {f(r['gain_over_search'], True)} |"
              for r in summary["checks"]]
    lines += ["", "## Ablations (harmful)", "", "| model | n | harmful | - base | - random |", "|---|---|---|---|---|"]
    lines += [f"| {r['ablation']} | {r['n']} | {f(r['harmful'])} | {f(r['minus_base'], True)} | {f(r['minus_random'], True)} |"
              for r in summary["ablations"]]
    lines += ["", "## Compute (CPU seconds per piece)", "", "| piece | wall s | CPU s |", "|---|---|---|"]
    lines += [f"| {k} | {v['wall_s']:.0f} | {v['cpu_s']:.0f} |" for k, v in summary["compute"].items()]
    return "\n".join(lines) + "\n"


def run(out: Path, scale_name: str) -> dict[str, Any]:
    """Every piece of the study into ``out`` (finished pieces are reused); returns the summary."""
    scale: V2Scale = make_scale(scale_name)
    study = prepare(out, scale)
    training = make_models(study)
    main = attacks.main_audit(study)
    ablations = attacks.ablation_audit(study)
    checks = attacks.fixed_checks(study)
    bow = attacks.bag_of_words(study)
    mlac = mlac_labels(scale)
    groups = {"random": ["random"], "base": ["base"], "MLAC": mlac}
    summary: dict[str, Any] = {
        "scale": scale_name, "sizes": list(scale.sizes), "seeds": list(scale.attack_seeds),
        "base": study.pieces.get("models/base"), "names": name_rows(study, main),
        "accuracy": {t: analysis.accuracy_table(main, groups, t, scale.sizes) for t in ("harmful", "beneficial")},
        "per_model": {t: analysis.accuracy_table(main, {m: [m] for m in mlac}, t, scale.sizes)
                      for t in ("harmful", "beneficial")},
        "claims": claims(study, main, checks),
        "data_cost": {m: main["derived"]["models"].get(m, {}).get("data_cost_multiplier", []) for m in mlac},
        "checks": analysis.checks_table(checks, main), "bag_of_words": analysis.bow_table(bow, scale.sizes),
        "ablations": ablation_rows(study, ablations), "verdict": main.get("verdict"),
        "chance": _chance(main),
        "training": {k: {f: v.get(f) for f in ("train_rows", "best_step", "wall_s", "cpu_s", "s_per_outer_step")}
                     for k, v in training.items()},
        "compute": {p.relative_to(study.pieces.dir).with_suffix("").as_posix(): {
            "wall_s": study.pieces.wall_s(p.relative_to(study.pieces.dir).with_suffix("").as_posix()),
            "cpu_s": study.pieces.wall_s(p.relative_to(study.pieces.dir).with_suffix("").as_posix(), "cpu_s")}
            for p in sorted(study.pieces.dir.rglob("*.json"))},
        "pieces": {"computed": study.pieces.computed, "reused": study.pieces.reused},
    }
    summary["figures"] = [plots.curves(out, summary["accuracy"], summary["bag_of_words"], summary["chance"]),
                          plots.name_groups(out, [r for r in summary["names"] if "mlac_minus_base" in r])]
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True, default=float), encoding="utf-8")
    (out / "tables.md").write_text(tables_md(summary), encoding="utf-8")
    return summary
