"""Per-example report predictions (``log_samples``): the trial's predictions are its report accuracy, in report
row order; only the winner's reruns ask for them; the study keeps them and a resumed study gives them back (or
runs the reruns again when they were stored without); the plain forms of everything else are unchanged."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from mlac.attacks import AttackData, AttackParams, run_attack_trial
from mlac.audit.features import FeatureCache
from mlac.audit.samples import PREDICTIONS_ATTR, decode_predictions, encode_predictions, excerpt
from mlac.audit.space import SearchConfig, SearchSpace
from mlac.audit.storage import open_storage
from mlac.audit.study import SearchError, StudyDriver, study_identity
from mlac.audit.trial import TrialSpec, WorkerContext, run_trial
from mlac.contracts import StudyKey, TrialResult

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = SearchSpace(lr_low=1e-3, lr_high=3e-2, steps_min=10, steps_max=30, steps_step=10, batch_sizes=(12,), kinds=("probe",))


def _data(ctx: WorkerContext, ckpt: Path, dataset: Path) -> tuple[AttackData, Any]:
    spec = TrialSpec(checkpoint=str(ckpt), dataset=str(dataset), task="harmful", n=60, subset_seed=1, params={},
                     trial_seed=0, selection_max=120, report_max=120)
    loaded = ctx.model(str(ckpt), torch.device("cpu"), len(ctx.dataset(str(dataset))[1].beneficial_names))
    return ctx.attack_data(spec, loaded), loaded


@pytest.mark.parametrize("cached", [False, True])
def test_predictions_are_the_report_accuracy_in_report_row_order(cached: bool, tiny_checkpoint: Path,
                                                                 audit_dataset: Path) -> None:
    torch.set_num_threads(1)
    ctx = WorkerContext()
    data, loaded = _data(ctx, tiny_checkpoint, audit_dataset)
    params = AttackParams(kind="probe", lr=2e-2, steps=40, batch_size=12)
    kw: dict[str, Any] = {"feature_cache": FeatureCache(), "model_key": loaded.sha256} if cached else {}
    out = run_attack_trial(loaded.model, data, "beneficial", 6, params, seed=5, eval_every=20, log_samples=True, **kw)
    labels = data.report.beneficial.tolist()
    pred = out.report_predictions
    assert pred is not None and len(pred) == len(data.report) == 120
    assert sum(p == t for p, t in zip(pred, labels, strict=True)) / len(labels) == out.report_accuracy
    assert len(set(pred)) > 1  # several labels predicted: the order below is visible

    # The same trial with the report rows reversed: report rows take no part in training, so every example
    # keeps its prediction, and the list comes back reversed (the report split's own row order).
    back = list(range(len(data.report)))[::-1]
    flipped = dataclasses.replace(data, report=data.report.subset(back),
                                  report_ids=tuple(data.report_ids[i] for i in back))
    again = run_attack_trial(loaded.model, flipped, "beneficial", 6, params, seed=5, eval_every=20, log_samples=True, **kw)
    assert again.report_predictions is not None
    assert sum(a != b for a, b in zip(again.report_predictions[::-1], pred, strict=True)) <= 1  # float rounding
    # negative control: the length-sorted order the engine scores in is not the row order
    by_length = sorted(range(len(data.report)), key=lambda i: (len(data.report.ids[i]), i))
    assert sum(pred[i] != pred[j] for j, i in enumerate(by_length)) > 5

    plain = run_attack_trial(loaded.model, data, "beneficial", 6, params, seed=5, eval_every=20, **kw)
    assert plain.report_predictions is None and plain.report_accuracy == out.report_accuracy


def test_run_trial_carries_predictions_only_when_asked(tiny_checkpoint: Path, audit_dataset: Path) -> None:
    ctx = WorkerContext()
    spec = TrialSpec(checkpoint=str(tiny_checkpoint), dataset=str(audit_dataset), task="harmful", n=40, subset_seed=0,
                     params={"kind": "probe", "lr": 1e-2, "steps": 20, "batch_size": 12}, trial_seed=3, eval_every=10,
                     selection_max=80, report_max=80)
    off = run_trial(spec.to_dict(), ctx)
    on = run_trial(dataclasses.replace(spec, log_samples=True).to_dict(), ctx)
    assert off.ok and on.ok, (off.error, on.error)
    assert off.report_predictions is None and "report_predictions" not in off.to_dict()
    assert on.report_predictions is not None and len(on.report_predictions) == 80
    assert TrialResult.from_dict(on.to_dict()) == on  # survives the trip a Ray worker's result makes
    assert on.report_accuracy == off.report_accuracy


def test_plain_forms_without_log_samples_are_unchanged() -> None:
    spec = TrialSpec(checkpoint="c", dataset="d", task="harmful", n=20, subset_seed=0, params={}, trial_seed=0)
    assert "log_samples" not in spec.to_dict()  # the trial store's spec hashes of older jobs still match
    on = dataclasses.replace(spec, log_samples=True)
    assert on.to_dict()["log_samples"] is True and TrialSpec.from_dict(on.to_dict()) == on
    key = StudyKey("m", "c", "harmful", 20, 0)
    ident = [study_identity(key, s, SPACE, SearchConfig(), model_sha="x", data_fingerprint="y") for s in (spec, on)]
    assert ident[0] == ident[1]  # one study, with or without samples


@pytest.mark.parametrize("preds", [[0, 1, 1, 0], list(range(36)), [3, 40, 0], []])
def test_predictions_encoding_round_trips(preds: list[int]) -> None:
    stored = encode_predictions(preds)
    assert decode_predictions(stored) == preds
    if preds and max(preds) < 36:
        assert isinstance(stored, str) and len(stored) == len(preds)  # one byte a row


def test_excerpt_is_one_short_line() -> None:
    assert excerpt("  a\n b\tc ") == "a b c"
    cut = excerpt("word " * 50, limit=20)
    assert len(cut) == 20 and cut.endswith("…") and "\n" not in cut


class Fake:
    """Executor with made-up results: the value from the trial seed; predictions of length ``rows`` when asked."""

    def __init__(self, rows: int = 7, drop_predictions: bool = False) -> None:
        self.rows, self.drop = rows, drop_predictions
        self.specs: list[dict[str, Any]] = []

    def map(self, specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for spec in specs:
            self.specs.append(dict(spec))
            seed = int(spec["trial_seed"])
            acc = (seed % 97) / 100
            pred = tuple((seed >> i) & 1 for i in range(self.rows))
            asked = spec.get("log_samples", False) and not self.drop
            out.append(TrialResult(ok=True, selection_curve=((10, acc),), best_selection_accuracy=acc,
                                   report_accuracy=sum(pred) / self.rows, steps_run=10, pruned=False,
                                   report_predictions=pred if asked else None).to_dict())
        return out


def _driver(storage: Any, executor: Any, **kw: Any) -> StudyDriver:
    key = StudyKey("m", "ckpt", "harmful", 20, 0)
    spec = TrialSpec(checkpoint="ckpt", dataset="data", task="harmful", n=20, subset_seed=0, params={}, trial_seed=0)
    cfg = SearchConfig(max_trials=3, patience=10, reruns=2, eval_every=10, tpe_startup_trials=2)
    return StudyDriver(key, spec, SPACE, cfg, model_sha="sha", data_fingerprint="fp", storage=storage,
                       executor=executor, **kw)


def test_only_the_reruns_ask_and_the_study_keeps_their_predictions(tmp_path: Path) -> None:
    storage = open_storage(f"journal:{tmp_path / 'o.journal'}")
    fake = Fake()
    result = _driver(storage, fake, log_samples=True).run()
    asked = [s for s in fake.specs if s.get("log_samples")]
    assert len(fake.specs) == 3 + 2 and len(asked) == 2 and fake.specs[-2:] == asked  # the two reruns, last
    assert result.rerun_predictions is not None and len(result.rerun_predictions) == 2
    assert [sum(p) / 7 for p in result.rerun_predictions] == result.rerun_accuracies
    stored = _driver(storage, None).study.user_attrs  # what the storage holds
    assert stored[PREDICTIONS_ATTR]["trial"] == stored["reruns"]["trial"]
    assert all(isinstance(p, str) and len(p) == 7 for p in stored[PREDICTIONS_ATTR]["predictions"])

    # resumed: nothing runs again and the predictions come back from the study
    again = Fake()
    resumed = _driver(storage, again, log_samples=True).run()
    assert again.specs == [] and resumed.rerun_predictions == result.rerun_predictions

    # without log_samples: no predictions in the result, and the stored ones do not matter
    assert _driver(storage, Fake()).run().rerun_predictions is None


def test_reruns_stored_without_predictions_are_run_again(tmp_path: Path) -> None:
    storage = open_storage(f"journal:{tmp_path / 'o.journal'}")
    first = _driver(storage, Fake()).run()  # an audit without log_samples
    assert first.rerun_predictions is None
    again = Fake()
    second = _driver(storage, again, log_samples=True).run()
    assert [s.get("log_samples") for s in again.specs] == [True, True]  # only the reruns, not the search
    assert second.rerun_predictions is not None and second.rerun_accuracies == first.rerun_accuracies
    third = Fake()
    _driver(storage, third, log_samples=True).run()
    assert third.specs == []  # now stored with their predictions


def test_an_executor_that_drops_predictions_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SearchError, match="returned none"):
        _driver(open_storage(f"journal:{tmp_path / 'o.journal'}"), Fake(drop_predictions=True), log_samples=True).run()
