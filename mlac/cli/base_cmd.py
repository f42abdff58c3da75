"""``mlac-audit base``: train the tiny BERT base model (both labels) on a saved dataset and save it.

The base model is what MLAC censors and what the ``base`` baseline is: a BERT-tiny-shaped encoder
trained a few hundred steps on both labels of the dataset's train split, so that it carries gender
features. ``censor --base tiny`` builds the same model inline; this command saves one to upload or reuse.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlac.errors import CheckpointError
from mlac.progress_eta import eta_at, format_duration, line_due

#: File suffixes of pickle-based weights: refused with their own message (pickles are never loaded).
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt")
#: Print a progress line at most this often (seconds); the first and last steps are always printed.
PROGRESS_EVERY_S = 5.0


def check_model_arg(flag: str, value: str, *, keywords: tuple[str, ...] = ()) -> None:
    """Refuse at once, with a message that says what is expected, a model argument that is a file: a pickle
    (``.pkl``, ``.pt``, ...) or any other file where a checkpoint directory is needed. ``keywords`` ('tiny',
    'minilm') are accepted as they are; a missing path is left to the checkpoint validator."""
    if value in keywords:
        return
    path = Path(value)
    if not path.is_file():
        return
    expected = "a checkpoint directory (config.json + model.safetensors + tokenizer files)"
    if keywords:
        expected += " or " + " / ".join(repr(k) for k in keywords)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{flag} {value}: a pickle file; mlac-audit never unpickles weights (loading a pickle runs its code). "
            f"Pass {expected}; where you trust the file, convert it with safetensors.torch.save_file into "
            "model.safetensors beside its config.json and tokenizer.", code="pickle_refused")
    raise CheckpointError(f"{flag} {value}: a file, not a checkpoint; pass {expected}", code="not_a_directory")


def step_printer(what: str, total: int, log: Callable[[str], Any], *, every_s: float = PROGRESS_EVERY_S
                 ) -> Callable[[int, float], None]:
    """A ``progress(step, loss)`` callback that logs ``what step k/N (p%), loss L, elapsed, ETA`` at most every
    ``every_s`` seconds, sooner early on (:func:`mlac.progress_eta.line_due`), and at the first and last step.

    The ETA is :func:`mlac.progress_eta.eta_at`: the remaining steps at the rate of the latter half of the run so far
    (the first steps, slowed by start-up work, stop weighing on it as the run goes on)."""
    started = time.monotonic()
    printed = -every_s
    seen: list[tuple[float, int]] = []

    def progress(step: int, loss: float) -> None:
        nonlocal printed
        now = time.monotonic() - started
        seen.append((now, step))
        if step not in (1, total) and not line_due(now, printed, every_s):
            return
        printed = now
        eta = eta_at(seen, total)
        log(f"{what}: step {step}/{total} ({step / max(total, 1):.0%}), loss {loss:.3f}, "
            f"elapsed {format_duration(now)}, ETA {format_duration(eta)}")

    return progress


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``base`` command."""
    p = sub.add_parser("base", help="train the tiny BERT base model on a dataset and save it as a checkpoint",
                       description="Train a BERT-tiny-shaped encoder on both labels of the train split of a saved "
                       "dataset (it then carries gender features) and save it as a safetensors checkpoint.")
    p.add_argument("--data", type=Path, required=True, help="dataset .parquet written by `mlac-audit data`")
    p.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    p.add_argument("--steps", type=int, default=300, help="Adam steps (default 300)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--batch-size", type=int, default=32, help="bios per step (default 32)")
    p.add_argument("--harmful-weight", type=float, default=1.0, help="weight of the harmful-label loss (default 1.0)")
    p.add_argument("--max-length", type=int, default=128, help="tokens per text (default 128)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the dataset's train/attack/selection/report split")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation, batches and dropout (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.set_defaults(func=run)


def build_tiny_base(data: Path, out: Path, *, steps: int, seed: int, split_seed: int = 0, max_length: int = 128,
                    lr: float = 1e-3, batch_size: int = 32, harmful_weight: float = 1.0, device: str = "auto",
                    log: Callable[[str], Any] | None = None) -> tuple[Any, Any, str]:
    """Train the tiny base on ``data``'s train split, save it to ``out``; return (model, tokenizer, sha256).

    With ``log``, a line says what is trained, then progress lines with the ETA (:func:`step_printer`)."""
    from mlac.data import load_saved_dataset, make_splits
    from mlac.data.encoded import encode_split
    from mlac.device import resolve_device
    from mlac.models import default_tokenizer, save_checkpoint
    from mlac.models.base_model import make_base_model

    ds, task = load_saved_dataset(data)
    splits = make_splits(ds, seed=split_seed)
    tok = default_tokenizer()
    enc = encode_split(splits.train, tok, task, max_length)
    if log is not None:
        log(f"training the tiny base model ({steps} steps on both labels of {len(enc)} bios)")
    model = make_base_model(enc, tok, num_beneficial=task.num_labels("beneficial"), steps=steps, lr=lr,
                            batch_size=batch_size, harmful_weight=harmful_weight, seed=seed,
                            device=resolve_device(device),
                            progress=step_printer("base", steps, log) if log is not None else None)
    sha = save_checkpoint(model, tok, out, {"kind": "tiny_base", "seed": seed, "steps": steps,
                                            "dataset_fingerprint": splits.fingerprints.get("train")},
                          beneficial_names=task.beneficial_names)
    return model, tok, sha


def run(args: argparse.Namespace) -> int:
    """Train, save, print a JSON summary."""
    from rich.console import Console

    console = Console(stderr=True, highlight=False)
    _, _, sha = build_tiny_base(args.data, args.out, steps=args.steps, seed=args.seed, split_seed=args.split_seed,
                                max_length=args.max_length, lr=args.lr, batch_size=args.batch_size,
                                harmful_weight=args.harmful_weight, device=args.device,
                                log=lambda text: console.print(text, soft_wrap=True))
    console.print(f"base model saved to {args.out}")
    print(json.dumps({"out": str(args.out), "weights_sha256": sha}, indent=2))
    return 0
