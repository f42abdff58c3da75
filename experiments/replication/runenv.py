"""What every study's command line sets up before importing torch: offline hubs, logging, torch threads."""

from __future__ import annotations

import logging
import os
import sys


def configure(threads: int) -> None:
    """Offline Hugging Face hubs, the Agg backend, INFO logs of the study (library loggers at WARNING), and
    ``threads`` torch threads."""
    for var, value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                       "TOKENIZERS_PARALLELISM": "false", "MPLBACKEND": "Agg"}.items():
        os.environ.setdefault(var, value)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    for noisy in ("optuna", "mlac", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import torch

    torch.set_num_threads(threads)
