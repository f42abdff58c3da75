"""The study's experiments: data-hardness calibration and experiments 1 to 5 of issue 7.

Each returns a plain dict (also written as ``<out>/<name>/results.json``) and draws its figures.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from experiments.replication import plots
from experiments.replication.setup import Study, prepare_study, synth_config
from experiments.replication.suite import SUITE_KEYS, audit_attack, suite, suite_on
from mlac.attacks import AttackParams
from mlac.audit.curves import ACCURACY_BOUNDS
from mlac.audit.stats import bootstrap_ci, cluster_bootstrap_ci, cluster_t_interval, t_interval

log = logging.getLogger("replication")

BASELINES = ("random", "base", "beneficial_tuned", "ac")


def _as_list(ci: tuple[float, float] | None) -> list[float] | None:
    return list(ci) if ci is not None else None


def summary(values: list[float]) -> dict[str, Any]:
    """Mean, 95% bootstrap and t intervals of per-seed accuracies (the audit engine's statistics, clipped to
    [0, 1]); an interval is None ("insufficient") for a single seed."""
    vals = [float(v) for v in values]
    return {"mean": float(np.mean(vals)), "ci_bootstrap": _as_list(bootstrap_ci(vals, bounds=ACCURACY_BOUNDS)),
            "ci_t": _as_list(t_interval(vals, bounds=ACCURACY_BOUNDS)), "values": vals, "interval": "seeds"}


def cluster_summary(groups: list[list[float]]) -> dict[str, Any]:
    """Mean and 95% intervals of accuracies clustered by MLAC training seed (one group per training seed,
    one value per attacker or suite seed): the cluster t-interval over the training seeds' means and the
    two-level bootstrap, not intervals over the pooled values, which would treat them as independent and
    under-cover. Each training seed weighs the same. One group: :func:`summary` of its values."""
    gs = [[float(v) for v in g] for g in groups]
    if len(gs) == 1:
        return summary(gs[0])
    return {"mean": float(np.mean([np.mean(g) for g in gs])),
            "ci_bootstrap": _as_list(cluster_bootstrap_ci(gs, bounds=ACCURACY_BOUNDS)),
            "ci_t": _as_list(cluster_t_interval(gs, bounds=ACCURACY_BOUNDS)),
            "values": [v for g in gs for v in g], "clusters": gs, "interval": "cluster"}


def write(out: Path, name: str, result: dict[str, Any]) -> Path:
    """``<out>/<name>/results.json``."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    path.write_text(json.dumps(result, indent=1, sort_keys=True, default=float), encoding="utf-8")
    return path


def mlac_labels(study: Study) -> list[str]:
    """Labels of the main MLAC models (one per training seed)."""
    return [f"mlac_s{s}" for s in study.scale.mlac_seeds]


# -- data hardness -----------------------------------------------------------------------------------
def calibration(study: Study) -> dict[str, Any]:
    """Random init vs base under the same fixed attacks, for generator variants and sizes."""
    from mlac.censor import finetune_attack
    from mlac.data import generate_synthetic, make_splits
    from mlac.data.encoded import encode_split

    scale = study.scale
    probe_steps, full_steps = scale.calibration_steps
    base, rnd = study.load("base").model, study.load("random").model
    rows: list[dict[str, Any]] = []
    for variant, knobs in scale.calibration_variants.items():
        def run(knobs: dict[str, Any] = knobs) -> list[dict[str, Any]]:
            ds, task = generate_synthetic(synth_config(scale, seed=7, n_bios=min(scale.n_bios, 3000), **knobs))
            sp = make_splits(ds, 0)
            pool = encode_split(sp.attack_pool, study.tokenizer, task, scale.max_length)
            ev = encode_split(sp.report.select(range(min(len(sp.report), 300))), study.tokenizer, task, scale.max_length)
            out = []
            for n in scale.calibration_sizes:
                for seed in range(scale.calibration_seeds):
                    atk = pool.subset(range(seed * 7 % 50, seed * 7 % 50 + n))
                    for label, model in (("random", rnd), ("base", base)):
                        out.append({"n": n, "seed": seed, "model": label,
                                    "probe": finetune_attack(model, atk, ev, steps=probe_steps, lr=1e-3, batch_size=24,
                                                             freeze_trunk=True, seed=seed).accuracy,
                                    "full": finetune_attack(model, atk, ev, steps=full_steps, lr=3e-4, batch_size=24,
                                                            seed=seed).accuracy})
            return out

        for r in study.pieces.run(f"calibration/{variant}", run):
            rows.append({"variant": variant, **r})
    table = []
    for variant in scale.calibration_variants:
        for model in ("random", "base"):
            for n in scale.calibration_sizes:
                sel = [r for r in rows if r["variant"] == variant and r["model"] == model and r["n"] == n]
                table.append({"variant": variant, "model": model, "n": n,
                              **{k: summary([r[k] for r in sel]) for k in ("probe", "full")}})
    result = {"rows": rows, "table": table, "base_note": {k: v for k, v in study.base_note.items() if k != "mlm_log"},
              "mlm_log": study.base_note.get("mlm_log", [])}
    result["figures"] = plots.calibration(study.out / "calibration", table, scale.calibration_variants)
    write(study.out, "calibration", result)
    return result


# -- experiment 1 ---------------------------------------------------------------------------------------
def exp1_main(study: Study) -> dict[str, Any]:
    """The paper's figure through the audit engine (``run_audit``): harmful and beneficial curves."""
    from mlac.audit.protocol import AuditRequest
    from mlac.audit.runner import run_audit

    scale = study.scale
    labels = [*BASELINES, *mlac_labels(study)]
    models = tuple(str(study.models[label]) for label in labels)
    common: dict[str, Any] = {"dataset": str(study.dataset_path), "models": models, "sizes": scale.sizes, "seeds": scale.attack_seeds,
              "selection_max": scale.selection_max, "report_max": scale.report_max, "max_length": scale.max_length,
              "device": scale.device}
    out: dict[str, Any] = {}
    for task, space, search in (("harmful", scale.space, scale.search),
                                ("beneficial", scale.beneficial_space, scale.beneficial_search)):
        folder = study.out / "exp1" / f"audit_{task}"

        def run(task: str = task, space: Any = space, search: Any = search, folder: Path = folder) -> dict[str, Any]:
            request = AuditRequest(tasks=(task,), space=space, search=search, **common)
            last = {"n": -1}

            def progress(event: dict[str, Any]) -> None:
                done = event.get("studies_done")
                if event.get("stage") == "search" and done is not None and done != last["n"] and done % 8 == 0:
                    last["n"] = done
                    log.info("exp1 %s: %s/%s searches", task, done, event.get("studies_total"))

            result = run_audit(request, folder, progress=progress)
            return result.to_dict()

        out[task] = study.pieces.run(f"exp1/audit_{task}", run)
    curves = [c for task in out.values() for c in task["curves"]]
    table = [{"model": c["model"], "task": c["task"], "n": c["n"], "mean": c["mean"], "ci_bootstrap": c["ci_bootstrap"],
              "ci_t": c["ci_t"], "per_seed": c["per_seed"], "best_params": c["best_params"]} for c in curves]
    # Pool the MLAC training seeds: one cluster of attacker-seed values per training seed.
    pooled = []
    for task in ("harmful", "beneficial"):
        for n in scale.sizes:
            groups = [c["per_seed"] for c in curves if c["task"] == task and c["n"] == n
                      and c["model"] in mlac_labels(study)]
            if groups:
                pooled.append({"model": "mlac (3 training seeds pooled)", "task": task, "n": n,
                               **cluster_summary(groups)})
    derived = out["harmful"].get("derived", {})
    result = {"table": table, "mlac_pooled": pooled, "derived": derived,
              "verdict": out["harmful"].get("verdict"), "request": {t: out[t]["request"] for t in out},
              "timings": {t: out[t]["timings"] for t in out}}
    result["figures"] = plots.exp1(study.out / "exp1", table, pooled, mlac_labels(study))
    write(study.out, "exp1", result)
    return result


# -- experiments 2 and 3 -----------------------------------------------------------------------------
def _suite_table(study: Study, labels: dict[str, list[str]]) -> list[dict[str, Any]]:
    rows = []
    for name, group in labels.items():
        per = [suite(study, label) for label in group]
        rows.append({"model": name, "labels": group, **{k: cluster_summary([p[k] for p in per]) for k in SUITE_KEYS}})
    return rows


def exp2_k(study: Study) -> dict[str, Any]:
    """K ablation (0, 1, 4 at CPU scale) and MLAC's effect against its training compute."""
    scale = study.scale
    groups = {"base": ["base"], "beneficial_tuned (w_adv=0)": ["beneficial_tuned"], "AC (K=0, learned head, neg. CE)": ["ac"]}
    if "K0_remap" in scale.ablations:
        groups["K=0, remap"] = ["K0_remap"]
    if "K1" in scale.ablations:
        groups["K=1"] = ["K1"]
    groups[f"K={scale.mlac.inner_steps} (main)"] = mlac_labels(study)
    if "K16" in scale.ablations:
        groups["K=16"] = ["K16"]
    table = _suite_table(study, groups)
    marks = sorted(set(scale.compute_marks) | {scale.mlac.outer_steps})
    first = mlac_labels(study)[0]
    compute = []
    for step in marks:
        # The last mark is the experiment-1 model itself: reuse its suite.
        label = first if step == scale.mlac.outer_steps else f"{first}@{step}"
        s = suite(study, label)
        wall = sum(study.pieces.wall_s(f"models/{first}@{m}") for m in marks if m <= step)
        cpu = sum(study.pieces.wall_s(f"models/{first}@{m}", "cpu_s") for m in marks if m <= step)
        info = study.pieces.get(f"models/{first}@{step}") or {}
        compute.append({"outer_steps": step, "inner_steps": scale.mlac.inner_steps, "train_wall_s": wall,
                        "train_cpu_s": cpu, "best_step": info.get("best_step"),
                        "validation": info.get("history", [])[-1:] if info else [],
                        # Forward+backward passes of the trunk per outer step: K inner steps, K+1 logit
                        # reads, the beneficial pass, each differentiated (second order ~ 2x).
                        "trunk_passes": step * (2 * scale.mlac.inner_steps + 2),
                        **{k: summary(s[k]) for k in SUITE_KEYS}})
    base_suite = suite(study, "base")
    compute.insert(0, {"outer_steps": 0, "inner_steps": scale.mlac.inner_steps, "train_wall_s": 0.0, "train_cpu_s": 0.0,
                       "trunk_passes": 0,
                       **{k: summary(base_suite[k]) for k in SUITE_KEYS}})
    result: dict[str, Any] = {"table": table, "compute_curve": compute, "suite_n": scale.suite_n, "suite_seeds": list(scale.suite_seeds)}
    result["figures"] = plots.suite_bars(study.out / "exp2", table, "K ablation", "exp2_k_ablation.png")
    result["figures"] += plots.compute_curve(study.out / "exp2", compute)
    write(study.out, "exp2", result)
    return result


def exp3_order_loss(study: Study) -> dict[str, Any]:
    """Second vs first order; remap-invariant loss vs (smoothly bounded) negative CE, at the main K."""
    scale = study.scale
    groups = {"base": ["base"], "beneficial_tuned (w_adv=0)": ["beneficial_tuned"],
              "second order, remap (main)": mlac_labels(study)}
    if "K4_first_order" in scale.ablations:
        groups["first order, remap"] = ["K4_first_order"]
    if "K4_neg_ce" in scale.ablations:
        groups["second order, neg. CE"] = ["K4_neg_ce"]
    table = _suite_table(study, groups)
    result = {"table": table, "suite_n": scale.suite_n, "suite_seeds": list(scale.suite_seeds)}
    result["figures"] = plots.suite_bars(study.out / "exp3", table, "Order and loss", "exp3_order_loss.png")
    write(study.out, "exp3", result)
    return result


# -- experiment 4 ----------------------------------------------------------------------------------------
def exp4_strong(study: Study) -> dict[str, Any]:
    """Stronger attackers: LoRA, 5x longer fine-tuning, larger n, a learning-rate grid a decade wider each side."""
    scale = study.scale
    targets = ["base", mlac_labels(study)[0]]
    seeds = scale.suite_seeds[:2]
    n0 = scale.suite_n
    runs: list[dict[str, Any]] = []
    for label in targets:
        def run(label: str = label) -> list[dict[str, Any]]:
            model = study.load(label).model
            out = []
            for seed in seeds:
                long = AttackParams(kind="full", lr=1e-4, steps=scale.long_steps, batch_size=24)
                out.append({"attack": "long", **audit_attack(study, model, n0, seed, long, scale.long_eval_every)})
                lora = AttackParams(kind="lora", lr=1e-3, steps=scale.lora_steps, batch_size=24)
                out.append({"attack": "lora", **audit_attack(study, model, n0, seed, lora)})
                for lr in scale.lr_grid:
                    p = AttackParams(kind="full", lr=lr, steps=scale.grid_steps, batch_size=24)
                    out.append({"attack": "lr_grid", **audit_attack(study, model, n0, seed, p)})
                for n in scale.large_sizes:
                    p = AttackParams(kind="full", lr=1e-4, steps=scale.suite_full_steps, batch_size=24)
                    out.append({"attack": "large_n", **audit_attack(study, model, n, seed, p)})
            return out

        for r in study.pieces.run(f"exp4/{label}", run):
            runs.append({"model": label, **r})
    table = []
    for label in targets:
        for attack in ("long", "lora", "lr_grid", "large_n"):
            sel = [r for r in runs if r["model"] == label and r["attack"] == attack]
            keys = sorted({(r["n"], r["params"]["lr"]) for r in sel})
            for n, lr in keys:
                group = [r for r in sel if r["n"] == n and r["params"]["lr"] == lr]
                table.append({"model": label, "attack": attack, "n": n, "lr": lr, "steps": group[0]["params"]["steps"],
                              "report": summary([r["report"] for r in group]),
                              "flops": float(np.mean([r["flops"] for r in group])),
                              "wall_s": float(np.mean([r["wall_s"] for r in group]))})
    result = {"runs": runs, "table": table, "seeds": list(seeds)}
    result["figures"] = plots.exp4(study.out / "exp4", runs, table, targets)
    write(study.out, "exp4", result)
    return result


# -- experiment 5 ----------------------------------------------------------------------------------------
def exp5_cost(study: Study, e1: dict[str, Any], e4: dict[str, Any]) -> dict[str, Any]:
    """What it costs the attacker to reach the base model's n=20 accuracy: data, FLOPs and wall time."""
    from mlac.audit.curves import CurvePoint
    from mlac.audit.derived import examples_needed

    harmful = [c for c in e1["table"] if c["task"] == "harmful"]
    n_min = min(c["n"] for c in harmful)
    target = next(c["mean"] for c in harmful if c["model"] == "base" and c["n"] == n_min)
    seed_points = {(p["model"], p["n"], p["seed"]): p for p in e1.get("seed_points", []) if p["task"] == "harmful"}
    rows = []
    for model in sorted({c["model"] for c in harmful}):
        curve = [CurvePoint(model=model, task="harmful", n=c["n"], mean=c["mean"], ci_bootstrap=None, ci_t=None,
                            per_seed=c["per_seed"], seeds=list(range(len(c["per_seed"]))))
                 for c in harmful if c["model"] == model]  # examples_needed reads n and mean only
        needed = examples_needed(curve, target)
        reach = sorted(c.n for c in curve if c.mean >= target)
        n_reach = reach[0] if reach else None
        cost = [p for (m, n, _s), p in seed_points.items() if m == model and n == n_reach]
        rows.append({"model": model, "examples_needed": needed, "multiplier": needed / n_min if needed else None,
                     "first_n_reaching": n_reach,
                     "search_flops_at_that_n": float(np.mean([p["attacker_flops"] for p in cost])) if cost else None,
                     "search_wall_s_at_that_n": float(np.mean([p["attacker_wall_s"] for p in cost])) if cost else None})
    # The compute twin with fixed n: FLOPs of the long full fine-tune until its selection accuracy first
    # reaches the target (FLOPs are linear in steps for a fixed n and batch).
    long_rows = []
    for r in e4["runs"]:
        if r["attack"] != "long":
            continue
        hit = next((step for step, acc in r["curve"] if acc >= target), None)
        long_rows.append({"model": r["model"], "seed": r["seed"], "n": r["n"], "steps_to_target": hit,
                          "flops_to_target": r["flops"] * hit / r["params"]["steps"] if hit else None,
                          "wall_s_to_target": r["wall_s"] * hit / r["params"]["steps"] if hit else None,
                          "final_report": r["report"]})
    result = {"target": target, "target_n": n_min, "data_cost": rows, "long_attack_cost": long_rows}
    result["figures"] = plots.exp5(study.out / "exp5", rows, long_rows, target)
    write(study.out, "exp5", result)
    return result


def run_all(out: Path, scale_name: str, only: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every step of the study into ``out`` (finished pieces are reused)."""
    from experiments.replication.scales import make_scale
    from experiments.replication.setup import make_models

    scale = make_scale(scale_name)
    study = prepare_study(out, scale)
    make_models(study)
    want = set(only) or {"calibration", "exp1", "exp2", "exp3", "exp4", "exp5"}
    results: dict[str, Any] = {"scale": scale_name, "base": {k: v for k, v in study.base_note.items() if k != "mlm_log"}}
    if "exp2" in want or "exp5" in want:
        results["exp2"] = exp2_k(study)
    if "exp3" in want:
        results["exp3"] = exp3_order_loss(study)
    if "exp1" in want or "exp5" in want:
        results["exp1"] = exp1_main(study)
        results["exp1"]["seed_points"] = [p for t in ("harmful", "beneficial")
                                          for p in (study.pieces.get(f"exp1/audit_{t}") or {}).get("seed_points", [])]
    if "calibration" in want:
        results["calibration"] = calibration(study)
    if "exp4" in want or "exp5" in want:
        results["exp4"] = exp4_strong(study)
    if "exp5" in want:
        results["exp5"] = exp5_cost(study, results["exp1"], results["exp4"])
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps({k: v for k, v in results.items() if k not in ("exp1",)} |
                                       {"exp1": {k: v for k, v in results.get("exp1", {}).items() if k != "seed_points"}},
                                       indent=1, sort_keys=True, default=float), encoding="utf-8")
    results["pieces"] = {"computed": study.pieces.computed, "reused": study.pieces.reused}
    return results


__all__ = ["math", "run_all", "suite_on", "summary"]
