"""Answer quality from what the chat API returns: citations, support, relevance, abstention.

Plain functions over one answer, its ``sources`` and the text behind each source; no HTTP
and no server in here (``assistant.evaluation.harness`` asks the questions). Whether a source
supports a sentence is decided by a ``Support``: ``EmbedderSupport`` (cosine similarity of
all-MiniLM-L6-v2 embeddings plus token overlap) or ``JudgeSupport`` (a yes/no question to
any OpenAI-compatible model).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from assistant.evaluation.text import (
    cited,
    facts,
    is_claim,
    overlap,
    says_unknown,
    strip_citations,
)
from retrieval.evaluation import is_gold
from retrieval.text import content_words, split_sentences

# Thresholds, chosen on the sample data alone by data/tools/support_thresholds.py (run it
# to see the numbers; nothing from data/eval or any public set was used). Support: each
# sentence of a data/docs chunk against its chunk, whole and shortened, and 24 hand-written
# paraphrases of doc sentences against theirs, versus the same sentences against the most
# similar chunk of another document. The pair with the largest gap passes 97% of the
# extractive and 92% of the paraphrase pairs, and 12% of the other-document pairs (many of
# which do say the same thing: the docs repeat each other). Cosine alone at its best (0.75)
# passes 88%, 88% and 7%; overlap alone (0.55) 100%, 92% and 16%.
SUPPORT_COSINE = 0.60  # sentence <-> closest sentence window of the passage, MiniLM
SUPPORT_OVERLAP = 0.55  # share of the sentence's content words found in the passage
# Question <-> answer, on data/transcripts: an employee's first message against the agent's
# first reply passes in 86% of the conversations, against another conversation's in 13%.
RELEVANT_COSINE = 0.25
EMBEDDER_MODEL = "all-MiniLM-L6-v2"  # the one the thresholds were chosen with

JUDGE_PROMPT = (
    "Does the SOURCE support the STATEMENT, so that someone who reads only the SOURCE "
    "would know the STATEMENT is true? Answer with one word, yes or no.\n\n"
    "SOURCE:\n{source}\n\nSTATEMENT:\n{statement}"
)


@dataclass(frozen=True)
class Evidence:
    """The text behind one source: its heading (title > section) and the passage, or the
    snippet when the passage could not be read."""

    heading: str
    body: str

    @classmethod
    def of(cls, source: dict, passage: str | None = None) -> Evidence:
        title, section = source.get("title") or "", source.get("section") or ""
        section = section.removeprefix(title + " > ") if title else section
        heading = title + (f" > {section}" if section and section != title else "")
        return cls(heading, passage or source.get("snippet") or "")

    @property
    def text(self) -> str:
        return f"{self.heading}\n{self.body}" if self.heading else self.body

    def windows(self) -> list[str]:
        """Its sentences, pairs of adjacent ones, and each sentence under the heading: a
        sentence of an answer is compared with these, not with the whole passage, whose
        embedding is diluted by everything else it says."""
        parts = split_sentences(self.body)
        spans = parts + [f"{a} {b}" for a, b in itertools.pairwise(parts)]
        headed = [f"{self.heading}: {p}" for p in parts] if self.heading else []
        return spans + headed or [self.text]


class Embedder(Protocol):
    def embed(self, texts: list[str]) -> list[list[float]]: ...


@dataclass(frozen=True)
class Verdict:
    ok: bool
    cosine: float | None = None
    overlap: float | None = None


class Support(Protocol):
    method: str  # said in the results: "embedder+overlap" or "judge:<model>"

    def check(self, sentences: list[str], evidence: list[Evidence]) -> list[list[Verdict]]:
        """One row per sentence, one verdict per source."""
        ...


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=True)))  # the embedder normalizes


class EmbedderSupport:
    """Supported: the closest window of the passage has cosine >= SUPPORT_COSINE, the
    passage holds SUPPORT_OVERLAP of the sentence's content words, and every number or code
    in the sentence."""

    method = "embedder+overlap"

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._vectors: dict[str, list[float]] = {}  # the same sources come back all run

    def vectors(self, texts: list[str]) -> list[list[float]]:
        new = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if new:
            self._vectors.update(zip(new, self.embedder.embed(new), strict=True))
        return [self._vectors[t] for t in texts]

    def check(self, sentences: list[str], evidence: list[Evidence]) -> list[list[Verdict]]:
        windows = [e.windows() for e in evidence]
        sent_vecs = self.vectors(sentences)
        win_vecs = [self.vectors(w) for w in windows]
        rows = []
        for sentence, sv in zip(sentences, sent_vecs, strict=True):
            row = []
            for source, vecs in zip(evidence, win_vecs, strict=True):
                cos = max(cosine(sv, v) for v in vecs)
                share = overlap(sentence, source.text)
                ok = (
                    cos >= SUPPORT_COSINE
                    and share >= SUPPORT_OVERLAP
                    and facts(sentence) <= content_words(source.text)
                )
                row.append(Verdict(ok, round(cos, 4), round(share, 4)))
            rows.append(row)
        return rows


class JudgeSupport:
    """``ask(prompt) -> reply`` goes to the judge model; one question per sentence and
    passage, asked once per run."""

    def __init__(self, ask: Callable[[str], str], model: str) -> None:
        self.ask = ask
        self.method = f"judge:{model}"
        self._seen: dict[tuple[str, str], bool] = {}

    def check(self, sentences: list[str], evidence: list[Evidence]) -> list[list[Verdict]]:
        return [[Verdict(self._supports(s, e.text)) for e in evidence] for s in sentences]

    def _supports(self, sentence: str, passage: str) -> bool:
        key = (sentence, passage)
        if key not in self._seen:
            reply = self.ask(JUDGE_PROMPT.format(source=passage, statement=sentence))
            self._seen[key] = reply.strip().lower().lstrip("*\"' ").startswith("yes")
        return self._seen[key]


def score_answer(
    *,
    question: str,
    gold: Sequence[str] | None,
    answer: str,
    sources: list[dict],
    evidence: list[Evidence],
    grounded: bool,
    support: Support,
    embedder: Embedder,
) -> dict:
    """Every metric of one answer; ``evidence[i]`` is the text behind ``sources[i]``.

    A metric that does not apply is ``None``: gold source on a question the docs do not
    answer, faithfulness of an answer with no claims or one that declines with no sources,
    relevance of an answer that declines; gold source and abstention when ``gold`` is
    ``None`` (a held-out conversation: whether the docs answer it is not known).
    """
    index = {s.get("rank", i + 1): i for i, s in enumerate(sources)}
    sentences = split_sentences(answer)
    claims = [s for s in sentences if is_claim(s)]
    plain = [strip_citations(c) for c in claims]
    verdicts = support.check(plain, evidence) if claims and evidence else [[] for _ in claims]
    unknown = says_unknown(answer)
    abstained = unknown or not grounded
    declined = unknown and not sources  # "not covered, ask the Service Desk": nothing to check
    # no claim and no "I don't know": "[1] [2] [3]" or "Yes." says nothing a source could back,
    # so its citations count for nothing and it does not count as answering
    empty = not claims and not unknown

    detail, valid, total, out_of_range = [], 0, 0, 0
    for sentence in sentences:
        row = verdicts[claims.index(sentence)] if sentence in claims else None
        numbers = cited(sentence)
        for n in numbers:
            total += 1
            if n not in index:
                out_of_range += 1
            elif not empty and (row is None or row[index[n]].ok):
                valid += 1  # a citation on a sentence with nothing to check counts if it exists
        if row is not None:
            detail.append(_sentence_detail(sentence, numbers, row, sources))
    supported = sum(1 for row in verdicts if any(v.ok for v in row))

    if total:
        citation_validity = valid / total
    elif claims and sources and not unknown:
        citation_validity = 0.0  # grounded claims and not one citation
    else:
        citation_validity = None
    gold_cited = None
    if gold:
        cited_sources = [sources[index[n]].get("source") or "" for s in sentences for n in cited(s)
                         if n in index]  # fmt: skip
        golds = frozenset(gold)
        gold_cited = float(not empty and any(is_gold(src, golds) for src in cited_sources))
    relevance_cos = None
    if not unknown and strip_citations(answer).strip():
        q_vec, a_vec = embedder.embed([question, strip_citations(answer)])
        relevance_cos = round(cosine(q_vec, a_vec), 4)
    # answerable: it answered; off-topic: the server found nothing and the answer says so
    if gold is None:  # not known whether the docs answer it
        abstention_correct = None
    else:
        abstention_correct = (not abstained and not empty) if gold else (not grounded and unknown)
    return {
        "faithfulness": round(supported / len(claims), 4) if claims and not declined else None,
        "citation_validity": round(citation_validity, 4) if citation_validity is not None else None,
        "gold_source_cited": gold_cited,
        "answer_relevance": _at_least(relevance_cos, RELEVANT_COSINE),
        "relevance_cosine": relevance_cos,
        "says_unknown": unknown,
        "empty": empty,
        "abstained": abstained,
        "abstention_correct": None if abstention_correct is None else float(abstention_correct),
        "citations": {"total": total, "valid": valid, "out_of_range": out_of_range},
        "claims": len(claims),
        "supported_claims": supported,
        "sentences": detail,
    }


def key_fact_stated(answer: str, spellings: Sequence[str] | None) -> float | None:
    """1.0 when the answer states the question's key fact (any of its spellings, ignoring
    case and runs of white space), 0.0 when not; ``None`` for a question without one."""
    if not spellings:
        return None
    said = " ".join(answer.split()).casefold()
    return float(any(" ".join(s.split()).casefold() in said for s in spellings))


def _at_least(value: float | None, threshold: float) -> float | None:
    return None if value is None else float(value >= threshold)


def _sentence_detail(sentence: str, numbers: list[int], row: list[Verdict], sources) -> dict:
    best = max(row, key=lambda v: (v.ok, v.cosine or 0.0), default=None)
    return {
        "text": sentence,
        "cites": numbers,
        "supported_by": [sources[i].get("rank", i + 1) for i, v in enumerate(row) if v.ok],
        "best_cosine": best.cosine if best else None,
        "best_overlap": best.overlap if best else None,
    }


METRICS = (
    "gold_source_cited",
    "faithfulness",
    "citation_validity",
    "answer_relevance",
    "abstention_correct",
)


def summarize(records: list[dict], method: str) -> dict:
    """Means over the questions each metric applies to; errors count in ``errors`` only."""
    ok = [r for r in records if not r.get("error")]
    summary: dict = {"n": len(records), "answered": len(ok), "errors": len(records) - len(ok)}
    for name in METRICS:
        summary[name] = _mean([r[name] for r in ok])
    off_topic = [r for r in ok if r["gold"] == []]
    summary["abstention_offtopic"] = _mean([r["abstention_correct"] for r in off_topic])
    summary["abstention_answerable"] = _mean([r["abstention_correct"] for r in ok if r["gold"]])
    summary["n_offtopic"] = len(off_topic)
    summary["empty_answers"] = _mean([float(r["empty"]) for r in ok if "empty" in r])
    summary["key_fact_stated"] = _mean([r.get("key_fact_stated") for r in ok])
    summary["n_key_facts"] = sum(r.get("key_fact_stated") is not None for r in ok)
    latencies = [r["latency_ms"] for r in ok if r.get("latency_ms") is not None]
    summary["latency_p50_ms"] = _percentile(latencies, 50)
    summary["latency_p95_ms"] = _percentile(latencies, 95)
    summary["tokens_per_answer"] = _mean([r.get("completion_tokens") for r in ok])
    summary["method"] = method
    return summary


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(sum(values) / len(values), 4) if values else None


def _percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (pos - low), 1)
