"""Profession-specific vocabulary of the synthetic biographies.

The professions are the labels of the beneficial task (a subset of Bias in Bios' 28); each carries
phrases that make it inferable from the text once the first sentence, which names it, is dropped.
"""

from __future__ import annotations

PROFESSION_CONTEXT: dict[str, tuple[str, ...]] = {
    "accountant": ("audits and tax returns", "financial statements for small businesses", "payroll and bookkeeping", "corporate tax planning"),
    "architect": ("residential building design", "sustainable urban housing", "restoring historic facades", "drafting blueprints for civic buildings"),
    "attorney": ("litigation and civil law", "representing clients in court", "contract disputes and mediation", "criminal defense cases"),
    "dentist": ("cosmetic dentistry and implants", "preventive oral care", "root canals and crowns", "pediatric dental checkups"),
    "journalist": ("investigative reporting", "covering city hall and elections", "long-form magazine features", "breaking news for the evening edition"),
    "nurse": ("intensive care patients", "emergency room triage", "patient care on the oncology ward", "home health visits"),
    "painter": ("oil paintings of landscapes", "large abstract canvases", "watercolor portraits", "gallery exhibitions of new works"),
    "photographer": ("wedding and portrait photography", "documentary photo essays", "studio lighting and product shoots", "wildlife photography expeditions"),
    "physician": ("internal medicine and diagnosis", "family medicine patients", "treating chronic illness in clinic", "hospital rounds and residency training"),
    "professor": ("teaching undergraduate seminars", "peer-reviewed research and grants", "supervising doctoral students", "lecturing on theory at the university"),
    "psychologist": ("cognitive behavioral therapy", "counseling clients with anxiety", "clinical assessment and therapy sessions", "research on child development"),
    "software_engineer": ("distributed systems and cloud services", "writing code in Python and Go", "building mobile apps", "backend APIs and databases"),
    "surgeon": ("minimally invasive surgery", "orthopedic operations", "the operating room and surgical residents", "cardiac surgery procedures"),
    "teacher": ("teaching third grade students", "middle school science lessons", "classroom curriculum and lesson plans", "high school English classes"),
    "poet": ("collections of poems", "verse and spoken word readings", "poetry workshops and chapbooks", "lyric poems published in literary journals"),
    "chiropractor": ("spinal adjustments", "back pain and posture treatment", "sports injury rehabilitation of the spine", "chiropractic care for neck pain"),
}

#: Which of Faker's job titles name each profession (matched case-insensitively; ``None`` = no title
#: fits, the profession's own name is used). Faker's list supplies varied specialty titles such as
#: "mental health nurse" or "chartered certified accountant" instead of a hand-made list.
FAKER_JOB_PATTERNS: dict[str, tuple[str, str | None]] = {
    "accountant": (r"accountant", None),
    "architect": (r"architect", r"naval|technologist"),
    "attorney": (r"lawyer|solicitor|^barrister$", r"scotland"),
    "chiropractor": (r"chiropractor", None),
    "dentist": (r"dentist", None),
    "journalist": (r"journalist", None),
    "nurse": (r"nurse", None),
    "painter": (r"^artist$|fine artist", None),
    "photographer": (r"photographer", None),
    "physician": (r"doctor", None),
    "poet": (r"^writer$", None),
    "professor": (r"professor|higher education", r"adviser"),
    "psychologist": (r"psycholog", None),
    "software_engineer": (r"software|programmer", None),
    "surgeon": (r"surgeon", r"tree|veterinary"),
    "teacher": (r"teacher", r"private music"),
}

GENERIC_SENTENCES: tuple[str, ...] = (
    "{He} studied at {university} and has over {years} years of experience in {context}.",
    "{He} focuses on {context}.",
    "Before joining {company}, {he} spent several years working on {context}.",
    "{His} work on {context} has been recognized by colleagues across {city}.",
    "{He} is passionate about {context} and mentoring newcomers to the field.",
    "Outside of work, {he} enjoys hiking and reading.",
    "{He} lives in {city}.",
)

#: Sentence naming a Faker job title of the person's profession (profession context, no gender).
SPECIALTY_SENTENCES: tuple[str, ...] = (
    "{He} trained as {a_specialty} before joining {company}.",
    "{He} is licensed as {a_specialty} and works with clients across {city}.",
)

#: Self-referential gendered nouns, (female, male). A noun cue sentence is the same template for both
#: genders with only these words changed, so the noun is the only gender signal it carries.
GENDERED_NOUNS: dict[str, tuple[str, str]] = {
    "parent": ("mother", "father"),
    "child": ("daughter", "son"),
    "spouse": ("wife", "husband"),
    "sibling": ("sister", "brother"),
    "grandparent": ("grandmother", "grandfather"),
    "person": ("woman", "man"),
    "relative": ("aunt", "uncle"),
    "business": ("businesswoman", "businessman"),
}

NOUN_CUE_TEMPLATES: tuple[str, ...] = (
    "{He} is a proud {parent} of {kids}.",
    "As a {person} in the field, {he} mentors young professionals.",
    "{He} is the {child} of two teachers.",
    "{He} is a {spouse} and a {grandparent}.",
    "{He} often says {he} became a {business} almost by accident.",
    "{He} is the youngest {sibling} in a family of five.",
    "{He} is a devoted {relative} to several nieces and nephews.",
)

#: Every gendered word a noun cue can use, plus plurals: vocabulary drawn from Faker (cities,
#: companies such as "Smith and Sons") containing one of them is dropped, so that with
#: ``gender_cue_strength=0`` no gendered noun is left in the text.
GENDERED_WORDS: frozenset[str] = frozenset(
    w for pair in GENDERED_NOUNS.values() for word in pair for w in (word, word + "s")
) | frozenset({"men", "women", "businessmen", "businesswomen", "she", "he", "her", "him", "his", "hers"})

NAME_CUE_SENTENCES: tuple[str, ...] = (
    "{First} has worked on {context} for most of {his} career.",
    "Colleagues describe {First} as a dedicated professional.",
    "In {his} free time, {First} volunteers in the local community.",
    "Clients often say that {First} makes {context} easy to understand.",
    "{First} also writes about {context} for a regional newsletter.",
)
