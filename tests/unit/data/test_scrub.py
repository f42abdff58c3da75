"""Pronoun scrubbing (every case and punctuation variant) and first-sentence removal."""

from __future__ import annotations

import re

import pytest

from mlac.data import drop_first_sentence, scrub_pronouns


@pytest.mark.parametrize(
    ("raw", "scrubbed"),
    [
        ("She is a nurse.", "They is a nurse."),
        ("He said his wife met him.", "They said their wife met their."),
        ("HE WROTE HIS BOOK; SHE READ HER NOTES", "THEY WROTE THEIR BOOK; THEY READ THEIR NOTES"),
        ("(his) her. Her, hers! himself herself", "(their) their. Their, theirs! themself themself"),
        ('"He," she said. [Him] {her} his: him; her?', '"They," they said. [Their] {their} their: their; their?'),
        ("He-who-codes and she/he", "They-who-codes and they/they"),
        ("She's here; he'll go; he'd stay.", "They're here; they'll go; they'd stay."),
        ("Hers is red. HIMSELF. Herself.", "Theirs is red. THEMSELF. Themself."),
        ("\u201cHe\u201d wrote \u2018her\u2019 poem.", "\u201cThey\u201d wrote \u2018their\u2019 poem."),
    ],
)
def test_scrub_pronouns_variants(raw: str, scrubbed: str) -> None:
    assert scrub_pronouns(raw) == scrubbed


@pytest.mark.parametrize(
    "untouched",
    ["the shepherd and hermit", "Hershey, Heather, Hiss, heal, herbal, chess, theme, other, ashes, she-wolves? no", "Helen Hisham"],
)
def test_words_containing_pronouns_are_untouched(untouched: str) -> None:
    out = scrub_pronouns(untouched)
    # only whole-word pronouns may change; none of these words is one except "she" inside "she-wolves"
    assert re.sub(r"\bthey\b", "she", out) == untouched


def test_scrubbed_text_has_no_gendered_pronoun() -> None:
    text = "She told him that HIS work, and hers, made her proud of herself; he agreed (himself)."
    assert not re.search(r"\b(she|he|her|him|his|hers|herself|himself)\b", scrub_pronouns(text), re.I)


def test_drop_first_sentence() -> None:
    assert drop_first_sentence("Ann Lee is a nurse. They work nights. They like tea.") == "They work nights. They like tea."
    assert drop_first_sentence("Bo Ng is a DJ! Their sets sell out? Yes.") == "Their sets sell out? Yes."
    assert drop_first_sentence("Only one sentence.") == ""
    assert drop_first_sentence("") == ""
