"""A comparison's figure (B - A per n with its interval, one panel per task) and its self-contained HTML page.

The page has the statements first, then the figure (embedded as a ``data:`` URI, no external asset, no
script), the table of paired differences, the data-cost multipliers of both sides and what differs between
the two audits. Every string from a result (model labels, ids) goes through :func:`html.escape`.
"""

from __future__ import annotations

import base64
import io
import json
from html import escape
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from mlac.audit.compare import Comparison, ComparisonRow
from mlac.audit.report_html import STYLE

FINDING_COLOUR = {"lower": "#0969da", "higher": "#bc4c00", "no_difference": "#57606a", "undecided": "#9a6700"}


def _png(fig: Figure) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def comparison_png(comparison: Comparison) -> bytes:
    """The figure as PNG bytes: per task, the mean difference B - A at each n with its t-interval."""
    tasks = list(dict.fromkeys(r.task for r in comparison.rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 3.6), squeeze=False)
    try:
        for ax, task in zip(axes[0], tasks, strict=True):
            rows = [r for r in comparison.rows if r.task == task]
            for r in rows:
                lo, hi = r.ci if r.ci is not None else (r.difference, r.difference)
                ax.errorbar([r.n], [r.difference], yerr=[[r.difference - lo], [hi - r.difference]], fmt="o",
                            color=FINDING_COLOUR[r.finding], capsize=4)
            ax.axhline(0.0, color="#8c959f", linewidth=1)
            ax.set_xscale("log")
            ax.set_xticks([r.n for r in rows], [str(r.n) for r in rows])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("attacker's examples n")
            ax.set_ylabel("accuracy of B - accuracy of A")
            ax.set_title(f"{task} task ({int(comparison.confidence * 100)}% interval)")
        return _png(fig)
    finally:
        plt.close(fig)


def _f(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _row(r: ComparisonRow) -> str:
    ci = "insufficient (1 seed)" if r.ci is None else f"[{_f(r.ci[0])}, {_f(r.ci[1])}]"
    cells = [escape(r.task), str(r.n), _f(r.mean_a), _f(r.mean_b), f"{r.difference:+.3f}", ci, _f(r.p_holm),
             escape(", ".join(str(s) for s in r.seeds)),
             f'<span style="color:{FINDING_COLOUR[r.finding]}">{escape(r.reads())}</span>']
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def comparison_html(comparison: Comparison) -> str:
    """The comparison page (one self-contained HTML document)."""
    a, b = comparison.a, comparison.b
    png = base64.b64encode(comparison_png(comparison)).decode("ascii")
    head = "".join(f"<th>{h}</th>" for h in ("task", "n", "A", "B", "B - A", "interval", "p (Holm)", "seeds", "finding"))
    costs = "".join(f"<tr><td>{d.n}</td><td>{escape(d.a or '–')}</td><td>{escape(d.b or '–')}</td></tr>"
                    for d in comparison.data_cost)
    differences = "".join(f"<li>{escape(d)}</li>" for d in comparison.differences) or "<li>nothing else</li>"
    side = "model <code>{}</code> of audit <code>{}</code>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mlac-audit comparison</title><style>{STYLE}</style></head><body>
<h1>Comparison</h1>
<p>A: {side.format(escape(a.model), escape(str(a.audit_id)))} · B: {side.format(escape(b.model), escape(str(b.audit_id)))}</p>
<h2>Findings</h2><ul id="statements">{"".join(f"<li>{escape(s)}</li>" for s in comparison.statements)}</ul>
<p>Differences are paired by seed (the same training rows on both sides); a finding needs a Holm-adjusted
p-value below {comparison.alpha:g} and an interval that excludes 0. On the harmful task, lower is harder to attack.</p>
<figure><img alt="differences" src="data:image/png;base64,{png}"></figure>
<h2>Paired differences</h2><table id="rows"><thead><tr>{head}</tr></thead><tbody>
{"".join(_row(r) for r in comparison.rows)}</tbody></table>
<h2>Data-cost multiplier</h2><table id="data-cost"><thead><tr><th>base n</th><th>A</th><th>B</th></tr></thead>
<tbody>{costs or '<tr><td colspan="3">neither side has one (it needs a base baseline)</td></tr>'}</tbody></table>
<h2>What differs between the audits</h2><ul id="differences">{differences}</ul>
</body></html>
"""


def write_comparison(comparison: Comparison, out_dir: str | Path) -> dict[str, Path]:
    """Write comparison.json, comparison.png and comparison.html into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "comparison.json", "png": out / "comparison.png", "html": out / "comparison.html"}
    paths["json"].write_text(json.dumps(comparison.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    paths["png"].write_bytes(comparison_png(comparison))
    paths["html"].write_text(comparison_html(comparison), encoding="utf-8")
    return paths


def trend_png(points: list[tuple[float, float | None, bool]], title: str = "harmful accuracy over time") -> bytes:
    """A schedule's trend as PNG bytes: ``(unix time, value or None, regressed)`` per run, regressed runs in red."""
    from datetime import UTC, datetime

    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    try:
        shown = [(float(mdates.date2num(datetime.fromtimestamp(t, UTC))), v, r) for t, v, r in points if v is not None]
        if shown:
            ax.plot([t for t, _, _ in shown], [v for _, v, _ in shown], "-o", color="#0969da", label="run")
            bad = [(t, v) for t, v, r in shown if r]
            if bad:
                ax.plot([t for t, _ in bad], [v for _, v in bad], "o", color="#cf222e", markersize=9,
                        label="regressed (easier to attack than the run before)")
            ax.legend(loc="best", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no successful run yet", ha="center", va="center", transform=ax.transAxes)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d %H:%M"))
        ax.set_ylabel("attacker's accuracy at the largest n")
        ax.set_title(title)
        fig.autofmt_xdate()
        return _png(fig)
    finally:
        plt.close(fig)
