"""Comparing two audits: paired by seed, findings only where Holm and the interval agree, refusals that say why."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from mlac.audit.compare import NotComparableError, compare
from mlac.audit.compare_report import comparison_html
from mlac.audit.curves import SeedPoint, build_curves
from mlac.audit.result_schema import AuditResult
from mlac.cli.main import main
from mlac.errors import ConfigError

SEEDS = (0, 1, 2, 3, 4)
NS = (20, 100, 500)
# seed-to-seed spread shared by both sides (the same data draw per seed): pairing removes it
NOISE = {0: -0.06, 1: 0.04, 2: 0.01, 3: -0.02, 4: 0.05}


def _result(accuracy: dict[int, float], *, model: str = "model", shift: dict[int, float] | None = None,
            fingerprint: str = "data-1", max_trials: int = 4, label_noise: float = 0.0) -> AuditResult:
    points = []
    for n in NS:
        for s in SEEDS:
            value = accuracy[n] + NOISE[s] + (shift or {}).get(s, 0.0) + label_noise * ((s * 7 + n) % 3 - 1)
            for task, acc in (("harmful", value), ("beneficial", 0.9)):
                points.append(SeedPoint(model, task, n, s, acc, acc))
    request = {"space": {"kinds": ["probe"]}, "search": {"max_trials": max_trials}, "selection_max": 200,
               "report_max": 300, "max_length": 128, "split_seed": 0, "sizes": list(NS), "seeds": list(SEEDS),
               "tasks": ["harmful", "beneficial"], "preset": "smoke"}
    provenance = {"audit_id": f"audit-{model}-{fingerprint}", "dataset": {"fingerprint": fingerprint, "splits": {"report": "r"}},
                  "checkpoints": {model: {"sha256": f"sha-{model}-{accuracy[20]}"}},
                  "subset_seeds": {str(n): {str(s): n * 10 + s for s in SEEDS} for n in NS}}
    return AuditResult(request=request, curves=build_curves(points, n_resamples=50), seed_points=points,
                       provenance=provenance, derived={"audited": [model], "models": {}})


def test_a_model_easier_to_attack_at_small_n_is_found_there_and_nowhere_else() -> None:
    before = _result({20: 0.55, 100: 0.60, 500: 0.80})
    after = _result({20: 0.70, 100: 0.75, 500: 0.80}, label_noise=0.002)
    found = compare(before, after)
    harmful = {r.n: r for r in found.rows if r.task == "harmful"}
    assert harmful[20].finding == harmful[100].finding == "higher"
    assert harmful[20].reads() == "B easier to attack"
    assert harmful[500].finding == "no_difference"
    assert found.regressed
    assert found.statements[0] == "harmful: B is easier to attack than A at n in {20, 100}; no significant difference at n = 500."
    # the shared seed noise (0.11 wide) is far larger than the shift's spread: only pairing finds it
    assert harmful[20].ci is not None and harmful[20].ci[0] > 0.1
    assert all(r.finding == "no_difference" for r in found.rows if r.task == "beneficial")


def test_the_same_model_measured_twice_differs_nowhere() -> None:
    """Negative control: identical measurements (as two runs of one deterministic audit give) find nothing."""
    a = _result({20: 0.55, 100: 0.60, 500: 0.80})
    found = compare(a, _result({20: 0.55, 100: 0.60, 500: 0.80}))
    assert {r.finding for r in found.rows} == {"no_difference"}
    assert not found.regressed
    assert "same checkpoint" in " ".join(found.differences)


def test_a_lower_attack_accuracy_is_harder_to_attack() -> None:
    found = compare(_result({20: 0.7, 100: 0.8, 500: 0.9}), _result({20: 0.5, 100: 0.55, 500: 0.9}, label_noise=0.002))
    assert [r.reads() for r in found.rows if r.task == "harmful"][:2] == ["B harder to attack"] * 2
    assert not found.regressed


def test_one_shared_seed_decides_nothing() -> None:
    a = _result({20: 0.55, 100: 0.60, 500: 0.80})
    b = _result({20: 0.9, 100: 0.9, 500: 0.9})
    b = replace(b, seed_points=[p for p in b.seed_points if p.seed == 0])
    found = compare(a, b)
    assert {r.finding for r in found.rows} == {"undecided"}
    assert "one shared seed" in found.statements[0]


@pytest.mark.parametrize(("change", "reason"), [
    ({"fingerprint": "data-2"}, "different data"),
    ({"max_trials": 10}, "different protocol: search"),
])
def test_audits_measured_differently_are_refused_with_the_reason(change: dict[str, object], reason: str) -> None:
    a = _result({20: 0.55, 100: 0.60, 500: 0.80})
    b = _result({20: 0.55, 100: 0.60, 500: 0.80}, **change)  # type: ignore[arg-type]
    with pytest.raises(NotComparableError, match=reason):
        compare(a, b)


def test_different_data_draws_per_seed_do_not_pair() -> None:
    a = _result({20: 0.55, 100: 0.60, 500: 0.80})
    b = _result({20: 0.55, 100: 0.60, 500: 0.80})
    b = replace(b, provenance={**b.provenance, "subset_seeds": {"20": {"0": 1}}})
    with pytest.raises(NotComparableError, match="subset seeds differ"):
        compare(a, b)


def test_two_models_of_one_audit_and_unknown_models() -> None:
    a = _result({20: 0.55, 100: 0.60, 500: 0.80})
    b = _result({20: 0.75, 100: 0.80, 500: 0.90}, model="base", label_noise=0.002)
    both = replace(a, seed_points=[*a.seed_points, *b.seed_points],
                   curves=build_curves([*a.seed_points, *b.seed_points], n_resamples=50))
    found = compare(both, both, model_a="model", model_b="base")
    assert found.a.model == "model" and found.b.model == "base"
    assert found.regressed
    with pytest.raises(ConfigError, match="no model 'nope'"):
        compare(both, both, model_a="nope", model_b="base")
    with pytest.raises(ConfigError, match="two different models"):
        compare(both, both, model_a="base", model_b="base")


def test_page_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _result({20: 0.55, 100: 0.60, 500: 0.80})
    b = _result({20: 0.70, 100: 0.75, 500: 0.80}, label_noise=0.002)
    page = comparison_html(compare(a, b))
    assert "B is easier to attack than A at n in {20, 100}" in page and "data:image/png;base64," in page
    assert "<script" not in page
    a.write(tmp_path / "a.json")
    b.write(tmp_path / "b.json")
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out", str(tmp_path / "cmp")]) == 0
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--fail-if-easier"]) == 1
    assert main(["compare", str(tmp_path / "b.json"), str(tmp_path / "a.json"), "--fail-if-easier"]) == 0
    out = capsys.readouterr().out
    assert "regression: B is easier to attack than A" in out
    saved = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert saved["regressed"] is True and len(saved["rows"]) == 6
    assert (tmp_path / "cmp" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    code = main(["compare", str(tmp_path / "a.json"), str(tmp_path / "missing.json")])
    assert code == 2 and "no audit result" in capsys.readouterr().err
