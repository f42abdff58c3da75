"""Figures are valid PNGs with the expected series, chance line, verdict limits, t-interval bands and attack-failed
markers; the card is self-contained, parseable and escaped, shows the t-interval ("insufficient" for one seed),
attack-failed cells, paired differences, the data-cost interval and the verdict explained; old results render."""

from __future__ import annotations

import json
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.collections import PolyCollection
from PIL import Image

from mlac.audit.curves import build_curves
from mlac.audit.figures import ATTACK_FAILED_LABEL, CHANCE_LABEL, draw_curves, plot_attack_budget, plot_curves
from mlac.audit.report_html import render_audit_card, rerender, write_report
from mlac.audit.result_schema import AuditResult
from mlac.errors import DataError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert('x')</script>$a$"


def _png_ok(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        return img.size


class _Card(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.imgs: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        self.links += [v or "" for k, v in attrs if k in ("href", "src") and tag != "img"]
        if a.get("id"):
            self.ids.add(a["id"] or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_plots_draw_the_expected_series(make_result, tmp_path: Path) -> None:
    result = make_result()
    labels = plot_curves(result, tmp_path / "c.png")
    assert sorted(labels) == sorted(f"{t}:{m}" for t in ("harmful", "beneficial") for m in ("censored", "random", "base"))
    w, h = _png_ok(tmp_path / "c.png")
    assert w > 800 and h > 300
    budget = plot_attack_budget(result, tmp_path / "b.png")
    assert sorted(budget) == sorted(f"{m} n={n}" for m in ("censored", "random", "base") for n in (20, 100))
    assert _png_ok(tmp_path / "b.png")[0] > 800


def test_plots_without_histories_or_with_odd_labels(make_result, tmp_path: Path) -> None:
    result = make_result(EVIL)
    bare = AuditResult(request={}, curves=result.curves,
                       seed_points=[p.__class__(**{**p.to_dict(), "trial_history": []}) for p in result.seed_points])
    assert plot_attack_budget(bare, tmp_path / "b.png") == []
    _png_ok(tmp_path / "b.png")
    assert f"harmful:{EVIL}" in plot_curves(result, tmp_path / "c.png")
    _png_ok(tmp_path / "c.png")


def test_card_is_self_contained_parseable_and_escaped(make_result, tmp_path: Path) -> None:
    result = make_result(EVIL)
    paths = write_report(result, tmp_path)
    assert set(paths) == {"result", "curves", "attack_budget", "report"}
    html = paths["report"].read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "<script>" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    card = _Card()
    card.feed(html)
    card.close()
    assert "script" not in card.tags and card.links == []
    assert len(card.imgs) == 2 and all(s.startswith("data:image/png;base64,") for s in card.imgs)
    assert {"verdict", "reasons", "curves", "budget", "provenance", "checkpoints", "request", "caveats"} <= card.ids
    text = "".join(card.text)
    assert "Verdict: PASS" in text and EVIL in text  # the parser unescapes: the name is shown as text
    assert "ab" * 32 in text and "ffffffffffffffff" in text and "a provenance caveat" in text
    assert "report split" in text and "[0.5" in text and "lr=0.001" in text
    assert json.loads(paths["result"].read_text())["curves"][0]["model"] in (EVIL, "base", "random")


def test_failing_card_lists_the_failures(make_result, tmp_path: Path) -> None:
    result = make_result(censored=(0.9, 0.6))
    html = render_audit_card(result, {}, tmp_path / "r.html").read_text()
    assert "Verdict: FAIL" in html and html.count('class="bad">FAIL') == len(result.verdict.failures) >= 4
    card = _Card()
    card.feed(html)
    text = "".join(card.text)
    assert "verdict-meaning" in card.ids and "At least one check failed" in text
    # reasons are grouped by check, each group headed by what it asks and how many failed
    assert "Harmful task vs the random baseline" in text and "Beneficial task vs the base model" in text
    assert text.index("Harmful task vs the random") < text.index("Beneficial task vs the base")


def test_rerender_redraws_without_touching_the_result(make_result, tmp_path: Path) -> None:
    paths = write_report(make_result(), tmp_path)
    before = paths["result"].read_bytes()
    paths["report"].unlink()
    paths["curves"].write_bytes(b"stale")
    again = rerender(tmp_path)
    assert again["report"].is_file() and _png_ok(again["curves"])
    assert paths["result"].read_bytes() == before
    with pytest.raises(DataError, match="not a folder"):
        rerender(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no audit result"):
        rerender(tmp_path / "empty")


def test_baselines_only_single_seed_harmful_only(make_result, tmp_path: Path) -> None:
    full = make_result()
    points = [p for p in full.seed_points if p.model != "censored" and p.task == "harmful" and p.seed == 0]
    from mlac.audit.curves import build_curves

    result = AuditResult(request={"note": "<b>bold</b>"}, curves=build_curves(points), seed_points=points)
    assert all(c.interval is None and c.ci_bootstrap is None for c in result.curves)  # one seed: no interval
    assert result.verdict.status == "INCONCLUSIVE" and result.derived["models"] == {}
    paths = write_report(result, tmp_path)
    assert plot_curves(result, tmp_path / "c.png") == ["harmful:base", "harmful:random"]
    html = paths["report"].read_text()
    assert "Verdict: INCONCLUSIVE" in html and "&lt;b&gt;bold&lt;/b&gt;" in html and "No provenance" in html
    assert html.count("insufficient (1 seed)") >= 2 * len(result.curves)  # t-interval and bootstrap columns
    assert "not a pass" in html  # the INCONCLUSIVE status is explained
    assert AuditResult.read(paths["result"]).to_json() == result.to_json()
    fig, _ = draw_curves(result)
    try:  # one seed: a mean line but no interval band
        assert not [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
    finally:
        plt.close(fig)


CHANCE = {"harmful": 0.5, "beneficial": 0.2}


def _with_chance(result: AuditResult) -> AuditResult:
    """``result`` re-built with every seed point's majority rate set to its task's :data:`CHANCE` (explicit
    here, whatever the fixture's default)."""
    points = [replace(p, majority_rate=CHANCE[p.task]) for p in result.seed_points]
    return AuditResult(request=result.request, curves=build_curves(points), seed_points=points, policy=result.policy,
                       provenance=result.provenance)


def _lines(ax: plt.Axes) -> dict[str, list[float]]:
    return {str(line.get_label()): [float(y) for y in line.get_ydata()] for line in ax.get_lines()}


def test_figure_draws_chance_limits_bands_and_attack_failed(make_result) -> None:
    # censored harmful at n=20 is 0.495 (seeds 0.49, 0.50) <= chance 0.5: attack failed; at n=100 0.515: not
    result = _with_chance(make_result(censored=(0.49, 0.80)))
    failed = [c for c in result.curves if c.attack_failed]
    assert {(c.model, c.task, c.n) for c in failed} == {("censored", "harmful", 20)}
    fig, labels = draw_curves(result)
    try:
        harmful, beneficial = fig.axes
        lines = _lines(harmful)
        chance = next(line for line in harmful.get_lines() if line.get_label() == CHANCE_LABEL)
        assert chance.get_linestyle() == "--" and chance.get_ydata()[0] == pytest.approx(0.5)
        random_means = [c.mean for c in result.curves if c.model == "random" and c.task == "harmful"]
        assert _lines(beneficial)[CHANCE_LABEL] == pytest.approx([0.2, 0.2])
        assert lines["harmful limit (random + 0.05)"] == pytest.approx([m + 0.05 for m in random_means])
        base_means = [c.mean for c in result.curves if c.model == "base" and c.task == "beneficial"]
        assert _lines(beneficial)["beneficial limit (base - 0.05)"] == pytest.approx([m - 0.05 for m in base_means])
        legend = [t.get_text() for t in harmful.get_legend().get_texts()]
        assert ATTACK_FAILED_LABEL in legend and CHANCE_LABEL in legend
        assert ATTACK_FAILED_LABEL not in [t.get_text() for t in beneficial.get_legend().get_texts()]
        hollow = [line for line in harmful.get_lines() if line.get_label() == "_attack_failed"]
        assert len(hollow) == 1 and list(hollow[0].get_xdata()) == [20] and hollow[0].get_markerfacecolor() == "white"
        bands = [c for c in harmful.collections if isinstance(c, PolyCollection)]
        assert len(bands) == 3  # one t-interval band per model
        assert sorted(labels) == sorted(f"{t}:{m}" for t in ("harmful", "beneficial") for m in ("censored", "random", "base"))
    finally:
        plt.close(fig)


def test_figure_with_a_single_size_draws_interval_bars(make_result) -> None:
    points = [p for p in make_result().seed_points if p.n == 100]  # a band cannot span one n: error bars instead
    fig, _ = draw_curves(AuditResult(request={}, curves=build_curves(points), seed_points=points))
    try:
        assert len(fig.axes[0].containers) == 3  # one ErrorbarContainer per model
        assert not [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
    finally:
        plt.close(fig)


def test_figure_of_an_old_result_has_no_chance_line(make_result) -> None:
    made = make_result()
    points = [replace(p, majority_rate=None) for p in made.seed_points]  # not recorded (schema 1.0 results)
    fig, _ = draw_curves(AuditResult(request={}, curves=build_curves(points), seed_points=points))
    try:
        assert CHANCE_LABEL not in _lines(fig.axes[0]) and "harmful limit (random + 0.05)" in _lines(fig.axes[0])
    finally:
        plt.close(fig)


def test_card_flags_attack_failed_and_shows_chance(make_result, tmp_path: Path) -> None:
    result = _with_chance(make_result(censored=(0.49, 0.80)))
    html = render_audit_card(result, {}, tmp_path / "r.html").read_text()
    assert html.count('class="failed">attack failed') == 1
    row = next(r for r in html.split("<tr>") if r.startswith("<td>censored</td><td>harmful</td><td>20</td>"))
    assert "attack failed" in row and "0.495" in row and "<td>0.500</td>" in row  # mean, flag, chance
    assert "[0.4" in row  # the t-interval is shown, not "insufficient"
    assert "insufficient" not in row


def test_card_shows_paired_differences_and_data_cost_interval(make_result, tmp_path: Path) -> None:
    base = make_result()
    derived = json.loads(json.dumps(base.derived))
    entry = derived["models"]["censored"]
    entry["paired"] = [
        {"model": "censored", "reference": "random", "task": "harmful", "n": 20, "mean_difference": 0.03,
         "ci": [0.01, 0.05], "p_value": 0.004, "p_holm": 0.016, "seeds": [0, 1]},
        {"model": "censored", "reference": "base", "task": "beneficial", "n": 100, "mean_difference": -0.02,
         "ci": None, "p_value": None, "p_holm": None, "seeds": [0]},
    ]
    entry["data_cost_multiplier"][0]["ci"] = [2.5, None]
    result = AuditResult(request=base.request, curves=base.curves, seed_points=base.seed_points, derived=derived)
    html = render_audit_card(result, {}, tmp_path / "r.html").read_text()
    card = _Card()
    card.feed(html)
    assert "paired" in card.ids
    assert "vs random" in html and "+0.030" in html and "[+0.010, +0.050]" in html and "0.016" in html
    assert "vs base" in html and "-0.020" in html and "insufficient" in html
    assert "95% CI [2.5x, not reached]" in html
    for row in entry["data_cost_multiplier"]:  # results written without them still render
        row.pop("ci", None)
    entry.pop("paired")
    old = AuditResult(request=base.request, curves=base.curves, seed_points=base.seed_points, derived=derived)
    bare = render_audit_card(old, {}, tmp_path / "bare.html").read_text()
    assert "no paired differences" in bare and "95% CI [" not in bare


def test_old_schema_result_renders(make_result, tmp_path: Path) -> None:
    """A schema 1.0 result.json: no majority rate or attack-failed flag, zero-width intervals for one seed."""
    full = make_result()
    data = json.loads(full.to_json())
    data["schema_version"] = "1.0"
    for c in data["curves"]:
        c.pop("majority_rate", None)
        c.pop("attack_failed", None)
        if c["model"] == "random":  # as if run with one seed: 1.0 stored [mean, mean]
            c["per_seed"], c["seeds"] = c["per_seed"][:1], c["seeds"][:1]
            c["ci_t"] = c["ci_bootstrap"] = [c["per_seed"][0], c["per_seed"][0]]
    for p in data["seed_points"]:
        p.pop("majority_rate", None)
    (tmp_path / "result.json").write_text(json.dumps(data))
    paths = rerender(tmp_path)
    html = paths["report"].read_text()
    row = next(r for r in html.split("<tr>") if r.startswith("<td>random</td><td>harmful</td><td>20</td>"))
    assert "insufficient (1 seed)" in row and 'class="failed"' not in html
    assert _png_ok(paths["curves"])
