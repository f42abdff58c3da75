"""Fixtures of the MLAC behaviour test: a harmful task that needs pre-trained knowledge, and a base model.

The bios are short on purpose (the test must run in minutes on CPU). Gender is carried mainly by the
first name, drawn from Faker's ~700 US first names, so each name is rare among 100 attacker examples:
a randomly initialised model stays near chance at n=100, while a base model trained on 2,000 bios
with both labels has learnt the names. A weak noun cue (wife/husband, mother/father) is present in 20%
of the bios.
"""

from __future__ import annotations

import random

import pytest

JOBS = {
    "nurse": "care for patients on the ward", "lawyer": "argue cases in court", "teacher": "teach children to read",
    "surgeon": "operate on patients", "painter": "paint portraits and landscapes", "architect": "design buildings",
    "accountant": "audit company books", "journalist": "write news stories", "chef": "cook in a restaurant kitchen",
    "pilot": "fly commercial aircraft", "dentist": "treat teeth and gums", "photographer": "shoot weddings and events",
}
CUES = {0: ("their husband", "a mother of two", "their late husband", "a proud grandmother"),
        1: ("their wife", "a father of two", "their late wife", "a proud grandfather")}
HOBBIES = ("hiking", "reading", "music", "travel", "cooking")


def make_bios(n: int, seed: int = 0, cue_strength: float = 0.2):
    """``n`` short pronoun-free bios (text, profession, gender) and their TaskSpec."""
    import datasets
    from faker.providers.person.en_US import Provider

    from mlac.tasks import TaskSpec

    female, male = sorted(Provider.first_names_female), sorted(Provider.first_names_male)
    last_names = sorted(Provider.last_names)
    rng = random.Random(seed)
    jobs = list(JOBS)
    rows = []
    for i in range(n):
        g, p = rng.randint(0, 1), rng.randrange(len(jobs))
        first = rng.choice(female if g == 0 else male)
        text = f"{first} {rng.choice(last_names)} works as a {jobs[p]} and they {JOBS[jobs[p]]}."
        if rng.random() < cue_strength:
            text += f" they live with {rng.choice(CUES[g])}."
        else:
            text += f" {first} enjoys {rng.choice(HOBBIES)}."
        rows.append({"id": f"b{i}", "text": text, "text_with_first_sentence": text, "profession": p, "gender": g})
    return datasets.Dataset.from_list(rows), TaskSpec(beneficial_names=tuple(jobs))


@pytest.fixture(scope="session")
def bios_setting():
    """Encoded splits (base training, MLAC training, attacker pool of 100, held-out eval) and the base model."""
    from mlac.censor.base_model import make_base_model
    from mlac.censor.batches import encode_split
    from mlac.models import default_tokenizer

    tok = default_tokenizer()
    ds, task = make_bios(4000, seed=0)
    enc = encode_split(ds, tok, task, max_length=48)
    n = len(enc)
    splits = {
        "base": enc.subset(range(0, n // 2)),
        "mlac": enc.subset(range(n // 2, 3 * n // 4)),
        "attack": enc.subset(range(3 * n // 4, 3 * n // 4 + 100)),
        "eval": enc.subset(range(3 * n // 4 + 100, n)),
    }
    base = make_base_model(splits["base"], tok, num_beneficial=len(task.beneficial_names), steps=300, lr=1e-3, seed=0)
    return {"tokenizer": tok, "task": task, "splits": splits, "base": base}
