"""Ray trial task names say whose trial it is (job, study, attack kind): concurrent audits tell apart in the dashboard."""

from __future__ import annotations

from workers.executor import trial_task_name


def test_trial_task_names_carry_the_job_the_study_and_the_kind() -> None:
    spec = {"task": "harmful", "n": 20, "tag": {"model": "censored", "task": "harmful", "n": 20, "seed": 3},
            "params": {"kind": "lora"}}
    assert trial_task_name("job_0123", spec) == "mlac-trial job_0123 censored/harmful/n20/s3 lora"
    other = trial_task_name("job_4567", spec)
    assert other != trial_task_name("job_0123", spec) and other.startswith("mlac-trial ")
    assert trial_task_name(None, {"task": "beneficial", "n": 50}) == "mlac-trial ?/beneficial/n50/s?"
