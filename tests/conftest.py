"""Suite-wide settings: offline libraries, no Ray usage stats, one thread per test process."""

from __future__ import annotations

import os

for _var, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_USAGE_STATS_ENABLED": "0",
    "MPLBACKEND": "Agg",
}.items():
    os.environ.setdefault(_var, _value)
