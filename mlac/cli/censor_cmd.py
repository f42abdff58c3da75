"""``mlac-audit censor``: MLAC-censor a base model on a saved dataset, with a progress bar and a summary.

``--ray [ADDRESS]`` runs the training in a restartable Ray actor through the runner that the Ray layer
registers under the entry-point group ``mlac_audit.censor_runners`` (name ``ray``), so ``mlac`` never
imports Ray itself.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from mlac.censor.config import MLACConfig
from mlac.cli.base_cmd import check_model_arg
from mlac.cli.eta import eta_column
from mlac.cli.main import DefaultsHelpFormatter, StopOnInterrupt
from mlac.errors import ConfigError, StoppedError
from mlac.progress_eta import CensorEta

RESUME_DIR = "mlac_resume"  # = mlac.censor.train.RESUME_DIR (checked by tests/unit/test_cli_parser.py)

_DEFAULTS = MLACConfig()
CENSOR_RUNNER_GROUP = "mlac_audit.censor_runners"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``censor`` command."""
    d = _DEFAULTS
    p = sub.add_parser(
        "censor",
        help="train a self-destructing model with MLAC",
        description="Censor a base model with MLAC (PROTOCOL.md) on the train split of a saved dataset, then "
        "compare base and censored under the attack MLAC simulates. The state is saved in OUT/mlac_resume every "
        "--val-every steps and on Ctrl-C; running the same command again resumes from it.",
        formatter_class=DefaultsHelpFormatter,
    )
    p.add_argument("--base", required=True,
                   help="checkpoint directory, 'tiny' (a BERT-tiny-shaped model first trained on both labels "
                   "of the train split, saved under OUT/base) or 'minilm' (the offline pre-trained MiniLM)")
    p.add_argument("--data", type=Path, required=True, help="dataset .parquet written by `mlac-audit data`")
    p.add_argument("--out", type=Path, required=True, help="output directory for the censored checkpoint")
    p.add_argument("--steps", type=int, default=d.outer_steps, help="outer (defender) steps")
    p.add_argument("--inner-steps", type=int, default=d.inner_steps, help="K, simulated attacker steps per outer step")
    p.add_argument("--first-order", action="store_true", help="detach inner gradients (first-order MLAC)")
    p.add_argument("--w-adv", type=float, default=d.w_adv, help="weight of the adversarial term")
    p.add_argument("--adv-loss", choices=("remap", "neg_ce"), default=d.adv_loss,
                   help="adversarial loss: remap-invariant, or the bounded negative cross-entropy")
    p.add_argument("--w-grad-norm", type=float, default=d.w_grad_norm, help="weight of the inner gradient-norm penalty")
    p.add_argument("--w-max-entropy", type=float, default=d.w_max_entropy,
                   help="weight of the harmful-prediction entropy bonus")
    p.add_argument("--inner-optimizer", choices=("adam", "sgd"), default=d.inner_optimizer,
                   help="optimizer of the simulated attacker")
    p.add_argument("--inner-lr", type=float, default=d.inner_lr, help="initial learning rate of the simulated attacker")
    p.add_argument("--inner-lr-mode", choices=("learned", "sampled", "fixed"), default=d.inner_lr_mode,
                   help="learned by the adversary, sampled per step, or fixed")
    p.add_argument("--adversary-head", choices=("fresh", "learned"), default=d.adversary_head,
                   help="the attacker's harmful head: freshly drawn each step, or learned by the adversary")
    p.add_argument("--outer-lr", type=float, default=d.outer_lr, help="learning rate of the defender")
    p.add_argument("--outer-batch", type=int, default=d.outer_batch_size, help="bios per outer step")
    p.add_argument("--inner-batch-sizes", type=str, default=",".join(map(str, d.inner_batch_sizes)),
                   help="comma-separated sizes the inner batch size is drawn from")
    p.add_argument("--val-every", type=int, default=d.val_every,
                   help="validate (and save the resume state) every this many steps")
    p.add_argument("--max-length", type=int, default=d.max_length, help="tokens per text")
    p.add_argument("--base-steps", type=int, default=300, help="training steps of the 'tiny' base model")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the dataset's train/attack/selection/report split")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of initialisation, batches and sampled learning rates")
    p.add_argument("--device", default=d.device, help="auto, cpu or cuda[:N]")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT holds a resumable state")
    p.add_argument("--no-summary-attack", action="store_true", help="skip the base-vs-censored attack summary")
    p.add_argument("--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
                   help="train in a Ray actor (restarted after a crash, resuming from its last checkpoint): "
                   "alone, RAY_ADDRESS or a local Ray; with ADDRESS, that cluster")
    p.set_defaults(func=run)


def interrupted_message(out: Path, saved_step: int | None, at_step: int | None, checkpoint_every: int) -> str:
    """What a KeyboardInterrupt of ``censor`` leaves behind and how to resume."""
    state = out / RESUME_DIR
    where = f" at step {at_step}" if at_step is not None else ""
    if saved_step is None and state.is_dir():
        return (f"interrupted{where}: nothing of this run was saved yet (the state is saved every {checkpoint_every} "
                f"steps); the earlier state in {state} is kept: run the same command again to resume from it")
    if saved_step is None:
        return (f"interrupted{where}: no resume state was saved yet (it is saved every {checkpoint_every} steps); "
                "running the same command again starts over")
    return (f"interrupted{where}: the last saved state is step {saved_step}, in {state} (saved every "
            f"{checkpoint_every} steps); steps after it are lost. Run the same command again to resume from step "
            f"{saved_step} (--no-resume starts over)")


def _censor_runner() -> Callable[..., dict[str, Any]]:
    found = [ep for ep in metadata.entry_points(group=CENSOR_RUNNER_GROUP) if ep.name == "ray"]
    if not found:
        raise ConfigError("--ray needs the Ray layer (the `workers` package, entry point "
                          f"{CENSOR_RUNNER_GROUP}:ray); it is not installed: run without --ray")
    runner: Callable[..., dict[str, Any]] = found[0].load()
    return runner


def _config(args: argparse.Namespace) -> MLACConfig:
    try:
        sizes = tuple(int(s) for s in str(args.inner_batch_sizes).split(",") if s.strip())
    except ValueError as exc:
        raise ConfigError(f"--inner-batch-sizes must be comma-separated integers, got {args.inner_batch_sizes!r}") from exc
    return MLACConfig(
        inner_steps=args.inner_steps, second_order=not args.first_order, inner_optimizer=args.inner_optimizer,
        inner_lr=args.inner_lr, inner_lr_mode=args.inner_lr_mode, adversary_head=args.adversary_head,
        adv_loss=args.adv_loss, w_adv=args.w_adv, w_grad_norm=args.w_grad_norm, w_max_entropy=args.w_max_entropy,
        outer_lr=args.outer_lr, outer_batch_size=args.outer_batch, inner_batch_sizes=sizes, outer_steps=args.steps,
        val_every=min(args.val_every, args.steps), checkpoint_every=min(args.val_every, args.steps),
        max_length=args.max_length, seed=args.seed, device=args.device,
    )


def run(args: argparse.Namespace) -> int:
    """Load data and base, train, save, print a summary."""
    check_model_arg("--base", str(args.base), keywords=("tiny", "minilm"))  # before the heavy imports
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from mlac.censor.train import train_mlac
    from mlac.censor.validation_attack import finetune_attack, simulated_attack
    from mlac.data import load_saved_dataset, make_splits
    from mlac.data.encoded import encode_split
    from mlac.device import resolve_device
    from mlac.models import load_checkpoint, load_minilm

    config = _config(args)
    console = Console(stderr=True)
    device = resolve_device(config.device)
    ds, task = load_saved_dataset(args.data)
    splits = make_splits(ds, seed=args.split_seed)
    num_ben = task.num_labels("beneficial")
    parent_sha: str | None
    if args.base == "tiny":
        from mlac.cli.base_cmd import build_tiny_base

        model, tok, parent_sha = build_tiny_base(args.data, args.out / "base", steps=args.base_steps, seed=args.seed,
                                                 split_seed=args.split_seed, max_length=config.max_length,
                                                 device=str(device),
                                                 log=lambda text: console.print(text, soft_wrap=True))
    else:
        loaded = (load_minilm(num_ben, seed=args.seed, device=device) if args.base == "minilm"
                  else load_checkpoint(args.base, num_beneficial=num_ben, seed=args.seed, device=device))
        model, tok, parent_sha = loaded.model, loaded.tokenizer, loaded.sha256
    base_copy = None
    if not args.no_summary_attack:
        import copy

        base_copy = copy.deepcopy(model).eval()

    # The ETA counts the validations still to come (mlac.progress_eta.CensorEta; measured by benchmarks/bench_eta.py).
    eta = CensorEta(config.outer_steps, config.val_every, start=time.monotonic())
    columns = (TextColumn("[bold]MLAC"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
               eta_column(lambda task: eta.remaining(time.monotonic())))
    # checkpoint_every-th steps are saved right after their step record: one is confirmed saved when the
    # next step's record arrives (or a stop saves the current one).
    seen: dict[str, int | None] = {"step": None, "saved": None}
    with Progress(*columns, console=console, transient=False) as bar:
        job = bar.add_task("mlac", total=config.outer_steps, info="", eta=True)

        def on_progress(rec: dict[str, Any]) -> None:
            eta.observe(time.monotonic(), rec)
            if rec["event"] == "step":
                previous = seen["step"]
                if previous is not None and (previous % config.checkpoint_every == 0):
                    seen["saved"] = previous
                seen["step"] = int(rec["step"])
                info = f"obj {rec['total']:+.3f} ben {rec['beneficial_ce']:.3f} adv {rec['adv_mean']:.3f} lr {rec['inner_lr']:.1e}"
                bar.update(job, completed=rec["step"], info=info)
            else:
                bar.console.print(
                    f"validation @ {rec['step']}: objective {rec['objective']:+.4f}, simulated attack acc "
                    f"{rec['simulated_attack_acc']:.3f}, beneficial acc {rec['beneficial_acc']:.3f}"
                    + ("  (best)" if rec["best"] else "")
                )

        try:
            if args.ray is None:
                with StopOnInterrupt("stopping before the next step and saving the state") as stop:
                    result = train_mlac(model, tok, splits.train, task, config, out_dir=args.out, progress=on_progress,
                                        should_stop=stop, resume=not args.no_resume, parent_sha256=parent_sha,
                                        dataset_fingerprint=splits.fingerprints.get("train"),
                                        beneficial_names=task.beneficial_names)
                censored = result.model
                summary: dict[str, Any] = {
                    "out": str(args.out), "weights_sha256": result.weights_sha256, "parent_sha256": parent_sha,
                    "steps": result.steps_done, "best_step": result.best_step, "best_objective": result.best_objective,
                    "final_inner_lr": result.inner_lr, "resumed_from": result.resumed_from,
                    "skipped_nonfinite_steps": result.skipped_nonfinite,
                }
            else:
                censored, summary = _train_on_ray(args, config, model, tok, parent_sha, num_ben, on_progress)
        except StoppedError as exc:
            bar.stop()
            step = seen["step"]
            console.print(str(exc) if step is None else
                          f"stopped at step {step} of {config.outer_steps}: the state is saved in "
                          f"{args.out / RESUME_DIR}; run the same command again to resume from step {step} "
                          "(--no-resume starts over). No censored model was written yet.", highlight=False, soft_wrap=True)
            return 130
        except KeyboardInterrupt:
            bar.stop()
            console.print(interrupted_message(args.out, seen["saved"], seen["step"], config.checkpoint_every),
                          highlight=False, soft_wrap=True)
            return 130
    if base_copy is not None:
        atk = encode_split(splits.attack_pool, tok, task, config.max_length)
        ev = encode_split(splits.selection, tok, task, config.max_length)
        rows = {}
        for name, m in (("base", base_copy), ("censored", censored)):
            harm = simulated_attack(m, config, atk, ev, repeats=8, seed=args.seed).accuracy
            ben = finetune_attack(m, atk, ev, task="beneficial", num_labels=num_ben, steps=config.inner_steps,
                                  lr=config.inner_lr, batch_size=sorted(config.inner_batch_sizes)[len(config.inner_batch_sizes) // 2],
                                  repeats=4, seed=args.seed).accuracy
            rows[name] = {"harmful_acc": harm, "beneficial_acc": ben}
        summary["simulated_attack"] = rows
        console.print(f"simulated attack ({config.inner_steps} steps at lr {config.inner_lr:g} from a fresh head, "
                      "held-out selection split):")
        for name, r in rows.items():
            console.print(f"  {name:9s} harmful acc {r['harmful_acc']:.3f}   beneficial acc {r['beneficial_acc']:.3f}")
    console.print(f"censored model saved to {args.out} (sha256 {str(summary['weights_sha256'])[:12]}…), "
                  f"best step {summary['best_step']} of {summary['steps']}")
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _train_on_ray(args: argparse.Namespace, config: MLACConfig, model: Any, tok: Any, parent_sha: str | None,
                  num_ben: int, on_progress: Callable[[dict[str, Any]], None]) -> tuple[Any, dict[str, Any]]:
    """Train in the Ray layer's censoring actor; return the censored model (read back from OUT) and a summary.

    The actor reads the base from disk, so a base that is not a checkpoint directory ('tiny', 'minilm') is
    saved under OUT/base first. ``--no-resume`` clears OUT's resumable state before the actor starts."""
    import shutil

    from mlac.device import resolve_device
    from mlac.models import load_checkpoint, save_checkpoint

    runner = _censor_runner()
    base_dir = Path(args.base)
    if not base_dir.is_dir():
        base_dir = args.out / "base"
        if not (base_dir / "model.safetensors").exists():
            save_checkpoint(model, tok, base_dir, {"kind": str(args.base), "seed": args.seed})
    if args.no_resume:
        shutil.rmtree(args.out / RESUME_DIR, ignore_errors=True)

    def forward(rec: dict[str, Any]) -> None:
        if rec.get("event") == "step" and all(k in rec for k in ("total", "beneficial_ce", "adv_mean", "inner_lr")):
            on_progress(rec)
        elif rec.get("event") == "validation" and "objective" in rec:
            on_progress({"best": False, **rec})

    out = runner(base_dir, args.data, args.out, config.to_dict(), address=None if args.ray == "auto" else args.ray,
                 split_seed=args.split_seed, progress=forward)
    censored = load_checkpoint(args.out, num_beneficial=num_ben, seed=args.seed,
                               device=resolve_device(config.device)).model.eval()
    summary = {"out": str(args.out), "weights_sha256": out.get("weights_sha256"), "parent_sha256": parent_sha,
               "steps": out.get("steps_done"), "best_step": out.get("best_step"),
               "best_objective": out.get("best_objective"), "resumed_from": out.get("resumed_from"), "ray": True}
    return censored, summary
