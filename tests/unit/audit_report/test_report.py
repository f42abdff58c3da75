"""Statistics, derived metrics, verdict, JSON schema, figures and the HTML card."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from scipy import stats as sps

from mlac.audit.curves import CurvePoint, SeedPoint, build_curves
from mlac.audit.derived import data_cost_multiplier, examples_needed, harmful_auc_relative
from mlac.audit.report_html import rerender, write_report
from mlac.audit.result_schema import AuditResult
from mlac.audit.stats import bootstrap_ci, t_interval
from mlac.audit.verdict import VerdictPolicy, evaluate
from mlac.errors import DataError

SAMPLE = [0.61, 0.72, 0.65, 0.70, 0.58, 0.69]


def test_bootstrap_matches_explicit_reference() -> None:
    rng = np.random.default_rng(7)
    means = [float(np.mean(rng.choice(SAMPLE, size=len(SAMPLE), replace=True))) for _ in range(1000)]
    ref = (float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975)))
    got = bootstrap_ci(SAMPLE, 0.95, 1000, seed=7)
    assert got[0] < np.mean(SAMPLE) < got[1]
    # same distribution, different draw order: equal within Monte Carlo error
    assert abs(got[0] - ref[0]) < 0.01 and abs(got[1] - ref[1]) < 0.01
    assert bootstrap_ci(SAMPLE, seed=3) == bootstrap_ci(SAMPLE, seed=3)


def test_t_interval_equals_scipy() -> None:
    lo, hi = t_interval(SAMPLE, 0.95)
    ref = sps.t.interval(0.95, len(SAMPLE) - 1, loc=np.mean(SAMPLE), scale=sps.sem(SAMPLE))
    assert lo == pytest.approx(ref[0], abs=1e-12) and hi == pytest.approx(ref[1], abs=1e-12)
    assert t_interval([0.5]) == (0.5, 0.5)


def _curve(model: str, task: str, pts: dict[int, float]) -> list[CurvePoint]:
    return [CurvePoint(model, task, n, acc, (acc - 0.02, acc + 0.02), (acc - 0.03, acc + 0.03), [acc], [0]) for n, acc in pts.items()]


def test_data_cost_multiplier_cases() -> None:
    base = _curve("base", "harmful", {20: 0.8, 100: 0.9})
    same = data_cost_multiplier(_curve("m", "harmful", {20: 0.8, 100: 0.9}), base)
    assert [r["multiplier"] for r in same] == [1.0, 1.0]
    # audited reaches 0.8 half-way between 100 and 400 in log-n: sqrt(100*400) = 200 -> 10x at n=20
    interp = data_cost_multiplier(_curve("m", "harmful", {20: 0.6, 100: 0.7, 400: 0.9}), base)
    assert interp[0]["multiplier"] == pytest.approx(10.0)
    never = data_cost_multiplier(_curve("m", "harmful", {20: 0.5, 100: 0.55}), base)
    assert never[1]["reached"] is False and never[1]["lower_bound"] == pytest.approx(1.0) and "> " in never[1]["display"]
    # non-monotone curve: the running-max envelope is used (a dip does not un-reach a level)
    assert examples_needed(_curve("m", "harmful", {20: 0.85, 50: 0.7, 100: 0.95}), 0.9) == pytest.approx(
        float(np.exp(np.log(50) + 0.5 * (np.log(100) - np.log(50)))))


def test_auc_relative_to_random() -> None:
    rel = harmful_auc_relative(_curve("m", "harmful", {20: 0.5, 100: 0.5}), _curve("random", "harmful", {20: 0.5, 100: 0.5}),
                               _curve("base", "harmful", {20: 0.9, 100: 0.9}))
    assert rel["ratio_to_random"] == pytest.approx(1.0) and rel["normalised"] == pytest.approx(0.0)


def test_verdict_pass_and_fail() -> None:
    good = [*_curve("m", "harmful", {20: 0.52}), *_curve("random", "harmful", {20: 0.5}),
            *_curve("m", "beneficial", {20: 0.8}), *_curve("base", "beneficial", {20: 0.82})]
    assert evaluate(good, ["m"]).status == "PASS"
    bad = [*_curve("m", "harmful", {20: 0.9}), *_curve("random", "harmful", {20: 0.5}),
           *_curve("m", "beneficial", {20: 0.6}), *_curve("base", "beneficial", {20: 0.82})]
    v = evaluate(bad, ["m"], VerdictPolicy(0.05, 0.05))
    assert v.status == "FAIL" and sum("FAIL" in r for r in v.reasons) == 2
    assert evaluate(_curve("m", "harmful", {20: 0.5}), ["m"]).status == "INCONCLUSIVE"


def _result(name: str = "censored") -> AuditResult:
    points = []
    for model, harmful, beneficial in ((name, 0.55, 0.8), ("random", 0.52, 0.3), ("base", 0.9, 0.82)):
        for task, acc in (("harmful", harmful), ("beneficial", beneficial)):
            for n in (20, 100):
                for seed in (0, 1):
                    a = acc + 0.01 * seed + (0.02 if n == 100 else 0.0)
                    hist = [{"trial": i, "wall_s_cum": 0.5 * (i + 1), "flops_cum": 1e9 * (i + 1), "best_report_acc_so_far": a - 0.01 * (3 - i)} for i in range(4)]
                    points.append(SeedPoint(model, task, n, seed, a, a, [a, a], {"lr": 1e-3}, 4, 0, 2.0, 4e9, hist))
    return AuditResult(request={"preset": "smoke"}, curves=build_curves(points), seed_points=points,
                       provenance={"checkpoints": {name: "ab" * 32}})


def test_json_round_trip_and_schema_version(tmp_path: Path) -> None:
    result = _result()
    back = AuditResult.from_dict(json.loads(result.to_json()))
    assert back.to_json() == result.to_json()
    bad = json.loads(result.to_json())
    bad["schema_version"] = "9.9"
    with pytest.raises(DataError, match="schema version"):
        AuditResult.from_dict(bad)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[str] = []
        self.ids: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        if a.get("id"):
            self.ids.add(a["id"] or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_report_files_are_valid_and_escaped(tmp_path: Path) -> None:
    result = _result("<script>alert(1)</script>")
    paths = write_report(result, tmp_path)
    for name in ("curves", "attack_budget"):
        raw = paths[name].read_bytes()
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        assert mpimg.imread(paths[name]).shape[0] > 200
    html = paths["report"].read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    parser = _Collector()
    parser.feed(html)
    assert len(parser.imgs) == 2 and all(s.startswith("data:image/png;base64,") for s in parser.imgs)
    assert {"verdict", "reasons", "provenance", "request"} <= parser.ids
    text = "".join(parser.text)
    assert "Verdict: PASS" in text and "random" in text and "0.55" in text
    assert rerender(tmp_path)["report"].is_file()


def test_plot_series_labels(tmp_path: Path) -> None:
    from mlac.audit.figures import plot_attack_budget, plot_curves

    result = _result()
    labels = plot_curves(result, tmp_path / "c.png")
    assert sorted(labels) == sorted(f"{t}:{m}" for t in ("harmful", "beneficial") for m in ("censored", "random", "base"))
    assert len(plot_attack_budget(result, tmp_path / "b.png")) == 6
