"""ETA accuracy of the CLI's progress displays (issue 19 item 3): ``base``, ``censor`` and ``audit`` on ``quick``.

Each job runs once, in process, exactly as its command runs it (``mlac-audit base`` with the demo's 300 steps
at 64 tokens, ``mlac-audit censor`` with the ``quick`` preset's MLAC settings on that base, ``mlac-audit audit
--preset quick`` of the censored model against the ``random`` and ``base`` baselines), and every progress
event its command receives is recorded with its time. The ETA each command would have shown at 10%, 25% and
50% of the job's true wall time is then computed from the recording and compared with the true remaining time
(ratio ETA / true; the target is [0.5, 2] from 10% on):

* ``before``: what the code before issue 19 showed: ``base``'s log line (the latter-half rate,
  :func:`eta_before_base`), and for ``censor``/``audit`` the recording replayed into a ``rich.progress.Progress``
  with a fake clock and the same task totals, so that the number is the one rich's ``TimeRemainingColumn``
  rendered (rich freezes it between updates; 30 s speed window);
* ``rounds`` (audit only): ``AuditEta`` as of commit bfc24da (whole rounds left at the last round's cost,
  every search to its budget), kept as :class:`AuditEtaRounds`;
* ``after``: :mod:`mlac.progress_eta`, the estimators the commands now display (the same functions, fed the same
  events).

``--replay --jobs audit`` also reads any audit recording in this format, e.g. the
``eta_recording.json`` the replication v2 study writes beside each audit (copy it into
``{"meta": {}, "recordings": {"audit": ...}}``).

Run from the repository root (about 10 minutes on 2 cores)::

    .venv/bin/python benchmarks/bench_eta.py --out /tmp/bench_eta
    .venv/bin/python benchmarks/bench_eta.py --out /tmp/bench_eta --replay   # re-analyse the saved recording

Writes ``events.json`` (the recording) and ``bench_eta.json`` (the table) in ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FRACTIONS = (0.10, 0.25, 0.50)
#: A recorded job: ``t0``..``t1`` on the monotonic clock and its events as ``(t, payload)``.
Recording = dict[str, Any]


# ---------------------------------------------------------------- running and recording the jobs
def make_dataset(out: Path, n_bios: int = 3000) -> Path:
    """The demo's synthetic dataset (``mlac-audit data synth --n 3000 --seed 0``)."""
    from mlac.data import SynthConfig, generate_synthetic, save_dataset

    data = out / "bios.parquet"
    if not data.is_file():
        ds, task = generate_synthetic(SynthConfig(n_bios=n_bios, seed=0))
        save_dataset(ds, task, data)
    return data


def record_base(data: Path, out: Path, steps: int = 300) -> Recording:
    """``mlac-audit base --steps 300 --max-length 64`` (scripts/demo.sh): what :func:`build_tiny_base` runs, with
    each step's ``(t, step)`` recorded; the job's clock starts where the command's printer starts."""
    from mlac.data import load_saved_dataset, make_splits
    from mlac.data.encoded import encode_split
    from mlac.models import default_tokenizer, save_checkpoint
    from mlac.models.base_model import make_base_model

    ds, task = load_saved_dataset(data)
    splits = make_splits(ds, seed=0)
    tok = default_tokenizer()
    enc = encode_split(splits.train, tok, task, 64)
    events: list[tuple[float, dict[str, Any]]] = []
    t0 = time.monotonic()
    model = make_base_model(enc, tok, num_beneficial=task.num_labels("beneficial"), steps=steps, seed=0, device="cpu",
                            progress=lambda step, loss: events.append((time.monotonic(), {"step": step})))
    t1 = time.monotonic()
    save_checkpoint(model, tok, out / "base", {"kind": "tiny_base", "seed": 0, "steps": steps},
                    beneficial_names=task.beneficial_names)
    return {"t0": t0, "t1": t1, "total": steps, "events": events}


def record_censor(data: Path, out: Path) -> Recording:
    """``mlac-audit censor`` with the ``quick`` preset's MLAC settings (mlac.defenses.mlac_censor.PRESETS) on the
    base of :func:`record_base`: :func:`train_mlac`'s step and validation records, timed from where the
    command's progress bar starts (just before training) to the end of training."""
    from mlac.censor.config import MLACConfig
    from mlac.censor.train import train_mlac
    from mlac.data import load_saved_dataset, make_splits
    from mlac.defenses.mlac_censor import PRESETS
    from mlac.models import load_checkpoint

    ds, task = load_saved_dataset(data)
    splits = make_splits(ds, seed=0)
    config = MLACConfig.from_dict({**MLACConfig().to_dict(), **PRESETS["quick"], "device": "cpu"})
    base = load_checkpoint(out / "base", num_beneficial=task.num_labels("beneficial"), seed=0, device="cpu")
    events: list[tuple[float, dict[str, Any]]] = []

    def on_progress(rec: dict[str, Any]) -> None:
        events.append((time.monotonic(), {k: v for k, v in rec.items() if isinstance(v, (int, float, str, bool))}))

    t0 = time.monotonic()
    train_mlac(base.model, base.tokenizer, splits.train, task, config, out_dir=out / "censored", progress=on_progress,
               resume=False, parent_sha256=base.sha256, dataset_fingerprint=splits.fingerprints.get("train"),
               beneficial_names=task.beneficial_names)
    t1 = time.monotonic()
    return {"t0": t0, "t1": t1, "total": config.outer_steps, "val_every": config.val_every, "events": events}


def record_audit(data: Path, out: Path) -> Recording:
    """``mlac-audit audit --preset quick --model censored --base base --baselines random,base``: every progress
    event of :func:`run_audit`, timed from the call to its return (the command's bars cover all of it)."""
    import optuna

    from mlac.audit.overrides import build_audit_request
    from mlac.audit.protocol import plan_counts
    from mlac.audit.runner import run_audit

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    request = build_audit_request("quick", dataset=str(data), models=(str(out / "censored"),), base=str(out / "base"),
                                  baselines=("random", "base"), device="cpu")
    counts = plan_counts(request)
    events: list[tuple[float, dict[str, Any]]] = []
    t0 = time.monotonic()
    run_audit(request, out / "audit", progress=lambda e: events.append((time.monotonic(), dict(e))))
    t1 = time.monotonic()
    return {"t0": t0, "t1": t1, "studies": counts["studies"], "max_trials": counts["max_trials"],
            "max_trials_per_study": request.search.max_trials, "reruns": request.search.reruns,
            "patience": request.search.patience, "grid_trials": grid_trials(request), "events": events}


def grid_trials(request: Any) -> int:
    """Trials of the reference grid each search starts with (as the runner tells ``AuditEta``)."""
    from mlac.audit.space import reference_grid

    return min(len(reference_grid(request.space)), request.search.max_trials) if request.search.grid_start else 0


# ---------------------------------------------------------------- the ETA each version showed
def rel(rec: Recording) -> list[tuple[float, dict[str, Any]]]:
    """The events with times relative to the job's start."""
    return [(t - rec["t0"], e) for t, e in rec["events"]]


def eta_latter_half_dcaef25(seen: list[tuple[float, int]], total: int) -> float:
    """``base``'s estimator as of commit dcaef25 (kept here so that ``before`` stays what it was)."""
    now, step = seen[-1]
    earlier = [(t, k) for t, k in seen[:-1] if t <= now / 2] or seen[:1]
    t0, k0 = earlier[-1]
    if k0 >= step or now <= t0:
        return now * (total - step) / max(step, 1)
    return (total - step) * (now - t0) / (step - k0)


def printed_eta(rec: Recording, at: float, estimate: Callable[[list[tuple[float, int]], int], float],
                due: Callable[[float, float], bool]) -> float | None:
    """The ETA of ``base``'s last log line printed at or before ``at`` (when ``due(now, printed)``, and at the
    first and last step), less the time since it was printed (the line states its elapsed time)."""
    printed, shown = -5.0, None
    seen: list[tuple[float, int]] = []
    for t, e in rel(rec):
        if t > at:
            break
        seen.append((t, int(e["step"])))
        if e["step"] in (1, rec["total"]) or due(t, printed):
            printed = t
            shown = (t, estimate(seen, rec["total"]))
    return None if shown is None else max(0.0, shown[1] - (at - shown[0]))


def eta_before_base(rec: Recording, at: float) -> float | None:
    """``base`` before issue 19: the latter-half rate of commit dcaef25, in a line every 5 s."""
    return printed_eta(rec, at, eta_latter_half_dcaef25, lambda now, printed: now - printed >= 5.0)


class FakeClock:
    """A settable clock for ``Progress(get_time=...)``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def rich_replay(rec: Recording, at: float, total: float, completed_of: Callable[[dict[str, Any]], float | None]
                ) -> float | None:
    """What rich's ``TimeRemainingColumn`` showed at ``at`` for a task of ``total`` (added at the job's start, as
    the commands do) updated with ``completed_of(event)`` for each event (None: no update of that task)."""
    from rich.console import Console
    from rich.progress import Progress, TimeRemainingColumn

    clock = FakeClock()
    progress = Progress(TimeRemainingColumn(), get_time=clock, console=Console(file=open(os.devnull, "w")),  # noqa: SIM115
                        auto_refresh=False, disable=True)
    task = progress.add_task("job", total=total)
    for t, e in rel(rec):
        if t > at:
            break
        done = completed_of(e)
        if done is not None:
            clock.now = t
            progress.update(task, completed=done)
    clock.now = at
    remaining = progress.tasks[0].time_remaining
    return None if remaining is None else float(remaining)


def eta_before_censor(rec: Recording, at: float) -> float | None:
    """``censor`` before issue 19: rich's ETA of the ``MLAC`` bar (total = outer steps, completed = step)."""
    return rich_replay(rec, at, rec["total"], lambda e: float(e["step"]) if e.get("event") == "step" else None)


def eta_before_audit(rec: Recording, at: float) -> float | None:
    """``audit`` before issue 19: rich's ETA of the ``trials (at most)`` bar (total = the trial budget, completed =
    trials done; shown from the first search event on)."""
    if not any(e.get("stage") == "search" for t, e in rel(rec) if t <= at):
        return None
    return rich_replay(rec, at, rec["max_trials"],
                       lambda e: float(e.get("trials_done") or 0) if e.get("stage") == "search" else None)


def eta_after_base(rec: Recording, at: float) -> float | None:
    """``base`` now: :func:`mlac.progress_eta.eta_at` in the lines :func:`mlac.progress_eta.line_due` prints."""
    from mlac.progress_eta import eta_at, line_due

    return printed_eta(rec, at, eta_at, lambda now, printed: line_due(now, printed, 5.0))


def eta_after_censor(rec: Recording, at: float) -> float | None:
    """``censor`` now: :class:`mlac.progress_eta.CensorEta` fed the step and validation records, read at ``at``."""
    from mlac.progress_eta import CensorEta

    eta = CensorEta(rec["total"], rec["val_every"])
    for t, e in rel(rec):
        if t > at:
            break
        eta.observe(t, e)
    return eta.remaining(at)


class AuditEtaRounds:
    """``AuditEta`` as of commit bfc24da (kept here so that ``rounds`` stays what it was): the rounds left (the
    most trials a running search may take, plus its reruns) times the last finished round's cost."""

    def __init__(self, studies_total: int, max_trials: int, reruns: int) -> None:
        self.studies_total, self.max_trials, self.reruns = studies_total, max_trials, reruns
        self.start: float | None = None
        self.before: float | None = None
        self.trials: dict[int, int] = {}
        self.finished: set[int] = set()
        self.round, self.round_at, self.round_cost = 0, 0.0, 0.0
        self.trials_done, self.trial_at = 0, 0.0

    def observe(self, t: float, event: dict[str, Any]) -> None:
        if event.get("stage") != "search":
            if self.start is None:
                self.before = t
            return
        if self.start is None:
            self.start = self.before if self.before is not None else t
            self.round_at = self.start
        study, done = event.get("study"), event.get("trials_done")
        if not isinstance(study, int):
            return
        if isinstance(done, int) and done > self.trials_done:
            self.trials_done, self.trial_at = done, t
        if event.get("point") is not None:
            self.finished.add(study)
        elif event.get("trial") is not None:
            self.trials[study] = self.trials.get(study, 0) + 1
        running = [self.trials.get(s, 0) for s in range(self.studies_total) if s not in self.finished]
        reached = min(running) if running else self.round
        if reached > self.round:
            self.round_cost = (t - self.round_at) / (reached - self.round)
            self.round, self.round_at = reached, t

    def remaining(self, now: float) -> float | None:
        if self.start is None:
            return None
        running = [self.trials.get(s, 0) for s in range(self.studies_total) if s not in self.finished]
        if not running:
            return 0.0
        if self.round > 0:
            rounds = max(self.max_trials - min(k, self.max_trials) for k in running) + self.reruns
            current = max(0.0, now - self.round_at)
            return max(0.0, rounds * max(self.round_cost, current) - current)
        if self.trials_done > 0:
            per_trial = (self.trial_at - self.start) / self.trials_done
            bound = max(0.0, per_trial * (self.studies_total * self.max_trials - self.trials_done) - (now - self.trial_at))
            return bound if bound else None
        return None


def _replay_audit(eta: Any, rec: Recording, at: float) -> float | None:
    for t, e in rel(rec):
        if t > at:
            break
        eta.observe(t, e)
    return eta.remaining(at)  # type: ignore[no-any-return]


def eta_rounds_audit(rec: Recording, at: float) -> float | None:
    """``audit`` as of commit bfc24da: whole rounds left at the last round's cost (:class:`AuditEtaRounds`)."""
    from mlac.audit.presets import PRESETS

    reruns = rec.get("reruns", PRESETS["quick"]["search"].reruns)
    return _replay_audit(AuditEtaRounds(rec["studies"], rec["max_trials_per_study"], reruns), rec, at)


def eta_after_audit(rec: Recording, at: float) -> float | None:
    """``audit`` now: :class:`mlac.progress_eta.AuditEta` fed every progress event, read at ``at`` (patience and
    the grid's size as the runner passes them; a recording without them, as before, gets the budget only)."""
    from mlac.audit.presets import PRESETS
    from mlac.progress_eta import AuditEta

    eta = AuditEta(rec["studies"], rec["max_trials_per_study"], rec.get("reruns", PRESETS["quick"]["search"].reruns),
                   patience=rec.get("patience"), grid_trials=rec.get("grid_trials", 0))
    return _replay_audit(eta, rec, at)


ESTIMATORS: dict[str, dict[str, Callable[[Recording, float], float | None]]] = {
    "base": {"before": eta_before_base, "after": eta_after_base},
    "censor": {"before": eta_before_censor, "after": eta_after_censor},
    "audit": {"before": eta_before_audit, "rounds": eta_rounds_audit, "after": eta_after_audit},
}


def table(recordings: dict[str, Recording]) -> list[dict[str, Any]]:
    """One row per job x version x fraction: ETA shown, true remaining, ratio."""
    rows = []
    for job, rec in recordings.items():
        wall = rec["t1"] - rec["t0"]
        for version, fn in ESTIMATORS[job].items():
            for f in FRACTIONS:
                at = f * wall
                eta = fn(rec, at)
                true = wall - at
                rows.append({"job": job, "version": version, "fraction": f, "wall_s": wall, "at_s": at, "eta_s": eta,
                             "true_s": true, "ratio": None if eta is None else eta / true})
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    """Markdown, as in benchmarks/RESULTS.md."""
    print("| job (wall) | version | at 10%: ETA / true / ratio | at 25% | at 50% |")
    print("| --- | --- | --- | --- | --- |")
    keys = sorted({(r["job"], r["version"]) for r in rows}, key=lambda k: (list(ESTIMATORS).index(k[0]), list(ESTIMATORS[k[0]]).index(k[1])))
    for job, version in keys:
        cells = []
        wall = 0.0
        for r in rows:
            if (r["job"], r["version"]) != (job, version):
                continue
            wall = r["wall_s"]
            ok = r["ratio"] is not None and 0.5 <= r["ratio"] <= 2.0
            cell = ("none shown" if r["eta_s"] is None else f"{r['eta_s']:.0f} s") + f" / {r['true_s']:.0f} s / "
            cells.append(cell + ("-" if r["ratio"] is None else (f"{r['ratio']:.2f}" if ok else f"**{r['ratio']:.2f}**")))
        print(f"| {job} ({wall:.0f} s) | {version} | " + " | ".join(cells) + " |")


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--replay", action="store_true", help="re-analyse OUT/events.json instead of running the jobs")
    parser.add_argument("--jobs", default="base,censor,audit", help="comma-separated subset (with --replay too)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [j for j in args.jobs.split(",") if j]
    recordings_file = args.out / "events.json"
    if args.replay:
        saved = json.loads(recordings_file.read_text())
        recordings, meta = saved["recordings"], saved["meta"]
        recordings = {j: recordings[j] for j in jobs if j in recordings}
    else:
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
            os.environ.setdefault(var, "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import torch

        meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "host": platform.node(),
                "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "load_before": load_average()}
        data = make_dataset(args.out)
        recordings = {}
        runners = {"base": record_base, "censor": record_censor, "audit": record_audit}
        for job in jobs:  # each job's recording is saved as soon as it ends (a later job reads the earlier's output)
            recordings[job] = runners[job](data, args.out)
            meta[f"load_after_{job}"] = load_average()
            meta["ended"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
            print(f"{job}: {recordings[job]['t1'] - recordings[job]['t0']:.1f} s, load {meta[f'load_after_{job}']}",
                  flush=True)
            saved = json.loads(recordings_file.read_text()) if recordings_file.is_file() else {"recordings": {}}
            recordings_file.write_text(json.dumps({"meta": {**saved.get("meta", {}), **meta},
                                                   "recordings": {**saved["recordings"], job: recordings[job]}}))
    rows = table(recordings)
    (args.out / "bench_eta.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(json.dumps(meta))
    print_table(rows)


if __name__ == "__main__":
    main()
