"""The audit card: one self-contained HTML file (figures embedded), plus ``write_report`` / ``rerender``."""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import Any

from mlac.audit.figures import plot_attack_budget, plot_curves
from mlac.audit.result_schema import AuditResult

RESULT_FILE = "result.json"
CAVEATS = (
    "Accuracies are measured on the report split, which neither censoring, baseline training nor the "
    "attacker's hyperparameter search ever saw (the search is scored on a separate selection split).",
    "Intervals are over attacker seeds only: each seed changes the attacker's training subset and search.",
    "An attacker with more data, compute or a different attack family than searched here may do better.",
)


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{escape(path.stem)}" src="data:image/png;base64,{data}" style="max-width:100%">'


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else escape(str(x))


def _curve_table(result: AuditResult) -> str:
    rows = "".join(
        f"<tr><td>{escape(c.model)}</td><td>{escape(c.task)}</td><td>{c.n}</td><td>{c.mean:.3f}</td>"
        f"<td>[{c.ci_bootstrap[0]:.3f}, {c.ci_bootstrap[1]:.3f}]</td><td>[{c.ci_t[0]:.3f}, {c.ci_t[1]:.3f}]</td>"
        f"<td>{escape(', '.join(f'{v:.3f}' for v in c.per_seed))}</td><td>{c.trials_run}</td>"
        f"<td>{c.attacker_wall_s:.1f}</td></tr>"
        for c in result.curves
    )
    return ("<table><tr><th>model</th><th>task</th><th>n</th><th>mean</th><th>95% bootstrap CI</th>"
            "<th>95% t-interval</th><th>per seed</th><th>trials</th><th>attacker s</th></tr>" + rows + "</table>")


def _derived_table(result: AuditResult) -> str:
    parts = []
    for model, entry in (result.derived or {}).get("models", {}).items():
        items = []
        for row in entry.get("data_cost_multiplier", []):
            items.append(f"<li>data-cost multiplier at n={row['n']} (base reaches {row['base_accuracy']:.3f}): "
                         f"{escape(row['display'])}</li>")
        auc = entry.get("harmful_auc")
        if auc:
            items.append(f"<li>harmful AUC ratio to random: {_fmt(auc.get('ratio_to_random'))}; "
                         f"normalised (0 = random, 1 = base): {_fmt(auc.get('normalised'))}</li>")
        for row in entry.get("beneficial_drop_vs_base", []):
            items.append(f"<li>beneficial drop vs base at n={row['n']}: {row['drop']:+.3f}</li>")
        parts.append(f"<h3>{escape(model)}</h3><ul>{''.join(items) or '<li>needs the base/random baselines</li>'}</ul>")
    return "".join(parts)


def render_audit_card(result: AuditResult, figures: dict[str, Path], out_path: Path) -> Path:
    """Write the HTML audit card; every user-provided string is escaped, every figure embedded."""
    verdict = result.verdict
    status = verdict.status if verdict else "INCONCLUSIVE"
    reasons = "".join(f"<li>{escape(r)}</li>" for r in (verdict.reasons if verdict else []))
    prov = escape(json.dumps(result.provenance, indent=2, sort_keys=True, default=str))
    request = escape(json.dumps(result.request, indent=2, sort_keys=True, default=str))
    figs = "".join(f"<h3>{escape(name)}</h3>{_img(path)}" for name, path in figures.items())
    caveats = "".join(f"<li>{escape(c)}</li>" for c in CAVEATS)
    color = {"PASS": "#1a7f37", "FAIL": "#cf222e"}.get(status, "#9a6700")
    html = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mlac-audit card</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px}}
.verdict{{font-size:1.6em;font-weight:bold;color:{color}}}pre{{background:#f6f8fa;padding:1em;overflow:auto}}</style>
</head><body>
<h1>Robustness audit card</h1>
<p class="verdict" id="verdict">Verdict: {escape(status)}</p>
<ul id="reasons">{reasons}</ul>
<h2>Few-shot curves</h2>{figs}
<h2>Curves (report split)</h2>{_curve_table(result)}
<h2>Derived metrics</h2>{_derived_table(result)}
<h2>Caveats</h2><ul>{caveats}</ul>
<h2>Provenance</h2><pre id="provenance">{prov}</pre>
<h2>Request</h2><pre id="request">{request}</pre>
<p>schema {escape(result.schema_version)}</p>
</body></html>
"""
    out_path.write_text(html, encoding="utf-8")
    return out_path


def write_report(result: AuditResult, out_dir: Path) -> dict[str, Path]:
    """result.json, curves.png, attack_budget.png and report.html in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"result": out_dir / RESULT_FILE, "curves": out_dir / "curves.png",
             "attack_budget": out_dir / "attack_budget.png", "report": out_dir / "report.html"}
    paths["result"].write_text(result.to_json(), encoding="utf-8")
    plot_curves(result, paths["curves"])
    plot_attack_budget(result, paths["attack_budget"])
    render_audit_card(result, {"curves": paths["curves"], "attack_budget": paths["attack_budget"]}, paths["report"])
    return paths


def rerender(out_dir: Path) -> dict[str, Path]:
    """Re-draw the figures and the card from an existing ``result.json``."""
    return write_report(AuditResult.read(Path(out_dir) / RESULT_FILE), Path(out_dir))
