"""The text of an answer: its sentences, citations, content words, and "I don't know".

Plain string handling, shared by the metrics (``assistant.evaluation.metrics``) and the
threshold calibration (``data/tools/support_thresholds.py``).
"""

from __future__ import annotations

import re

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
_CITES_AFTER_STOP = re.compile(r"([.!?])((?:\s*\[\d+(?:\s*,\s*\d+)*\])+)")
LIST_MARK = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[*`A-Z0-9])")
_WORD = re.compile(r"[a-z0-9]+(?:[-'./:][a-z0-9]+)*")
_STOP_WORDS = (
    "a an the and or but if then of to in on at by for with from as is are was were be been "
    "being it its this that these those you your we our us i me my he she they them their "
    "there here do does did done have has had not no can could will would should may might "
    "must so than too very just also into out up down over about after before when where "
    "which who what why how all any some each more most other such only own same both again "
    "once under until while please"
)
_STOP = frozenset(_STOP_WORDS.split())


def split_sentences(text: str) -> list[str]:
    """Sentences, list items, headings and table rows. Lines wrapped inside a paragraph are
    joined, and a citation written after the full stop stays with its sentence
    ("Restart it. [2] Then..." -> "Restart it [2].", "Then...")."""
    text = _CITES_AFTER_STOP.sub(lambda m: " " + " ".join(m.group(2).split()) + m.group(1), text)
    blocks: list[str] = []
    current: list[str] = []
    for line in text.replace("\r", "\n").split("\n"):
        alone = line.lstrip().startswith(("#", "|"))
        if not line.strip() or alone or LIST_MARK.match(line):
            blocks.append(" ".join(current))
            current = []
        current.append(LIST_MARK.sub("", line.strip().lstrip("#")).strip())
        if alone:
            blocks.append(" ".join(current))
            current = []
    blocks.append(" ".join(current))
    return [s.strip() for b in blocks if b.strip() for s in _SENTENCE_END.split(b) if s.strip()]


def cited(sentence: str) -> list[int]:
    """The source numbers a sentence cites: [1], [2][3] and [1, 2] alike."""
    return [int(n) for group in _CITE.findall(sentence) for n in group.split(",")]


def strip_citations(text: str) -> str:
    return " ".join(_CITE.sub(" ", text).split())


def content_words(text: str) -> set[str]:
    words = _WORD.findall(text.lower().replace("\u2019", "'"))
    return {_stem(w) for w in words if w not in _STOP}


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def overlap(sentence: str, passage: str) -> float:
    """Share of the sentence's content words that the passage contains."""
    words = content_words(sentence)
    return len(words & content_words(passage)) / len(words) if words else 0.0


def says_unknown(text: str) -> bool:
    lowered = " ".join(text.lower().replace("\u2019", "'").split())
    return any(phrase in lowered for phrase in ABSTAIN_PHRASES)


def is_claim(sentence: str) -> bool:
    text = strip_citations(sentence)
    return len(_WORD.findall(text.lower())) >= MIN_CLAIM_WORDS and not says_unknown(text)


def facts(text: str) -> set[str]:
    """Words with a digit (codes, extensions, durations, versions): an answer that gets one
    wrong is wrong however close its wording."""
    return {w for w in content_words(text) if any(c.isdigit() for c in w)}
