"""Seeded synthetic Bias-in-Bios-like biographies with profession and gender labels.

Each bio reads like a real one: a first sentence naming the person and the profession, then sentences
about the work written with gendered pronouns, which are scrubbed exactly as real bios are. Gender stays
inferable after scrubbing only through the cues this generator adds on purpose, at a tunable strength:
the person's first name repeated in a later sentence (a *name cue*: with hundreds of names per gender,
each name is rare in a few-shot training set, so reading it needs pre-trained knowledge) and a
self-referential gendered noun (a *noun cue*: mother/father, son/daughter; few distinct words, so a
randomly initialised model can learn them from few examples; kept rare by default). Professions are
drawn independently of gender. Same config -> byte-identical dataset.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from functools import lru_cache

from datasets import Dataset
from faker import Faker

from mlac.data.profession_vocab import (
    GENERIC_SENTENCES,
    NAME_CUE_SENTENCES,
    NOUN_CUE_SENTENCES,
    PROFESSION_CONTEXT,
)
from mlac.data.scrub import drop_first_sentence, scrub_pronouns
from mlac.errors import ConfigError
from mlac.tasks import TaskSpec

NAME_LOCALES = ("en_US", "en_GB", "en_IE", "en_NZ", "en_IN")
GENDER_NAMES = ("female", "male")
_PRONOUNS = {0: {"He": "She", "he": "she", "His": "Her", "his": "her"}, 1: {"He": "He", "he": "he", "His": "His", "his": "his"}}


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the generator.

    ``gender_cue_strength`` scales both cue rates: 0 leaves no gender signal in the scrubbed ``text``;
    1 gives a name cue to ``name_cue_rate`` of the bios and a noun cue to ``noun_cue_rate`` of them.
    ``names_per_gender`` sets the first-name vocabulary (larger = each name rarer = harder without
    pre-training). ``vocab_seed`` fixes that vocabulary independently of ``seed`` so datasets drawn
    with different seeds share names (a model pre-trained on one transfers to another).
    """

    n_bios: int = 6000
    seed: int = 0
    n_professions: int = 12
    gender_cue_strength: float = 1.0
    name_cue_rate: float = 0.85
    noun_cue_rate: float = 0.15
    names_per_gender: int = 400
    male_fraction: float = 0.54
    min_sentences: int = 2
    max_sentences: int = 4
    vocab_seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.n_bios <= 2_000_000:
            raise ConfigError(f"n_bios must be in [1, 2000000], got {self.n_bios}")
        if not 2 <= self.n_professions <= len(PROFESSION_CONTEXT):
            raise ConfigError(f"n_professions must be in [2, {len(PROFESSION_CONTEXT)}], got {self.n_professions}")
        for name in ("gender_cue_strength", "name_cue_rate", "noun_cue_rate", "male_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value}")
        if not 1 <= self.min_sentences <= self.max_sentences <= len(GENERIC_SENTENCES):
            raise ConfigError("need 1 <= min_sentences <= max_sentences <= 7")
        available = min(len(v) for v in _name_pools().values())
        if not 1 <= self.names_per_gender <= available:
            raise ConfigError(f"names_per_gender must be in [1, {available}], got {self.names_per_gender}")

    def to_dict(self) -> dict[str, object]:
        """Plain-data form (for provenance and the service)."""
        return asdict(self)


@lru_cache(maxsize=1)
def _name_pools() -> dict[int, tuple[str, ...]]:
    """Gendered first names from several Faker locales; names listed for both genders are dropped."""
    female: set[str] = set()
    male: set[str] = set()
    for locale in NAME_LOCALES:
        person = next(p for p in Faker(locale).get_providers() if type(p).__module__.startswith("faker.providers.person"))
        female.update(n for n in person.first_names_female if n.isascii() and n.isalpha())
        male.update(n for n in person.first_names_male if n.isascii() and n.isalpha())
    both = female & male
    return {0: tuple(sorted(female - both)), 1: tuple(sorted(male - both))}


def professions(n: int) -> tuple[str, ...]:
    """The first ``n`` professions (label order)."""
    return tuple(sorted(PROFESSION_CONTEXT))[:n]


def _bio(rng: random.Random, fake: Faker, config: SynthConfig, gender: int, profession: str, first: str) -> str:
    pron = _PRONOUNS[gender]
    city = fake.city()
    fill = {
        **pron, "First": first, "city": city, "company": fake.company(),
        "university": f"the University of {fake.city()}", "years": str(rng.randint(2, 30)),
        "kids": rng.choice(("two", "three", "one")),
    }
    contexts = PROFESSION_CONTEXT[profession]
    article = "an" if profession[0] in "aeiou" else "a"
    title = profession.replace("_", " ")
    sentences = [f"{first} {fake.last_name()} is {article} {title} based in {city}."]
    body = rng.sample(GENERIC_SENTENCES, rng.randint(config.min_sentences, config.max_sentences))
    strength = config.gender_cue_strength
    if rng.random() < strength * config.name_cue_rate:
        body.insert(rng.randint(0, len(body)), rng.choice(NAME_CUE_SENTENCES))
    if rng.random() < strength * config.noun_cue_rate:
        body.insert(rng.randint(0, len(body)), rng.choice(NOUN_CUE_SENTENCES[gender]))
    for template in body:
        sentences.append(template.format(**fill, context=rng.choice(contexts)))
    return " ".join(sentences)


def generate_synthetic(config: SynthConfig) -> tuple[Dataset, TaskSpec]:
    """Generate ``config.n_bios`` labelled, pronoun-scrubbed biographies and their task spec."""
    pools = _name_pools()
    vocab_rng = random.Random(config.vocab_seed)
    names = {g: tuple(vocab_rng.sample(pools[g], config.names_per_gender)) for g in (0, 1)}
    profs = professions(config.n_professions)
    rng = random.Random(config.seed)
    fake = Faker("en_US")
    fake.seed_instance(config.seed)
    rows: dict[str, list] = {k: [] for k in ("id", "text", "text_with_first_sentence", "profession", "gender")}
    for i in range(config.n_bios):
        gender = 1 if rng.random() < config.male_fraction else 0
        prof_idx = rng.randrange(len(profs))
        raw = _bio(rng, fake, config, gender, profs[prof_idx], rng.choice(names[gender]))
        scrubbed = scrub_pronouns(raw)
        rows["id"].append(f"synth-{config.seed}-{i:07d}")
        rows["text"].append(drop_first_sentence(scrubbed))
        rows["text_with_first_sentence"].append(scrubbed)
        rows["profession"].append(prof_idx)
        rows["gender"].append(gender)
    task = TaskSpec(beneficial_names=profs, harmful_names=GENDER_NAMES)
    return Dataset.from_dict(rows), task
