"""An audit's numbers as CSV, for spreadsheets and papers: curves, seed points and the trial-by-trial history.

- ``curves``: one row per (model, task, n): mean over seeds, the t-interval the verdict uses, the bootstrap
  interval, the chance rate and whether the attack failed there.
- ``seed_points``: one row per (model, task, n, seed): the winner's report and selection accuracy, its re-runs,
  its hyperparameters (as JSON) and what the attacker spent.
- ``trials``: one row per trial of every search: the cumulative compute and the best accuracies so far (the
  attack-budget curves' data).

Values are written as Python prints them (``repr`` of floats: exact round trip); missing values are empty.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mlac.audit.result_schema import AuditResult
from mlac.errors import ConfigError

CURVE_COLUMNS = ("model", "task", "n", "seeds", "mean", "ci_t_lo", "ci_t_hi", "ci_bootstrap_lo", "ci_bootstrap_hi",
                 "chance", "attack_failed", "selection_mean", "trials_run", "failed_trials", "attacker_wall_s",
                 "attacker_flops")
SEED_COLUMNS = ("model", "task", "n", "seed", "report_accuracy", "selection_accuracy", "rerun_accuracies", "majority_rate",
                "trials_run", "failed_trials", "attacker_wall_s", "attacker_flops", "best_params")
TRIAL_COLUMNS = ("model", "task", "n", "seed", "trial", "wall_s_cum", "flops_cum", "best_report_acc_so_far",
                 "best_selection_acc_so_far")


def _ends(interval: Any) -> tuple[Any, Any]:
    return (interval[0], interval[1]) if interval is not None else (None, None)


def curve_rows(result: AuditResult) -> Iterable[tuple[Any, ...]]:
    """Rows of the ``curves`` table."""
    for c in result.curves:
        yield (c.model, c.task, c.n, len(c.per_seed), c.mean, *_ends(c.ci_t), *_ends(c.ci_bootstrap), c.majority_rate,
               c.attack_failed, c.selection_mean, c.trials_run, c.failed_trials, c.attacker_wall_s, c.attacker_flops)


def seed_rows(result: AuditResult) -> Iterable[tuple[Any, ...]]:
    """Rows of the ``seed_points`` table."""
    for p in result.seed_points:
        yield (p.model, p.task, p.n, p.seed, p.report_accuracy, p.selection_accuracy, json.dumps(p.rerun_accuracies),
               p.majority_rate, p.trials_run, p.failed_trials, p.attacker_wall_s, p.attacker_flops,
               json.dumps(p.best_params, sort_keys=True))


def trial_rows(result: AuditResult) -> Iterable[tuple[Any, ...]]:
    """Rows of the ``trials`` table."""
    for p in result.seed_points:
        for row in sorted(p.trial_history, key=lambda r: int(r.get("trial", 0))):
            yield (p.model, p.task, p.n, p.seed, *(row.get(k) for k in TRIAL_COLUMNS[4:]))


#: table name -> (columns, rows)
TABLES: dict[str, tuple[tuple[str, ...], Callable[[AuditResult], Iterable[tuple[Any, ...]]]]] = {
    "curves": (CURVE_COLUMNS, curve_rows),
    "seed_points": (SEED_COLUMNS, seed_rows),
    "trials": (TRIAL_COLUMNS, trial_rows),
}


def _cell(value: Any) -> Any:
    return "" if value is None else value


def to_csv(result: AuditResult, table: str) -> str:
    """The CSV text of one table (ConfigError naming the tables for an unknown one)."""
    if table not in TABLES:
        raise ConfigError(f"unknown table {table!r}; choose from {', '.join(TABLES)}")
    columns, rows = TABLES[table]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(tuple(_cell(v) for v in row) for row in rows(result))
    return buf.getvalue()


def write_csvs(result: AuditResult, out_dir: str | Path, tables: Iterable[str] = tuple(TABLES)) -> dict[str, Path]:
    """Write ``<table>.csv`` for each of ``tables`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for table in tables:
        text = to_csv(result, table)
        paths[table] = out / f"{table}.csv"
        paths[table].write_text(text, encoding="utf-8")
    return paths
