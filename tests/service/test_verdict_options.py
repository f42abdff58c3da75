"""A job's verdict thresholds (``audit.verdict``) reach the audit request the runner executes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from service.jobspec import audit_request
from service.schemas import JobCreate

DATASET_ID = "ds_" + "0" * 20


class OneDatasetStore:
    """Just enough of the job store for :func:`audit_request` (no checkpoints needed for a tiny-base audit)."""

    def get_checkpoint(self, checkpoint_id: str, owner: str | None) -> SimpleNamespace:
        raise AssertionError("no checkpoint expected")


def _body(**audit: object) -> JobCreate:
    return JobCreate.model_validate({"kind": "audit", "dataset_id": DATASET_ID, "preset": "smoke",
                                     "audit": {"baselines": ["random"], "tiny_base": True, **audit}})


def test_verdict_options_override_the_default_policy(tmp_path: Path) -> None:
    request = audit_request(_body(verdict={"delta_random": 0.2, "statistic": "ci", "competence_margin": 0.1}),
                            OneDatasetStore(), None, str(tmp_path / "d.parquet"))  # type: ignore[arg-type]
    assert request["verdict"] == {"delta_random": 0.2, "epsilon_beneficial": 0.05, "statistic": "ci",
                                  "min_data_cost_multiplier": None, "competence_margin": 0.1, "collapse_margin": 0.02}
    default = audit_request(_body(), OneDatasetStore(), None, str(tmp_path / "d.parquet"))  # type: ignore[arg-type]
    assert default["verdict"]["delta_random"] == 0.05


@pytest.mark.parametrize("verdict", [{"delta_random": 1.5}, {"statistic": "median"}, {"delta": 0.1},
                                     {"min_data_cost_multiplier": 0}])
def test_bad_verdict_options_are_refused(verdict: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        _body(verdict=verdict)
