"""The audit card (one self-contained HTML file), and :func:`write_report` / :func:`rerender`.

The card opens with a summary paragraph (:mod:`mlac.audit.summary`), then the verdict (what its status
means) and its reasons grouped by check, the figures (embedded as base64 ``data:`` URIs: no external asset,
no script), the curves (the t-interval the verdict uses, "insufficient" for one seed, the bootstrap for
comparison, the chance rate, attack-failed cells), per-seed values and best hyperparameters, the paired
differences and derived metrics (data-cost interval where present), the attack-budget summary, provenance
(file names, never where they lie on the machine), caveats and the full request. Results of schema 1.0 (no
chance rate, zero-width intervals for one seed) render too. Every string that comes from the user or the
data (model labels, paths, request values) goes through :func:`html.escape`.
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import Any

from mlac.audit.figures import plot_attack_budget, plot_curves
from mlac.audit.result_schema import AuditResult
from mlac.audit.summary import summary_paragraph
from mlac.errors import DataError

RESULT_FILE = "result.json"
FIGURES = {"curves": "curves.png", "attack_budget": "attack_budget.png"}
REPORT_FILE = "report.html"
CAVEATS = (
    "Accuracies are measured on the report split, which was never seen by censoring, baseline training or "
    "the attacker's hyperparameter search (the search is scored on a separate selection split).",
    "Intervals are over attacker seeds only: each seed changes the attacker's training subset and search RNG. "
    "Decisions use the 95% Student t-interval (clipped to [0, 1]); the percentile bootstrap is shown for "
    "comparison only, as it under-covers with few seeds. With one seed no interval can be estimated: the "
    "card says 'insufficient (1 seed)'.",
    "A cell marked 'attack failed' has a mean at or below chance (the report split's majority-class rate): "
    "the attacker learned nothing there, which measures a failed attack, not a resistant model.",
    "The data-cost multiplier is read off the audited curve between the measured sizes; beyond them only "
    "a bound is known (shown as '> x' or '<= x').",
    "An attacker with more data, compute or an attack family not searched here may do better: the curves "
    "are what this search budget found, an upper bound on the protection.",
)
STYLE = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#1f2328}
table{border-collapse:collapse;font-size:13px;margin:.5em 0 1em}td,th{border:1px solid #d0d7de;padding:3px 7px;
text-align:left;vertical-align:top}th{background:#f6f8fa}.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{font-size:1.7em;font-weight:bold}.PASS{color:#1a7f37}.FAIL{color:#cf222e}.INCONCLUSIVE{color:#9a6700}
.ok{color:#1a7f37}.bad{color:#cf222e;font-weight:bold}.na{color:#9a6700}.failed{color:#9a6700;font-weight:bold}
tr.group th{background:#eaeef2}
pre{background:#f6f8fa;padding:1em;overflow:auto;font-size:12px}img{max-width:100%;border:1px solid #eee}
code{font-size:12px;word-break:break-all}"""


def _f(x: Any, digits: int = 3) -> str:
    """A number for a table cell; None as an en dash; anything else escaped."""
    if x is None:
        return "–"
    if isinstance(x, bool):
        return escape(str(x))
    if isinstance(x, float):
        return f"{x:.{digits}f}" if abs(x) < 1e5 else f"{x:.3g}"
    return escape(str(x))


def _table(headers: list[str], rows: list[list[str]], table_id: str | None = None) -> str:
    """An HTML table; ``headers`` are escaped here, cells must already be safe HTML."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    attr = f' id="{escape(table_id)}"' if table_id else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(name: str, path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<figure><img alt="{escape(name)}" src="data:image/png;base64,{data}"></figure>'


def _params(params: dict[str, Any]) -> str:
    return escape(", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items())))


STATUS_MEANING = {
    "PASS": "Every check was made and passed: on every data size measured, the attacker did no better on the "
            "audited model than the policy allows against the random baseline, and the model kept its "
            "beneficial accuracy. This holds for the attacks and budget searched here only.",
    "FAIL": "At least one check failed: the harmful task was too easy to learn compared with the random "
            "baseline, the beneficial task dropped too far below the base model (or collapsed), or the "
            "data-cost multiplier is too low. The failed checks are marked FAIL below.",
    "INCONCLUSIVE": "No check failed, but at least one could not be decided: a baseline or task was not measured, "
                    "only a bound is known, or the attacker could not beat chance on the reference model (a "
                    "failed attack says nothing about the audited model). This is not a pass.",
}
#: Reason groups in display order, with what each check asks.
CHECKS = {
    "audited": "Models under audit",
    "competence": "Attacker competence: the attack must beat chance on the reference (base) model, else the audit "
                  "measured a failed attack",
    "collapsed": "Beneficial task intact: a model whose beneficial task is broken is trivially hard to attack",
    "harmful_vs_random": "Harmful task vs the random baseline (at most random + delta)",
    "beneficial_vs_base": "Beneficial task vs the base model (at least base - epsilon)",
    "data_cost": "Data-cost multiplier (at least the policy's minimum)",
}


def _interval(iv: Any, digits: int = 3) -> str:
    """``[lo, hi]``, or "insufficient (1 seed)" when no interval was estimated."""
    if iv is None:
        return '<span class="na">insufficient (1 seed)</span>'
    return f"[{iv[0]:.{digits}f}, {iv[1]:.{digits}f}]"


def _verdict_section(result: AuditResult) -> str:
    verdict = result.verdict
    status = verdict.status if verdict else "INCONCLUSIVE"
    reasons = list(verdict.reasons) if verdict else []
    order = list(CHECKS) + sorted({r.check for r in reasons} - set(CHECKS))
    body = []
    for check in order:
        group = [r for r in reasons if r.check == check]
        if not group:
            continue
        failed, open_ = sum(r.passed is False for r in group), sum(r.passed is None for r in group)
        summary = f"{len(group)} check(s), {failed} failed, {open_} not decided"
        body.append(f'<tr class="group"><th colspan="8">{escape(CHECKS.get(check, check))} '
                    f"<code>{escape(check)}</code>: {summary}</th></tr>")
        for r in group:
            cls, word = {True: ("ok", "ok"), False: ("bad", "FAIL"), None: ("na", "not checked")}[r.passed]
            cells = [escape(r.model), escape(r.check), _f(r.n), _f(r.value), _f(r.reference), _f(r.limit),
                     f'<span class="{cls}">{word}</span>', escape(r.message)]
            body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("model", "check", "n", "value", "reference", "limit", "result", "reason"))
    table = f'<table id="reasons"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    policy = escape(json.dumps(result.policy.to_dict(), sort_keys=True))
    meaning = STATUS_MEANING.get(status, "")
    return (f'<p class="verdict {escape(status)}" id="verdict">Verdict: {escape(status)}</p>'
            f'<p id="verdict-meaning">{escape(meaning)}</p>'
            f"<p>Policy: <code>{policy}</code></p>" + table)


def _mean_cell(c: Any) -> str:
    flag = ' <span class="failed">attack failed</span>' if c.attack_failed else ""
    return f'<span class="num">{c.mean:.3f}</span>{flag}'


def _curves_section(result: AuditResult) -> str:
    rows = []
    for c in result.curves:
        per_seed = ", ".join(f"s{s}: {v:.3f}" for s, v in zip(c.seeds, c.per_seed, strict=False))
        params = "<br>".join(f"s{s}: {_params(p)}" for s, p in zip(c.seeds, c.best_params, strict=False))
        rows.append([escape(c.model), escape(c.task), _f(c.n), _mean_cell(c), _interval(c.interval),
                     _f(c.majority_rate), _interval(c.ci_bootstrap), escape(per_seed), _f(c.selection_mean),
                     _f(c.trials_run), _f(c.attacker_wall_s, 1), f"{c.attacker_flops:.3g}", params])
    note = ("<p>Mean over seeds with its 95% t-interval (the interval the verdict uses; 'insufficient' with one "
            "seed). 'attack failed': the mean is at or below chance, the report split's majority-class rate "
            "('–' where the result did not record it).</p>")
    return note + _table(["model", "task", "n", "mean", "95% t-interval", "chance (majority class)",
                          "95% bootstrap CI (comparison)", "per seed", "selection mean (optimistic)", "trials",
                          "attacker s", "attacker FLOPs", "best hyperparameters per seed"], rows, "curves")


def _p(x: Any) -> str:
    """A p-value: 3 significant digits, small ones in scientific notation."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return f"{x:.3g}" if x >= 1e-3 else f"{x:.1e}"
    return _f(x)


def _pair_interval(ci: Any) -> str:
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci):
        return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"
    return '<span class="na">insufficient</span>'


def _seeds(x: Any) -> str:
    if isinstance(x, (list, tuple)):
        return escape(", ".join(str(v) for v in x))
    return _f(x)


def _paired_section(result: AuditResult) -> str:
    """Per audited model, task and n: the seed-paired difference vs the base and random baselines (same seed,
    same training subset), its t-interval and p-values (raw and Holm-adjusted); absent in older results."""
    rows = []
    for model, entry in ((result.derived or {}).get("models") or {}).items():
        for r in (entry or {}).get("paired") or []:
            if not isinstance(r, dict):
                continue
            diff = r.get("mean_difference")
            rows.append([escape(str(r.get("model", model))), escape(f"vs {r.get('reference', '?')}"),
                         escape(str(r.get("task", ""))), _f(r.get("n")),
                         f"{diff:+.3f}" if isinstance(diff, (int, float)) else _f(diff),
                         _pair_interval(r.get("ci")), _p(r.get("p_value")), _p(r.get("p_holm")),
                         _seeds(r.get("seeds"))])
    if not rows:
        return "<p>no paired differences in this result</p>"
    note = ("<p>Difference = model minus reference accuracy, paired by attacker seed (same seed, same data draw); "
            "95% t-interval of the paired differences ('insufficient' with one shared seed); two-sided paired "
            "t-test, Holm-adjusted over the data sizes of one (model, reference, task) comparison.</p>")
    return note + _table(["model", "reference", "task", "n", "mean difference", "95% interval", "p",
                          "p (Holm)", "seeds"], rows, "paired")


def _multiplier(x: Any) -> str:
    return f"{x:.3g}x" if isinstance(x, (int, float)) and not isinstance(x, bool) else "not reached"


def _cost_interval(r: dict[str, Any]) -> str:
    ci = r.get("ci")
    if not isinstance(ci, (list, tuple)) or len(ci) != 2:
        return "–"
    return f"95% CI [{_multiplier(ci[0])}, {_multiplier(ci[1])}]"


def _derived_section(result: AuditResult) -> str:
    derived = result.derived or {}
    parts = []
    for model, entry in derived.get("models", {}).items():
        rows = []
        for r in entry.get("data_cost_multiplier", []):
            rows.append(["data-cost multiplier", _f(r["n"]), f"base reaches {r['base_accuracy']:.3f}",
                         escape(str(r.get("display", ""))), _cost_interval(r)])
        auc = entry.get("harmful_auc")
        if auc:
            sizes = ", ".join(str(n) for n in auc.get("sizes", []))
            rows.append(["harmful AUC / random AUC (1 = as hard as random)", escape(sizes),
                         f"AUC {_f(auc.get('auc'))} vs random {_f(auc.get('auc_random'))}",
                         _f(auc.get("ratio_to_random")), "–"])
            rows.append(["harmful AUC normalised (0 = random, 1 = base)", escape(sizes),
                         f"base AUC {_f(auc.get('auc_base'))}", _f(auc.get("normalised")), "–"])
        for r in entry.get("beneficial_drop_vs_base", []):
            rows.append(["beneficial drop vs base", _f(r["n"]), f"base {r['base']:.3f}, model {r['model']:.3f}",
                         f"{r['drop']:+.3f}", "–"])
        body = (_table(["metric", "n", "numbers", "value", "interval"], rows) if rows
                else "<p>needs the base / random baselines</p>")
        parts.append(f"<h3>{escape(model)}</h3>{body}")
    return "".join(parts) or "<p>no derived metrics (no model under audit or no baselines)</p>"


def _budget_section(result: AuditResult) -> str:
    rows = []
    for b in (result.derived or {}).get("budget_curves", []):
        trials = [r for r in b.get("by_trials") or [] if r.get("report")]
        if not trials:
            continue
        first, last = trials[0], trials[-1]
        walls = b.get("by_wall_s") or []
        flops = b.get("by_flops") or []
        rows.append([escape(str(b["model"])), escape(str(b["task"])), _f(b["n"]), _f(b["seeds"]),
                     f"{first['report']['mean']:.3f} (trial {first['trials']})",
                     f"{last['report']['mean']:.3f} (trial {last['trials']}; seeds {last['report']['min']:.3f}"
                     f"–{last['report']['max']:.3f})",
                     _f(walls[-1]["wall_s"], 1) if walls else "–", f"{flops[-1]['flops']:.3g}" if flops else "–"])
    if not rows:
        return "<p>no trial histories recorded</p>"
    return _table(["model", "task", "n", "seeds", "best-so-far after the first trial",
                   "best-so-far at the end (mean over seeds)", "wall s (end)", "FLOPs (end)"], rows, "budget")


def _value_html(value: Any) -> str:
    if isinstance(value, dict):
        return _kv(value)
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return escape(", ".join(str(v) for v in value))
    if isinstance(value, list):
        return "<br>".join(_value_html(v) for v in value)
    return f"<code>{escape(str(value))}</code>"


def _kv(data: dict[str, Any]) -> str:
    """A nested key/value table (provenance has no fixed shape beyond its well-known keys)."""
    return _table(["key", "value"], [[escape(str(k)), _value_html(v)] for k, v in data.items()])


def _provenance_section(result: AuditResult) -> str:
    prov = dict(result.provenance)
    if not prov:
        return '<p class="bad">No provenance was recorded with this result.</p>'
    prov.pop("caveats", None)
    out = []
    checkpoints = prov.pop("checkpoints", None)
    if isinstance(checkpoints, dict):
        rows = []
        for label, info in checkpoints.items():
            info = info if isinstance(info, dict) else {"sha256": info}
            rows.append([escape(str(label)), f"<code>{escape(str(info.get('sha256', '')))}</code>",
                         f"<code>{escape(Path(str(info.get('path', ''))).name)}</code>"])
        out.append("<h3>Checkpoints</h3>" + _table(["model", "sha256", "folder"], rows, "checkpoints"))
    dataset = prov.get("dataset")
    if isinstance(dataset, dict) and dataset.get("path"):  # the file's name, not where it lies on this machine
        prov["dataset"] = {**dataset, "path": Path(str(dataset["path"])).name}
    out.append("<h3>Data, seeds, versions</h3>" + _kv(prov))
    return "".join(out)


def render_audit_card(result: AuditResult, figures: dict[str, Path], out_path: str | Path) -> Path:
    """Write the self-contained HTML audit card to ``out_path`` (figures embedded) and return the path."""
    status = result.verdict.status if result.verdict else "INCONCLUSIVE"
    caveats = [*CAVEATS, *(str(c) for c in result.provenance.get("caveats", []) or [])]
    figs = "".join(f"<h3>{escape(name)}</h3>{_img(name, path)}" for name, path in figures.items())
    audit_id = result.provenance.get("audit_id")
    timings = ", ".join(f"{escape(str(k))}: {_f(v, 1)} s" for k, v in result.timings.items()) or "–"
    request = escape(json.dumps(result.request, indent=2, sort_keys=True, default=str))
    html = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mlac-audit card: {escape(status)}</title>
<style>{STYLE}</style></head><body>
<h1>Robustness audit card</h1>
<p id="summary">{escape(summary_paragraph(result))}</p>
<p>Models: {escape(", ".join(result.models))}{f" · audit <code>{escape(str(audit_id))}</code>" if audit_id else ""}
 · schema {escape(result.schema_version)} · timings: {timings}</p>
<h2>Verdict</h2>{_verdict_section(result)}
<h2>Figures</h2>{figs or "<p>no figures</p>"}
<h2>Curves (report split)</h2>{_curves_section(result)}
<h2>Paired differences</h2><div id="paired-differences">{_paired_section(result)}</div>
<h2>Derived metrics</h2><div id="derived">{_derived_section(result)}</div>
<h2>Attack budget</h2>{_budget_section(result)}
<h2>Caveats</h2><ul id="caveats">{"".join(f"<li>{escape(c)}</li>" for c in caveats)}</ul>
<h2>Provenance</h2><div id="provenance">{_provenance_section(result)}</div>
<h2>Request</h2><pre id="request">{request}</pre>
</body></html>
"""
    out = Path(out_path)
    out.write_text(html, encoding="utf-8")
    return out


def write_report(result: AuditResult, out_dir: str | Path, *, write_result: bool = True) -> dict[str, Path]:
    """Write result.json (unless ``write_result`` is False), curves.png, attack_budget.png and report.html
    into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"result": out / RESULT_FILE, **{name: out / file for name, file in FIGURES.items()},
             "report": out / REPORT_FILE}
    if write_result:
        result.write(paths["result"])
    plot_curves(result, paths["curves"])
    plot_attack_budget(result, paths["attack_budget"])
    render_audit_card(result, {name: paths[name] for name in FIGURES}, paths["report"])
    return paths


def rerender(out_dir: str | Path) -> dict[str, Path]:
    """Re-draw the figures and the card of an audit folder from its ``result.json`` (``mlac-audit report DIR``);
    ``result.json`` itself is read, never rewritten."""
    out = Path(out_dir)
    if not out.is_dir():
        raise DataError(f"{out} is not a folder: give the --out folder of an audit")
    return write_report(AuditResult.read(out / RESULT_FILE), out, write_result=False)
