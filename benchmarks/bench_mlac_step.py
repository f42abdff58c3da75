"""Benchmark: one MLAC outer step at BERT-tiny shape vs K+1 plain training steps vs a `higher` reference.

Shape: BERT-tiny (2 layers, hidden 128, 2 heads, vocab 30,522), outer and inner batches of 20 rows of 128
tokens, K in {1, 4, 16}, second and first order, Adam inner optimiser, remap-invariant loss.

* ``plain``: one ordinary training step (forward, backward, Adam) on a batch of 20 x 128; the MLAC step is
  reported as a ratio to (K+1) of these.
* ``ours``: :func:`mlac.censor.outer.outer_objective` (torch.func.functional_call + autograd through the
  unrolled loop) + defender Adam step, as :class:`mlac.censor.train.MLACTrainer` does it.
* ``higher``: the same outer step written on the ``higher`` library (``innerloop_ctx`` + its
  differentiable Adam, the approach of the reference code), with the same batches, head and loss.

Each (implementation, K, order) runs in its own subprocess so that its peak resident memory (ru_maxrss,
minus the RSS after set-up) is its own. On CUDA the peak is ``torch.cuda.max_memory_allocated``.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_mlac_step.py [--ks 1,4,16] [--repeats 3] [--out benchmarks/mlac_step.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

BATCH, SEQ = 20, 128


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _setup(device: torch.device):
    from mlac.models import build_tiny_bert, default_tokenizer

    tok = default_tokenizer()
    model, _ = build_tiny_bert(num_beneficial=12, seed=0, tokenizer=tok, dropout=0.0)
    model = model.to(device).train()
    gen = torch.Generator().manual_seed(0)

    def batch():
        from mlac.data.encoded import Batch

        ids = torch.randint(1000, len(tok), (BATCH, SEQ), generator=gen)
        mask = torch.ones(BATCH, SEQ, dtype=torch.long)
        return Batch({"input_ids": ids, "attention_mask": mask}, torch.randint(0, 2, (BATCH,), generator=gen),
                     torch.randint(0, 12, (BATCH,), generator=gen)).to(device)

    return model, batch


def _head(model, device):
    gen = torch.Generator().manual_seed(1)
    bound = model.hidden_size ** -0.5
    return {"weight": ((torch.rand(2, model.hidden_size, generator=gen) * 2 - 1) * bound).to(device),
            "bias": ((torch.rand(2, generator=gen) * 2 - 1) * bound).to(device)}


def plain_step_fn(model, batch, device):
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    b = batch()

    def step():
        loss = F.cross_entropy(model.beneficial_logits(**b.inputs), b.beneficial)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
    return step


def ours_step_fn(model, batch, device, k, second_order):
    from mlac.censor.config import MLACConfig
    from mlac.censor.outer import outer_objective

    cfg = MLACConfig(inner_steps=k, second_order=second_order, inner_batch_sizes=(BATCH,), device=str(device))
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    opt = torch.optim.Adam(params.values(), lr=cfg.outer_lr)
    outer, inner = batch(), [batch() for _ in range(k)]
    head = _head(model, device)
    lr = torch.tensor(cfg.inner_lr, device=device, requires_grad=True)

    def step():
        terms = outer_objective(model, params, buffers, head, lr, outer, inner, cfg)
        grads = torch.autograd.grad(terms.total, [*params.values(), lr], allow_unused=True, materialize_grads=True)
        for p, g in zip(params.values(), grads, strict=False):
            p.grad = g
        torch.nn.utils.clip_grad_norm_(params.values(), 10.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def higher_step_fn(model, batch, device, k, second_order):
    import higher

    from mlac.censor.losses import remap_loss

    class WithHead(torch.nn.Module):
        def __init__(self, trunk_model, head):
            super().__init__()
            self.m = trunk_model
            self.head = torch.nn.Linear(trunk_model.hidden_size, 2).to(device)
            with torch.no_grad():
                self.head.weight.copy_(head["weight"])
                self.head.bias.copy_(head["bias"])

        def forward(self, input_ids, attention_mask):
            return self.head(self.m(input_ids, attention_mask))

    wrapped = WithHead(model, _head(model, device))
    outer, inner = batch(), [batch() for _ in range(k)]
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    inner_opt = torch.optim.Adam(wrapped.parameters(), lr=3e-4)
    lr = torch.tensor(3e-4, device=device, requires_grad=True)

    def step():
        ben = F.cross_entropy(model.beneficial_logits(**outer.inputs), outer.beneficial)
        with higher.innerloop_ctx(wrapped, inner_opt, copy_initial_weights=False,
                                  track_higher_grads=second_order) as (fmodel, diffopt):
            logits = [fmodel(**outer.inputs)]
            for b in inner:
                loss = F.cross_entropy(fmodel(**b.inputs), b.harmful)
                diffopt.step(loss, override={"lr": [lr]},
                             grad_callback=lambda gs: _clip(gs, 100.0))
                logits.append(fmodel(**outer.inputs))
            adv = remap_loss(torch.stack(logits), outer.harmful).mean()
            total = ben - adv
            opt.zero_grad(set_to_none=True)
            total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
    return step


def _clip(grads, max_norm):
    gs = list(grads)
    norm = torch.sqrt(sum((g * g).sum() for g in gs if g is not None))
    scale = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    return [g * scale if g is not None else None for g in gs]


def measure(impl: str, k: int, second_order: bool, repeats: int, device_name: str) -> dict:
    """Run in a subprocess: time per step (minimum and median of ``repeats`` after one warm-up), peak memory."""
    device = torch.device(device_name)
    model, batch = _setup(device)
    if impl == "plain":
        step = plain_step_fn(model, batch, device)
    elif impl == "ours":
        step = ours_step_fn(model, batch, device, k, second_order)
    else:
        step = higher_step_fn(model, batch, device, k, second_order)
    base_rss = _rss_mb()  # after set-up, before the first step: the steps' own memory is what is measured
    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base_rss
    # The minimum is the timeit convention: on a shared machine it is the run least disturbed by others.
    return {"impl": impl, "k": k, "second_order": second_order, "seconds": min(times),
            "median_s": statistics.median(times), "times": times, "peak_mb": peak, "device": device_name}


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", default="1,4,16")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/mlac_step.json"))
    ap.add_argument("--skip-higher", action="store_true")
    ap.add_argument("--child", nargs=4, metavar=("IMPL", "K", "ORDER", "REPEATS"))
    args = ap.parse_args()
    if args.child:
        impl, k, order, reps = args.child
        print(json.dumps(measure(impl, int(k), order == "2", int(reps), args.device)))
        return
    load = os.getloadavg()
    rows = [_child(["plain", "0", "1", str(max(5, args.repeats))])]
    plain = rows[0]["seconds"]
    print(f"plain step: {plain * 1000:.1f} ms, peak +{rows[0]['peak_mb']:.0f} MB", flush=True)
    for k in [int(x) for x in args.ks.split(",")]:
        for order in ("2", "1"):
            impls = ["ours"] + ([] if args.skip_higher else ["higher"])
            for impl in impls:
                r = _child([impl, str(k), order, str(args.repeats)])
                r["ratio_to_k_plus_1_plain"] = r["seconds"] / ((k + 1) * plain)
                rows.append(r)
                print(f"K={k:2d} order={order} {impl:6s}: {r['seconds']:.3f} s "
                      f"({r['ratio_to_k_plus_1_plain']:.2f}x K+1 plain), peak +{r['peak_mb']:.0f} MB", flush=True)
    result = {"load_avg_at_start": load, "load_avg_at_end": os.getloadavg(), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "batch": BATCH, "seq": SEQ, "rows": rows}
    args.out.write_text(json.dumps(result, indent=1))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
