"""The text of an answer: its citations, claims, facts, and "I don't know".

Plain string handling, shared by the metrics (``assistant.evaluation.metrics``) and the
threshold calibration (``data/tools/support_thresholds.py``); sentences and content words
come from ``retrieval.text``.
"""

from __future__ import annotations

import re

from retrieval.text import WORD, content_words

MIN_CLAIM_WORDS = 3  # shorter pieces ("Steps:", "Thanks!") make no claim to check

# How an answer says that it does not know (lower case, straight apostrophes).
ABSTAIN_PHRASES = (
    "do not know", "don't know", "not sure", "does not cover", "doesn't cover",
    "do not cover", "don't cover", "not covered", "isn't covered", "not documented",
    "no information", "have no information", "don't have information",
    "don't have any information", "do not have information", "do not have any information",
    "not able to answer", "unable to answer", "i can't answer", "i cannot answer",
    "could not find", "couldn't find", "cannot find", "can't find", "found nothing",
    "nothing relevant", "no relevant", "does not mention", "doesn't mention",
    "does not say", "doesn't say", "cannot help with", "can't help with",
    "not in the documentation", "documentation does not", "documentation doesn't",
)  # fmt: skip

_CITE = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def cited(sentence: str) -> list[int]:
    """The source numbers a sentence cites: [1], [2][3] and [1, 2] alike."""
    return [int(n) for group in _CITE.findall(sentence) for n in group.split(",")]


def strip_citations(text: str) -> str:
    return " ".join(_CITE.sub(" ", text).split())


def overlap(sentence: str, passage: str) -> float:
    """Share of the sentence's content words that the passage contains."""
    words = content_words(sentence)
    return len(words & content_words(passage)) / len(words) if words else 0.0


def says_unknown(text: str) -> bool:
    lowered = " ".join(text.lower().replace("\u2019", "'").split())
    return any(phrase in lowered for phrase in ABSTAIN_PHRASES)


def is_claim(sentence: str) -> bool:
    text = strip_citations(sentence)
    return len(WORD.findall(text.lower())) >= MIN_CLAIM_WORDS and not says_unknown(text)


def facts(text: str) -> set[str]:
    """Words with a digit (codes, extensions, durations, versions): an answer that gets one
    wrong is wrong however close its wording."""
    return {w for w in content_words(text) if any(c.isdigit() for c in w)}
