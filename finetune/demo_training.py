"""Training conversations for the demo model's real job: answering from numbered sources.

Each example is what the gateway sends vLLM for one question (the grounded system prompt with
the passages the real index returns for it, then the question), followed by the answer the
demo model should give: the opening sentence of the passage the search ranked first, cited as
``[1]`` (what its copying circuit starts on: finetune/copy_circuit.py), or, when the search
found nothing relevant, that the documentation does not cover it. A model this small cannot
judge which sentence answers a question; the search and its relevance gate can.

Questions are made from the docs (headings and sentences, by templates) and from the
employees' turns in the transcripts. Nothing is taken from ``data/eval``: those questions
measure the result.
"""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from retrieval.text import LIST_MARK, content_words, passage_body, split_sentences

ABSTAIN = (
    "I don't know: the documentation I can search does not cover this. "
    "Please contact the IT Service Desk and tell them what you need."
)
MIN_ANSWER_WORDS = 5  # a shorter source sentence answers nothing on its own
UNGROUNDED_SHARE = 0.06  # examples with no sources at all (the ungrounded prompt)

_TEMPLATES = (
    "how do i {k}", "{k}?", "{k}", "question about {k}", "what should i do about {k}",
    "{k} not working", "where do i find {k}", "can you tell me about {k}",
    "i need help with {k}", "what is the {k}", "hi, quick one: {k}", "{k} - what now",
    "who do i ask about {k}", "is there a way to {k}", "help!! {k}", "what about {k}",
)  # fmt: skip
_MARKUP = re.compile(r"[*_`#>]+")
_SENTENCE_END = re.compile(r"[.!?](?=\s)")
_BLOCK_START = re.compile(r"\n(?=\s*(?:[-*#|]|\d+[.)]\s))")  # a list item, heading or row
LEAD_MAX_WORDS = 40  # a longer opening (a PDF's title lines) ends at its first line break
_TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}")


@dataclass
class Question:
    text: str
    kind: str  # heading, sentence or transcript
    source: str = ""  # the document it was made from ("" for a transcript)


@dataclass
class TrainingSet:
    conversations: list[list[dict]]
    counts: Counter


def answer_sentences(passage: str) -> list[str]:
    """The sentences of a passage that can be an answer, as they would be copied."""
    out = []
    for sentence in split_sentences(passage):
        if _TABLE_RULE.match(sentence.strip()) or sentence.lstrip().startswith("#"):
            continue
        if sentence.startswith("|"):
            sentence = " - ".join(c.strip() for c in sentence.strip("| ").split("|"))
        if len(content_words(sentence)) >= MIN_ANSWER_WORDS - 2 and len(sentence.split()) >= 5:
            out.append(sentence)
    return out


def lead_sentence(passage: str) -> str:
    """The passage's opening sentence as the prompt shows it (``passage_body``: no heading
    lines first), line breaks kept, so that it is copied token for token: up to the first
    full stop, the end of the first list item, row or paragraph."""
    body = passage_body(passage)
    mark = LIST_MARK.match(body)
    start = mark.end() if mark else 0
    ends = (_SENTENCE_END.search(body, start), _BLOCK_START.search(body, start))
    lead = body[: min((m.start() for m in ends if m), default=len(body))].split("\n\n")[0]
    if len(lead.split()) > LEAD_MAX_WORDS:
        lead = lead.split("\n")[0]
    return lead.strip()


def doc_questions(
    chunks: Sequence[tuple[str, str, str]], rng: random.Random, per_sentence: int = 2
) -> list[Question]:
    """Questions made from each passage ``(source, section, text)``: from its heading, and
    ``per_sentence`` per answer sentence from its rarer words (each worded differently)."""
    df = Counter(w for _, _, text in chunks for w in content_words(text))
    questions, seen = [], set()

    def add(text: str, kind: str, source: str) -> None:
        if text.lower() not in seen:
            seen.add(text.lower())
            questions.append(Question(text, kind, source))

    for source, section, text in chunks:
        sentences = answer_sentences(text)
        if not sentences:
            continue
        heading = _plain(section.split(" > ")[-1]).lower()
        for _ in range(per_sentence if heading else 0):
            add(_ask(heading, rng), "heading", source)
        for sentence in sentences:
            for _ in range(per_sentence):
                key = _key_words(sentence, df, rng)
                if key:
                    add(_ask(key, rng), "sentence", source)
    return questions


def transcript_questions(conversations: Sequence[list[dict]]) -> list[Question]:
    """Each employee turn that the agent answered."""
    out = []
    for messages in conversations:
        for asked, reply in itertools.pairwise(messages):
            if asked.get("role") == "user" and reply.get("role") == "assistant":
                text = str(asked.get("content") or "").strip()
                if len(text.split()) >= 3:
                    out.append(Question(text, "transcript"))
    return out


def build_training_set(
    search: Callable[[str], list],
    keep: Callable[[list], list],
    prompt: Callable[[list[dict], list], list[dict]],
    questions: Sequence[Question],
    *,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> TrainingSet:
    """One training conversation per usable question.

    ``search(question)`` is the index's search, ``keep(hits)`` the gateway's choice of
    passages (numbered from 1) and ``prompt(messages, passages)`` its grounded messages.
    """
    rng = random.Random(seed)
    conversations, counts = [], Counter()
    for q in questions:
        user = [{"role": "user", "content": q.text}]
        kept = keep(search(q.text))
        draw = rng.random()
        if not kept:  # the gateway would find nothing relevant: the ungrounded prompt
            if draw < UNGROUNDED_SHARE:  # as many as the drawn ones below, no more
                conversations.append(_chat(prompt(user, []), q.text, ABSTAIN))
                counts["nothing_found"] += 1
            else:
                counts["skipped_nothing_found"] += 1
            continue
        if draw < UNGROUNDED_SHARE:
            conversations.append(_chat(prompt(user, []), q.text, ABSTAIN))
            counts["ungrounded"] += 1
            continue
        lead = lead_sentence(kept[0].text)
        if len(lead.split()) < 2:
            counts[f"skipped_{q.kind}"] += 1
            continue
        answer = _cite(lead, kept[0].rank)
        conversations.append(_chat(prompt(user, kept), q.text, answer))
        counts[q.kind] += 1
    log("training examples: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return TrainingSet(conversations, counts)


def _cite(sentence: str, rank: int) -> str:
    sentence = sentence.strip()
    if sentence[-1:] in ".!?":
        return f"{sentence[:-1]} [{rank}]{sentence[-1]}"
    return f"{sentence} [{rank}]."


def _chat(messages: list[dict], question: str, answer: str) -> list[dict]:
    return [*messages, {"role": "assistant", "content": answer}]


def _plain(text: str) -> str:
    return " ".join(_MARKUP.sub("", text).split())


def _key_words(sentence: str, df: Counter, rng: random.Random) -> str:
    """2-4 of the sentence's rarer words, in the sentence's order, as a searcher types them."""
    words = re.findall(r"[A-Za-z0-9][A-Za-z0-9\-:.']*[A-Za-z0-9]|[A-Za-z0-9]", _plain(sentence))
    candidates = [w for w in words if content_words(w)]
    if len(candidates) < 2:
        return ""
    ranked = sorted(set(candidates), key=lambda w: (df[next(iter(content_words(w)))], rng.random()))
    chosen = set(ranked[: rng.randint(2, min(4, len(ranked)))])
    key = " ".join(w for w in dict.fromkeys(candidates) if w in chosen)
    return key.lower() if rng.random() < 0.7 else key


def _ask(key: str, rng: random.Random) -> str:
    return rng.choice(_TEMPLATES).format(k=key)
