"""mlac: the pure core of mlac-audit.

MLAC censoring (Meta-Learned Adversarial Censoring) and the few-shot adversarial fine-tuning audit,
in plain PyTorch + transformers + datasets + optuna. This package imports neither Ray nor any web
framework: the Ray layer lives in ``workers`` and the HTTP layer in ``service``.
"""

__version__ = "0.1.0"
