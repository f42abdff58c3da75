"""Seen and never-seen first names: which bios MLAC censors on, and how the report split is scored in two parts.

Each synthetic bio names its subject by a first name drawn from a per-gender pool
(:func:`mlac.data.synth.name_pools`). The v2 study draws ``seen_fraction`` of each pool (seeded) as the names MLAC
sees: its training rows are the bios with a seen name, and the attacker's accuracy is scored separately on report
bios with a seen name and with a name MLAC never saw. If censoring removed only what it was shown, the unseen
names would stay easy; if it removed a shared read-out direction, both fall together.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from mlac.data.synth import name_pools


@dataclass(frozen=True)
class NameSplit:
    """The seen names (the rest of the pools are unseen) and the word pattern that finds a bio's first name."""

    seen: frozenset[str]
    unseen: frozenset[str]

    def first_name(self, text: str) -> str | None:
        """The first pool name that occurs as a word in ``text`` (None when the bio names nobody)."""
        for word in re.findall(r"[A-Z][a-z]+", text):
            if word in self.seen or word in self.unseen:
                return word
        return None

    def group(self, text: str) -> str:
        """"seen", "unseen" or "none" (no pool name in the text)."""
        name = self.first_name(text)
        if name is None:
            return "none"
        return "seen" if name in self.seen else "unseen"

    def rows(self, texts: Sequence[str], group: str) -> list[int]:
        """Indices of ``texts`` in ``group``."""
        return [i for i, t in enumerate(texts) if self.group(t) == group]


def draw_name_split(fraction: float, seed: int = 0) -> NameSplit:
    """``fraction`` of each gender's pool (at least one name, at most all but one) as seen names."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"seen_fraction must be strictly between 0 and 1, got {fraction}")
    rng = random.Random(f"names:{seed}")
    seen: set[str] = set()
    unseen: set[str] = set()
    for pool in name_pools().values():
        names = sorted(set(pool))
        k = min(max(1, round(fraction * len(names))), len(names) - 1)
        chosen = set(rng.sample(names, k))
        seen |= chosen
        unseen |= set(names) - chosen
    overlap = seen & unseen  # a name in both genders' pools cannot be told apart: drop it from both
    return NameSplit(frozenset(seen - overlap), frozenset(unseen - overlap))
