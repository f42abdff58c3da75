"""Figures are valid PNGs with the expected series; the card is self-contained, parseable and escaped."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from mlac.audit.figures import plot_attack_budget, plot_curves
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
    html = render_audit_card(make_result(censored=(0.9, 0.6)), {}, tmp_path / "r.html").read_text()
    assert "Verdict: FAIL" in html and html.count('class="bad">FAIL') == 4


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
    assert all(c.ci_bootstrap == c.ci_t == (c.mean, c.mean) for c in result.curves)  # one seed: degenerate
    assert result.verdict.status == "INCONCLUSIVE" and result.derived["models"] == {}
    paths = write_report(result, tmp_path)
    assert plot_curves(result, tmp_path / "c.png") == ["harmful:base", "harmful:random"]
    html = paths["report"].read_text()
    assert "Verdict: INCONCLUSIVE" in html and "&lt;b&gt;bold&lt;/b&gt;" in html and "No provenance" in html
    assert AuditResult.read(paths["result"]).to_json() == result.to_json()
