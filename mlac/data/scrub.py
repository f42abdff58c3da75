"""Pronoun scrubbing and first-sentence removal (PROTOCOL.md, "The data").

she/he -> they, her/him/his -> their, hers -> theirs, herself/himself -> themself, keeping the case
pattern (``He`` -> ``They``, ``HIS`` -> ``THEIR``) and any punctuation around the word.
"""

from __future__ import annotations

import re

PRONOUN_MAP: dict[str, str] = {
    "she": "they", "he": "they",
    "her": "their", "him": "their", "his": "their",
    "hers": "theirs",
    "herself": "themself", "himself": "themself",
    "she's": "they're", "he's": "they're",
    "she'd": "they'd", "he'd": "they'd",
    "she'll": "they'll", "he'll": "they'll",
}
_PRONOUN_RE = re.compile(r"(?<![\w'])(" + "|".join(sorted(map(re.escape, PRONOUN_MAP), key=len, reverse=True)) + r")(?![\w'])", re.IGNORECASE)
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def _match_case(original: str, replacement: str) -> str:
    if original.isupper() and len(original) > 1:
        return replacement.upper()
    if original[0].isupper():
        return replacement[0].upper() + replacement[1:]
    return replacement


def scrub_pronouns(text: str) -> str:
    """Replace gendered pronouns by they/their forms, preserving case and punctuation."""
    return _PRONOUN_RE.sub(lambda m: _match_case(m.group(0), PRONOUN_MAP[m.group(0).lower()]), text)


def split_sentences(text: str) -> list[str]:
    """Split on sentence-final punctuation followed by whitespace and a capital/digit/quote."""
    return [s for s in _SENTENCE_END_RE.split(text.strip()) if s]


def drop_first_sentence(text: str) -> str:
    """The text without its first sentence (which usually names the person and the profession)."""
    sentences = split_sentences(text)
    return " ".join(sentences[1:]) if len(sentences) > 1 else ""
