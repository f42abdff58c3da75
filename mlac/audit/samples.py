"""Per-example predictions of the report split (``log_samples``): what the attacker got right, row by row.

The reruns of each seed's winner are asked for the predicted label of every report-split row
(:attr:`~mlac.attacks.TrialOutcome.report_predictions`, in the report split's own row order); the study
driver keeps them in the study (:data:`PREDICTIONS_ATTR`, compactly: :func:`encode_predictions`) and this
module writes them out with the examples they belong to:

- ``samples.csv``: one row per (model, task, n, seed, rerun, example): the example id, a short excerpt of its
  text, the true and the predicted label (names) and ``correct`` (0/1). The mean of ``correct`` over one
  rerun's rows is that rerun's report accuracy.
- ``samples_summary.csv``: one row per (model, task, n, example): over every seed and rerun, how many runs
  scored it, how many got it right, the fraction, and the label predicted most often.

The report split is rebuilt here exactly as a worker builds it (:func:`~mlac.audit.trial.capped_split` of the
split with the request's ``report_max`` and ``split_seed``), so row ``i`` of the predictions is row ``i`` here.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlac.errors import DataError

if TYPE_CHECKING:
    from mlac.audit.protocol import AuditRequest
    from mlac.audit.study import StudyResult

#: Study user attribute: the reruns' predictions, ``{"trial": best trial number, "predictions": [encoded, ...]}``.
PREDICTIONS_ATTR = "rerun_predictions"
SAMPLES_FILE, SUMMARY_FILE = "samples.csv", "samples_summary.csv"
SAMPLE_COLUMNS = ("model", "task", "n", "seed", "rerun", "example_id", "text", "true_label", "predicted_label", "correct")
SUMMARY_COLUMNS = ("model", "task", "n", "example_id", "text", "true_label", "runs", "correct", "accuracy",
                   "most_predicted")
#: Characters of the text excerpt in both files.
EXCERPT_CHARS = 80
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def encode_predictions(predictions: Sequence[int]) -> str | list[int]:
    """One rerun's predictions as stored in the study: a string of one base-36 digit per row when every label is
    below 36 (1 byte a row: 1000 rows x 15 reruns is 15 kB per study), else the list of ints."""
    values = [int(p) for p in predictions]
    if all(0 <= p < len(_DIGITS) for p in values):
        return "".join(_DIGITS[p] for p in values)
    return values


def decode_predictions(stored: str | Sequence[int]) -> list[int]:
    """Inverse of :func:`encode_predictions`."""
    if isinstance(stored, str):
        return [_DIGITS.index(c) for c in stored]
    return [int(p) for p in stored]


@dataclass(frozen=True)
class ReportExamples:
    """The report split's rows as trials score them: ids, text excerpts, labels and label names per task."""

    ids: tuple[str, ...]
    texts: tuple[str, ...]
    labels: dict[str, tuple[int, ...]]
    names: dict[str, tuple[str, ...]]

    def label_name(self, task: str, label: int) -> str:
        """The name of ``label`` of ``task`` (its number when the dataset names no such label)."""
        names = self.names.get(task, ())
        return names[label] if 0 <= label < len(names) else str(label)


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` on one line (whitespace collapsed), cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def report_examples(request: AuditRequest) -> ReportExamples:
    """The request's report split, capped as the trials cap it."""
    from mlac.audit.trial import capped_split
    from mlac.data import load_saved_dataset, make_splits

    ds, task = load_saved_dataset(request.dataset)
    report = capped_split(make_splits(ds, request.split_seed).report, request.report_max, request.split_seed)
    return ReportExamples(
        ids=tuple(str(i) for i in report["id"]), texts=tuple(excerpt(t) for t in report[task.text_field]),
        labels={t: tuple(int(v) for v in report[task.label_column(t)]) for t in ("harmful", "beneficial")},
        names={"harmful": tuple(task.harmful_names), "beneficial": tuple(task.beneficial_names)},
    )


def _checked(result: StudyResult, examples: ReportExamples) -> list[list[int]]:
    runs = result.rerun_predictions
    if runs is None:
        raise DataError(f"study {result.key.label()} has no per-example predictions (it ran without log_samples)")
    for i, run in enumerate(runs):
        if len(run) != len(examples.ids):
            raise DataError(f"study {result.key.label()}, rerun {i}: {len(run)} predictions for a report split of "
                            f"{len(examples.ids)} rows", code="samples_mismatch")
    return runs


def sample_rows(results: Iterable[StudyResult], examples: ReportExamples) -> Iterator[tuple[Any, ...]]:
    """Rows of ``samples.csv`` (:data:`SAMPLE_COLUMNS`), study by study, rerun by rerun, in report row order."""
    for result in results:
        key = result.key
        truth = examples.labels[key.task]
        for rerun, run in enumerate(_checked(result, examples)):
            for i, pred in enumerate(run):
                yield (key.model, key.task, key.n, key.seed, rerun, examples.ids[i], examples.texts[i],
                       examples.label_name(key.task, truth[i]), examples.label_name(key.task, pred), int(pred == truth[i]))


def summary_rows(results: Iterable[StudyResult], examples: ReportExamples) -> Iterator[tuple[Any, ...]]:
    """Rows of ``samples_summary.csv`` (:data:`SUMMARY_COLUMNS`): per (model, task, n), every report row over all
    seeds and reruns; the most predicted label breaks ties by the smaller label."""
    groups: dict[tuple[str, str, int], list[list[int]]] = {}
    for result in results:
        groups.setdefault((result.key.model, result.key.task, result.key.n), []).extend(_checked(result, examples))
    for (model, task, n), runs in groups.items():
        truth = examples.labels[task]
        for i in range(len(examples.ids)):
            preds = Counter(run[i] for run in runs)
            right = preds.get(truth[i], 0)
            top = min(preds.items(), key=lambda kv: (-kv[1], kv[0]))[0]
            yield (model, task, n, examples.ids[i], examples.texts[i], examples.label_name(task, truth[i]), len(runs),
                   right, right / len(runs), examples.label_name(task, top))


def _write(path: Path, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    tmp.replace(path)  # a reader never sees half a file
    return path


def write_samples(request: AuditRequest, results: Sequence[StudyResult], out_dir: str | Path) -> dict[str, Path]:
    """Write ``samples.csv`` and ``samples_summary.csv`` into ``out_dir``; return their paths."""
    examples = report_examples(request)
    out = Path(out_dir)
    return {"samples": _write(out / SAMPLES_FILE, SAMPLE_COLUMNS, sample_rows(results, examples)),
            "samples_summary": _write(out / SUMMARY_FILE, SUMMARY_COLUMNS, summary_rows(results, examples))}


def remove_samples(out_dir: str | Path) -> list[Path]:
    """Delete the sample files a former run left in ``out_dir`` (they would not describe this run); return them."""
    gone = []
    for name in (SAMPLES_FILE, SUMMARY_FILE):
        path = Path(out_dir) / name
        if path.is_file():
            path.unlink()
            gone.append(path)
    return gone
