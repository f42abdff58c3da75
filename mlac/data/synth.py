"""Seeded synthetic Bias-in-Bios-like biographies with profession and gender labels.

Each bio reads like a real one: a first sentence naming the person and the profession, then sentences
about the work written with gendered pronouns, which are scrubbed exactly as real bios are. Gender stays
inferable after scrubbing only through the cues this generator adds on purpose, at a tunable strength:

- a *name cue*: the person's first name repeated in a later sentence. With hundreds of names per gender,
  each name is rare in a few-shot training set, so reading it needs pre-trained knowledge;
- a *noun cue*: a self-referential gendered noun (mother/father, wife/husband, sister/brother, ...).
  There are few such words, so a randomly initialised model can learn them from few examples: they are
  kept rare by default.

Professions are drawn independently of gender and are inferable from profession-specific context
phrases and Faker job titles. Every random draw is made whether or not its cue is used, so configs that
differ only in cue rates give the same bios except for the cue sentences. Same config -> byte-identical
dataset (for a given Faker version: names and places come from Faker's locale lists).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from mlac.data.profession_vocab import (
    FAKER_JOB_PATTERNS,
    GENDERED_NOUNS,
    GENDERED_WORDS,
    GENERIC_SENTENCES,
    NAME_CUE_SENTENCES,
    NOUN_CUE_TEMPLATES,
    PROFESSION_CONTEXT,
    SPECIALTY_SENTENCES,
)
from mlac.data.scrub import drop_first_sentence, scrub_pronouns
from mlac.errors import ConfigError
from mlac.tasks import TaskSpec

if TYPE_CHECKING:  # datasets and faker are imported where used: SynthConfig stays light (the CLI's defaults)
    from datasets import Dataset
    from faker import Faker

NAME_LOCALES = ("en_US", "en_GB", "en_IE", "en_NZ", "en_IN")
GENDER_NAMES = ("female", "male")
COLUMNS = ("id", "text", "text_with_first_sentence", "profession", "gender")
_PRONOUNS = {0: {"He": "She", "he": "she", "His": "Her", "his": "her"}, 1: {"He": "He", "he": "he", "His": "His", "his": "his"}}
_FIRST_SENTENCES = (
    "{First} {Last} is {a_title} based in {city}.",
    "{First} {Last} is {a_title} at {company} in {city}.",
    "{First} {Last} works as {a_title} in {city}.",
)
_VOCAB_SIZES = {"last_names": 1500, "cities": 500, "companies": 500}


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the generator.

    ``gender_cue_strength`` (s) scales both cue rates: a bio gets a name cue with probability
    ``s * name_cue_rate`` and, independently, a noun cue with probability ``s * noun_cue_rate``. With
    s = 0 the scrubbed ``text`` carries no gender signal; with s = 1 and the defaults 95.75% of bios
    carry at least one cue. ``names_per_gender`` sets the first-name vocabulary (larger = each name
    rarer = harder without pre-training). ``specialty_rate`` adds a Faker job-title sentence (profession
    context only). ``vocab_seed`` fixes the vocabularies (names, places, companies) independently of
    ``seed``, so datasets drawn with different seeds share them (a model pre-trained on one transfers).
    """

    n_bios: int = 6000
    seed: int = 0
    n_professions: int = 12
    gender_cue_strength: float = 1.0
    name_cue_rate: float = 0.95
    noun_cue_rate: float = 0.15
    names_per_gender: int = 400
    male_fraction: float = 0.54
    min_sentences: int = 2
    max_sentences: int = 3
    specialty_rate: float = 0.3
    vocab_seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.n_bios <= 2_000_000:
            raise ConfigError(f"n_bios must be in [1, 2000000], got {self.n_bios}")
        if not 2 <= self.n_professions <= len(PROFESSION_CONTEXT):
            raise ConfigError(f"n_professions must be in [2, {len(PROFESSION_CONTEXT)}], got {self.n_professions}")
        for name in ("gender_cue_strength", "name_cue_rate", "noun_cue_rate", "male_fraction", "specialty_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value}")
        if not 1 <= self.min_sentences <= self.max_sentences <= len(GENERIC_SENTENCES):
            raise ConfigError(f"need 1 <= min_sentences <= max_sentences <= {len(GENERIC_SENTENCES)}")
        available = min(len(v) for v in name_pools().values())
        if not 1 <= self.names_per_gender <= available:
            raise ConfigError(f"names_per_gender must be in [1, {available}], got {self.names_per_gender}")

    def to_dict(self) -> dict[str, object]:
        """Plain-data form (for provenance and the service)."""
        return asdict(self)

    def cue_probability(self) -> float:
        """Probability that a bio's ``text`` carries at least one gender cue."""
        s = self.gender_cue_strength
        return 1.0 - (1.0 - s * self.name_cue_rate) * (1.0 - s * self.noun_cue_rate)


def _faker(locale: str) -> Faker:
    from faker import Faker

    return Faker(locale)


def _provider(fake: Faker, kind: str) -> object:
    return next(p for p in fake.get_providers() if type(p).__module__.startswith(f"faker.providers.{kind}"))


@lru_cache(maxsize=1)
def _all_first_names() -> tuple[frozenset[str], frozenset[str]]:
    female: set[str] = set()
    male: set[str] = set()
    for locale in NAME_LOCALES:
        person = _provider(_faker(locale), "person")
        female.update(n for n in person.first_names_female if n.isascii() and n.isalpha())  # type: ignore[attr-defined]
        male.update(n for n in person.first_names_male if n.isascii() and n.isalpha())  # type: ignore[attr-defined]
    return frozenset(female), frozenset(male)


@lru_cache(maxsize=1)
def name_pools() -> dict[int, tuple[str, ...]]:
    """Gendered first names (0 female, 1 male) from several Faker locales; names of both genders dropped."""
    female, male = _all_first_names()
    both = female & male
    return {0: tuple(sorted(female - both)), 1: tuple(sorted(male - both))}




def _forbidden_words() -> frozenset[str]:
    """Words that must not appear in place/company vocabulary: every first name and gendered word."""
    female, male = _all_first_names()
    return frozenset(n.lower() for n in female | male) | GENDERED_WORDS


def _clean(entry: str, forbidden: frozenset[str]) -> bool:
    return not any(w.lower() in forbidden for w in re.findall(r"[A-Za-z]+", entry))


def _unique(draw: object, count: int, forbidden: frozenset[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for _ in range(count * 20):
        entry = draw()  # type: ignore[operator]
        if entry not in seen and _clean(entry, forbidden):
            seen[entry] = None
            if len(seen) == count:
                break
    return tuple(seen)


_PROPER = frozenset({"English", "Emeritus", "TEFL"})


def _specialty(title: str) -> str:
    """Faker's "Nurse, mental health" -> "mental health nurse", lower-cased except proper nouns."""
    head, _, qualifier = title.partition(", ")
    phrase = f"{qualifier} {head}" if qualifier else title
    return " ".join(w if w in _PROPER else w.lower() for w in phrase.split())


@dataclass(frozen=True)
class _Vocab:
    last_names: tuple[str, ...]
    cities: tuple[str, ...]
    companies: tuple[str, ...]
    specialties: dict[str, tuple[str, ...]]


@lru_cache(maxsize=4)
def _vocab(vocab_seed: int) -> _Vocab:
    """Places, companies, last names and job titles drawn once from a Faker seeded with ``vocab_seed``.

    Drawing them once and sampling per bio with ``random.Random`` keeps generation fast (Faker's
    weighted sampling costs ~100 us a call) and lets a city or company recur across bios as in real data.
    """
    fake = _faker("en_US")
    fake.seed_instance(vocab_seed)
    forbidden = _forbidden_words()
    last = _unique(fake.last_name, _VOCAB_SIZES["last_names"], forbidden)
    rng = random.Random(vocab_seed)
    addr = _provider(fake, "address")
    prefixes, suffixes = addr.city_prefixes, addr.city_suffixes  # type: ignore[attr-defined]

    def city() -> str:
        if rng.random() < 0.3:
            return f"{rng.choice(prefixes)} {rng.choice(last)}{rng.choice(suffixes)}"
        return f"{rng.choice(last)}{rng.choice(suffixes)}"

    cities = _unique(city, _VOCAB_SIZES["cities"], forbidden)
    companies = _unique(fake.company, _VOCAB_SIZES["companies"], forbidden)
    jobs = tuple(_provider(fake, "job").jobs)  # type: ignore[attr-defined]
    specialties: dict[str, tuple[str, ...]] = {}
    for prof, (pattern, exclude) in FAKER_JOB_PATTERNS.items():
        hits = [j for j in jobs if re.search(pattern, j, re.I) and not (exclude and re.search(exclude, j, re.I))]
        specialties[prof] = tuple(sorted({_specialty(j) for j in hits})) or (prof.replace("_", " "),)
    return _Vocab(last, cities, companies, specialties)


def professions(n: int) -> tuple[str, ...]:
    """The first ``n`` professions in label order (sorted names)."""
    return tuple(sorted(PROFESSION_CONTEXT))[:n]


def _article(phrase: str) -> str:
    return f"{'an' if phrase[0].lower() in 'aeiou' else 'a'} {phrase}"


def _bio(rng: random.Random, vocab: _Vocab, config: SynthConfig, gender: int, profession: str, first: str) -> str:
    """One raw (unscrubbed) biography. Every draw happens whatever the cue rates are."""
    city, company = rng.choice(vocab.cities), rng.choice(vocab.companies)
    fill = {
        **_PRONOUNS[gender], "First": first, "Last": rng.choice(vocab.last_names), "city": city, "company": company,
        "university": f"the University of {rng.choice(vocab.cities)}", "years": str(rng.randint(2, 30)),
        "kids": rng.choice(("two", "three", "one child", "four")), "a_title": _article(profession.replace("_", " ")),
        "a_specialty": _article(rng.choice(vocab.specialties[profession])),
        **{slot: pair[gender] for slot, pair in GENDERED_NOUNS.items()},
    }
    contexts = PROFESSION_CONTEXT[profession]
    first_sentence = rng.choice(_FIRST_SENTENCES)
    body = [(t, rng.choice(contexts)) for t in rng.sample(GENERIC_SENTENCES, rng.randint(config.min_sentences, config.max_sentences))]
    s = config.gender_cue_strength
    extras = (
        (rng.random() < config.specialty_rate, rng.choice(SPECIALTY_SENTENCES), rng.choice(contexts), rng.random()),
        (rng.random() < s * config.name_cue_rate, rng.choice(NAME_CUE_SENTENCES), rng.choice(contexts), rng.random()),
        (rng.random() < s * config.noun_cue_rate, rng.choice(NOUN_CUE_TEMPLATES), rng.choice(contexts), rng.random()),
    )
    for used, template, context, where in extras:
        if used:
            body.insert(int(where * (len(body) + 1)), (template, context))
    sentences = [first_sentence.format(**fill)] + [t.format(**fill, context=c) for t, c in body]
    return " ".join(sentences)


def raw_bios(config: SynthConfig) -> Iterator[tuple[str, int, int]]:
    """``config.n_bios`` unscrubbed bios (pronouns kept) as ``(text, profession index, gender)``, in the
    generator's seeded order: the labelled dataset and an unlabelled corpus of the same config share them."""
    vocab = _vocab(config.vocab_seed)
    pools = name_pools()
    vocab_rng = random.Random(config.vocab_seed)
    names = {g: tuple(vocab_rng.sample(pools[g], config.names_per_gender)) for g in (0, 1)}
    profs = professions(config.n_professions)
    rng = random.Random(config.seed)
    for _ in range(config.n_bios):
        gender = 1 if rng.random() < config.male_fraction else 0
        prof_idx = rng.randrange(len(profs))
        yield _bio(rng, vocab, config, gender, profs[prof_idx], rng.choice(names[gender])), prof_idx, gender


def generate_synthetic(config: SynthConfig) -> tuple[Dataset, TaskSpec]:
    """Generate ``config.n_bios`` labelled, pronoun-scrubbed biographies and their task spec.

    Columns: ``id`` (``synth-<seed>-<index>``), ``text`` (scrubbed, first sentence dropped),
    ``text_with_first_sentence``, ``profession`` (index into the returned names), ``gender`` (0 female,
    1 male).
    """
    profs = professions(config.n_professions)
    rows: dict[str, list[object]] = {k: [] for k in COLUMNS}
    for i, (raw, prof_idx, gender) in enumerate(raw_bios(config)):
        scrubbed = scrub_pronouns(raw)
        rows["id"].append(f"synth-{config.seed}-{i:07d}")
        rows["text"].append(drop_first_sentence(scrubbed))
        rows["text_with_first_sentence"].append(scrubbed)
        rows["profession"].append(prof_idx)
        rows["gender"].append(gender)
    task = TaskSpec(beneficial_names=profs, harmful_names=GENDER_NAMES)
    from datasets import Dataset

    return Dataset.from_dict(rows), task
