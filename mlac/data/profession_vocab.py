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

GENERIC_SENTENCES: tuple[str, ...] = (
    "{He} studied at {university} and has over {years} years of experience in {context}.",
    "{He} focuses on {context}.",
    "Before joining {company}, {he} spent several years working on {context}.",
    "{His} work on {context} has been recognized by colleagues across {city}.",
    "{He} is passionate about {context} and mentoring newcomers to the field.",
    "Outside of work, {he} enjoys hiking and reading.",
    "{He} lives in {city}.",
)

#: Sentences that reveal the person's own gender through a gendered noun (they survive scrubbing).
NOUN_CUE_SENTENCES: dict[int, tuple[str, ...]] = {
    0: (
        "{He} is a proud mother of {kids}.",
        "As a woman in the field, {he} mentors young professionals.",
        "{He} is the daughter of two teachers.",
        "{He} is a wife and a grandmother.",
        "{He} often says {he} became a businesswoman almost by accident.",
    ),
    1: (
        "{He} is a proud father of {kids}.",
        "As a man in the field, {he} mentors young professionals.",
        "{He} is the son of two teachers.",
        "{He} is a husband and a grandfather.",
        "{He} often says {he} became a businessman almost by accident.",
    ),
}

NAME_CUE_SENTENCES: tuple[str, ...] = (
    "{First} has worked on {context} for most of {his} career.",
    "Colleagues describe {First} as a dedicated professional.",
    "In {his} free time, {First} volunteers in the local community.",
)
