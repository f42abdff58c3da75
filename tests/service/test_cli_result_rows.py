"""``mlac-audit result`` prints each curve with its t-interval, "insufficient" for one seed (also for schema 1.0
rows, which stored a zero-width interval), the chance rate and the attack-failed flag."""

from __future__ import annotations

from service.cli import CURVE_HEADER, curve_row


def test_curve_rows_show_t_interval_chance_and_flags() -> None:
    assert CURVE_HEADER.split()[3:7] == ["mean", "t_low", "t_high", "chance"]
    two = {"model": "m", "task": "harmful", "n": 20, "mean": 0.49, "per_seed": [0.48, 0.5],
           "ci_t": [0.36, 0.62], "ci_bootstrap": [0.48, 0.5], "majority_rate": 0.5, "attack_failed": True}
    assert curve_row(two).split()[3:] == ["0.490", "0.360", "0.620", "0.500", "attack", "failed", "(<=", "chance)"]
    one = {**two, "per_seed": [0.7], "mean": 0.7, "ci_t": None, "ci_bootstrap": None, "attack_failed": False}
    assert curve_row(one).split()[3:] == ["0.700", "-", "-", "0.500", "insufficient", "(1", "seed)"]
    old = {"model": "m", "task": "harmful", "n": 20, "mean": 0.7, "per_seed": [0.7], "ci_t": [0.7, 0.7],
           "ci_bootstrap": [0.7, 0.7]}  # schema 1.0: no chance rate, a zero-width interval for one seed
    assert curve_row(old).split()[3:] == ["0.700", "-", "-", "-", "insufficient", "(1", "seed)"]
