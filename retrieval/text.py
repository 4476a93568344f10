"""Plain text of passages and answers: sentences, list marks, content words, and a
passage's body without its heading lines.

Shared by the prompt (``assistant.chat.prompt``), the answer metrics
(``assistant.evaluation``) and the demo model's training data (``finetune.demo_training``).
"""

from __future__ import annotations

import re

_CITES_AFTER_STOP = re.compile(r"([.!?])((?:\s*\[\d+(?:\s*,\s*\d+)*\])+)")
LIST_MARK = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[*`A-Z0-9])")
WORD = re.compile(r"[a-z0-9]+(?:[-'./:][a-z0-9]+)*")
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


def content_words(text: str) -> set[str]:
    words = WORD.findall(text.lower().replace("\u2019", "'"))
    return {_stem(w) for w in words if w not in _STOP}


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def passage_body(text: str) -> str:
    """A passage without the heading lines it opens with ("## Public places"): the source's
    header line already names its section, and the text starts with what it says."""
    lines = text.strip().splitlines()
    while len(lines) > 1 and (lines[0].lstrip().startswith("#") or not lines[0].strip()):
        lines.pop(0)
    return "\n".join(lines).strip()
