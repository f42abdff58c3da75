"""One worker process serves many jobs: its caches must tell apart checkpoints that share only their weights."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import torch

from mlac.audit.trial import TrialSpec, WorkerContext, run_trial

CPU = torch.device("cpu")


def _copy(src: Path, dst: Path, file: str, edit: dict) -> Path:
    """A copy of the checkpoint ``src`` (same weights) with ``edit`` merged into its JSON ``file``."""
    shutil.copytree(src, dst)
    data = json.loads((dst / file).read_text(encoding="utf-8"))
    for key, value in edit.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    (dst / file).write_text(json.dumps(data), encoding="utf-8")
    return dst


def _probe(ckpt: Path, dataset: Path) -> TrialSpec:
    return TrialSpec(checkpoint=str(ckpt), dataset=str(dataset), task="harmful", n=40, subset_seed=0,
                     params={"kind": "probe", "lr": 5e-3, "steps": 20, "batch_size": 20}, trial_seed=0, eval_every=10,
                     selection_max=80, report_max=80, device="cpu")


def test_same_weights_other_pooling_never_reuse_cached_features(tiny_checkpoint: Path, audit_dataset: Path,
                                                              tmp_path: Path) -> None:
    torch.set_num_threads(1)
    cls = _copy(tiny_checkpoint, tmp_path / "cls", "config.json", {"mlac": {"pooling": "cls"}})
    shared, alone = WorkerContext(), WorkerContext()
    assert run_trial(_probe(tiny_checkpoint, audit_dataset).to_dict(), shared).ok
    second = run_trial(_probe(cls, audit_dataset).to_dict(), shared)  # same process, same weights, other pooling
    want = run_trial(_probe(cls, audit_dataset).to_dict(), alone)
    assert replace(second, wall_s=0.0) == replace(want, wall_s=0.0)
    assert shared.features.hits == 0 and shared.features.misses == 2 * alone.features.misses  # computed, not reused
    a, b = shared.model(str(tiny_checkpoint), CPU), shared.model(str(cls), CPU)
    assert a.sha256 == b.sha256 and shared.model_key(a) != shared.model_key(b)


def test_same_weights_other_tokenizer_never_reuse_cached_encodings(tiny_checkpoint: Path, audit_dataset: Path,
                                                                 tmp_path: Path) -> None:
    cased = _copy(tiny_checkpoint, tmp_path / "cased", "tokenizer_config.json", {"do_lower_case": False})
    shared, alone = WorkerContext(), WorkerContext()
    first = shared.encoded(_probe(tiny_checkpoint, audit_dataset), shared.model(str(tiny_checkpoint), CPU), "selection")[0]
    got = shared.encoded(_probe(cased, audit_dataset), shared.model(str(cased), CPU), "selection")[0]
    want = alone.encoded(_probe(cased, audit_dataset), alone.model(str(cased), CPU), "selection")[0]
    assert [list(x) for x in got.ids] == [list(x) for x in want.ids] != [list(x) for x in first.ids]
