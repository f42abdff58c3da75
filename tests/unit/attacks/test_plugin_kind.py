"""A kind registered by this test module runs through a real search untouched: one file, one registration."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import optuna
import torch

from mlac.attacks import AttackParams, AttackSetup, register_attack, unregister_attack
from mlac.attacks.reinit import encoder_layers
from mlac.attacks.weights import reparametrized, trainable_clones
from mlac.audit.scheduling import InProcessExecutor
from mlac.audit.space import SearchConfig, SearchSpace
from mlac.audit.study import StudyDriver
from mlac.audit.trial import TrialSpec, WorkerContext
from mlac.contracts import StudyKey
from mlac.models import EncoderClassifier
from mlac.models.packed import supports_packed

optuna.logging.set_verbosity(optuna.logging.WARNING)


class LastLayerOnly:
    """Fine-tune only the top encoder layer (and the head); records what each trial trained."""

    def __init__(self) -> None:
        self.trained: list[dict[str, torch.Tensor]] = []

    def setup(self, model: EncoderClassifier, params: AttackParams, seed: int) -> AttackSetup:
        name, layers = encoder_layers(model.trunk)
        tensors = trainable_clones(layers[len(layers) - 1], f"trunk.{name}.{len(layers) - 1}.")
        self.trained.append(tensors)
        return AttackSetup(trainable=tensors, applied=partial(reparametrized, model, tensors), trains_trunk=True,
                           packed=supports_packed(model.trunk))


def test_a_kind_registered_here_runs_through_a_search(tiny_checkpoint: Path, audit_dataset: Path) -> None:
    torch.set_num_threads(1)
    attack = LastLayerOnly()
    register_attack("last_layer", attack)
    try:
        space = SearchSpace(lr_low=1e-3, lr_high=3e-2, steps_min=4, steps_max=8, steps_step=4, batch_sizes=(12,),
                            kinds=("last_layer",))
        cfg = SearchConfig(max_trials=3, patience=100, reruns=1, eval_every=4, tpe_startup_trials=2)
        key = StudyKey("tiny", str(tiny_checkpoint), "harmful", 40, 0)
        spec = TrialSpec(checkpoint=str(tiny_checkpoint), dataset=str(audit_dataset), task="harmful", n=40,
                         subset_seed=0, params={}, trial_seed=0, eval_every=4, selection_max=60, report_max=60)
        executor = InProcessExecutor(WorkerContext())
        driver = StudyDriver(key, spec, space, cfg, model_sha="sha-test", data_fingerprint="data-test", storage=None,
                             executor=executor)
        result = driver.run()
    finally:
        unregister_attack("last_layer")
    assert result.best_params["kind"] == "last_layer"
    assert executor.executed == 4 and len(attack.trained) == 4  # 3 search trials + 1 rerun, each through the plug-in
    model = WorkerContext().model(str(tiny_checkpoint), torch.device("cpu")).model
    own = dict(model.named_parameters())
    for tensors in attack.trained:
        assert tensors and all(k.startswith("trunk.encoder.layer.1.") for k in tensors)  # only the top layer trained
        assert any(not torch.equal(v, own[k]) for k, v in tensors.items())  # and it did train
    assert all(t.state == optuna.trial.TrialState.COMPLETE or t.state == optuna.trial.TrialState.PRUNED
               for t in driver.study.trials)
