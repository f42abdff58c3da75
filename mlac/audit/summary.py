"""The decision-ready paragraph at the top of an audit card: the verdict, the key numbers with their intervals,
what the attacker was, and when and with which code the audit ran.

Numbers are read at the largest data size measured (the strongest attacker of the audit): the audited
model's harmful accuracy against the random and base baselines and chance, its beneficial accuracy against
the base model, and the data-cost multiplier at the smallest base size. A mean at or below chance is called
a failed attack, never resistance.
"""

from __future__ import annotations

from typing import Any

from mlac.audit.curves import CurvePoint
from mlac.audit.result_schema import AuditResult


def _at(result: AuditResult, model: str, task: str, n: int) -> CurvePoint | None:
    return next((c for c in result.curves if c.model == model and c.task == task and c.n == n), None)


def _value(c: CurvePoint | None) -> str:
    if c is None:
        return "not measured"
    ci = "one seed, no interval" if c.ci_t is None else f"95% CI {c.ci_t[0]:.2f}-{c.ci_t[1]:.2f}"
    failed = ", at or below chance: the attack failed" if c.attack_failed else ""
    return f"{c.mean:.2f} ({ci}{failed})"


def attacker_sentence(request: dict[str, Any]) -> str:
    """What the attacker was, from the request: preset, attack kinds, budget, steps, sizes and seeds."""
    space, search = request.get("space") or {}, request.get("search") or {}
    kinds = "/".join(space.get("kinds") or []) or "?"
    optimizers = "/".join(space.get("optimizers") or []) or "adam"
    steps = f"{space.get('steps_min')}-{space.get('steps_max')} steps"
    grid = ", starting from the reference grid" if search.get("grid_start") else ""
    sizes = ", ".join(str(n) for n in request.get("sizes") or [])
    preset = f" (preset {request['preset']})" if request.get("preset") else ""
    return (f"The attacker{preset} searched {kinds} attacks with {optimizers}, {steps}, up to "
            f"{search.get('max_trials')} trials per search{grid}, with n = {sizes} examples and "
            f"{len(request.get('seeds') or [])} seeds per size.")


def _model_sentences(result: AuditResult, model: str) -> list[str]:
    sizes = sorted({c.n for c in result.curves if c.model == model})
    if not sizes:
        return []
    n = sizes[-1]
    harmful = _at(result, model, "harmful", n)
    out = []
    if harmful is not None:
        chance = f"; chance is {harmful.majority_rate:.2f}" if harmful.majority_rate is not None else ""
        out.append(f"With n = {n} examples the attacker reached a harmful accuracy of {_value(harmful)} on {model}, "
                   f"against {_value(_at(result, 'random', 'harmful', n))} on the random baseline and "
                   f"{_value(_at(result, 'base', 'harmful', n))} on the base model{chance}.")
    beneficial = _at(result, model, "beneficial", n)
    if beneficial is not None:
        out.append(f"Its beneficial accuracy was {_value(beneficial)} (base model: "
                   f"{_value(_at(result, 'base', 'beneficial', n))}).")
    costs = ((result.derived or {}).get("models") or {}).get(model, {}).get("data_cost_multiplier") or []
    if costs:
        first = costs[0]
        ci = first.get("ci")
        interval = f" (95% CI {ci[0]:.2g}x-{ci[1]:.2g}x)" if isinstance(ci, list) and None not in ci else ""
        out.append(f"To match the base model trained on n = {first['n']} examples the attacker needs {first['display']} "
                   f"on {model}{interval}.")
    return out


def summary_paragraph(result: AuditResult) -> str:
    """The paragraph (plain text; the caller escapes it)."""
    status = result.verdict.status if result.verdict else "INCONCLUSIVE"
    audited = list((result.derived or {}).get("audited", [])) or []
    sentences = [f"Verdict: {status}."]
    if not audited:
        sentences.append("No model was under audit: only baselines were measured.")
    for model in audited:
        sentences.extend(_model_sentences(result, model))
    sentences.append(attacker_sentence(result.request))
    versions = result.provenance.get("package_versions") or {}
    when = result.provenance.get("created_at")
    code = result.provenance.get("code_version") or versions.get("mlac-audit")
    stack = ", ".join(f"{k} {versions[k]}" for k in ("torch", "transformers", "optuna") if k in versions)
    sentences.append(f"Audited{f' on {when}' if when else ''} with mlac-audit {code or 'unknown'}"
                     f"{f' ({stack})' if stack else ''}.")
    return " ".join(sentences)
