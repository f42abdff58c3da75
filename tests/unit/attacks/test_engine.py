"""Attack trials: probe fast path == slow path, the model is never modified, report ids stay unseen."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mlac.attacks import AttackData, AttackParams, run_attack_trial
from mlac.audit.features import FeatureCache
from mlac.audit.trial import TrialSpec, WorkerContext, run_trial
from mlac.errors import ConfigError


def _data(ctx: WorkerContext, ckpt: Path, dataset: Path, n: int = 60) -> tuple[AttackData, object]:
    spec = TrialSpec(checkpoint=str(ckpt), dataset=str(dataset), task="harmful", n=n, subset_seed=1, params={},
                     trial_seed=0, selection_max=120, report_max=120)
    task = ctx.dataset(str(dataset))[1]
    loaded = ctx.model(str(ckpt), torch.device("cpu"), len(task.beneficial_names))
    return ctx.attack_data(spec, loaded), loaded


def test_probe_fast_path_equals_slow_path(tiny_checkpoint: Path, audit_dataset: Path) -> None:
    torch.set_num_threads(1)
    ctx = WorkerContext()
    data, loaded = _data(ctx, tiny_checkpoint, audit_dataset)
    params = AttackParams(kind="probe", lr=5e-3, steps=60, batch_size=12)
    for task, labels in (("harmful", 2), ("beneficial", 6)):
        slow = run_attack_trial(loaded.model, data, task, labels, params, seed=7, eval_every=20)
        cache = FeatureCache()
        fast = run_attack_trial(loaded.model, data, task, labels, params, seed=7, eval_every=20,
                                feature_cache=cache, model_key=loaded.sha256)
        assert cache.misses == 3
        tol = 1.0 / len(data.selection) + 1e-9  # at most one example may flip on float rounding
        assert [s for s, _ in fast.selection_curve] == [s for s, _ in slow.selection_curve] == [20, 40, 60]
        for (_, a), (_, b) in zip(fast.selection_curve, slow.selection_curve, strict=True):
            assert abs(a - b) <= tol
        assert fast.report_accuracy is not None and slow.report_accuracy is not None
        assert abs(fast.report_accuracy - slow.report_accuracy) <= 1.0 / len(data.report) + 1e-9
        assert fast.flops == pytest.approx(slow.flops)
    # The second trial on the same model reuses the cached features.
    run_attack_trial(loaded.model, data, "harmful", 2, params, seed=8, eval_every=20, feature_cache=cache, model_key=loaded.sha256)
    assert cache.misses == 3 and cache.hits >= 3


@pytest.mark.parametrize("kind", ["full", "lora", "probe", "reinit"])
def test_attack_leaves_model_untouched_and_is_deterministic(kind: str, tiny_checkpoint: Path, audit_dataset: Path) -> None:
    torch.set_num_threads(1)
    ctx = WorkerContext()
    data, loaded = _data(ctx, tiny_checkpoint, audit_dataset, n=30)
    before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    params = AttackParams(kind=kind, lr=1e-3, steps=10, batch_size=12, optimizer="adamw", schedule="warmup_linear")
    first = run_attack_trial(loaded.model, data, "harmful", 2, params, seed=3, eval_every=5)
    second = run_attack_trial(loaded.model, data, "harmful", 2, params, seed=3, eval_every=5)
    after = loaded.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in loaded.model.parameters())  # no gradient reached the shared model
    assert first.selection_curve == second.selection_curve
    assert first.report_accuracy == second.report_accuracy
    assert first.steps_run == 10 and first.flops > 0


def test_report_ids_never_reach_training_or_selection(tiny_checkpoint: Path, audit_dataset: Path) -> None:
    ctx = WorkerContext()
    seen_train: set[str] = set()
    for n, subset_seed in ((20, 0), (100, 1), (200, 2)):
        for kind in ("probe", "full"):
            spec = TrialSpec(checkpoint=str(tiny_checkpoint), dataset=str(audit_dataset), task="harmful", n=n,
                             subset_seed=subset_seed, params={"kind": kind, "lr": 1e-3, "steps": 8, "batch_size": 24},
                             trial_seed=n, eval_every=4, record_ids=True)
            out = run_trial(spec.to_dict(), ctx)
            assert out.ok, out.error
            ids = out.seen_ids
            train, selection, report = set(ids["train"]), set(ids["selection"]), set(ids["report"])
            assert train and selection and report
            assert not report & train and not report & selection and not train & selection
            assert train <= set(ctx.attack_data(TrialSpec.from_dict(spec.to_dict()), ctx.model(str(tiny_checkpoint), torch.device("cpu"))).train_ids)
            seen_train |= train
    splits = ctx.splits(str(audit_dataset), 0)
    assert not seen_train & set(splits.report["id"])
    assert not seen_train & set(splits.selection["id"])


def test_trial_records_failures_instead_of_raising(tiny_checkpoint: Path, audit_dataset: Path) -> None:
    spec = TrialSpec(checkpoint=str(tiny_checkpoint), dataset=str(audit_dataset), task="harmful", n=10_000,
                     subset_seed=0, params={"kind": "probe", "lr": 1e-3, "steps": 5, "batch_size": 4}, trial_seed=0)
    out = run_trial(spec.to_dict(), WorkerContext())
    assert not out.ok and out.user_error and "larger than the attack pool" in str(out.error)


def test_bad_attack_params() -> None:
    for bad in ({"kind": "adapter"}, {"optimizer": "lbfgs"}, {"lr": 0.0}, {"steps": 0}, {"schedule": "cosine"}):
        with pytest.raises(ConfigError):
            AttackParams(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown attack parameters"):
        AttackParams.from_dict({"kind": "probe", "learning_rate": 1.0})


def test_full_attack_on_a_non_bert_trunk_uses_micro_batches(tiny_checkpoint: Path, audit_dataset: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A trunk the packed forward does not cover (DistilBERT) trains on length-sorted micro-batches, and the
    trial stays deterministic and leaves the model untouched."""
    from transformers import AutoModel, DistilBertConfig

    import mlac.attacks.engine as attacks
    from mlac.models import EncoderClassifier

    torch.set_num_threads(1)
    data, _ = _data(WorkerContext(), tiny_checkpoint, audit_dataset, n=60)
    torch.manual_seed(0)
    trunk = AutoModel.from_config(DistilBertConfig(dim=32, n_layers=1, n_heads=2, hidden_dim=64))
    model = EncoderClassifier(trunk, num_beneficial=6)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cuts: list[int] = []
    original = attacks.length_micro_batches

    def spy(lengths: list[int]) -> list[list[int]]:
        parts = original(lengths)
        cuts.append(len(parts))
        return parts

    monkeypatch.setattr(attacks, "length_micro_batches", spy)
    params = AttackParams(kind="full", lr=1e-3, steps=6, batch_size=48)
    first = run_attack_trial(model, data, "harmful", 2, params, seed=2, eval_every=3)
    second = run_attack_trial(model, data, "harmful", 2, params, seed=2, eval_every=3)
    assert first.selection_curve == second.selection_curve and first.report_accuracy == second.report_accuracy
    assert len(cuts) == 12 and 2 in cuts  # every step went through it, and some steps were cut in two
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
