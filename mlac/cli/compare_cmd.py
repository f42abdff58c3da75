"""``mlac-audit compare A B``: paired comparison of two finished audits (or two models of one audit).

``A`` and ``B`` are audit folders (or their ``result.json``). Prints one statement per task and the table of
paired differences; ``--out`` writes comparison.json, comparison.png and comparison.html. With
``--fail-if-easier`` the exit status is a regression gate: 1 when B is significantly easier to attack than A on
the harmful task at some n, else 0.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

EPILOG = """examples:
  mlac-audit compare runs/before runs/after                     # the audited model of each
  mlac-audit compare runs/audit runs/audit --model-a base --model-b censored
  mlac-audit compare runs/v1 runs/v2 --out cmp --fail-if-easier  # exit 1 on a regression
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``compare`` command."""
    cmd = sub.add_parser("compare", help="compare two audits: per task and n, B - A paired by seed, with intervals",
                         description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmd.add_argument("a", type=Path, help="audit A: an audit folder or its result.json")
    cmd.add_argument("b", type=Path, help="audit B: an audit folder or its result.json (may be A itself)")
    cmd.add_argument("--model-a", default=None, help="model label in A (default: A's only audited model)")
    cmd.add_argument("--model-b", default=None, help="model label in B (default: B's only audited model)")
    cmd.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm adjustment (default 0.05)")
    cmd.add_argument("--out", type=Path, default=None, help="write comparison.json, comparison.png and comparison.html here")
    cmd.add_argument("--json", action="store_true", help="print the comparison as JSON instead of a table")
    cmd.add_argument("--fail-if-easier", action="store_true",
                     help="exit 1 when B is significantly easier to attack than A on the harmful task at some n")
    cmd.set_defaults(func=_compare)


def _result_path(path: Path) -> Path:
    return path / "result.json" if path.is_dir() else path


def _table(comparison: Any) -> str:
    lines = [f"{'task':<11}{'n':>6}{'A':>8}{'B':>8}{'B - A':>9}  {'interval':<19}{'p (Holm)':>9}  finding"]
    for r in comparison.rows:
        ci = "insufficient" if r.ci is None else f"[{r.ci[0]:+.3f}, {r.ci[1]:+.3f}]"
        p = "-" if r.p_holm is None else f"{r.p_holm:.3f}"
        lines.append(f"{r.task:<11}{r.n:>6}{r.mean_a:>8.3f}{r.mean_b:>8.3f}{r.difference:>+9.3f}  {ci:<19}{p:>9}  {r.reads()}")
    return "\n".join(lines)


def _compare(args: argparse.Namespace) -> int:
    from mlac.audit.compare import compare
    from mlac.audit.result_schema import AuditResult

    path_a, path_b = _result_path(args.a), _result_path(args.b)
    a = AuditResult.read(path_a)
    b = a if path_a.resolve() == path_b.resolve() else AuditResult.read(path_b)
    comparison = compare(a, b, model_a=args.model_a, model_b=args.model_b, alpha=args.alpha)
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2, sort_keys=True))
    else:
        print(f"A = {comparison.a.model} ({args.a}), B = {comparison.b.model} ({args.b})")
        for statement in comparison.statements:
            print(statement)
        print(_table(comparison))
        for note in comparison.differences:
            print(f"note: {note}")
    if args.out is not None:
        from mlac.audit.compare_report import write_comparison

        paths = write_comparison(comparison, args.out)
        if not args.json:
            print(f"wrote {paths['html']}")
    if args.fail_if_easier and comparison.regressed:
        print("regression: B is easier to attack than A (exit 1)")
        return 1
    return 0
