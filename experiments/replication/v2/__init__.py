"""Replication v2: MLAC on a real pre-trained encoder (the offline MiniLM-L6) against the strong attacker's space.

``python -m experiments.replication.v2 --scale {ci,cpu,gpu} --out DIR``. The study (issue 17) asks whether a
model censored with MLAC stays as hard to fine-tune for the harmful task (gender from a synthetic bio) as a
random network, when the base is a real web-scale pre-trained encoder rather than a tiny model trained on the
harmful label, and when the attacker searches the ``strong`` preset's space. Pieces are cached under
``<out>/pieces`` (a rerun recomputes nothing finished); ``<out>/summary.json`` holds every table
docs/replication.md quotes.
"""
